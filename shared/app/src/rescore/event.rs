//! What a rescore invocation asks, read without I/O from its trigger's own event type (the
//! runtime's `aws_lambda_events`): S3's notification records, EventBridge events (S3's "Object
//! Created" or a `leadsync.rescore` request), or a function-URL request (payload 2.0, the
//! shape API Gateway's HTTP APIs share, read where it is answered: [`super::url`]).

use super::RescoreError;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::s3::{S3Bucket, S3Entity, S3Event, S3EventRecord, S3Object};
use chrono::{DateTime, Utc};
use leadsync_domain::LeadId;
use leadsync_pipeline::RescoreTarget;
use serde::Deserialize;
use serde_json::{Value, json};

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

    pub(super) fn target(self) -> Result<RescoreTarget, String> {
        match (self.lead_ids.is_empty(), self.since, self.all) {
            (false, None, false) => Ok(RescoreTarget::Leads(self.lead_ids)),
            (true, Some(since), false) => Ok(RescoreTarget::Since(since)),
            (true, None, true) => Ok(RescoreTarget::Since(DateTime::<Utc>::UNIX_EPOCH)),
            _ => Err("give exactly one of lead_ids, since or all".into()),
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

/// The part of S3's EventBridge "Object Created" `detail` an upload is found by.
#[derive(Debug, Deserialize)]
struct ObjectCreated {
    object: CreatedObject,
}

#[derive(Debug, Deserialize)]
struct CreatedObject {
    key: String,
}

impl Invocation {
    /// Tell the trigger by the payload's shape, then read it as that trigger's event type.
    ///
    /// # Errors
    /// [`RescoreError::BadEvent`] saying what is missing or wrong, and where.
    pub fn read(payload: &Value) -> Result<Self, RescoreError> {
        let bad = |what: String| RescoreError::BadEvent(what);
        if payload.pointer("/requestContext/http").is_some() {
            return Ok(Self::Url);
        }
        if payload.get("detail-type").is_some() {
            let event: EventBridgeEvent<Value> = serde_json::from_value(payload.clone())
                .map_err(|e| bad(format!("an EventBridge event: {e}")))?;
            if event.source == "aws.s3" {
                let created: ObjectCreated = serde_json::from_value(event.detail)
                    .map_err(|e| bad(format!("an S3 event without detail.object.key ({e})")))?;
                return Ok(Self::Upload(created.object.key));
            }
            let request =
                RescoreRequest::read(event.detail).map_err(|e| bad(format!("detail: {e}")))?;
            return request
                .target()
                .map(Self::Request)
                .map_err(|e| bad(format!("detail: {e}")));
        }
        if let Some(records) = payload.get("Records").and_then(Value::as_array) {
            return records
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    let record = S3EventRecord::deserialize(record)
                        .map_err(|e| bad(format!("Records[{i}]: not an S3 record: {e}")))?;
                    let key = record.s3.object.key.ok_or_else(|| {
                        bad(format!("Records[{i}]: an S3 record without s3.object.key"))
                    })?;
                    s3_event_key(&key)
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Self::Uploads);
        }
        Err(bad(
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

/// The notification S3 sends when `key` is put in `bucket` (one `ObjectCreated:Put` record,
/// the key form-encoded as S3 encodes it): how the local tools (demo, chaos bench) tell the
/// rescore function of a criteria upload, as the deployed bucket does.
pub fn put_notification(bucket: &str, key: &str, at: DateTime<Utc>) -> Value {
    let mut object = S3Object::default();
    // S3 leaves the slashes as they are.
    let encoded: Vec<String> = key
        .split('/')
        .map(|part| form_urlencoded::byte_serialize(part.as_bytes()).collect())
        .collect();
    object.key = Some(encoded.join("/"));
    let mut s3_bucket = S3Bucket::default();
    s3_bucket.name = Some(bucket.to_owned());
    s3_bucket.arn = Some(format!("arn:aws:s3:::{bucket}"));
    let mut entity = S3Entity::default();
    entity.schema_version = Some("1.0".into());
    entity.configuration_id = Some("criteria-upload".into());
    entity.bucket = s3_bucket;
    entity.object = object;
    let mut record = S3EventRecord::default();
    record.event_version = Some("2.1".into());
    record.event_source = Some("aws:s3".into());
    record.event_time = at;
    record.event_name = Some("ObjectCreated:Put".into());
    record.s3 = entity;
    let mut event = S3Event::default();
    event.records = vec![record];
    serde_json::to_value(event).unwrap_or_else(|_| json!({"Records": []}))
}
