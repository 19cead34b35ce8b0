//! The handler: turn the scheduler's event into a run, start it, report.

use crate::nightly::{self, NightlyError, NightlyEvent};
use crate::{Deps, DepsError, RunOutcome, chain};
use chrono::{DateTime, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use leadsync_pipeline::SyncError;

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
    let nightly = NightlyEvent::read(event.payload)?;
    // Outside Lambda there is no request id: a fresh id per invocation.
    let fallback = if event.context.request_id.is_empty() {
        nightly::local_run_id(now)
    } else {
        event.context.request_id.clone()
    };
    let run_id = nightly.run_id(&fallback);
    nightly::run(deps, &nightly, &run_id, now, wall)
        .await
        .map_err(|e| match e {
            NightlyError::Deps(e) => HandlerError::Deps(e),
            NightlyError::Sync(e) => HandlerError::Sync(e),
        })
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

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use leadsync_domain::hostile;
    use proptest::prelude::*;

    /// Hostile schedule events: any JSON, and the real shapes garbled. Reading never panics;
    /// `since` is only ever the instant its text says.
    #[test]
    fn hostile_schedule_events_are_read_or_refused_never_panic() {
        let payload = prop_oneof![
            hostile::json(),
            hostile::text(&[
                "{}",
                r#"{"since":"2026-11-01T00:00:00Z"}"#,
                r#"{"version":"0","detail-type":"Scheduled Event","source":"aws.events","detail":{"since":"2026-11-01T00:00:00+01:00"}}"#,
            ])
            .prop_filter_map("JSON", |t| serde_json::from_str::<serde_json::Value>(&t).ok()),
        ];
        hostile::check("nightly-sync events", 3_000, payload, |payload| {
            if let Ok(NightlyEvent {
                since: Some(since), ..
            }) = NightlyEvent::read(payload.clone())
            {
                let inner = payload.get("detail").unwrap_or(&payload);
                let text = inner.get("since").and_then(serde_json::Value::as_str);
                // chrono reads a little more than RFC 3339 (`T0:00:00Z`); the instant is the text's.
                prop_assert!(
                    text.is_some_and(|t| t.parse::<DateTime<Utc>>().is_ok_and(|t| t == since))
                );
            }
            Ok(())
        });
    }

    #[test]
    fn the_schedules_shapes_read() {
        assert!(NightlyEvent::read(serde_json::Value::Null).is_ok_and(|e| e.since.is_none()));
        assert!(NightlyEvent::read(serde_json::json!({})).is_ok_and(|e| e.since.is_none()));
        let envelope = serde_json::json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {"since": "2026-11-01T00:00:00Z"}});
        assert!(NightlyEvent::read(envelope).is_ok_and(|e| e.since.is_some()));
        assert!(NightlyEvent::read(serde_json::json!({"sinse": "x"})).is_err());
        // What the template's schedule sends: the night's own time.
        let scheduled =
            NightlyEvent::read(serde_json::json!({"scheduled_time": "2026-11-20T03:00:00Z"}));
        assert!(scheduled.is_ok_and(|e| e.scheduled_time.is_some() && e.since.is_none()));
        // Found by the hostile-input test: an array was read as the struct's fields in order.
        assert!(NightlyEvent::read(serde_json::json!(["2026-11-20T03:00:00Z"])).is_err());
    }
}
