//! Where a run reads from: the watermark less the lookback (or an override), and the leads it
//! re-scores though the CRM did not change their own record.

use super::*;

/// Leads a nightly run re-scores though the CRM did not change their own record: those whose
/// stage or band time alone changes by `now` (decay, activity windows), and those whose deals
/// or company changed since `since` (a deal closing does not touch its contacts). On the
/// first run (`since` at the epoch) every contact is pulled anyway.
///
/// # Errors
/// [`SyncError`].
pub async fn unchanged_to_rescore<C, S, N, P>(
    deps: &SyncDeps<'_, C, S, N, P>,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
) -> Result<Vec<LeadId>, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore,
    N: SnapshotStore,
    P: FirmographicProvider,
{
    let mut ids = deps
        .store
        .due_leads(now, PullScope::DUE_MONTHS, PullScope::MAX_DUE)
        .await
        .map_err(store_err("finding leads due for a re-score"))?;
    let due = ids.len();
    let mut touched = 0;
    if since > DateTime::<Utc>::UNIX_EPOCH {
        let related = deps
            .crm
            .contacts_touched_since(since)
            .await
            .map_err(|source| SyncError::Pull { pages: 0, source })?;
        touched = related.len();
        ids.extend(related);
    }
    ids.sort();
    ids.dedup();
    ids.truncate(PullScope::MAX_DUE);
    if !ids.is_empty() {
        tracing::info!(
            due,
            touched,
            rescored = ids.len(),
            "Re-scoring leads the CRM did not change: time alone moves their score, or their deals or company changed."
        );
    }
    Ok(ids)
}

/// Where a run starts reading: `since_override`, else the watermark less the lookback, else
/// the beginning.
///
/// # Errors
/// [`SyncError::Store`] when the watermark cannot be read.
pub async fn since_of<S: LeadStore>(
    store: &S,
    input: &SyncInput,
) -> Result<DateTime<Utc>, SyncError> {
    if let Some(since) = input.since_override {
        return Ok(since);
    }
    let watermark = store
        .watermark(&input.source)
        .await
        .map_err(store_err("reading the watermark"))?;
    Ok(watermark
        .map(|w| w - input.lookback)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH))
}
