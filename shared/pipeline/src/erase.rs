//! Erasing a person on request (GDPR Art. 17): `leadsync erase --lead ID` and HubSpot's
//! `contact.privacyDeletion` webhook.
//!
//! What goes: the lead's state (scores, stage, what was pushed), every snapshot and quarantine
//! line about it (each object rewritten, its older versions deleted). What stays, and why:
//! its facts in open periods, moved under a pseudonym nothing links back to (`erased-…`), so
//! the funnel, KPIs and incentive totals both teams were promised do not change; its facts in
//! closed periods, as they are — those periods were paid, and accounting records are kept for
//! their legal retention (they hold the CRM's id, never contact data). The firmographic cache
//! holds companies by web domain, never people (free-mail domains are never looked up), so
//! nothing in it is erased.
//!
//! Runs under the sync lease, so no run writes the lead back half-way through.

use crate::rollups::{RefreshReport, RollupError, refresh};
use chrono::{DateTime, Utc};
use leadsync_domain::LeadId;
use leadsync_domain::ports::{
    LeadErased, RollupStore, RunStore, SliceQueue, SnapshotStore, SnapshotsErased, StoreError,
};
use leadsync_domain::runs::DeferredErase;
use std::collections::BTreeSet;

/// Everything an erasure did, for the operator and the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    pub table: LeadErased,
    pub snapshots: SnapshotsErased,
    /// Open periods recomputed (their rows now read the pseudonym).
    pub periods_recomputed: Vec<String>,
}

/// Why an erasure did not complete (repeat it: each step is safe to repeat).
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("a run ({holder}) holds the sync lease until {until}; erase after it")]
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
    #[error("erasing failed while {step}")]
    Store {
        step: &'static str,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Rollups(#[from] RollupError),
}

impl EraseError {
    /// Worth repeating later: the lease was held, or a store was unavailable.
    pub fn is_retryable(&self) -> bool {
        match self {
            EraseError::Busy { .. } => true,
            EraseError::Store { source, .. } => source.is_retryable(),
            EraseError::Rollups(e) => e.is_retryable(),
        }
    }
}

fn store(step: &'static str) -> impl FnOnce(StoreError) -> EraseError {
    move |source| EraseError::Store { step, source }
}

/// Erase lead `id`. `pseudonym` is a fresh random id (`erased-<hex>`) the caller draws; an
/// earlier interrupted erasure of the same lead keeps the one it chose.
///
/// # Errors
/// [`EraseError`]; repeating the call completes an interrupted erasure.
pub async fn erase<S, N>(
    store_: &S,
    snapshots: &N,
    id: &LeadId,
    pseudonym: &LeadId,
    now: DateTime<Utc>,
    lease_for: chrono::Duration,
) -> Result<Erasure, EraseError>
where
    S: RollupStore + RunStore,
    N: SnapshotStore,
{
    // The lease holder is named by the pseudonym: the lease item must not hold the id either.
    let holder = format!("erase-{pseudonym}");
    if let Some(lease) = store_
        .acquire_lease(&holder, now, now + lease_for)
        .await
        .map_err(store("taking the sync lease"))?
    {
        return Err(EraseError::Busy {
            holder: lease.holder,
            until: lease.until,
        });
    }
    let outcome = erase_held(store_, snapshots, id, pseudonym).await;
    if let Err(e) = store_.release_lease(&holder).await {
        tracing::warn!(error = %e, "Releasing the lease after an erasure failed; it expires.");
    }
    let erasure = outcome?;
    tracing::info!(
        pseudonym = %erasure.table.pseudonym,
        state_deleted = erasure.table.state_deleted,
        facts_anonymised = erasure.table.facts_anonymised,
        facts_kept = erasure.table.facts_kept,
        snapshot_lines_removed = erasure.snapshots.lines_removed,
        "Lead erased."
    );
    Ok(erasure)
}

async fn erase_held<S, N>(
    store_: &S,
    snapshots: &N,
    id: &LeadId,
    pseudonym: &LeadId,
) -> Result<Erasure, EraseError>
where
    S: RollupStore + RunStore,
    N: SnapshotStore,
{
    let closed: BTreeSet<String> = store_
        .closed_periods()
        .await
        .map_err(store("listing closed periods"))?
        .into_iter()
        .map(|p| p.period)
        .collect();
    let table = store_
        .erase_lead(id, pseudonym, &closed)
        .await
        .map_err(store("erasing the lead's state and facts"))?;
    let snapshots = snapshots
        .erase_lead(id)
        .await
        .map_err(store("erasing snapshot and quarantine lines"))?;
    let RefreshReport { periods, .. } = refresh(store_, &table.periods).await?;
    Ok(Erasure {
        table,
        snapshots,
        periods_recomputed: periods.into_keys().collect(),
    })
}

/// How a queued erasure ([`DeferredErase`]) went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasuresDone {
    /// Every person asked for is erased.
    Erased(Vec<Erasure>),
    /// A run holds the lease: those not yet erased are back on the queue after `delay`.
    Again {
        erased: usize,
        remaining: usize,
        attempts: u32,
        delay: std::time::Duration,
        holder: String,
    },
}

/// Run a queued erasure: each person in turn; while a run holds the lease, the rest go back
/// on the queue (delay doubled per attempt, at most 15 minutes) until it was asked for longer
/// ago than `options.defer_give_up` — then it fails, and the queue keeps it in the DLQ.
///
/// # Errors
/// [`EraseError`] (the message is delivered again: each erasure is safe to repeat).
pub async fn run_deferred_erase<S, N, Q>(
    store_: &S,
    snapshots: &N,
    queue: &Q,
    asked: &DeferredErase,
    options: &crate::RunOptions,
    now: DateTime<Utc>,
    pseudonym: impl Fn() -> LeadId,
) -> Result<ErasuresDone, EraseError>
where
    S: RollupStore + RunStore,
    N: SnapshotStore,
    Q: SliceQueue,
{
    let mut done = Vec::new();
    for (i, id) in asked.lead_ids.iter().enumerate() {
        match erase(store_, snapshots, id, &pseudonym(), now, options.lease_for).await {
            Ok(erasure) => done.push(erasure),
            Err(EraseError::Busy { holder, until }) => {
                if now - asked.requested_at > options.defer_give_up {
                    return Err(EraseError::Busy { holder, until });
                }
                let next = DeferredErase {
                    lead_ids: asked.lead_ids[i..].to_vec(),
                    requested_at: asked.requested_at,
                    attempts: asked.attempts + 1,
                };
                let delay = crate::defer_delay(options.defer_base, asked.attempts);
                queue
                    .defer_erase(&next, delay)
                    .await
                    .map_err(store("putting the erasure back on the queue"))?;
                return Ok(ErasuresDone::Again {
                    erased: done.len(),
                    remaining: next.lead_ids.len(),
                    attempts: next.attempts,
                    delay,
                    holder,
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(ErasuresDone::Erased(done))
}
