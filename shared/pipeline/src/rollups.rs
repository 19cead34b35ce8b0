//! The rollup use cases: recompute a period's KPI and incentive rows from its facts, close a
//! period, and render the finance export.
//!
//! Recomputing is a pure function of the stored facts and plans, written with deterministic
//! keys (never increments): running it any number of times, or after a crash at any point, gives
//! the same rows. A closed period is never written again; facts that land in it later (a
//! back-dated re-score) are posted as corrections to the first open period after it, computed
//! against the frozen rows and any corrections already frozen in later closed periods.

use chrono::{DateTime, Utc};
use leadsync_domain::facts::{is_period, previous_period};
use leadsync_domain::ports::{PeriodStatus, RollupStore, RowsWritten, StoreError};
use leadsync_domain::rollup::{
    ControlTotals, Rollup, RollupRow, RowBody, corrections, incentive_rows,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Why a rollup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    #[error("{0:?} is not a period: expected YYYY-MM")]
    BadPeriod(String),
    #[error("store failed while {step} for period {period}")]
    Store {
        step: &'static str,
        period: String,
        #[source]
        source: StoreError,
    },
    #[error("period {period} is already closed (by {by} at {at})")]
    AlreadyClosed {
        period: String,
        by: String,
        at: DateTime<Utc>,
    },
    #[error("writing the CSV export failed: {0}")]
    Csv(String),
}

impl RollupError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, RollupError::Store { source, .. } if source.is_retryable())
    }
}

fn store(step: &'static str, period: &str) -> impl FnOnce(StoreError) -> RollupError {
    let period = period.to_owned();
    move |source| RollupError::Store {
        step,
        period,
        source,
    }
}

fn check(period: &str) -> Result<(), RollupError> {
    if is_period(period) {
        Ok(())
    } else {
        Err(RollupError::BadPeriod(period.to_owned()))
    }
}

fn next_period(period: &str) -> Option<String> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    Some(next.format("%Y-%m").to_string())
}

/// The rows a period's facts give now (no corrections), folded a page of facts at a time.
async fn computed<S: RollupStore>(
    store: &S,
    period: &str,
    plans: &BTreeMap<String, leadsync_domain::incentives::IncentivePlan>,
) -> Result<Vec<RollupRow>, RollupError> {
    let mut rollup = Rollup::new(period, plans);
    let facts = store
        .visit_facts(period, |f| rollup.add(&f))
        .await
        .map_err(self::store("reading facts", period))?;
    let mut previous = 0;
    if let Some(p) = previous_period(period) {
        previous = store
            .visit_facts(&p, |f| rollup.add_previous(&f))
            .await
            .map_err(self::store("reading facts", &p))?;
    }
    tracing::debug!(period, facts, previous, "Facts folded.");
    Ok(rollup.finish())
}

/// What [`refresh`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Open periods whose rows were recomputed, and what that changed.
    pub periods: BTreeMap<String, RowsWritten>,
    /// Correction rows posted (all periods).
    pub corrections: u64,
}

/// Recompute the rows of the periods in `touched` (where facts were recorded). A touched
/// closed period is not written: its differences post as corrections to the first open
/// period after it.
///
/// # Errors
/// [`RollupError`]; repeating the call is safe.
pub async fn refresh<S: RollupStore>(
    store: &S,
    touched: &BTreeSet<String>,
) -> Result<RefreshReport, RollupError> {
    for p in touched {
        check(p)?;
    }
    let plans = store
        .plans()
        .await
        .map_err(self::store("reading incentive plans", "-"))?;
    let closed: BTreeMap<String, PeriodStatus> = store
        .closed_periods()
        .await
        .map_err(self::store("listing closed periods", "-"))?
        .into_iter()
        .map(|s| (s.period.clone(), s))
        .collect();
    let first_open_from = |p: &str| {
        let mut p = p.to_owned();
        while closed.contains_key(&p) {
            match next_period(&p) {
                Some(n) => p = n,
                None => break,
            }
        }
        p
    };
    let targets: BTreeSet<String> = touched.iter().map(|p| first_open_from(p)).collect();
    let mut report = RefreshReport::default();
    for target in targets {
        let mut rows = computed(store, &target, &plans).await?;
        // Every closed period whose first open successor is this one may need corrections.
        let feeding: Vec<&String> = closed
            .keys()
            .filter(|c| c.as_str() < target.as_str() && first_open_from(c) == target)
            .collect();
        for c in feeding {
            let mut baseline: BTreeMap<String, RollupRow> = store
                .rows(c)
                .await
                .map_err(self::store("reading frozen rows", c))?
                .into_iter()
                .filter(|r| !r.sk.starts_with("CORR#"))
                .map(|r| (r.sk.clone(), r))
                .collect();
            // Corrections already frozen in closed periods between `c` and `target` are part
            // of the baseline: never post the same difference twice.
            let mut between = next_period(c);
            while let Some(p) = between.filter(|p| *p != target) {
                for row in store
                    .rows(&p)
                    .await
                    .map_err(self::store("reading frozen rows", &p))?
                {
                    if let Ok(RowBody::Correction(k)) = row.parse()
                        && k.closed_period == *c
                    {
                        match k.now {
                            Some(body) => {
                                baseline.insert(
                                    k.row.clone(),
                                    RollupRow {
                                        sk: k.row.clone(),
                                        body,
                                    },
                                );
                            }
                            None => {
                                baseline.remove(&k.row);
                            }
                        }
                    }
                }
                between = next_period(&p);
            }
            let baseline: Vec<RollupRow> = baseline.into_values().collect();
            let now = computed(store, c, &plans).await?;
            let posted = corrections(c, &baseline, &now);
            report.corrections += posted.len() as u64;
            rows.extend(posted);
        }
        rows.sort();
        let written = store
            .replace_rows(&target, &rows)
            .await
            .map_err(self::store("writing rows", &target))?;
        tracing::info!(period = %target, written = written.written, deleted = written.deleted, unchanged = written.unchanged, "Rollups recomputed.");
        report.periods.insert(target, written);
    }
    Ok(report)
}

/// Close a period: recompute it one last time, freeze its rows with their control totals.
///
/// # Errors
/// [`RollupError::AlreadyClosed`], or a store failure (repeating completes the close).
pub async fn close<S: RollupStore>(
    store: &S,
    period: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<PeriodStatus, RollupError> {
    check(period)?;
    if let Some(done) = store
        .closed_periods()
        .await
        .map_err(self::store("listing closed periods", period))?
        .into_iter()
        .find(|s| s.period == period)
    {
        // Finish an interrupted close (freezing is idempotent), then say it was closed.
        store
            .close_period(&done)
            .await
            .map_err(self::store("freezing rows", period))?;
        return Err(RollupError::AlreadyClosed {
            period: period.to_owned(),
            by: done.closed_by,
            at: done.closed_at,
        });
    }
    refresh(store, &BTreeSet::from([period.to_owned()])).await?;
    let rows = store
        .rows(period)
        .await
        .map_err(self::store("reading rows", period))?;
    let (mut credits, mut facts) = (0i64, 0u64);
    for row in &rows {
        match row.parse() {
            Ok(RowBody::Incentive(i)) => {
                credits += i.credits_cents;
                facts += i.facts;
            }
            Ok(RowBody::Correction(c)) => credits += c.delta_credits_cents,
            _ => {}
        }
    }
    let status = PeriodStatus {
        period: period.to_owned(),
        closed_by: by.to_owned(),
        closed_at: now,
        rows: rows.len() as u64,
        credits_cents: credits,
        facts,
    };
    store
        .close_period(&status)
        .await
        .map_err(self::store("closing", period))?;
    tracing::info!(
        period,
        rows = status.rows,
        credits_cents = status.credits_cents,
        "Period closed."
    );
    Ok(status)
}

/// The criteria version with the most incentive rows in `rows`: what a report shows by default.
pub fn busiest_version(rows: &[RollupRow]) -> Option<String> {
    let mut counts = BTreeMap::<String, usize>::new();
    for row in rows {
        if let Ok(RowBody::Incentive(i)) = row.parse() {
            *counts.entry(i.criteria_version).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(v, _)| v)
}

/// `1234` cents → `"12.34"`; `-5` → `"-0.05"`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A finance export: RFC 4180 CSV of a period's incentive rows under one criteria version,
/// a control-totals row last, and the SHA-256 of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub csv: Vec<u8>,
    pub sha256: String,
    pub totals: ControlTotals,
}

/// The outcomes exported as columns, in order.
const OUTCOME_COLUMNS: [&str; 5] = [
    "sql",
    "sales_accepted",
    "sales_rejected",
    "opportunity",
    "won",
];

/// Render the export.
///
/// # Errors
/// [`RollupError::Csv`] if the writer fails (it writes to memory).
pub fn export(
    period: &str,
    version: &str,
    currency: &str,
    rows: &[RollupRow],
) -> Result<Export, RollupError> {
    let (incentives, totals) = incentive_rows(rows, version);
    let csv_err = |e: csv::Error| RollupError::Csv(e.to_string());
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let mut header = vec![
        "period",
        "criteria_version",
        "team",
        "owner",
        "currency",
        "credits",
    ];
    header.extend(OUTCOME_COLUMNS);
    header.extend(["facts", "lineage"]);
    w.write_record(&header).map_err(csv_err)?;
    for i in &incentives {
        let mut record = vec![
            period.to_owned(),
            i.criteria_version.clone(),
            i.team.as_str().to_owned(),
            i.owner.clone(),
            currency.to_owned(),
            money(i.credits_cents),
        ];
        record.extend(
            OUTCOME_COLUMNS
                .iter()
                .map(|o| i.outcomes.get(*o).copied().unwrap_or(0).to_string()),
        );
        record.extend([i.facts.to_string(), i.lineage.clone()]);
        w.write_record(&record).map_err(csv_err)?;
    }
    let mut total = vec![
        period.to_owned(),
        version.to_owned(),
        "TOTAL".to_owned(),
        format!("{} rows", totals.rows),
        currency.to_owned(),
        money(totals.credits_cents),
    ];
    total.extend(
        OUTCOME_COLUMNS
            .iter()
            .map(|o| totals.outcomes.get(*o).copied().unwrap_or(0).to_string()),
    );
    total.extend([
        totals.facts.to_string(),
        format!("corrections {}", money(totals.corrections_cents)),
    ]);
    w.write_record(&total).map_err(csv_err)?;
    let csv = w
        .into_inner()
        .map_err(|e| RollupError::Csv(e.to_string()))?;
    let sha256 = hex::encode(Sha256::digest(&csv));
    Ok(Export {
        csv,
        sha256,
        totals,
    })
}
