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
            Some(_) => payload.get("detail").cloned().unwrap_or_default(),
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
    let nightly = NightlyEvent::read(event.payload)?;
    let now = nightly.scheduled_time.unwrap_or(now);
    let run_id = if let Some(at) = nightly.scheduled_time {
        format!("night-{}", at.format("%Y%m%dT%H%M%SZ"))
    } else if event.context.request_id.is_empty() {
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
        let envelope = serde_json::json!({"detail-type": "Scheduled Event", "detail": {"since": "2026-11-01T00:00:00Z"}});
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
