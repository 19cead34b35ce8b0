//! `SqsSliceQueue`: the [`SliceQueue`] port on SQS — one message per slice, sent in batches of
//! ten (SQS's limit), entries the queue refused retried, then reported; a deferred re-score is
//! one `{"rescore": …}` message, delayed.

use leadsync_domain::ports::{SliceQueue, StoreError};
use leadsync_domain::runs::{DeferredErase, DeferredRescore, SliceSpec};
use leadsync_retry::{Failure, Policy};
use std::time::Duration;

/// The most entries SQS takes in one `SendMessageBatch`.
pub const MAX_SEND_BATCH: usize = 10;

/// Slices as SQS messages on one queue.
#[derive(Debug, Clone)]
pub struct SqsSliceQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsSliceQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }
}

fn sqs_error<E, R>(operation: &'static str, error: aws_sdk_sqs::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_sqs::error::SdkError;
    let message = aws_sdk_sqs::error::DisplayErrorContext(&error).to_string();
    match &error {
        SdkError::ServiceError(e)
            if !matches!(
                e.err().code(),
                Some(
                    "RequestThrottled"
                        | "ThrottlingException"
                        | "InternalError"
                        | "ServiceUnavailable"
                )
            ) =>
        {
            StoreError::Rejected { operation, message }
        }
        _ => StoreError::Unavailable { operation, message },
    }
}

impl SliceQueue for SqsSliceQueue {
    async fn send(&self, slices: &[SliceSpec]) -> Result<(), StoreError> {
        for chunk in slices.chunks(MAX_SEND_BATCH) {
            let mut pending: Vec<(String, String)> = chunk
                .iter()
                .map(|spec| {
                    serde_json::to_string(spec)
                        .map(|body| (format!("slice-{}", spec.slice), body))
                        .map_err(|e| StoreError::Rejected {
                            operation: "SendMessageBatch",
                            message: e.to_string(),
                        })
                })
                .collect::<Result<_, _>>()?;
            let mut waits = Policy::AWS.backoff();
            loop {
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(body)
                            .build()
                            .map_err(|e| StoreError::Rejected {
                                operation: "SendMessageBatch",
                                message: e.to_string(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let sent = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| sqs_error("SendMessageBatch", e))?;
                let failed = sent.failed;
                if failed.is_empty() {
                    pending.clear();
                    break;
                }
                // Entries SQS refused: sender faults are final, the rest are tried again.
                if let Some(fault) = failed.iter().find(|f| f.sender_fault) {
                    return Err(StoreError::Rejected {
                        operation: "SendMessageBatch",
                        message: format!(
                            "SQS refused slice message {}: {} {}",
                            fault.id,
                            fault.code,
                            fault.message.as_deref().unwrap_or("")
                        ),
                    });
                }
                let again: std::collections::HashSet<&str> =
                    failed.iter().map(|f| f.id.as_str()).collect();
                pending.retain(|(id, _)| again.contains(id.as_str()));
                let wait = waits.next().ok_or_else(|| StoreError::Unavailable {
                    operation: "SendMessageBatch",
                    message: format!(
                        "{} slice messages not accepted after {} attempts",
                        pending.len(),
                        1 + Policy::AWS.retries
                    ),
                })?;
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }

    async fn defer(&self, rescore: &DeferredRescore, delay: Duration) -> Result<(), StoreError> {
        let body = serde_json::json!({ DeferredRescore::MESSAGE_KEY: rescore }).to_string();
        self.send_one(body, delay).await
    }

    async fn defer_erase(&self, erase: &DeferredErase, delay: Duration) -> Result<(), StoreError> {
        let body = serde_json::json!({ DeferredErase::MESSAGE_KEY: erase }).to_string();
        self.send_one(body, delay).await
    }
}

impl SqsSliceQueue {
    /// One message, delayed (at most SQS's 15 minutes), retried on the AWS policy.
    async fn send_one(&self, body: String, delay: Duration) -> Result<(), StoreError> {
        let delay_seconds = i32::try_from(delay.as_secs().min(900)).unwrap_or(900);
        Policy::AWS
            .run("SendMessage", || async {
                self.client
                    .send_message()
                    .queue_url(&self.queue_url)
                    .message_body(&body)
                    .delay_seconds(delay_seconds)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        let e = sqs_error("SendMessage", e);
                        if e.is_retryable() {
                            Failure::retry(e)
                        } else {
                            Failure::give_up(e)
                        }
                    })
            })
            .await
    }
}
