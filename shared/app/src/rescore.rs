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
//! - [`webhook`]: signature verification and the contacts a webhook batch names.
//! - [`handle_at`]: the event → a re-score through `leadsync_pipeline::start_run`.

pub mod webhook;

pub use crate::{Config, Deps, RunOutcome};
use crate::{DepsError, chain};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use leadsync_domain::LeadId;
use leadsync_domain::ports::{SliceQueue, StoreError};
use leadsync_domain::runs::{DeferredErase, DeferredRescore, Lease, RunKind};
use leadsync_pipeline::{RescoreTarget, SyncError, defer_delay, start_run};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What to re-score (a function-URL body or an EventBridge event's `detail`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescoreRequest {
    #[serde(default)]
    pub lead_ids: Vec<LeadId>,
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub all: bool,
}

impl RescoreRequest {
    /// Read a request from a JSON object (serde would read the struct from an array too).
    ///
    /// # Errors
    /// Not an object, an unknown field, or a value of the wrong type.
    pub fn read(value: Value) -> Result<Self, serde_json::Error> {
        if !value.is_object() {
            return Err(serde::de::Error::custom(format!(
                "a re-score request is a JSON object, not {value}"
            )));
        }
        serde_json::from_value(value)
    }

    fn target(self) -> Result<RescoreTarget, String> {
        match (self.lead_ids.is_empty(), self.since, self.all) {
            (false, None, false) => Ok(RescoreTarget::Leads(self.lead_ids)),
            (true, Some(since), false) => Ok(RescoreTarget::Since(since)),
            (true, None, true) => Ok(RescoreTarget::Since(DateTime::<Utc>::UNIX_EPOCH)),
            _ => Err("give exactly one of lead_ids, since or all".into()),
        }
    }
}

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

fn http(status: u16, body: &Value) -> Value {
    let mut headers = json!({"content-type": "application/json"});
    if status == 503 {
        headers["retry-after"] = json!("60");
    }
    json!({"statusCode": status, "headers": headers, "body": body.to_string()})
}

async fn rescore(
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
async fn defer(
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

fn outcome_http(outcome: &RunOutcome) -> Value {
    let status = match outcome {
        RunOutcome::Finished { .. } => 200,
        RunOutcome::Queued { .. } => 202,
        RunOutcome::Busy { .. } => 503,
    };
    http(
        status,
        &serde_json::to_value(outcome).unwrap_or(Value::Null),
    )
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
        Invocation::Url => Ok(function_url(&payload, deps, webhook, &run_id, now, wall).await),
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

/// What an invocation asks, read from its payload without I/O.
#[derive(Debug, PartialEq)]
pub enum Invocation {
    /// A function-URL request (the re-score URL or the webhook's): answered with a status.
    Url,
    /// S3's EventBridge "Object Created" event for one key (how the template routes uploads).
    Upload(String),
    /// An S3 notification's records: their keys, decoded.
    Uploads(Vec<String>),
    /// An EventBridge re-score request.
    Request(RescoreTarget),
}

impl Invocation {
    /// Tell the trigger by the payload's shape.
    ///
    /// # Errors
    /// [`RescoreError::BadEvent`] saying what is missing or wrong, and where.
    pub fn read(payload: &Value) -> Result<Self, RescoreError> {
        if payload.pointer("/requestContext/http").is_some() {
            return Ok(Self::Url);
        }
        if payload.get("source").and_then(Value::as_str) == Some("aws.s3") {
            let key = payload
                .pointer("/detail/object/key")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    RescoreError::BadEvent("an S3 event without detail.object.key".into())
                })?;
            return Ok(Self::Upload(key.to_owned()));
        }
        if payload.get("detail-type").is_some() {
            let request = RescoreRequest::read(payload.get("detail").cloned().unwrap_or(json!({})))
                .map_err(|e| RescoreError::BadEvent(format!("detail: {e}")))?;
            return request
                .target()
                .map(Self::Request)
                .map_err(|e| RescoreError::BadEvent(format!("detail: {e}")));
        }
        if let Some(records) = payload.get("Records").and_then(Value::as_array) {
            return records
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    let key = record
                        .pointer("/s3/object/key")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            RescoreError::BadEvent(format!(
                                "Records[{i}]: an S3 record without s3.object.key"
                            ))
                        })?;
                    s3_event_key(key)
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Uploads);
        }
        Err(RescoreError::BadEvent(
            "neither a function-URL request, an EventBridge event nor an S3 notification".into(),
        ))
    }
}

/// An S3 notification's object key, decoded: S3 sends keys form-encoded (a space as `+`, a
/// `+` as `%2B`, any other byte as `%XX`, UTF-8 included).
///
/// # Errors
/// [`RescoreError::BadEvent`] when the decoded bytes are not UTF-8 (no such object can exist).
pub fn s3_event_key(raw: &str) -> Result<String, RescoreError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| {
            RescoreError::BadEvent(format!(
                "s3.object.key {raw:?} is not UTF-8 once decoded: {e}"
            ))
        })
}

async fn function_url(
    request: &Value,
    deps: &Deps,
    webhook: Option<&Webhook>,
    run_id: &str,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> Value {
    let text = |pointer: &str| request.pointer(pointer).and_then(Value::as_str);
    let method = text("/requestContext/http/method").unwrap_or("GET");
    if method != "POST" {
        return http(405, &json!({"error": "POST a rescore request"}));
    }
    let body = match (
        text("/body"),
        request.get("isBase64Encoded").and_then(Value::as_bool),
    ) {
        (Some(b), Some(true)) => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(b) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => return http(400, &json!({"error": "the body is not valid base64"})),
            }
        }
        (Some(b), _) => b.to_owned(),
        (None, _) => String::new(),
    };
    let target = match webhook {
        Some(hook) => {
            let header = |name: &str| {
                request
                    .get("headers")
                    .and_then(Value::as_object)
                    .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                    .and_then(|(_, v)| v.as_str())
            };
            let uri = format!(
                "https://{}{}{}{}",
                header("host").unwrap_or_default(),
                text("/rawPath").unwrap_or("/"),
                if text("/rawQueryString").unwrap_or("").is_empty() {
                    ""
                } else {
                    "?"
                },
                text("/rawQueryString").unwrap_or(""),
            );
            if let Err(e) = webhook::verify(
                &hook.secret,
                method,
                &uri,
                &body,
                header("x-hubspot-signature-v3"),
                header("x-hubspot-request-timestamp"),
                wall().timestamp_millis(),
            ) {
                tracing::warn!(reason = %e, "Webhook refused.");
                return http(401, &json!({"error": e.to_string()}));
            }
            let own: Vec<String> = deps
                .criteria()
                .crm_property_specs()
                .into_iter()
                .map(|p| p.name)
                .collect();
            match webhook::contacts_of(&body, &own) {
                Ok(webhook::Asked {
                    rescore: ids,
                    erase,
                    skipped,
                }) => {
                    tracing::info!(
                        contacts = ids.len(),
                        erasures = erase.len(),
                        skipped,
                        "Webhook verified."
                    );
                    let erasing = erase.len();
                    if let Err(e) = erase_asked(deps, erase, now, &wall).await {
                        let message = chain(&e);
                        tracing::error!(error = %message, "The webhook's erasure failed; HubSpot retries.");
                        return http(500, &json!({"error": message}));
                    }
                    if ids.is_empty() {
                        let status = if erasing > 0 {
                            "erasing"
                        } else {
                            "nothing_to_do"
                        };
                        return http(
                            200,
                            &json!({"status": status, "erasures": erasing, "skipped": skipped}),
                        );
                    }
                    if deps.queue.is_configured() {
                        // HubSpot waits 5 s for an answer: acknowledge now, the slice worker
                        // re-scores (after the run holding the lease, if one does).
                        let contacts = ids.len();
                        return match defer(
                            deps,
                            run_id,
                            RescoreTarget::Leads(ids),
                            "a HubSpot webhook".into(),
                            wall(),
                            std::time::Duration::ZERO,
                        )
                        .await
                        {
                            Ok(()) => http(
                                200,
                                &json!({"status": "queued", "run_id": run_id, "contacts": contacts, "erasures": erasing, "skipped": skipped}),
                            ),
                            Err(e) => {
                                let message = chain(&e);
                                tracing::error!(error = %message, "Queueing the webhook's re-score failed; HubSpot retries.");
                                http(500, &json!({"error": message}))
                            }
                        };
                    }
                    RescoreTarget::Leads(ids)
                }
                Err(e) => return http(400, &json!({"error": format!("webhook body: {e}")})),
            }
        }
        None => {
            let request = match serde_json::from_str(if body.is_empty() { "{}" } else { &body })
                .and_then(RescoreRequest::read)
            {
                Ok(r) => r,
                Err(e) => return http(400, &json!({"error": format!("body: {e}")})),
            };
            match request.target() {
                Ok(t) => t,
                Err(e) => return http(400, &json!({"error": e})),
            }
        }
    };
    match rescore(deps, run_id, target, now, wall).await {
        Ok(outcome) => outcome_http(&outcome),
        Err(e) => {
            let message = chain(&e);
            tracing::error!(error = %message, "Re-score failed.");
            http(500, &json!({"error": message}))
        }
    }
}

/// Erase the people a webhook's `contact.privacyDeletion` events name: queued for the slice
/// worker (HubSpot waits 5 s; the worker erases under the lease), or here and now without a
/// queue.
async fn erase_asked(
    deps: &Deps,
    ids: Vec<LeadId>,
    now: DateTime<Utc>,
    wall: &impl Fn() -> DateTime<Utc>,
) -> Result<(), RescoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    if deps.queue.is_configured() {
        let asked = DeferredErase {
            lead_ids: ids,
            requested_at: wall(),
            attempts: 0,
        };
        return deps
            .queue
            .defer_erase(&asked, std::time::Duration::ZERO)
            .await
            .map_err(RescoreError::Queue);
    }
    for id in &ids {
        leadsync_pipeline::erase::erase(
            &deps.store,
            &deps.snapshots,
            id,
            &crate::pseudonym(),
            now,
            chrono::Duration::minutes(15),
        )
        .await
        .map_err(RescoreError::Erase)?;
    }
    Ok(())
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
