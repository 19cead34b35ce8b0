//! The rescore function: re-score now, on demand.
//!
//! One binary, four triggers, told apart by the event's shape:
//! - a **function URL** call (AWS_IAM): `POST` a JSON body `{"lead_ids": [...]}`,
//!   `{"since": "<RFC 3339>"}` or `{"all": true}`; answers 200 (finished), 202 (queued) or
//!   503 (another run holds the lease; `Retry-After`);
//! - an **EventBridge** event (`detail-type` `leadsync.rescore`) whose `detail` is that body;
//! - an **S3 put under `criteria/`** (an S3 notification, or S3's EventBridge "Object Created"
//!   event as the template routes it): an upload not yet published is validated and published
//!   (its sign-off checked; an invalid document never becomes active), and the publish's own
//!   put re-triggers; a put of the published, active version re-scores every contact with it;
//! - a **HubSpot webhook** on the second function URL (auth NONE, configured with
//!   `HUBSPOT_APP_SECRET[_ARN]`): the v3 signature is verified, then the contacts named by the
//!   events are queued for the slice worker and the webhook answered at once (HubSpot waits 5 s);
//!   without a queue they are re-scored before the answer.
//!
//! EventBridge and S3 do not retry a success, so a re-score of theirs that finds the lease held
//! is not answered "busy": it waits on the slice queue ([`DeferredRescore`]) and the worker
//! starts it when the lease is free (without a queue it fails, so the trigger retries).
//!
//! # Layout
//! - [`event`]: the payload read as its trigger's event type (`aws_lambda_events`), no I/O.
//! - [`url`]: the function URLs: a re-score request or a signed webhook → an HTTP answer.
//! - [`webhook`]: signature verification and the contacts a webhook batch names.
//! - [`handle_at`]: the event → a re-score through `leadsync_pipeline::start_run`.

pub mod event;
mod url;
pub mod webhook;

pub use crate::{Config, Deps, RunOutcome};
use crate::{DepsError, chain};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use chrono::{DateTime, Utc};
pub use event::{Invocation, RescoreRequest, put_notification, s3_event_key};
use lambda_runtime::LambdaEvent;
use leadsync_domain::ports::{SliceQueue, StoreError};
use leadsync_domain::runs::{DeferredRescore, Lease, RunKind};
use leadsync_pipeline::{RescoreTarget, SyncError, defer_delay, start_run};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Why a re-score could not run (as an invocation error: EventBridge and S3 retry these).
#[derive(Debug, thiserror::Error)]
pub enum RescoreError {
    #[error("invalid event: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Deps(#[from] DepsError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("queueing the re-score failed")]
    Queue(#[source] StoreError),
    #[error("erasing a person failed")]
    Erase(#[source] leadsync_pipeline::erase::EraseError),
}

impl From<RescoreError> for lambda_runtime::Diagnostic {
    fn from(error: RescoreError) -> Self {
        let error_type = match &error {
            RescoreError::BadEvent(_) => "BadEvent",
            RescoreError::Deps(_) => "Configuration",
            RescoreError::Sync(e) if e.is_retryable() => "DependencyUnavailable",
            RescoreError::Sync(_) => "RescoreFailed",
            RescoreError::Queue(_) => "DependencyUnavailable",
            RescoreError::Erase(e) if e.is_retryable() => "DependencyUnavailable",
            RescoreError::Erase(_) => "EraseFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: chain(&error),
        }
    }
}

/// The webhook secret, when this function serves HubSpot's webhook URL.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub secret: SecretString,
}

pub(crate) async fn rescore(
    deps: &Deps,
    run_id: &str,
    target: RescoreTarget,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<RunOutcome, RescoreError> {
    let criteria = deps.active_criteria().await?;
    let mut options = deps.run_options(now);
    options.wait_for_lease = chrono::Duration::seconds(deps.config.rescore_wait_secs);
    let started = start_run(
        &deps.sync_deps(&criteria),
        &deps.queue,
        RunKind::Rescore,
        Some(target),
        &options,
        &deps.sync_input(run_id, now),
        wall,
    )
    .await?;
    Ok(RunOutcome::new(run_id, started))
}

/// A re-score for a trigger that does not retry a success (EventBridge, S3): run it now, or,
/// while another run holds the lease, queue it for the slice worker, which starts it once the
/// lease is free. Without a queue the busy lease is an error, so the trigger retries.
async fn rescore_or_defer(
    deps: &Deps,
    run_id: &str,
    target: RescoreTarget,
    why: String,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<Value, RescoreError> {
    let requested_at = wall();
    let outcome = rescore(deps, run_id, target.clone(), now, wall).await?;
    let RunOutcome::Busy { holder, until } = outcome else {
        return Ok(serde_json::to_value(outcome).unwrap_or(Value::Null));
    };
    if !deps.queue.is_configured() {
        return Err(RescoreError::Sync(SyncError::Busy(Lease { holder, until })));
    }
    let delay = defer_delay(chrono::Duration::seconds(deps.config.rescore_retry_secs), 0);
    defer(deps, run_id, target, why, requested_at, delay).await?;
    tracing::info!(run_id, holder = %holder, delay_s = delay.as_secs(), "Another run holds the lease; the re-score waits on the queue.");
    Ok(
        json!({"status": "deferred", "run_id": run_id, "holder": holder, "retry_in_seconds": delay.as_secs()}),
    )
}

/// Queue a re-score for the slice worker; `requested_at` is by the wall clock (how long it may
/// wait is measured from it).
pub(crate) async fn defer(
    deps: &Deps,
    run_id: &str,
    target: RescoreTarget,
    why: String,
    requested_at: DateTime<Utc>,
    delay: std::time::Duration,
) -> Result<(), RescoreError> {
    let deferred = DeferredRescore {
        run_id: run_id.to_owned(),
        target,
        why,
        requested_at,
        attempts: 0,
    };
    deps.queue
        .defer(&deferred, delay)
        .await
        .map_err(RescoreError::Queue)
}

/// Handle one invocation at `now`; `wall` is the real clock (lease, webhook age).
///
/// # Errors
/// [`RescoreError`] for EventBridge and S3 events (so they are retried); function-URL calls
/// always answer with an HTTP status instead.
pub async fn handle_at(
    event: LambdaEvent<Value>,
    deps: &Deps,
    webhook: Option<&Webhook>,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<Value, RescoreError> {
    let run_id = if event.context.request_id.is_empty() {
        format!(
            "rescore-{}-{}",
            now.format("%Y%m%dT%H%M%S%3fZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    } else {
        format!("rescore-{}", event.context.request_id)
    };
    let payload = event.payload;
    match Invocation::read(&payload)? {
        Invocation::Url => {
            let answer = match ApiGatewayV2httpRequest::deserialize(&payload) {
                Ok(request) => url::function_url(&request, deps, webhook, &run_id, now, wall).await,
                Err(e) => url::http(
                    400,
                    &json!({"error": format!("not a function-URL request (payload 2.0): {e}")}),
                ),
            };
            Ok(serde_json::to_value(answer).unwrap_or(Value::Null))
        }
        Invocation::Upload(key) => criteria_uploaded(deps, &key, now, &wall).await,
        Invocation::Uploads(keys) => {
            let mut answers = Vec::new();
            for key in keys {
                answers.push(criteria_uploaded(deps, &key, now, &wall).await?);
            }
            Ok(Value::Array(answers))
        }
        Invocation::Request(target) => {
            rescore_or_defer(
                deps,
                &run_id,
                target,
                "an EventBridge request".into(),
                now,
                wall,
            )
            .await
        }
    }
}

/// A document was put under `criteria/`.
async fn criteria_uploaded(
    deps: &Deps,
    key: &str,
    now: DateTime<Utc>,
    wall: &impl Fn() -> DateTime<Utc>,
) -> Result<Value, RescoreError> {
    if !key.starts_with("criteria/") {
        return Ok(json!({"key": key, "status": "ignored", "why": "not under criteria/"}));
    }
    let text = deps
        .criteria_store
        .read_upload(key)
        .await
        .map_err(DepsError::from)?;
    let criteria = match leadsync_domain::Criteria::parse(key, &text) {
        Ok(c) => c,
        Err(e) => {
            // Never active, never retried: the document itself is wrong.
            tracing::error!(key, error = %e, "Uploaded criteria are invalid; the active version stays.");
            return Ok(json!({"key": key, "status": "rejected", "why": e.to_string()}));
        }
    };
    let sha = hex::encode(Sha256::digest(text.as_bytes()));
    let published = deps
        .criteria_store
        .version(&criteria.id, &criteria.version)
        .await
        .map_err(DepsError::from)?;
    match published {
        Some((_, published_text)) if published_text == text => {}
        _ => {
            // Not yet published: publish (sign-off checked). Its own put of the canonical key
            // triggers this function again, which then re-scores.
            return match deps.criteria_store.publish(key, &text, now).await {
                Ok(p) => {
                    tracing::info!(criteria_id = %p.id, criteria_version = %p.version, "Uploaded criteria published.");
                    Ok(json!({"key": key, "status": "published", "canonical_key": p.key}))
                }
                Err(e) => {
                    tracing::error!(key, error = %e, "Uploaded criteria refused; the active version stays.");
                    Ok(json!({"key": key, "status": "rejected", "why": e.to_string()}))
                }
            };
        }
    }
    let active = deps.active_criteria().await?;
    if active.id != criteria.id || active.version != criteria.version {
        return Ok(
            json!({"key": key, "status": "ignored", "why": format!("{} {} is not the active version", criteria.id, criteria.version)}),
        );
    }
    let run_id = format!(
        "criteria-{}-{}-{}",
        criteria.id,
        criteria.version,
        &sha[..12]
    );
    let outcome = rescore_or_defer(
        deps,
        &run_id,
        RescoreTarget::Since(DateTime::<Utc>::UNIX_EPOCH),
        format!("criteria {} {} published", criteria.id, criteria.version),
        now,
        wall,
    )
    .await?;
    Ok(json!({"key": key, "status": "rescored", "outcome": outcome}))
}

/// Handle one invocation at the current time.
///
/// # Errors
/// See [`handle_at`].
pub async fn handle(
    event: LambdaEvent<Value>,
    deps: &Deps,
    webhook: Option<&Webhook>,
) -> Result<Value, RescoreError> {
    handle_at(event, deps, webhook, Utc::now(), Utc::now).await
}

#[cfg(test)]
mod key_tests;

#[cfg(test)]
mod hostile_tests;
