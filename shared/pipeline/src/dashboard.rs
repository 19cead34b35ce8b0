//! The dashboard use case: gather what a period's page shows — its rows, the funnel cohorts,
//! every statement line, the plan and its signed agreement, the close, the leads left out —
//! render it ([`leadsync_dashboard`]) and publish it to `dashboards/<period>/index.html`.
//!
//! Reads only what the rollups already hold: the page shows those numbers, nothing else.

use crate::rollups::{PeriodView, RollupError, plans_and_links, views_with};
use chrono::{DateTime, Utc};
use leadsync_dashboard::{Dashboard, LeftOut};
use leadsync_domain::facts::LeadLink;
use leadsync_domain::ports::{RollupStore, SnapshotStore, StoreError};
use leadsync_domain::rollup::{incentive_rows, reporting_version};

/// How the page reads the funnel: a point of conversion, stalled after 30 days.
pub const POINTS: f64 = 1.0;
pub const STALL_DAYS: u32 = 30;

/// The page of `period` (under `version`, else the reported one) as of `now`; `None` when the
/// period has no rows.
///
/// # Errors
/// [`RollupError`].
pub async fn page<S: RollupStore>(
    store: &S,
    period: &str,
    version: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, RollupError> {
    Ok(pages(store, &[period.to_owned()], version, now)
        .await?
        .pop()
        .flatten())
}

/// The pages of `periods`, in their order, reading each month's facts once for all of them
/// (their funnels' windows overlap).
async fn pages<S: RollupStore>(
    store: &S,
    periods: &[String],
    version: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Option<String>>, RollupError> {
    let Some(first) = periods.first() else {
        return Ok(Vec::new());
    };
    let mut shown = Vec::with_capacity(periods.len());
    for period in periods {
        let rows = store.rows(period).await.map_err(read(period))?;
        let version = version
            .map(str::to_owned)
            .or_else(|| reporting_version(&rows));
        shown.push((period.as_str(), rows, version));
    }
    let (plans, links) = plans_and_links(store, first).await?;
    let closed = store.closed_periods().await.map_err(read(first))?;
    let wanted: Vec<PeriodView<'_>> = shown
        .iter()
        .filter_map(|(period, _, version)| {
            version.as_deref().map(|version| PeriodView {
                period,
                version,
                statements: true,
            })
        })
        .collect();
    let mut viewed = views_with(store, &wanted, (now, STALL_DAYS, POINTS), &plans, &links)
        .await?
        .into_iter();
    let (merged, deleted) = links.values().fold((0, 0), |(m, d), l| match l {
        LeadLink::Merged { .. } => (m + 1, d),
        LeadLink::Deleted { .. } => (m, d + 1),
    });
    // The same on every page: the links are the account's, not a period's.
    let mut left_by_links = Vec::new();
    if merged > 0 {
        left_by_links.push(LeftOut {
            what: "merged contacts".into(),
            count: merged,
            why: "merged into another contact in the CRM: counted once, as the contact they joined"
                .into(),
        });
    }
    if deleted > 0 {
        left_by_links.push(LeftOut {
            what: "deleted contacts".into(),
            count: deleted,
            why: "deleted in the CRM: no longer counted (closed periods corrected forward)".into(),
        });
    }
    let mut html = Vec::with_capacity(shown.len());
    for (period, rows, version) in &shown {
        // A period without a version has no view (none was asked for it).
        let Some((version, view)) = version.as_ref().and_then(|v| Some((v, viewed.next()?))) else {
            html.push(None);
            continue;
        };
        let plan = plans.get(version);
        let mut left_out = left_by_links.clone();
        let (_, totals) = incentive_rows(rows, version);
        for (currency, cents) in &totals.unconverted {
            left_out.push(LeftOut {
                what: format!("won revenue in {currency} (cents)"),
                count: u64::try_from(*cents).unwrap_or(0),
                why: format!(
                    "the plan has no {currency} exchange rate: only fixed credits were paid"
                ),
            });
        }
        html.push(Some(leadsync_dashboard::render(&Dashboard {
            period,
            version,
            currency: plan.map_or("USD", |p| p.currency.as_str()),
            agreement: plan.and_then(|p| p.agreement.as_ref()),
            computed_at: now,
            closed: closed.iter().find(|c| c.period == *period),
            rows,
            funnel: &view.funnel,
            statements: &view.statements,
            left_out: &left_out,
        })));
    }
    Ok(html)
}

/// Render and publish the pages of `periods`; returns the keys written.
///
/// # Errors
/// [`RollupError`].
pub async fn publish<S: RollupStore, N: SnapshotStore>(
    store: &S,
    snapshots: &N,
    periods: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<String>, RollupError> {
    let mut keys = Vec::new();
    for (period, html) in periods.iter().zip(pages(store, periods, None, now).await?) {
        let Some(html) = html else { continue };
        let key = snapshots
            .put_dashboard(period, html)
            .await
            .map_err(|source| RollupError::Store {
                step: "publishing the dashboard",
                period: period.clone(),
                source,
            })?;
        tracing::info!(period = %period, key = %key, "Dashboard published.");
        keys.push(key);
    }
    Ok(keys)
}

fn read(period: &str) -> impl FnOnce(StoreError) -> RollupError {
    let period = period.to_owned();
    move |source| RollupError::Store {
        step: "reading rollup rows",
        period,
        source,
    }
}
