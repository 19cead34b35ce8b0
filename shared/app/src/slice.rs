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

use crate::chain;
pub use crate::{Config, Deps};
use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use leadsync_domain::runs::{DeferredErase, DeferredRescore, SliceSpec};
use leadsync_pipeline::erase::{ErasuresDone, run_deferred_erase};
use leadsync_pipeline::{DeferredDone, SliceDone, Started, run_deferred, run_slice};

/// The SQS event and the partial batch response (`ReportBatchItemFailures`): the runtime's
/// own types.
pub use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

/// One queue message: a slice of a planned run, or a deferred re-score.
#[derive(Debug, PartialEq)]
pub enum Message {
    Slice(Box<SliceSpec>),
    Rescore(DeferredRescore),
    Erase(DeferredErase),
}

impl Message {
    /// Read a message body.
    ///
    /// # Errors
    /// The body is not JSON, or not the shape of either message (serde says which field).
    pub fn read(body: &str) -> Result<Self, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(body)?;
        if let Some(erase) = value.get(DeferredErase::MESSAGE_KEY) {
            return serde_json::from_value(erase.clone()).map(Self::Erase);
        }
        match value.get(DeferredRescore::MESSAGE_KEY) {
            Some(rescore) => serde_json::from_value(rescore.clone()).map(Self::Rescore),
            None => {
                let spec: SliceSpec = serde_json::from_value(value)?;
                // Planned by us, but read from a queue anyone with access can write to: a
                // slice outside its run, or a ratio that is no share, is refused by name.
                let refuse = |what: String| Err(serde::de::Error::custom(what));
                if spec.slice >= spec.slices {
                    return refuse(format!(
                        "slice {} of a run of {} slices",
                        spec.slice, spec.slices
                    ));
                }
                if !(0.0..=1.0).contains(&spec.max_reject_ratio) {
                    return refuse(format!(
                        "max_reject_ratio {} is not a share (0–1)",
                        spec.max_reject_ratio
                    ));
                }
                if spec.index_lag_secs < 0 {
                    return refuse(format!(
                        "index_lag_secs {} is negative",
                        spec.index_lag_secs
                    ));
                }
                Ok(Self::Slice(Box::new(spec)))
            }
        }
    }
}

/// Why one message failed (logged; the message is retried, then dead-lettered).
#[derive(Debug)]
enum MessageError {
    Unreadable(serde_json::Error),
    Criteria(crate::DepsError),
    Sync(leadsync_pipeline::SyncError),
    Erase(leadsync_pipeline::erase::EraseError),
}

/// What one message did.
#[derive(Debug)]
enum Done {
    Slice(Box<SliceDone>),
    Rescore(String, DeferredDone),
    Erase(ErasuresDone),
}

async fn process(
    deps: &Deps,
    body: &str,
    wall: &impl Fn() -> DateTime<Utc>,
) -> Result<Done, MessageError> {
    let spec = match Message::read(body).map_err(MessageError::Unreadable)? {
        Message::Slice(spec) => spec,
        Message::Erase(asked) => {
            return run_deferred_erase(
                &deps.store,
                &deps.snapshots,
                &deps.queue,
                &asked,
                &deps.run_options(wall()),
                wall(),
                crate::pseudonym,
            )
            .await
            .map(Done::Erase)
            .map_err(MessageError::Erase);
        }
        Message::Rescore(deferred) => {
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
    };
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
    event: LambdaEvent<SqsEvent>,
    deps: &Deps,
    wall: impl Fn() -> DateTime<Utc>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let mut response = SqsBatchResponse::default();
    for record in &event.payload.records {
        let message = Received {
            message_id: record.message_id.as_deref().unwrap_or_default(),
            body: record.body.as_deref().unwrap_or_default(),
        };
        match process(deps, message.body, &wall).await {
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
            Ok(Done::Erase(ErasuresDone::Erased(done))) => {
                tracing::info!(message_id = %message.message_id, erased = done.len(), "People erased on request.");
            }
            Ok(Done::Erase(ErasuresDone::Again {
                erased,
                remaining,
                attempts,
                delay,
                holder,
            })) => {
                tracing::info!(message_id = %message.message_id, erased, remaining, attempts, delay_s = delay.as_secs(), holder = %holder, "Erasure put back: the lease is held.");
            }
            Err(error) => {
                let (kind, message_text) = match &error {
                    MessageError::Erase(e) => ("erasure failed", chain(e)),
                    MessageError::Unreadable(e) => ("unreadable message", e.to_string()),
                    MessageError::Criteria(e) => ("criteria unavailable", chain(e)),
                    MessageError::Sync(e) => ("slice failed", chain(e)),
                };
                tracing::error!(message_id = %message.message_id, kind, error = %message_text, "Slice message failed; it will be retried, then dead-lettered.");
                response.add_failure(message.message_id);
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
    event: LambdaEvent<SqsEvent>,
    deps: &Deps,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    handle_at(event, deps, Utc::now).await
}

/// What a record of the batch carries that this function reads (SQS always sends both).
struct Received<'a> {
    message_id: &'a str,
    body: &'a str,
}

#[cfg(test)]
mod hostile_tests {
    use super::*;
    use leadsync_domain::hostile;
    use proptest::prelude::*;

    const SLICE: &str = r#"{"run_id":"night-2026-11-20","kind":"nightly","slice":2,"slices":5,"scope":{"since":"2026-11-19T03:00:00Z","after":"100","through":"200"},"now":"2026-11-20T03:00:00Z","source":"hubspot#contacts","criteria_id":"b2b-saas","criteria_version":"2026.11.1","enrich_budget":500,"max_reject_ratio":0.2,"index_lag_secs":120}"#;
    const RESCORE: &str = r#"{"rescore":{"run_id":"rescore-1","target":{"leads":["101","102"]},"why":"a HubSpot webhook","requested_at":"2026-11-20T03:00:00Z","attempts":2}}"#;

    /// Hostile queue messages: any text, and both message kinds garbled. Reading never panics;
    /// what reads is a slice inside its run with a sane ratio, or a re-score; the rest is
    /// refused with serde's reason (the message is retried, then kept in the DLQ).
    #[test]
    fn hostile_queue_messages_are_read_or_refused_never_panic() {
        hostile::check(
            "SQS slice messages",
            4_000,
            hostile::text(&[SLICE, RESCORE]),
            |body| {
                match Message::read(&body) {
                    Ok(Message::Slice(spec)) => {
                        prop_assert!(spec.slice < spec.slices);
                        prop_assert!((0.0..=1.0).contains(&spec.max_reject_ratio));
                        // What reads, writes back the same (a redelivery is the same slice).
                        let again = serde_json::to_string(&spec)
                            .map_err(|e| TestCaseError::fail(e.to_string()))?;
                        prop_assert_eq!(Message::read(&again).ok(), Some(Message::Slice(spec)));
                    }
                    Ok(Message::Rescore(_) | Message::Erase(_)) => {}
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
                Ok(())
            },
        );
    }

    #[test]
    fn a_slice_outside_its_run_is_refused_by_name() {
        let e = Message::read(&SLICE.replace(r#""slice":2"#, r#""slice":5"#)).err();
        assert!(e.is_some_and(|e| e.to_string().contains("slice 5 of a run of 5 slices")));
        assert!(matches!(Message::read(SLICE), Ok(Message::Slice(_))));
        assert!(matches!(Message::read(RESCORE), Ok(Message::Rescore(_))));
        let erase = r#"{"erase":{"lead_ids":["7"],"requested_at":"2026-11-20T03:00:00Z"}}"#;
        assert!(matches!(Message::read(erase), Ok(Message::Erase(e)) if e.lead_ids.len() == 1));
    }
}
