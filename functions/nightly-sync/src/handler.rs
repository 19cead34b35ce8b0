//! The handler: turn the scheduler's event into a run, start it, report.

use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use leadsync_app::{Deps, DepsError, RunOutcome, chain};
use leadsync_domain::runs::RunKind;
use leadsync_pipeline::{RescoreTarget, SyncError, start_run};
use serde::Deserialize;

/// The invocation payload. The schedule sends `{}`; an operator may ask for a full re-read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NightlyEvent {
    /// Pull everything modified since this instant instead of since the watermark (the
    /// watermark is then left alone).
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("invalid event: {0}")]
    BadEvent(#[from] serde_json::Error),
    #[error(transparent)]
    Deps(#[from] DepsError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::BadEvent(_) => "BadEvent",
            HandlerError::Deps(_) => "Configuration",
            HandlerError::Sync(e) if e.is_retryable() => "DependencyUnavailable",
            HandlerError::Sync(_) => "SyncFailed",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: chain(&error),
        }
    }
}

/// Handle one invocation at `now` (the run's scoring instant); `wall` is the real clock for
/// the lease.
///
/// # Errors
/// [`HandlerError`]: a malformed event, criteria that cannot be loaded, or a failed run.
pub async fn handle_at(
    event: LambdaEvent<serde_json::Value>,
    deps: &Deps,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<RunOutcome, HandlerError> {
    let payload = if event.payload.is_null() {
        serde_json::json!({})
    } else {
        event.payload
    };
    // EventBridge Scheduler's default payload is `{}`; a classic EventBridge rule sends an
    // event envelope, whose `detail` carries the input.
    let payload = match payload.get("detail-type") {
        Some(_) => payload
            .get("detail")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({})),
        None => payload,
    };
    let nightly: NightlyEvent = serde_json::from_value(payload)?;
    let run_id = if event.context.request_id.is_empty() {
        // Outside Lambda there is no request id: a fresh id per invocation (a reused id means
        // "the same run again").
        format!(
            "local-{}-{}",
            now.format("%Y%m%dT%H%M%S%3fZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    } else {
        event.context.request_id.clone()
    };
    let criteria = deps.active_criteria().await?;
    let input = deps.sync_input(&run_id, now);
    let (kind, target) = match nightly.since {
        None => (RunKind::Nightly, None),
        Some(since) => (RunKind::Rescore, Some(RescoreTarget::Since(since))),
    };
    let started = start_run(
        &deps.sync_deps(&criteria),
        &deps.queue,
        kind,
        target,
        &deps.run_options(now),
        &input,
        wall,
    )
    .await?;
    Ok(RunOutcome::new(&run_id, started))
}

/// Handle one invocation at the current time.
///
/// # Errors
/// See [`handle_at`].
pub async fn handle(
    event: LambdaEvent<serde_json::Value>,
    deps: &Deps,
) -> Result<RunOutcome, HandlerError> {
    handle_at(event, deps, Utc::now(), Utc::now).await
}
