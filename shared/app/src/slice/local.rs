//! A local stand-in for Lambda's SQS event source mapping, for `leadsync demo` and the e2e
//! tests: receive slice messages from a (moto) queue, invoke [`super::handle_at`] with one
//! message per invocation, up to `concurrency` invocations at once (the mapping's maximum
//! concurrency), delete what succeeded and make failures visible again — as the real mapping
//! does with `ReportBatchItemFailures`. After `max_receives` failures of one message it stops
//! with an error, as a redrive policy would move the message to the DLQ.

use super::{Deps, SqsEvent, SqsMessage, handle_at};
use chrono::{DateTime, Utc};
use futures::future::join_all;
use lambda_runtime::{Context, LambdaEvent};
use std::collections::HashMap;

/// What the pump did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PumpStats {
    pub invocations: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// The pump stopped.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("SQS {operation} failed: {message}")]
    Sqs {
        operation: &'static str,
        message: String,
    },
    #[error("message {message_id} failed {receives} times; a redrive policy would dead-letter it")]
    DeadLetter { message_id: String, receives: u32 },
}

fn sqs<E: std::error::Error + 'static, R: std::fmt::Debug>(
    operation: &'static str,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> PumpError {
    move |e| PumpError::Sqs {
        operation,
        message: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
    }
}

/// Drain the queue through the handler until it is empty; `on_done` is called after every
/// message that succeeded.
///
/// # Errors
/// [`PumpError`] when SQS fails or a message keeps failing.
pub async fn pump(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    deps: &Deps,
    concurrency: usize,
    max_receives: u32,
    wall: impl Fn() -> DateTime<Utc> + Copy,
    mut on_done: impl FnMut(),
) -> Result<PumpStats, PumpError> {
    let mut stats = PumpStats::default();
    let mut receives: HashMap<String, u32> = HashMap::new();
    loop {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::try_from(concurrency.clamp(1, 10)).unwrap_or(10))
            .wait_time_seconds(0)
            .send()
            .await
            .map_err(sqs("ReceiveMessage"))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(stats);
        }
        let invocations = messages.iter().map(|m| {
            // The shape the runtime hands the function: one record per invocation.
            let mut record = SqsMessage::default();
            record.message_id.clone_from(&m.message_id);
            record.body.clone_from(&m.body);
            let mut event = SqsEvent::default();
            event.records.push(record);
            handle_at(LambdaEvent::new(event, Context::default()), deps, wall)
        });
        let answers = join_all(invocations).await;
        for (message, answer) in messages.iter().zip(answers) {
            stats.invocations += 1;
            let id = message.message_id.clone().unwrap_or_default();
            let failed = match answer {
                Ok(response) => !response.batch_item_failures.is_empty(),
                Err(_) => true,
            };
            let handle = message.receipt_handle.clone().unwrap_or_default();
            if failed {
                stats.failed += 1;
                let count = receives.entry(id.clone()).or_default();
                *count += 1;
                if *count >= max_receives {
                    return Err(PumpError::DeadLetter {
                        message_id: id,
                        receives: *count,
                    });
                }
                client
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await
                    .map_err(sqs("ChangeMessageVisibility"))?;
            } else {
                stats.succeeded += 1;
                client
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(sqs("DeleteMessage"))?;
                on_done();
            }
        }
    }
}
