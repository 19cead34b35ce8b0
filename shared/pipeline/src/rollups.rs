//! The rollup use cases: recompute a period's KPI and incentive rows from its facts, close a
//! period, and render the finance export ([`export`]: its CSV and Parquet files).
//!
//! Recomputing is a pure function of the stored facts and plans, written with deterministic
//! keys (never increments): running it any number of times, or after a crash at any point, gives
//! the same rows. A closed period is never written again; facts that land in it later (a
//! back-dated re-score) are posted as corrections to the first open period after it, computed
//! against the frozen rows and any corrections already frozen in later closed periods.

use chrono::{DateTime, Utc};
use leadsync_domain::facts::{LeadLinks, is_period, previous_period};
use leadsync_domain::funnel::{Funnel, FunnelReport};
use leadsync_domain::incentives::IncentivePlan;
use leadsync_domain::ports::{PeriodStatus, RollupStore, RowsWritten, RunStore, StoreError};
use leadsync_domain::rollup::{
    Rollup, RollupRow, RowBody, StatementLine, corrections, incentive_rows, reporting_version,
    version_view,
};
use std::collections::{BTreeMap, BTreeSet};

mod export;

pub use export::{Export, ExportFile, export, export_files, money, sha256_hex, statements_csv};

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
    /// A run (or an erasure, or another close) holds the sync lease: closing and recomputing
    /// wait for it, since rows are written in batches that a close must not interleave with.
    #[error("the sync lease is held by {holder} until {until}; try again after it")]
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
}

impl RollupError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, RollupError::Busy { .. })
            || matches!(self, RollupError::Store { source, .. } if source.is_retryable())
    }
}

/// How long a close or a recompute may hold the sync lease (it is released when done).
pub const LEASE_FOR: chrono::Duration = chrono::Duration::minutes(15);

/// Run `work` holding the sync lease as `holder` — as every run, erasure and close does, so
/// rollup rows are only ever written by one of them at a time.
async fn under_lease<S, T, F>(
    store: &S,
    holder: &str,
    period: &str,
    now: DateTime<Utc>,
    work: F,
) -> Result<T, RollupError>
where
    S: RunStore,
    F: Future<Output = Result<T, RollupError>>,
{
    if let Some(lease) = store
        .acquire_lease(holder, now, now + LEASE_FOR)
        .await
        .map_err(self::store("taking the sync lease", period))?
    {
        return Err(RollupError::Busy {
            holder: lease.holder,
            until: lease.until,
        });
    }
    let outcome = work.await;
    if let Err(e) = store.release_lease(holder).await {
        tracing::warn!(error = %e, holder, "Releasing the lease failed; it expires.");
    }
    outcome
}

/// [`refresh`] `periods` on request (an operator's recompute), under the sync lease.
///
/// # Errors
/// [`RollupError::Busy`] while a run holds the lease; as [`refresh`] otherwise.
pub async fn recompute<S: RollupStore + RunStore>(
    store: &S,
    periods: &BTreeSet<String>,
    now: DateTime<Utc>,
) -> Result<RefreshReport, RollupError> {
    let first = periods.iter().next().cloned().unwrap_or_default();
    let holder = format!("recompute-{first}");
    under_lease(store, &holder, &first, now, refresh(store, periods)).await
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
    links: &LeadLinks,
) -> Result<Vec<RollupRow>, RollupError> {
    let (rows, _) = computed_chained(store, period, plans, links, None, false).await?;
    Ok(rows)
}

/// [`computed`], reading each month once along a run of consecutive periods: `primed` is this
/// period's rollup with its previous month already folded in (by the call for that month), and
/// with `feed_next` this month's facts also start the next month's rollup, returned primed.
async fn computed_chained<'p, S: RollupStore>(
    store: &S,
    period: &str,
    plans: &'p BTreeMap<String, leadsync_domain::incentives::IncentivePlan>,
    links: &'p LeadLinks,
    primed: Option<Rollup<'p>>,
    feed_next: bool,
) -> Result<(Vec<RollupRow>, Option<Rollup<'p>>), RollupError> {
    let was_primed = primed.is_some();
    let mut rollup = primed.unwrap_or_else(|| Rollup::new(period, plans).with_links(links));
    let mut next = feed_next
        .then(|| next_period(period))
        .flatten()
        .map(|n| Rollup::new(&n, plans).with_links(links));
    let facts = store
        .visit_facts(period, |f| {
            rollup.add(&f);
            if let Some(next) = next.as_mut() {
                next.add_previous(&f);
            }
        })
        .await
        .map_err(self::store("reading facts", period))?;
    let mut previous = 0;
    if !was_primed && let Some(p) = previous_period(period) {
        previous = store
            .visit_facts(&p, |f| rollup.add_previous(&f))
            .await
            .map_err(self::store("reading facts", &p))?;
    }
    tracing::debug!(period, facts, previous, was_primed, "Facts folded.");
    Ok((rollup.finish(), next))
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
    let links = store
        .links()
        .await
        .map_err(self::store("reading merged and deleted leads", "-"))?;
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
    // Consecutive targets share a month (the later one's previous): it is read once.
    let mut primed = None;
    for target in &targets {
        let feed_next = next_period(target).is_some_and(|n| targets.contains(&n));
        let (mut rows, next) =
            computed_chained(store, target, &plans, &links, primed.take(), feed_next).await?;
        primed = next;
        let target = target.clone();
        // Every closed period whose first open successor is this one may need corrections.
        let feeding: Vec<&String> = closed
            .keys()
            .filter(|c| c.as_str() < target.as_str() && first_open_from(c) == target)
            .collect();
        for c in feeding {
            let frozen = store
                .rows(c)
                .await
                .map_err(self::store("reading frozen rows", c))?;
            // The view the period was closed (and paid) under.
            let closed_version = closed
                .get(c)
                .and_then(|s| s.criteria_version.clone())
                .or_else(|| reporting_version(&frozen))
                .unwrap_or_default();
            let mut baseline = version_view(&frozen, &closed_version);
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
            let now = computed(store, c, &plans, &links).await?;
            let now_view = reporting_version(&now)
                .map(|v| version_view(&now, &v))
                .unwrap_or_default();
            let posted = corrections(c, &baseline, &now_view);
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

/// Close a period: recompute it one last time, freeze its rows with their control totals —
/// holding the sync lease, so no run recomputes (writes) the period's rows meanwhile.
///
/// # Errors
/// [`RollupError::AlreadyClosed`], [`RollupError::Busy`] while a run holds the lease, or a
/// store failure (repeating completes the close).
pub async fn close<S: RollupStore + RunStore>(
    store: &S,
    period: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<PeriodStatus, RollupError> {
    check(period)?;
    under_lease(
        store,
        &format!("close-{period}"),
        period,
        now,
        close_held(store, period, by, now),
    )
    .await
}

async fn close_held<S: RollupStore>(
    store: &S,
    period: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<PeriodStatus, RollupError> {
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
    let version = reporting_version(&rows);
    let (_, totals) = incentive_rows(&rows, version.as_deref().unwrap_or_default());
    let status = PeriodStatus {
        period: period.to_owned(),
        closed_by: by.to_owned(),
        closed_at: now,
        rows: rows.len() as u64,
        credits_cents: totals.credits_cents + totals.corrections_cents,
        facts: totals.facts,
        criteria_version: version,
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

/// The criteria version a period is shown under by default: the one scored most recently.
pub fn busiest_version(rows: &[RollupRow]) -> Option<String> {
    reporting_version(rows)
}

/// How many months before a period the funnel reads, to know where its leads stood.
const FUNNEL_CONTEXT_MONTHS: u32 = 3;

/// The funnel reality check of `period` under `version`, as of `as_of`: the facts of the
/// period and of every month after it up to `as_of` (where its cohorts went), plus three months
/// before it (where its leads stood).
///
/// # Errors
/// [`RollupError`].
pub async fn funnel_report<S: RollupStore>(
    store: &S,
    period: &str,
    version: &str,
    as_of: DateTime<Utc>,
    stall_days: u32,
    points: f64,
) -> Result<FunnelReport, RollupError> {
    let period = [period.to_owned()];
    funnel_reports(store, &period, version, as_of, stall_days, points)
        .await?
        .pop()
        .ok_or_else(|| RollupError::BadPeriod(period[0].clone()))
}

/// The plans and the merged or deleted leads: what every read of a period needs.
pub(crate) async fn plans_and_links<S: RollupStore>(
    store: &S,
    period: &str,
) -> Result<(BTreeMap<String, IncentivePlan>, LeadLinks), RollupError> {
    let plans = store
        .plans()
        .await
        .map_err(self::store("reading incentive plans", period))?;
    let links = store
        .links()
        .await
        .map_err(self::store("reading merged and deleted leads", period))?;
    Ok((plans, links))
}

/// [`funnel_report`] for several periods: each month's facts are read once, and fed to every
/// period's funnel whose window holds the month. The reports come in the order of `periods`.
///
/// # Errors
/// [`RollupError`].
pub async fn funnel_reports<S: RollupStore>(
    store: &S,
    periods: &[String],
    version: &str,
    as_of: DateTime<Utc>,
    stall_days: u32,
    points: f64,
) -> Result<Vec<FunnelReport>, RollupError> {
    for p in periods {
        check(p)?;
    }
    let Some(first) = periods.first() else {
        return Ok(Vec::new());
    };
    let (plans, links) = plans_and_links(store, first).await?;
    let wanted: Vec<PeriodView<'_>> = periods
        .iter()
        .map(|period| PeriodView {
            period,
            version,
            statements: false,
        })
        .collect();
    Ok(
        views_with(store, &wanted, (as_of, stall_days, points), &plans, &links)
            .await?
            .into_iter()
            .map(|v| v.funnel)
            .collect(),
    )
}

/// One period as the readers show it: its funnel under `version`, and its statement lines
/// when `statements`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeriodView<'a> {
    pub period: &'a str,
    pub version: &'a str,
    pub statements: bool,
}

/// What [`views_with`] read for one [`PeriodView`].
#[derive(Debug)]
pub(crate) struct Viewed {
    pub funnel: FunnelReport,
    /// Empty unless asked for.
    pub statements: Vec<StatementLine>,
}

/// The funnels (and statement lines) of several periods in one pass over the months' facts:
/// each month is read once and fed to every funnel whose window holds it (three months before
/// its period through `as_of`'s month) and to its own period's statements. `view` = (as of,
/// stall days, points).
pub(crate) async fn views_with<S: RollupStore>(
    store: &S,
    wanted: &[PeriodView<'_>],
    view: (DateTime<Utc>, u32, f64),
    plans: &BTreeMap<String, IncentivePlan>,
    links: &LeadLinks,
) -> Result<Vec<Viewed>, RollupError> {
    struct Reader<'p> {
        /// The first month of the funnel's window.
        first: String,
        period: &'p str,
        funnel: Funnel<'p>,
        statements: Option<Rollup<'p>>,
    }
    let (as_of, stall_days, points) = view;
    let last = leadsync_domain::facts::period_of(as_of);
    // Statements credit by their version's plan only.
    let own_plans: Vec<BTreeMap<String, IncentivePlan>> = wanted
        .iter()
        .map(|w| {
            plans
                .iter()
                .filter(|(v, _)| *v == w.version)
                .map(|(v, p)| (v.clone(), p.clone()))
                .collect()
        })
        .collect();
    let mut readers: Vec<Reader<'_>> = wanted
        .iter()
        .zip(&own_plans)
        .map(|(w, own)| {
            let mut first = w.period.to_owned();
            for _ in 0..FUNNEL_CONTEXT_MONTHS {
                first = previous_period(&first).unwrap_or(first);
            }
            Reader {
                first,
                period: w.period,
                funnel: Funnel::new(w.period, w.version, as_of, stall_days, plans.get(w.version))
                    .with_links(links),
                statements: w
                    .statements
                    .then(|| Rollup::new(w.period, own).with_links(links)),
            }
        })
        .collect();
    let Some(mut month) = readers.iter().map(|r| r.first.clone()).min() else {
        return Ok(Vec::new());
    };
    let upper = readers
        .iter()
        .filter(|r| r.statements.is_some())
        .map(|r| r.period.to_owned())
        .chain([last.clone()])
        .max()
        .unwrap_or(last.clone());
    while month.as_str() <= upper.as_str() {
        store
            .visit_facts(&month, |f| {
                for r in &mut readers {
                    if r.first <= month && month <= last {
                        r.funnel.add(&f);
                    }
                    if let Some(rollup) = r.statements.as_mut().filter(|_| r.period == month) {
                        rollup.add(&f);
                    }
                }
            })
            .await
            .map_err(self::store("reading facts", &month))?;
        match next_period(&month) {
            Some(n) => month = n,
            None => break,
        }
    }
    Ok(readers
        .into_iter()
        .zip(wanted)
        .map(|(r, w)| Viewed {
            funnel: r.funnel.finish(points),
            statements: r
                .statements
                .map(|rollup| statement_lines(rollup, w.version))
                .unwrap_or_default(),
        })
        .collect())
}

/// Every statement line of `period` under `version` (optionally one team's one owner): each
/// credited lead or deal with its outcome, date, amount and the rule reasons behind it. The
/// lines of an incentive row add up to its credits exactly.
///
/// # Errors
/// [`RollupError`].
pub async fn statements<S: RollupStore>(
    store: &S,
    period: &str,
    version: &str,
) -> Result<Vec<StatementLine>, RollupError> {
    check(period)?;
    let (plans, links) = plans_and_links(store, period).await?;
    statements_with(store, period, version, &plans, &links).await
}

/// [`statements`] with the plans and links already read.
async fn statements_with<S: RollupStore>(
    store: &S,
    period: &str,
    version: &str,
    plans: &BTreeMap<String, IncentivePlan>,
    links: &LeadLinks,
) -> Result<Vec<StatementLine>, RollupError> {
    let plans: BTreeMap<String, IncentivePlan> = plans
        .iter()
        .filter(|(v, _)| *v == version)
        .map(|(v, p)| (v.clone(), p.clone()))
        .collect();
    let mut rollup = Rollup::new(period, &plans).with_links(links);
    store
        .visit_facts(period, |f| rollup.add(&f))
        .await
        .map_err(self::store("reading facts", period))?;
    Ok(statement_lines(rollup, version))
}

/// The statement lines of a filled rollup under `version`, by team, owner, date and facts.
fn statement_lines(rollup: Rollup<'_>, version: &str) -> Vec<StatementLine> {
    let (_, mut lines) = rollup.finish_with_statements();
    lines.retain(|l| l.criteria_version == version);
    lines.sort_by(|a, b| {
        (a.team, &a.owner, a.occurred_at, &a.facts).cmp(&(
            b.team,
            &b.owner,
            b.occurred_at,
            &b.facts,
        ))
    });
    lines
}
