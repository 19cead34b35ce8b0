//! The sync-slice function: the worker of fanned-out runs.
//!
//! SQS delivers slice messages ([`SliceSpec`] as JSON). Each is run with exactly the criteria
//! version its run was planned with; the last slice of a run finishes it (rollups, watermark,
//! lease). Failures are reported per message (`ReportBatchItemFailures`): only the failed
//! messages come back, and after the queue's `maxReceiveCount` they land in the DLQ — where a
//! message that can never succeed (unreadable, or planned under unpublished criteria) ends up,
//! kept, with its reason in the log.
//!
//! The queue also carries deferred re-scores (`{"rescore": …}`, [`DeferredRescore`]): a
//! criteria version published or a re-score asked for while a run held the lease, and
//! webhooks' re-scores. Each is started with the active criteria, or put back with a longer
//! delay while the lease is still held.

pub mod local;

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use leadsync_app::chain;
pub use leadsync_app::{Config, Deps};
use leadsync_domain::runs::{DeferredRescore, SliceSpec};
use leadsync_pipeline::{DeferredDone, SliceDone, Started, run_deferred, run_slice};
use serde::{Deserialize, Serialize};

/// The SQS event (the fields this function reads).
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsMessage>,
}

#[derive(Debug, Deserialize)]
pub struct SqsMessage {
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub body: String,
}

/// The partial batch response: the messages to deliver again.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Why one message failed (logged; the message is retried, then dead-lettered).
#[derive(Debug)]
enum MessageError {
    Unreadable(serde_json::Error),
    Criteria(leadsync_app::DepsError),
    Sync(leadsync_pipeline::SyncError),
}

/// What one message did.
#[derive(Debug)]
enum Done {
    Slice(Box<SliceDone>),
    Rescore(String, DeferredDone),
}

async fn process(
    deps: &Deps,
    body: &str,
    wall: &impl Fn() -> DateTime<Utc>,
) -> Result<Done, MessageError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(MessageError::Unreadable)?;
    if let Some(rescore) = value.get(DeferredRescore::MESSAGE_KEY) {
        let deferred: DeferredRescore =
            serde_json::from_value(rescore.clone()).map_err(MessageError::Unreadable)?;
        let criteria = deps
            .active_criteria()
            .await
            .map_err(MessageError::Criteria)?;
        let done = run_deferred(
            &deps.sync_deps(&criteria),
            &deps.queue,
            &deferred,
            &deps.run_options(wall()),
            wall,
        )
        .await
        .map_err(MessageError::Sync)?;
        return Ok(Done::Rescore(deferred.run_id, done));
    }
    let spec: SliceSpec = serde_json::from_value(value).map_err(MessageError::Unreadable)?;
    let criteria = deps
        .criteria_version(&spec.criteria_id, &spec.criteria_version)
        .await
        .map_err(MessageError::Criteria)?;
    run_slice(
        &deps.sync_deps(&criteria),
        &spec,
        &deps.run_options(spec.now),
        wall,
    )
    .await
    .map(|done| Done::Slice(Box::new(done)))
    .map_err(MessageError::Sync)
}

/// Handle one SQS batch with `wall` as the clock for the lease.
///
/// # Errors
/// Never for a message's failure (reported in the response); only for an event that is not an
/// SQS batch at all.
pub async fn handle_at(
    event: LambdaEvent<serde_json::Value>,
    deps: &Deps,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<BatchResponse, lambda_runtime::Error> {
    let batch: SqsEvent = serde_json::from_value(event.payload)?;
    let mut response = BatchResponse::default();
    for message in &batch.records {
        match process(deps, &message.body, &wall).await {
            Ok(Done::Slice(done)) => match *done {
                SliceDone::Recorded(report) | SliceDone::AlreadyFinished(report) => {
                    tracing::info!(message_id = %message.message_id, run_id = %report.run_id, slice = report.slice, pulled = report.pulled, "Slice done.");
                }
                SliceDone::RunFinished(report) => {
                    tracing::info!(message_id = %message.message_id, run_id = %report.run_id, pulled = report.pulled, pushed = report.pushed, "Slice done; the run is finished.");
                }
            },
            Ok(Done::Rescore(run_id, DeferredDone::Started(started))) => {
                tracing::info!(message_id = %message.message_id, run_id = %run_id, outcome = match started { Started::Finished(_) => "finished", Started::Queued { .. } => "fanned out", Started::Busy(_) => "busy" }, "Deferred re-score started.");
            }
            Ok(Done::Rescore(
                run_id,
                DeferredDone::Again {
                    attempts,
                    delay,
                    holder,
                },
            )) => {
                tracing::info!(message_id = %message.message_id, run_id = %run_id, attempts, delay_s = delay.as_secs(), holder = %holder, "Deferred re-score put back: the lease is held.");
            }
            Err(error) => {
                let (kind, message_text) = match &error {
                    MessageError::Unreadable(e) => ("unreadable message", e.to_string()),
                    MessageError::Criteria(e) => ("criteria unavailable", chain(e)),
                    MessageError::Sync(e) => ("slice failed", chain(e)),
                };
                tracing::error!(message_id = %message.message_id, kind, error = %message_text, "Slice message failed; it will be retried, then dead-lettered.");
                response.batch_item_failures.push(ItemFailure {
                    item_identifier: message.message_id.clone(),
                });
            }
        }
    }
    Ok(response)
}

/// Handle one SQS batch at the current time.
///
/// # Errors
/// See [`handle_at`].
pub async fn handle(
    event: LambdaEvent<serde_json::Value>,
    deps: &Deps,
) -> Result<BatchResponse, lambda_runtime::Error> {
    handle_at(event, deps, Utc::now).await
}
