//! `EventBridgeSink`: the [`EventSink`] port on an EventBridge bus — news about leads as
//! events (`source` `leadsync`, `detail-type` `leadsync.lead.sql` / `leadsync.lead.rejected`,
//! the [`LeadEvent`] as `detail`), ten a `PutEvents` call (its limit), each entry's fate read
//! from the answer (entries come back in the order sent).

use leadsync_domain::news::LeadEvent;
use leadsync_domain::ports::{EventError, EventSink};

/// The most entries one `PutEvents` call takes.
pub const MAX_PUT_ENTRIES: usize = 10;
/// The `source` of every event leadsync puts.
pub const SOURCE: &str = "leadsync";

/// News on one bus (`default` or a bus of its own).
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    async fn put(&self, events: &[LeadEvent]) -> Result<Vec<bool>, EventError> {
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let detail = serde_json::to_string(event)
                .map_err(|e| EventError(format!("lead {}: {e}", event.lead_id)))?;
            entries.push(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(SOURCE)
                    .detail_type(event.kind.detail_type())
                    .detail(detail)
                    .resources(format!("{}:contact/{}", event.crm, event.lead_id))
                    .build(),
            );
        }
        let answer = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                EventError(aws_sdk_eventbridge::error::DisplayErrorContext(&e).to_string())
            })?;
        let results = answer.entries();
        Ok((0..events.len())
            .map(|i| {
                results.get(i).is_some_and(|r| {
                    if let Some(code) = r.error_code() {
                        tracing::warn!(lead_id = %events[i].lead_id, code, message = r.error_message().unwrap_or_default(), "The event bus refused an event.");
                    }
                    r.error_code().is_none() && r.event_id().is_some()
                })
            })
            .collect())
    }
}

impl EventSink for EventBridgeSink {
    fn send<'a>(
        &'a self,
        events: &'a [LeadEvent],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<bool>, EventError>> + Send + 'a>> {
        Box::pin(async move {
            let mut accepted = Vec::with_capacity(events.len());
            let mut last_error = None;
            for chunk in events.chunks(MAX_PUT_ENTRIES) {
                match self.put(chunk).await {
                    Ok(fates) => accepted.extend(fates),
                    // This call failed as a whole (the SDK has retried it): its events are
                    // sent again by the next run; the other calls' stand.
                    Err(error) => {
                        tracing::warn!(events = chunk.len(), error = %error, "PutEvents failed.");
                        accepted.extend(std::iter::repeat_n(false, chunk.len()));
                        last_error = Some(error);
                    }
                }
            }
            match last_error {
                Some(error) if !accepted.contains(&true) => Err(error),
                _ => Ok(accepted),
            }
        })
    }
}
