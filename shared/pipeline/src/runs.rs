//! Runs: take the lease, plan slices, run them inline or send them to the queue, and finish
//! the run when its last slice is done — on AWS's own engines (a queue and its workers), with
//! the run record in the store as the only shared state.
//!
//! - [`start_run`]: a nightly run or a re-score. Under `inline_max` contacts every slice runs in
//!   the calling invocation; above it the slices go to the [`SliceQueue`] and the lease stays
//!   with the run until its finisher releases it.
//! - [`run_slice`]: one slice (a queue message), then — if it was the last — the finish:
//!   rollups, watermark, run report, lease released.
//!
//! At-least-once throughout: a slice run twice records nothing new and is counted once; a
//! finish run twice changes nothing.

use crate::plan::plan_slices;
use crate::sync::{ScopeOutcome, SyncDeps, SyncError, SyncInput, finish, since_of, sync_scope};
use chrono::{DateTime, Duration, Utc};
use leadsync_domain::ports::{
    Crm, FirmographicProvider, LeadStore, RollupStore, RunReport, RunStore, SliceQueue,
    SnapshotStore,
};
use leadsync_domain::runs::{
    DeferredRescore, Lease, PullScope, RunKind, RunPlan, SliceResult, SliceSpec,
};

/// How runs are cut and guarded.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Up to this many contacts, every slice runs in the planning invocation.
    pub inline_max: u64,
    /// About this many contacts per slice.
    pub slice_target: u64,
    pub max_slices: usize,
    /// How long a lease lasts before another run may take it; every slice renews it.
    pub lease_for: Duration,
    /// How long a re-score waits for a busy lease before giving up (`Busy`).
    pub wait_for_lease: Duration,
    /// A deferred re-score that finds the lease held comes back after this, doubled per
    /// attempt (at most SQS's 15 minutes)…
    pub defer_base: Duration,
    /// …until it was asked for this long ago; then it fails (and is dead-lettered).
    pub defer_give_up: Duration,
    /// Defaults for each slice's [`SyncInput`].
    pub template: SyncInput,
}

impl RunOptions {
    pub fn new(template: SyncInput) -> Self {
        Self {
            inline_max: 20_000,
            slice_target: 20_000,
            max_slices: 500,
            lease_for: Duration::minutes(20),
            wait_for_lease: Duration::zero(),
            defer_base: Duration::seconds(60),
            defer_give_up: Duration::hours(24),
            template,
        }
    }
}

pub use leadsync_domain::runs::RescoreTarget;

/// How a start ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    /// Every slice ran here; the run is finished.
    Finished(Box<RunReport>),
    /// The slices are on the queue; the last one to finish completes the run.
    Queued { slices: u32, contacts: u64 },
    /// Another run holds the lease: nothing was done.
    Busy(Lease),
}

/// What one slice worker did.
#[derive(Debug, Clone, PartialEq)]
pub enum SliceDone {
    /// The slice is recorded; other slices are still running.
    Recorded(RunReport),
    /// This was the last slice; the run is finished with this merged report.
    RunFinished(RunReport),
    /// The run had finished before (a redelivery, or a retried invocation of the same run):
    /// this attempt's slice report; nothing was finished again.
    AlreadyFinished(RunReport),
}

fn store_err(step: &'static str) -> impl FnOnce(leadsync_domain::ports::StoreError) -> SyncError {
    move |source| SyncError::Store { step, source }
}

/// Start a run: take the lease (waiting up to `wait_for_lease`), plan, then run inline or
/// queue. `wall` is the real clock (lease expiry); `input.now` is the run's scoring instant.
///
/// # Errors
/// [`SyncError`]; on error the lease is given back so a retry can start at once.
pub async fn start_run<C, S, N, P, Q>(
    deps: &SyncDeps<'_, C, S, N, P>,
    queue: &Q,
    kind: RunKind,
    target: Option<RescoreTarget>,
    options: &RunOptions,
    input: &SyncInput,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<Started, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore + RunStore,
    N: SnapshotStore,
    P: FirmographicProvider,
    Q: SliceQueue,
{
    let holder = input.run_id.as_str();
    let give_up_at = wall() + options.wait_for_lease;
    loop {
        let now = wall();
        match deps
            .store
            .acquire_lease(holder, now, now + options.lease_for)
            .await
            .map_err(store_err("taking the lease"))?
        {
            None => break,
            Some(lease) if now >= give_up_at => {
                tracing::warn!(run_id = %holder, holder = %lease.holder, until = %lease.until, "Another run holds the lease; not starting.");
                return Ok(Started::Busy(lease));
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
    let result = plan_and_run(deps, queue, kind, target, options, input, &wall).await;
    match &result {
        Ok(Started::Queued { .. }) => {} // the run's finisher releases it
        _ => {
            if let Err(e) = deps.store.release_lease(holder).await {
                tracing::warn!(run_id = %holder, error = %e, "Could not release the lease; it expires on its own.");
            }
        }
    }
    result
}

async fn plan_and_run<C, S, N, P, Q>(
    deps: &SyncDeps<'_, C, S, N, P>,
    queue: &Q,
    kind: RunKind,
    target: Option<RescoreTarget>,
    options: &RunOptions,
    input: &SyncInput,
    wall: &impl Fn() -> DateTime<Utc>,
) -> Result<Started, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore + RunStore,
    N: SnapshotStore,
    P: FirmographicProvider,
    Q: SliceQueue,
{
    let (scopes, contacts) = match target {
        Some(RescoreTarget::Leads(ids)) => {
            let count = ids.len() as u64;
            let scopes = PullScope::chosen(&ids, deps.crm.max_ids());
            (scopes, count)
        }
        other => {
            let since = match other {
                Some(RescoreTarget::Since(since)) => since,
                _ => since_of(deps.store, input).await?,
            };
            let plan = plan_slices(
                deps.crm,
                &PullScope::since(since),
                options.slice_target,
                options.max_slices,
            )
            .await
            .map_err(|source| SyncError::Pull { pages: 0, source })?;
            tracing::info!(run_id = %input.run_id, contacts = plan.contacts, slices = plan.scopes.len(), count_requests = plan.requests, "Run planned.");
            let (mut scopes, mut contacts) = (plan.scopes, plan.contacts);
            if kind == RunKind::Nightly && input.since_override.is_none() {
                // Leads whose score time alone has moved, or whose deals or company changed:
                // one slice per 100, pulled by id.
                let due = crate::sync::unchanged_to_rescore(deps, input.now, since).await?;
                contacts += due.len() as u64;
                scopes.extend(PullScope::due(&due, deps.crm.max_ids()));
            }
            (scopes, contacts)
        }
    };
    let slices = u32::try_from(scopes.len()).unwrap_or(u32::MAX).max(1);
    let inline = contacts <= options.inline_max;
    let plan = RunPlan {
        run_id: input.run_id.clone(),
        kind,
        slices,
        planned_at: input.now,
        criteria_version: deps.criteria.version.clone(),
        contacts,
        inline,
    };
    deps.store
        .create_run(&plan)
        .await
        .map_err(store_err("recording the run plan"))?;
    let per_slice_budget = input.enrich_budget.map(|b| b / u64::from(slices));
    let specs: Vec<SliceSpec> = scopes
        .into_iter()
        .enumerate()
        .map(|(i, scope)| SliceSpec {
            run_id: input.run_id.clone(),
            kind,
            slice: u32::try_from(i).unwrap_or(u32::MAX),
            slices,
            scope,
            now: input.now,
            source: input.source.clone(),
            criteria_id: deps.criteria.id.clone(),
            criteria_version: deps.criteria.version.clone(),
            enrich_budget: per_slice_budget,
            max_reject_ratio: input.max_reject_ratio,
            index_lag_secs: input.index_lag.num_seconds(),
            enrich_hold_secs: input.enrich_hold.map(|h| h.num_seconds()),
        })
        .collect();
    if !inline {
        queue
            .send(&specs)
            .await
            .map_err(store_err("sending slices to the queue"))?;
        tracing::info!(run_id = %input.run_id, slices, contacts, "Run fanned out.");
        return Ok(Started::Queued { slices, contacts });
    }
    let mut last = None;
    // What this attempt did, should the run turn out to have finished before (a retried
    // invocation with the same run id).
    let mut attempt = RunReport {
        run_id: input.run_id.clone(),
        started_at: Some(input.now),
        criteria_version: deps.criteria.version.clone(),
        ..RunReport::default()
    };
    let mut finished_before = false;
    // The run's checkpoint: an earlier attempt under this id (killed, or timed out) recorded
    // these slices; one recorded with exactly this scope is not run again. The last slice
    // always runs: it is the one that finishes the run.
    let recorded = if specs.len() > 1 {
        deps.store
            .slice_results(&input.run_id)
            .await
            .map_err(store_err("reading the run's recorded slices"))?
    } else {
        Vec::new()
    };
    for (i, spec) in specs.iter().enumerate() {
        if i + 1 < specs.len()
            && recorded
                .iter()
                .any(|r| r.slice == spec.slice && r.scope.as_ref() == Some(&spec.scope))
        {
            tracing::info!(run_id = %input.run_id, slice = spec.slice, "Slice recorded by an earlier attempt of this run; not run again.");
            continue;
        }
        let done = run_slice(deps, spec, options, wall).await?;
        match &done {
            SliceDone::Recorded(r) => attempt.absorb(r),
            SliceDone::AlreadyFinished(r) => {
                attempt.absorb(r);
                finished_before = true;
            }
            SliceDone::RunFinished(_) => {}
        }
        last = Some(done);
    }
    match last {
        Some(SliceDone::RunFinished(report)) => Ok(Started::Finished(Box::new(report))),
        Some(_) if finished_before => {
            tracing::info!(run_id = %input.run_id, "The run had finished before; this attempt changed only what had changed since.");
            Ok(Started::Finished(Box::new(attempt)))
        }
        // Every slice ran here, so the last one finished the run; anything else is a bug in
        // the run store (it lost a slice), said plainly rather than hidden.
        _ => Err(SyncError::Store {
            step: "finishing an inline run",
            source: leadsync_domain::ports::StoreError::Corrupt {
                key: input.run_id.clone(),
                message: "every slice ran but the run record does not count them all".into(),
            },
        }),
    }
}

/// The [`SyncInput`] a slice runs with.
pub fn slice_input(spec: &SliceSpec, template: &SyncInput) -> SyncInput {
    SyncInput {
        run_id: spec.run_id.clone(),
        slice: spec.slice,
        now: spec.now,
        source: spec.source.clone(),
        lookback: template.lookback,
        index_lag: Duration::seconds(spec.index_lag_secs),
        since_override: match spec.kind {
            RunKind::Nightly => None,
            RunKind::Rescore => Some(spec.scope.since),
        },
        max_reject_ratio: spec.max_reject_ratio,
        enrich_budget: spec.enrich_budget,
        enrich_hold: spec.enrich_hold_secs.map(Duration::seconds),
        wall: template.wall,
    }
}

/// Run one slice; if it is the run's last, finish the run and release the lease.
///
/// # Errors
/// [`SyncError`]: `CriteriaMismatch` when `deps` hold another criteria version than the
/// slice was planned with, `Busy` when another run took the lease, or any sync error.
pub async fn run_slice<C, S, N, P>(
    deps: &SyncDeps<'_, C, S, N, P>,
    spec: &SliceSpec,
    options: &RunOptions,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<SliceDone, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore + RunStore,
    N: SnapshotStore,
    P: FirmographicProvider,
{
    if deps.criteria.version != spec.criteria_version || deps.criteria.id != spec.criteria_id {
        return Err(SyncError::CriteriaMismatch {
            planned: format!("{} {}", spec.criteria_id, spec.criteria_version),
            loaded: format!("{} {}", deps.criteria.id, deps.criteria.version),
        });
    }
    let now = wall();
    if let Some(lease) = deps
        .store
        .acquire_lease(&spec.run_id, now, now + options.lease_for)
        .await
        .map_err(store_err("renewing the lease"))?
    {
        return Err(SyncError::Busy(lease));
    }
    let input = slice_input(spec, &options.template);
    let outcome = sync_scope(deps, &input, &spec.scope).await?;
    let progress = deps
        .store
        .finish_slice(
            &spec.run_id,
            &SliceResult {
                slice: spec.slice,
                report: outcome.report.clone(),
                max_seen: outcome.max_seen,
                hold_at: outcome.hold_at,
                scope: Some(spec.scope.clone()),
            },
        )
        .await
        .map_err(store_err("recording the finished slice"))?;
    tracing::info!(run_id = %spec.run_id, slice = spec.slice, done = progress.done, slices = progress.slices, "Slice recorded.");
    if progress.finished {
        // A redelivery after the run finished (or the same night invoked again). It may have
        // recorded facts the finished run had not — leads held for their enrichment, scored
        // now —: their months' rollups are recomputed here, or they would stay stale until
        // some later run touched those months.
        let r = &outcome.report;
        if r.transitions_new + r.milestones_new + r.merged + r.deleted > 0 {
            crate::rollups::refresh(deps.store, &r.fact_periods)
                .await
                .map_err(SyncError::Rollups)?;
        }
        // The lease may still need giving back if the finisher stopped just short of it.
        deps.store
            .release_lease(&spec.run_id)
            .await
            .map_err(store_err("releasing the lease"))?;
        return Ok(SliceDone::AlreadyFinished(outcome.report));
    }
    if !progress.all_done() {
        return Ok(SliceDone::Recorded(outcome.report));
    }
    // The last slice (or a redelivery of one after a finish that crashed): finish. Finishing
    // twice is harmless.
    let results = deps
        .store
        .slice_results(&spec.run_id)
        .await
        .map_err(store_err("reading the slice results"))?;
    let mut merged = ScopeOutcome {
        report: RunReport {
            run_id: spec.run_id.clone(),
            // The run's report lives where an inline run's does (slice 0); each slice's own
            // report stays in its finished-slice record.
            slice: 0,
            started_at: Some(spec.now),
            criteria_version: spec.criteria_version.clone(),
            ..RunReport::default()
        },
        ..ScopeOutcome::default()
    };
    for result in &results {
        merged.report.absorb(&result.report);
        merged.max_seen = merged.max_seen.max(result.max_seen);
        merged.hold_at = match (merged.hold_at, result.hold_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if merged.report.snapshot_key.is_none() {
            merged.report.snapshot_key = result.report.snapshot_key.clone();
        }
    }
    let report = finish(deps, &input, merged).await?;
    deps.store
        .finish_run(&spec.run_id, &report)
        .await
        .map_err(store_err("marking the run finished"))?;
    deps.store
        .release_lease(&spec.run_id)
        .await
        .map_err(store_err("releasing the lease"))?;
    tracing::info!(run_id = %spec.run_id, slices = progress.slices, pulled = report.pulled, pushed = report.pushed, "Run finished.");
    Ok(SliceDone::RunFinished(report))
}

/// The longest delay SQS gives a message.
const MAX_DEFER: std::time::Duration = std::time::Duration::from_secs(900);

/// The delay before a deferred re-score's next attempt: `base` doubled per attempt already
/// made, at most SQS's 15 minutes.
pub fn defer_delay(base: Duration, attempts: u32) -> std::time::Duration {
    let base = base.to_std().unwrap_or_default();
    base.checked_mul(1u32 << attempts.min(16))
        .map_or(MAX_DEFER, |d| d.min(MAX_DEFER))
}

/// How a deferred re-score went.
#[derive(Debug, Clone, PartialEq)]
pub enum DeferredDone {
    /// It ran inline, or fanned out (its slices are on the queue).
    Started(Started),
    /// The lease is still held: it is back on the queue, visible after `delay`.
    Again {
        attempts: u32,
        delay: std::time::Duration,
        holder: String,
    },
}

/// Run a deferred re-score now, at `wall()`, with the criteria in `deps` (the active version
/// when it runs, which is what a re-score is for). While another run holds the lease it goes
/// back on `queue` with a longer delay ([`defer_delay`]), until it is older than
/// `options.defer_give_up`.
///
/// # Errors
/// [`SyncError`]; [`SyncError::Busy`] once it has waited too long.
pub async fn run_deferred<C, S, N, P, Q>(
    deps: &SyncDeps<'_, C, S, N, P>,
    queue: &Q,
    deferred: &DeferredRescore,
    options: &RunOptions,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<DeferredDone, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore + RunStore,
    N: SnapshotStore,
    P: FirmographicProvider,
    Q: SliceQueue,
{
    let now = wall();
    let mut input = options.template.clone();
    input.run_id.clone_from(&deferred.run_id);
    input.now = now;
    let mut options = options.clone();
    options.wait_for_lease = Duration::zero();
    let started = start_run(
        deps,
        queue,
        RunKind::Rescore,
        Some(deferred.target.clone()),
        &options,
        &input,
        &wall,
    )
    .await?;
    let Started::Busy(lease) = started else {
        tracing::info!(run_id = %deferred.run_id, why = %deferred.why, attempts = deferred.attempts, waited_s = (now - deferred.requested_at).num_seconds(), "Deferred re-score started.");
        return Ok(DeferredDone::Started(started));
    };
    if now - deferred.requested_at > options.defer_give_up {
        tracing::error!(run_id = %deferred.run_id, why = %deferred.why, holder = %lease.holder, requested_at = %deferred.requested_at, "A deferred re-score waited too long for the lease; failing it (the queue dead-letters it).");
        return Err(SyncError::Busy(lease));
    }
    let next = DeferredRescore {
        attempts: deferred.attempts + 1,
        ..deferred.clone()
    };
    let delay = defer_delay(options.defer_base, deferred.attempts);
    queue
        .defer(&next, delay)
        .await
        .map_err(store_err("deferring the re-score again"))?;
    tracing::info!(run_id = %deferred.run_id, holder = %lease.holder, attempts = next.attempts, delay_s = delay.as_secs(), "The lease is still held; the re-score waits on the queue.");
    Ok(DeferredDone::Again {
        attempts: next.attempts,
        delay,
        holder: lease.holder,
    })
}
