//! `HubSpotCrm`: the HTTP client, its retry policy, the incremental pull and the batch push.

use crate::mapping::{self, COMPANY_PROPERTIES, CONTACT_PROPERTIES, HubSpotObject};
use chrono::{DateTime, Utc};
use leadsync_domain::LeadId;
use leadsync_domain::ports::{Crm, CrmError, PropertyUpdate, PullPage, PushFailure, PushOutcome};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The most results one search query pages through before HubSpot answers 400.
const SEARCH_CEILING: u64 = 10_000;
/// The most inputs one batch call takes.
const BATCH_LIMIT: usize = 100;

/// How to reach HubSpot.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// `https://api.hubapi.com`, or a sandbox's `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub token: SecretString,
    /// Search page size, 1–200.
    pub page_size: u32,
    pub timeout: Duration,
    /// Attempts per request after the first.
    pub max_retries: u32,
    /// Backoff unit after a 429 without `Retry-After` (HubSpot's client: 1 s for search).
    pub rate_limit_backoff: Duration,
    /// Backoff unit after a 5xx or timeout (HubSpot's client: 200 ms).
    pub server_error_backoff: Duration,
}

impl HubSpotConfig {
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token,
            page_size: 200,
            timeout: Duration::from_secs(30),
            max_retries: 4,
            rate_limit_backoff: Duration::from_secs(1),
            server_error_backoff: Duration::from_millis(200),
        }
    }
}

/// The HubSpot adapter of the [`Crm`] port.
#[derive(Debug, Clone)]
pub struct HubSpotCrm {
    http: reqwest::Client,
    config: HubSpotConfig,
}

/// Where a pull walk is: the id it restarted after (for the 10,000 ceiling) and the page token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    restart_after_id: u64,
    after: Option<u64>,
}

impl Cursor {
    fn parse(raw: Option<&str>) -> Result<Self, CrmError> {
        let Some(raw) = raw else {
            return Ok(Self {
                restart_after_id: 0,
                after: None,
            });
        };
        let bad = || CrmError::Rejected {
            status: 0,
            message: format!("invalid pull cursor {raw:?}"),
        };
        let (id, after) = raw.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            restart_after_id: id.parse().map_err(|_| bad())?,
            after: if after.is_empty() {
                None
            } else {
                Some(after.parse().map_err(|_| bad())?)
            },
        })
    }

    fn encode(self) -> String {
        format!(
            "{}:{}",
            self.restart_after_id,
            self.after.map(|a| a.to_string()).unwrap_or_default()
        )
    }
}

#[derive(Debug, Deserialize)]
struct SearchResponse {
    #[serde(default)]
    results: Vec<HubSpotObject>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<NextPage>,
}

#[derive(Debug, Deserialize)]
struct NextPage {
    after: Value,
}

#[derive(Debug, Deserialize)]
struct BatchResponse {
    #[serde(default)]
    results: Vec<HubSpotObject>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

#[derive(Debug, Deserialize)]
struct BatchError {
    #[serde(default)]
    category: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    context: HashMap<String, Vec<String>>,
}

/// A response we read: status and body.
struct Answer {
    status: StatusCode,
    body: String,
}

impl HubSpotCrm {
    /// # Errors
    /// [`CrmError::Transport`] when the HTTP client cannot be built.
    pub fn new(config: HubSpotConfig) -> Result<Self, CrmError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| CrmError::Transport(e.to_string()))?;
        Ok(Self { http, config })
    }

    /// POST JSON with the retry policy. Returns 2xx answers (including 207) and non-retryable
    /// 4xx other than 401 as `Answer`s; 401 and exhausted retries as errors.
    async fn post(&self, path: &str, body: &Value) -> Result<Answer, CrmError> {
        let url = format!("{}{}", self.config.base_url, path);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent = self
                .http
                .post(&url)
                .bearer_auth(self.config.token.expose_secret())
                .json(body)
                .send()
                .await;
            let (error, wait) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = response.text().await.map_err(|e| classify_transport(&e))?;
                    if status == StatusCode::UNAUTHORIZED {
                        return Err(CrmError::Unauthorized);
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        let policy = serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| {
                                v.get("policyName")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                            })
                            .unwrap_or_else(|| "unknown".into());
                        let wait = retry_after.unwrap_or(self.config.rate_limit_backoff * attempt);
                        (CrmError::RateLimited { policy }, wait)
                    } else if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
                        (
                            CrmError::Unavailable {
                                status: status.as_u16(),
                                message: error_message(&text),
                            },
                            self.config.server_error_backoff * attempt,
                        )
                    } else {
                        return Ok(Answer { status, body: text });
                    }
                }
                Err(e) => (
                    classify_transport(&e),
                    self.config.server_error_backoff * attempt,
                ),
            };
            if attempt > self.config.max_retries {
                return Err(error);
            }
            tracing::warn!(path, attempt, wait_ms = wait.as_millis() as u64, %error, "CRM call failed; retrying.");
            tokio::time::sleep(wait).await;
        }
    }

    /// Companies by id, in batches of 100. Ids the CRM no longer has are simply absent.
    async fn read_companies(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, HubSpotObject>, CrmError> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_LIMIT) {
            let body = json!({
                "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                "properties": COMPANY_PROPERTIES,
            });
            let answer = self
                .post("/crm/v3/objects/companies/batch/read", &body)
                .await?;
            if !answer.status.is_success() {
                return Err(CrmError::Rejected {
                    status: answer.status.as_u16(),
                    message: error_message(&answer.body),
                });
            }
            let parsed: BatchResponse =
                serde_json::from_str(&answer.body).map_err(|e| CrmError::Decode(e.to_string()))?;
            for company in parsed.results {
                found.insert(company.id_text(), company);
            }
        }
        Ok(found)
    }

    async fn push_batch(
        &self,
        chunk: &[PropertyUpdate],
        outcome: &mut PushOutcome,
    ) -> Result<(), CrmError> {
        let body = json!({
            "inputs": chunk.iter().map(|u| json!({"id": u.lead_id.as_str(), "properties": u.properties})).collect::<Vec<_>>(),
        });
        let answer = self
            .post("/crm/v3/objects/contacts/batch/update", &body)
            .await?;
        outcome.requests += 1;
        if !answer.status.is_success() {
            // The whole batch was refused (e.g. a property does not exist): every row failed.
            let message = format!(
                "HTTP {}: {}",
                answer.status.as_u16(),
                error_message(&answer.body)
            );
            outcome.failed.extend(chunk.iter().map(|u| PushFailure {
                lead_id: u.lead_id.clone(),
                message: message.clone(),
                retryable: false,
            }));
            return Ok(());
        }
        let parsed: BatchResponse =
            serde_json::from_str(&answer.body).map_err(|e| CrmError::Decode(e.to_string()))?;
        let mut failed: HashMap<&str, String> = HashMap::new();
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
        let unaccounted = chunk
            .len()
            .saturating_sub(parsed.results.len() + failed.len());
        if unaccounted > 0 {
            tracing::warn!(
                unaccounted,
                "Batch update answer accounts for fewer rows than were sent."
            );
        }
        Ok(())
    }
}

fn classify_transport(e: &reqwest::Error) -> CrmError {
    if e.is_timeout() {
        CrmError::Timeout
    } else {
        // reqwest's message names the URL, never the headers: the token stays out of it.
        CrmError::Transport(e.to_string())
    }
}

fn error_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

impl Crm for HubSpotCrm {
    async fn pull_page(
        &self,
        since: DateTime<Utc>,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let cursor = Cursor::parse(cursor)?;
        let limit = self.config.page_size.clamp(1, 200);
        let mut filters = vec![json!({
            "propertyName": "lastmodifieddate",
            "operator": "GTE",
            "value": since.timestamp_millis().to_string(),
        })];
        if cursor.restart_after_id > 0 {
            filters.push(json!({"propertyName": "hs_object_id", "operator": "GT", "value": cursor.restart_after_id.to_string()}));
        }
        let mut body = json!({
            "filterGroups": [{ "filters": filters }],
            "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
            "properties": CONTACT_PROPERTIES,
            "limit": limit,
        });
        if let Some(after) = cursor.after {
            body["after"] = json!(after.to_string());
        }
        let answer = self.post("/crm/v3/objects/contacts/search", &body).await?;
        if !answer.status.is_success() {
            return Err(CrmError::Rejected {
                status: answer.status.as_u16(),
                message: error_message(&answer.body),
            });
        }
        let parsed: SearchResponse =
            serde_json::from_str(&answer.body).map_err(|e| CrmError::Decode(e.to_string()))?;

        let company_ids: Vec<String> = {
            let mut seen = HashSet::new();
            parsed
                .results
                .iter()
                .filter_map(|c| c.text("associatedcompanyid"))
                .filter(|id| seen.insert(id.clone()))
                .collect()
        };
        let companies = if company_ids.is_empty() {
            HashMap::new()
        } else {
            self.read_companies(&company_ids).await?
        };

        let mut page = PullPage::default();
        let mut last_id = cursor.restart_after_id;
        for object in &parsed.results {
            if let Ok(id) = object.id_text().parse::<u64>() {
                last_id = last_id.max(id);
            }
            match mapping::contact_to_lead(object, &companies) {
                Ok(lead) => page.leads.push(lead),
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        let next_after = parsed.paging.and_then(|p| p.next).map(|n| match n.after {
            Value::String(s) => s.parse::<u64>().ok(),
            Value::Number(n) => n.as_u64(),
            _ => None,
        });
        page.next = match next_after {
            None => None,
            Some(None) => {
                return Err(CrmError::Decode(
                    "paging.next.after is not an integer".into(),
                ));
            }
            // The next page would cross the search ceiling: restart the query after the last id.
            Some(Some(after)) if after + u64::from(limit) > SEARCH_CEILING => Some(
                Cursor {
                    restart_after_id: last_id,
                    after: None,
                }
                .encode(),
            ),
            Some(Some(after)) => Some(
                Cursor {
                    restart_after_id: cursor.restart_after_id,
                    after: Some(after),
                }
                .encode(),
            ),
        };
        Ok(page)
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        let mut outcome = PushOutcome::default();
        for chunk in updates.chunks(BATCH_LIMIT) {
            self.push_batch(chunk, &mut outcome).await?;
        }
        Ok(outcome)
    }
}

/// Parse a lead id the CRM gave back. Kept here so callers never build ids from raw text.
pub fn lead_id(raw: &str) -> Option<LeadId> {
    LeadId::new(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        for c in [
            Cursor {
                restart_after_id: 0,
                after: None,
            },
            Cursor {
                restart_after_id: 1_000_123,
                after: Some(400),
            },
        ] {
            assert_eq!(Cursor::parse(Some(&c.encode())).unwrap(), c);
        }
        assert!(Cursor::parse(Some("x")).is_err());
        assert_eq!(
            Cursor::parse(None).unwrap(),
            Cursor {
                restart_after_id: 0,
                after: None
            }
        );
    }
}
