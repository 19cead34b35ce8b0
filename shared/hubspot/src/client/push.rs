//! The push: `contacts/batch/update` in batches of 100, a few at once; a 207's errors mapped
//! back to their rows by `context.ids`.

use super::*;

/// Push batches in flight at once.
pub(super) const PUSH_CONCURRENCY: usize = 4;

impl HubSpotCrm {
    /// Batches of 100, [`PUSH_CONCURRENCY`] in flight (each under the governor), outcomes in
    /// the batches' order. In flight means unanswered: a batch waiting out a 429 does not hold
    /// the next ones back (`buffered` would: its answered batches wait behind the first and
    /// count against the limit).
    pub(super) async fn push_all(
        &self,
        updates: &[PropertyUpdate],
    ) -> Result<PushOutcome, CrmError> {
        let calls: Vec<_> = updates
            .chunks(BATCH_LIMIT)
            .enumerate()
            .map(|(at, chunk)| async move {
                let mut outcome = PushOutcome::default();
                self.push_batch(chunk, &mut outcome)
                    .await
                    .map(|()| (at, outcome))
            })
            .collect();
        let mut batches: Vec<(usize, PushOutcome)> = stream::iter(calls)
            .buffer_unordered(PUSH_CONCURRENCY)
            .try_collect()
            .await?;
        batches.sort_unstable_by_key(|(at, _)| *at);
        let mut outcome = PushOutcome::default();
        for (_, batch) in batches {
            outcome.written.extend(batch.written);
            outcome.failed.extend(batch.failed);
            outcome.requests += batch.requests;
        }
        Ok(outcome)
    }

    pub(super) async fn push_batch(
        &self,
        chunk: &[PropertyUpdate],
        outcome: &mut PushOutcome,
    ) -> Result<(), CrmError> {
        let body = json!({
            "inputs": chunk.iter().map(|u| json!({"id": u.lead_id.as_str(), "properties": u.properties})).collect::<Vec<_>>(),
        });
        outcome.requests += 1;
        let parsed: BatchResponse = match self
            .post_parsed("/crm/v3/objects/contacts/batch/update", &body)
            .await
        {
            Ok((_, parsed)) => parsed,
            // The whole batch was refused (e.g. a property does not exist): every row failed.
            Err(CrmError::Rejected { status, message }) => {
                let message = format!("HTTP {status}: {message}");
                outcome.failed.extend(chunk.iter().map(|u| PushFailure {
                    lead_id: u.lead_id.clone(),
                    message: message.clone(),
                    retryable: false,
                }));
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        let mut failed: HashMap<&str, String> = HashMap::default();
        for error in &parsed.errors {
            for id in error.context.get("ids").into_iter().flatten() {
                failed.insert(
                    id.as_str(),
                    format!("{}: {}", error.category, error.message),
                );
            }
        }
        for update in chunk {
            match failed.get(update.lead_id.as_str()) {
                Some(message) => outcome.failed.push(PushFailure {
                    lead_id: update.lead_id.clone(),
                    message: message.clone(),
                    retryable: !message.starts_with("OBJECT_NOT_FOUND")
                        && !message.starts_with("VALIDATION_ERROR"),
                }),
                None => outcome.written.push(update.lead_id.clone()),
            }
        }
        Ok(())
    }
}
