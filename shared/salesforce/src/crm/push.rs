//! The push: composite collections updates (200 records a call), each row's error mapped back
//! to its lead.

use super::*;

impl SalesforceCrm {
    pub(super) async fn push_updates(
        &self,
        updates: &[PropertyUpdate],
    ) -> Result<PushOutcome, CrmError> {
        let d = self.described().await?;
        let mut outcome = PushOutcome::default();
        let mut pending: Vec<&PropertyUpdate> = updates.iter().collect();
        // Records refused as locked go again after the policy's next wait, until it is spent.
        let mut waits = self.transport.config.retry.backoff();
        let mut next_wait = waits.next();
        while !pending.is_empty() {
            let mut retry = Vec::new();
            for chunk in pending.chunks(COLLECTION_LIMIT) {
                let mut records = Vec::with_capacity(chunk.len());
                let mut sent = Vec::with_capacity(chunk.len());
                for u in chunk {
                    let Some(object) = People::of_id(u.lead_id.as_str()) else {
                        outcome.failed.push(PushFailure {
                            lead_id: u.lead_id.clone(),
                            message: "not a Lead or Contact Id".into(),
                            retryable: false,
                        });
                        continue;
                    };
                    let mut r = serde_json::Map::new();
                    r.insert("attributes".into(), json!({"type": object.name()}));
                    r.insert("id".into(), json!(u.lead_id.as_str()));
                    for (property, value) in &u.properties {
                        let field = mapping::field_for(property);
                        let created = self
                            .result_fields
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get(&(object.name().to_owned(), field.clone()))
                            .cloned();
                        let kind = created.as_deref().or_else(|| {
                            d.fields
                                .get(object.name())
                                .and_then(|f| f.get(&field))
                                .map(String::as_str)
                        });
                        let v = match kind {
                            _ if value.is_empty() => Value::Null,
                            Some("double" | "int" | "currency" | "percent") => value
                                .parse::<f64>()
                                .map_or_else(|_| json!(value), |n| json!(n)),
                            _ => json!(value),
                        };
                        r.insert(field, v);
                    }
                    records.push(Value::Object(r));
                    sent.push(*u);
                }
                if records.is_empty() {
                    continue;
                }
                let answer = self
                    .transport
                    .data_call(
                        Method::PATCH,
                        "/composite/sobjects",
                        Some(&json!({"allOrNone": false, "records": records})),
                    )
                    .await?;
                outcome.requests += 1;
                let results = answer.as_array().cloned().unwrap_or_default();
                for (i, u) in sent.iter().enumerate() {
                    let result = results.get(i);
                    if result.and_then(|r| r.get("success")) == Some(&Value::Bool(true)) {
                        outcome.written.push(u.lead_id.clone());
                        continue;
                    }
                    let error = result
                        .and_then(|r| r.pointer("/errors/0"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let code = error
                        .get("statusCode")
                        .and_then(Value::as_str)
                        .unwrap_or("NO_ANSWER");
                    let message = format!(
                        "{code}: {}{}",
                        error.get("message").and_then(Value::as_str).unwrap_or(""),
                        error
                            .get("fields")
                            .and_then(Value::as_array)
                            .filter(|f| !f.is_empty())
                            .map(|f| format!(" (fields {})", Value::Array(f.clone())))
                            .unwrap_or_default()
                    );
                    let retryable = matches!(code, "UNABLE_TO_LOCK_ROW" | "NO_ANSWER");
                    if retryable && next_wait.is_some() {
                        retry.push(*u);
                    } else {
                        outcome.failed.push(PushFailure {
                            lead_id: u.lead_id.clone(),
                            message,
                            retryable,
                        });
                    }
                }
            }
            if let (false, Some(wait)) = (retry.is_empty(), next_wait) {
                tokio::time::sleep(wait).await;
                next_wait = waits.next();
            }
            pending = retry;
        }
        Ok(outcome)
    }
}
