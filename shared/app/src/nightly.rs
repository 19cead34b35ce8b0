//! The nightly job itself, shared by the `nightly-sync` function and `leadsync sync` /
//! `leadsync backfill` on a laptop: one code path, so a run started from the command line is
//! the run the schedule starts.

pub mod handler;

pub use handler::{HandlerError, handle, handle_at};

use crate::deps::{Deps, DepsError};
use crate::outcome::RunOutcome;
use chrono::{DateTime, Utc};
use leadsync_domain::ports::Crm;
use leadsync_domain::runs::RunKind;
use leadsync_pipeline::{RescoreTarget, SyncDeps, SyncError, start_run};
use serde::Deserialize;

/// The invocation payload. The schedule sends `{}`; an operator may ask for a full re-read.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NightlyEvent {
    /// Pull everything modified since this instant instead of since the watermark (the
    /// watermark is then left alone).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// The schedule's own time for this night (the template passes EventBridge Scheduler's
    /// `<aws.scheduler.scheduled-time>`). The run scores at this instant and is named after it,
    /// so every retry of one night — Lambda's, after a crash or a timeout, or the scheduler's —
    /// is the same run at the same instant and writes the same facts.
    #[serde(default)]
    pub scheduled_time: Option<DateTime<Utc>>,
}

impl NightlyEvent {
    /// Read an invocation payload: `null` or `{}` (EventBridge Scheduler's default), a classic
    /// EventBridge rule's envelope (its `detail` carries the input), or the input itself.
    ///
    /// # Errors
    /// An unknown field, or a `since` that is not an RFC 3339 instant.
    pub fn read(payload: serde_json::Value) -> Result<Self, serde_json::Error> {
        let payload = match payload.get("detail-type") {
            Some(_) => {
                // A rule's envelope, read as the runtime's EventBridge event type.
                let envelope: aws_lambda_events::eventbridge::EventBridgeEvent<serde_json::Value> =
                    serde_json::from_value(payload).map_err(|e| {
                        serde::de::Error::custom(format!("an EventBridge event: {e}"))
                    })?;
                envelope.detail
            }
            None => payload,
        };
        if payload.is_null() {
            return Ok(Self::default());
        }
        // serde reads a struct from an array too (`["2026-11-01T00:00:00Z"]` would be a full
        // re-read since then): only an object is an input.
        if !payload.is_object() {
            return Err(serde::de::Error::custom(format!(
                "the event must be a JSON object, not {payload}"
            )));
        }
        serde_json::from_value(payload)
    }

    /// The run's name: the night's (`night-<scheduled time>`) when the schedule gave one,
    /// else `fallback` (the invocation's request id, or a command's own name).
    pub fn run_id(&self, fallback: &str) -> String {
        match self.scheduled_time {
            Some(at) => format!("night-{}", at.format("%Y%m%dT%H%M%SZ")),
            None => fallback.to_owned(),
        }
    }
}

/// A fresh run id for a run started outside Lambda (a reused id means "the same run again").
pub fn local_run_id(now: DateTime<Utc>) -> String {
    format!(
        "local-{}-{}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// Why a run could not be started or failed.
#[derive(Debug, thiserror::Error)]
pub enum NightlyError {
    #[error(transparent)]
    Deps(#[from] DepsError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Run the nightly job named `run_id` at `now` (the scoring instant; `wall` is the real clock
/// for the lease) through `crm` — the deployment's own adapter, or a watched one on a laptop.
///
/// # Errors
/// [`NightlyError`]: criteria that cannot be loaded, or a failed run.
pub async fn run_with<C: Crm>(
    deps: &Deps,
    crm: &C,
    event: &NightlyEvent,
    run_id: &str,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<RunOutcome, NightlyError> {
    let now = event.scheduled_time.unwrap_or(now);
    let criteria = deps.active_criteria().await?;
    let input = deps.sync_input(run_id, now);
    let (kind, target) = match event.since {
        None => (RunKind::Nightly, None),
        Some(since) => (RunKind::Rescore, Some(RescoreTarget::Since(since))),
    };
    let own = deps.sync_deps(&criteria);
    let sync_deps = SyncDeps {
        crm,
        store: own.store,
        snapshots: own.snapshots,
        providers: own.providers,
        criteria: own.criteria,
        events: own.events,
    };
    let started = start_run(
        &sync_deps,
        &deps.queue,
        kind,
        target,
        &deps.run_options(now),
        &input,
        wall,
    )
    .await?;
    Ok(RunOutcome::new(run_id, started))
}

/// [`run_with`] the deployment's own CRM adapter.
///
/// # Errors
/// See [`run_with`].
pub async fn run(
    deps: &Deps,
    event: &NightlyEvent,
    run_id: &str,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<RunOutcome, NightlyError> {
    run_with(deps, &deps.crm, event, run_id, now, wall).await
}
