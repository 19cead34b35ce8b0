//! The handler: turn the scheduler's event into a sync input, run the pipeline, report.

use crate::deps::Deps;
use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use leadsync_domain::ports::RunReport;
use leadsync_pipeline::{SyncDeps, SyncError, SyncInput, sync};
use serde::Deserialize;

/// The invocation payload. The schedule sends `{}`; an operator may ask for a full re-read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct NightlyEvent {
    /// Pull everything modified since this instant instead of since the watermark.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("invalid event: {0}")]
    BadEvent(#[from] serde_json::Error),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        let error_type = match &error {
            HandlerError::BadEvent(_) => "BadEvent",
            HandlerError::Sync(e) if e.is_retryable() => "DependencyUnavailable",
            HandlerError::Sync(_) => "SyncFailed",
        };
        // The full chain: the pipeline's error says where, its source says why.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: message,
        }
    }
}

/// Handle one invocation. `now` comes from the caller so tests control time.
///
/// # Errors
/// [`HandlerError`]: a malformed event, or a sync that failed (see [`SyncError`]).
pub async fn handle_at(
    event: LambdaEvent<serde_json::Value>,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<RunReport, HandlerError> {
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
        format!("local-{}", now.format("%Y%m%dT%H%M%S%3fZ"))
    } else {
        event.context.request_id.clone()
    };
    let mut input = SyncInput::nightly(run_id, now);
    input.lookback = deps.config.lookback;
    input.index_lag = deps.config.index_lag;
    input.max_reject_ratio = deps.config.max_reject_ratio;
    input.enrich_budget = deps.config.enrich_budget;
    input.since_override = nightly.since;
    let sync_deps = SyncDeps {
        crm: &deps.crm,
        store: &deps.store,
        snapshots: &deps.snapshots,
        providers: &deps.providers,
        criteria: &deps.criteria,
    };
    Ok(sync(&sync_deps, &input).await?)
}

/// Handle one invocation at the current time.
///
/// # Errors
/// See [`handle_at`].
pub async fn handle(
    event: LambdaEvent<serde_json::Value>,
    deps: &Deps,
) -> Result<RunReport, HandlerError> {
    handle_at(event, deps, Utc::now()).await
}
