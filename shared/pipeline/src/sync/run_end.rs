//! The end of a run: the incentive plan remembered, contacts deleted in the CRM noted, the
//! rollups and dashboards of the touched periods recomputed, the watermark moved (nightly runs
//! only, forward only) and the run report saved.

use super::*;

/// Finish a run whose every scope is done: remember the incentive plan, recompute the rollups
/// of the run's period, move the watermark (nightly runs only) and save the run report.
///
/// # Errors
/// [`SyncError`]; everything is idempotent, so finishing again is safe.
pub async fn finish<C, S, N, P>(
    deps: &SyncDeps<'_, C, S, N, P>,
    input: &SyncInput,
    outcome: ScopeOutcome,
) -> Result<RunReport, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore,
    N: SnapshotStore,
    P: FirmographicProvider,
{
    let ScopeOutcome {
        mut report,
        max_seen,
        hold_at: hold_watermark_at,
    } = outcome;
    // Rollups of the period this run's facts belong to, before the watermark moves: a crash
    // here re-runs the slice, which records nothing new and recomputes the same rows.
    if let Some(plan) = &deps.criteria.incentives {
        let c = deps.criteria;
        let plan = leadsync_domain::incentives::IncentivePlan {
            agreement: Some(leadsync_domain::incentives::Agreement {
                criteria_id: c.id.clone(),
                criteria_version: c.version.clone(),
                effective: c.effective.clone(),
                sales: c.sales_sign_off.clone(),
                marketing: c.marketing_sign_off.clone(),
            }),
            ..plan.clone()
        };
        deps.store
            .save_plan(&deps.criteria.version, &plan)
            .await
            .map_err(store_err("saving the incentive plan"))?;
    }
    let mut touched = report.fact_periods.clone();
    touched.insert(period_of(input.now));
    // Every period any attempt of this run recorded facts in.
    touched.extend(
        deps.store
            .noted_periods(&input.run_id)
            .await
            .map_err(store_err("reading the periods the run noted"))?,
    );
    if input.since_override.is_none() {
        // Contacts deleted in the CRM since the last run: their facts stop counting.
        let since = since_of(deps.store, input).await?;
        let deleted = deps
            .crm
            .deleted_since(since)
            .await
            .map_err(|source| SyncError::Pull { pages: 0, source })?;
        if !deleted.is_empty() {
            let links: Vec<(LeadId, LeadLink)> = deleted
                .into_iter()
                .map(|(id, at)| (id, LeadLink::Deleted { at }))
                .collect();
            touched.extend(
                deps.store
                    .record_links(&links)
                    .await
                    .map_err(store_err("recording deleted contacts"))?,
            );
            report.deleted += links.len() as u64;
            tracing::info!(
                deleted = links.len(),
                "Contacts deleted in the CRM no longer count."
            );
        }
    }
    let refreshed = crate::rollups::refresh(deps.store, &touched)
        .await
        .map_err(SyncError::Rollups)?;
    report.rollup_rows_written = refreshed
        .periods
        .values()
        .map(|w| w.written + w.deleted)
        .sum();
    report.rollup_corrections = refreshed.corrections;
    // The pages people read, for the periods just recomputed (the three most recent: older
    // months change only by corrections, which land in the open ones).
    let mut pages: Vec<String> = refreshed.periods.keys().rev().take(3).cloned().collect();
    pages.reverse();
    report.dashboards = crate::dashboard::publish(deps.store, deps.snapshots, &pages, input.now)
        .await
        .map_err(SyncError::Rollups)?;

    if input.since_override.is_none() {
        let watermark = deps
            .store
            .watermark(&input.source)
            .await
            .map_err(store_err("reading the watermark"))?;
        // Never past what was seen, never closer to now than the index lag, never past a lead
        // whose push must be retried, never backwards.
        let candidate = max_seen
            .map(|m| m.min(input.now - input.index_lag))
            .map(|w| hold_watermark_at.map_or(w, |h| w.min(h)));
        if let Some(next) = candidate.filter(|c| watermark.is_none_or(|w| *c > w)) {
            deps.store
                .set_watermark(&input.source, next)
                .await
                .map_err(store_err("advancing the watermark"))?;
            report.watermark_after = Some(next);
        } else {
            report.watermark_after = watermark;
        }
    }
    report.finished_at = Some((input.wall)());
    deps.store
        .save_run(&report)
        .await
        .map_err(store_err("saving the run report"))?;
    tracing::info!(
        run_id = %report.run_id,
        pulled = report.pulled,
        scored = report.scored,
        quarantined = report.quarantined,
        transitions = report.transitions_new,
        pushed = report.pushed,
        push_failed = report.push_failed,
        "Sync done."
    );
    Ok(report)
}
