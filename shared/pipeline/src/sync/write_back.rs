//! The end of a page: push its updates to the CRM (leadsync's properties made first, before the
//! run's first push), send its news, and save its leads' states carrying the hash of what the
//! CRM accepted. [`super::sync_scope`] runs it while the next page is pulled, scored and
//! recorded, and awaits it before that page's own end starts.

use super::{SyncDeps, SyncError, store_err};
use chrono::{DateTime, Utc};
use leadsync_domain::news::LeadEvent;
use leadsync_domain::ports::{
    Crm, FirmographicProvider, LeadStore, PropertyUpdate, Rejected, RollupStore, RunReport,
    SnapshotStore,
};
use leadsync_domain::{LeadId, LeadState};
use std::collections::HashMap;

/// Page ends (pushes, news, states) at most in flight while the next page is worked on. The
/// next page waits when this many are unfinished, and the walk's searches stop once their
/// buffer is full behind it: with two, one push waiting out a run of 429s (seven seconds in a
/// 100,000-contact bench) stopped every search; four leave the pull going while up to three
/// pages' pushes wait. Each holds a page's updates and states (≤ 2,000 leads).
pub(super) const ENDS_IN_FLIGHT: usize = 4;

/// What one page leaves to write once its facts are recorded.
pub(super) struct PageEnd {
    /// States to save: new or changed results.
    pub states: Vec<LeadState>,
    /// Unchanged results, saved only if the push or the news changes them.
    pub unchanged: HashMap<LeadId, LeadState>,
    /// Each update to push, with the hash of what it shows and the lead's modification time.
    pub updates: Vec<(PropertyUpdate, String, DateTime<Utc>)>,
    pub news: Vec<LeadEvent>,
    /// Make sure leadsync's properties exist in the CRM before pushing (the run's first push).
    pub ensure_properties: bool,
}

/// What the end of a page did, for the slice's report.
#[derive(Debug, Default)]
pub(super) struct PageEnded {
    /// The counts it adds (pushes, events, states written), merged by [`RunReport::absorb`].
    /// Boxed: a report is large, and this rides in the sync's future.
    counts: Box<RunReport>,
    /// Updates the CRM refused for good.
    refused: Vec<Rejected>,
    /// The oldest modification time of a lead whose push must be retried.
    hold_at: Option<DateTime<Utc>>,
}

impl PageEnded {
    pub(super) fn add_to(
        self,
        report: &mut RunReport,
        refused: &mut Vec<Rejected>,
        hold_at: &mut Option<DateTime<Utc>>,
    ) {
        report.absorb(&self.counts);
        refused.extend(self.refused);
        if let Some(at) = self.hold_at {
            *hold_at = Some(hold_at.map_or(at, |h| h.min(at)));
        }
    }
}

/// Push `page`'s updates, send its news, then save its states.
///
/// # Errors
/// [`SyncError::Push`] when the CRM could not be written at all; a store error saving states.
pub(super) async fn end_page<C, S, N, P>(
    deps: &SyncDeps<'_, C, S, N, P>,
    page: PageEnd,
) -> Result<PageEnded, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore,
    N: SnapshotStore,
    P: FirmographicProvider,
{
    let PageEnd {
        mut states,
        mut unchanged,
        updates,
        news,
        ensure_properties,
    } = page;
    let mut ended = PageEnded::default();
    if ensure_properties {
        let created = deps
            .crm
            .ensure_properties(&deps.criteria.crm_property_specs())
            .await
            .map_err(SyncError::Push)?;
        if created > 0 {
            tracing::info!(created, "Created leadsync properties in the CRM.");
        }
    }
    if !updates.is_empty() {
        let batch: Vec<PropertyUpdate> = updates.iter().map(|(u, _, _)| u.clone()).collect();
        let outcome = deps.crm.push(&batch).await.map_err(SyncError::Push)?;
        ended.counts.crm_push_requests += u64::from(outcome.requests);
        ended.counts.pushed += outcome.written.len() as u64;
        ended.counts.push_failed += outcome.failed.len() as u64;
        let by_id: HashMap<&LeadId, (&String, DateTime<Utc>)> = updates
            .iter()
            .map(|(u, h, m)| (&u.lead_id, (h, *m)))
            .collect();
        let index: HashMap<LeadId, usize> = states
            .iter()
            .enumerate()
            .map(|(i, s)| (s.lead_id.clone(), i))
            .collect();
        for id in &outcome.written {
            let Some((hash, _)) = by_id.get(id) else {
                continue;
            };
            if let Some(&i) = index.get(id) {
                states[i].pushed_hash = Some((*hash).clone());
            } else if let Some(mut state) = unchanged.remove(id) {
                state.pushed_hash = Some((*hash).clone());
                states.push(state);
            }
        }
        for failure in &outcome.failed {
            tracing::warn!(lead_id = %failure.lead_id, retryable = failure.retryable, message = %failure.message, "CRM refused a lead's update.");
            if failure.retryable {
                // Keep the watermark at or before this lead so the next run pulls and pushes it again.
                if let Some((_, modified)) = by_id.get(&failure.lead_id) {
                    ended.hold_at = Some(ended.hold_at.map_or(*modified, |h| h.min(*modified)));
                }
            } else {
                // Retrying will not help (e.g. the contact was deleted): keep the write and
                // the reason in the quarantine file for an operator. The lead itself was
                // scored and recorded, so it counts in `push_failed`, not `quarantined`.
                let properties = batch
                    .iter()
                    .find(|u| u.lead_id == failure.lead_id)
                    .map(|u| &u.properties);
                ended.refused.push(Rejected {
                    lead_id: Some(failure.lead_id.to_string()),
                    reason: format!("the CRM refused the update: {}", failure.message),
                    raw: properties
                        .and_then(|p| serde_json::to_string(p).ok())
                        .unwrap_or_default(),
                });
            }
        }
    }
    // News goes out before the states are written: a crash in between sends it again (the
    // bus is at-least-once anyway); what the bus refused stays unmarked for the next run.
    if let (Some(sink), false) = (deps.events, news.is_empty()) {
        let accepted = match sink.send(&news).await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(events = news.len(), error = %error, "News about leads not sent; the next run sends it.");
                vec![false; news.len()]
            }
        };
        for (event, ok) in news
            .iter()
            .zip(accepted.into_iter().chain(std::iter::repeat(false)))
        {
            if !ok {
                ended.counts.events_failed += 1;
                continue;
            }
            ended.counts.events_sent += 1;
            let at = match states.iter().position(|s| s.lead_id == event.lead_id) {
                Some(i) => i,
                None => match unchanged.remove(&event.lead_id) {
                    Some(state) => {
                        states.push(state);
                        states.len() - 1
                    }
                    None => continue,
                },
            };
            let key = event.key();
            if !states[at].announced.contains(&key) {
                states[at].announced.push(key);
            }
        }
    }
    ended.counts.states_written = deps
        .store
        .save_states(&states)
        .await
        .map_err(store_err("recording lead states"))?;
    Ok(ended)
}
