//! The transport: the OAuth session (client credentials, refreshed once on
//! `INVALID_SESSION_ID`), retries, the daily-allocation governor fed by `Sforce-Limit-Info`,
//! and SOQL queries followed through `nextRecordsUrl`.

use leadsync_domain::ports::CrmError;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// How to reach one org.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Where the token is asked: the org's My Domain (`https://acme.my.salesforce.com`) for
    /// the client-credentials flow, or a sandbox's `http://127.0.0.1:PORT`.
    pub login_url: String,
    /// The connected app's consumer key and secret.
    pub client_id: String,
    pub client_secret: SecretString,
    /// `63.0`.
    pub api_version: String,
    /// Records per query page (`LIMIT` of each keyset query and `batchSize`), 200–2,000.
    pub page_size: u32,
    pub timeout: Duration,
    /// Attempts after the first for 5xx, timeouts, transport errors, cut-short bodies and
    /// `UNABLE_TO_LOCK_ROW`.
    pub max_retries: u32,
    pub backoff: Duration,
    /// The share of the org's daily request allocation this integration may use (0–1]: once
    /// `Sforce-Limit-Info` says more is used, calls stop with a rate-limit error until it
    /// drops (the allocation is a rolling 24 hours).
    pub daily_budget_share: f64,
}

impl SalesforceConfig {
    pub fn new(
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        Self {
            login_url: login_url.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret,
            api_version: "63.0".into(),
            page_size: 2_000,
            timeout: Duration::from_secs(60),
            max_retries: 6,
            backoff: Duration::from_millis(200),
            daily_budget_share: 0.5,
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    token: SecretString,
    instance_url: String,
}

/// Requests by kind, for the run's cost ledger and tests.
#[derive(Debug, Default)]
pub struct Usage {
    pub requests: AtomicU64,
    pub logins: AtomicU32,
    /// The org's figures from the last `Sforce-Limit-Info` (used, max).
    used: AtomicU64,
    max: AtomicU64,
}

impl Usage {
    /// `(used, allocation)` as the org last said.
    pub fn api_usage(&self) -> (u64, u64) {
        (
            self.used.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        )
    }
}

/// One org's HTTP client.
#[derive(Debug)]
pub struct Transport {
    pub config: SalesforceConfig,
    http: reqwest::Client,
    session: Mutex<Option<Session>>,
    pub usage: Usage,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    instance_url: String,
}

/// A top-level REST error body: `[{"message", "errorCode"}]`.
fn error_code(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let first = v.get(0).unwrap_or(&v);
    (
        first
            .get("errorCode")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_owned(),
        first
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| body.chars().take(200).collect(), str::to_owned),
    )
}

fn transport_error(e: &reqwest::Error) -> CrmError {
    if e.is_timeout() {
        CrmError::Timeout
    } else {
        CrmError::Transport(e.to_string())
    }
}

impl Transport {
    /// # Errors
    /// [`CrmError::Transport`] when the HTTP client cannot be built.
    pub fn new(config: SalesforceConfig) -> Result<Self, CrmError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| CrmError::Transport(e.to_string()))?;
        Ok(Self {
            config,
            http,
            session: Mutex::new(None),
            usage: Usage::default(),
        })
    }

    fn current(&self) -> Option<Session> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The client-credentials flow. Errors name what Salesforce said (`invalid_client`…).
    async fn login(&self) -> Result<Session, CrmError> {
        self.usage.logins.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/services/oauth2/token", self.config.login_url);
        let answer = self
            .http
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| transport_error(&e))?;
        if !status.is_success() {
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let code = v.get("error").and_then(Value::as_str).unwrap_or("unknown");
            let description = v
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(CrmError::Rejected {
                status: status.as_u16(),
                message: format!(
                    "Salesforce login at {} failed: {code}: {description} (check the \
                     connected app's consumer key and secret and its Run As user)",
                    self.config.login_url
                ),
            });
        }
        let t: TokenAnswer =
            serde_json::from_str(&body).map_err(|e| CrmError::Decode(format!("token: {e}")))?;
        let session = Session {
            token: SecretString::from(t.access_token),
            instance_url: t.instance_url.trim_end_matches('/').to_owned(),
        };
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(session.clone());
        Ok(session)
    }

    fn note_limits(&self, headers: &reqwest::header::HeaderMap) {
        let Some(info) = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
        else {
            return;
        };
        if let Some((used, max)) = info
            .split(',')
            .find_map(|p| p.trim().strip_prefix("api-usage="))
            .and_then(|v| v.split_once('/'))
            .and_then(|(u, m)| Some((u.parse::<u64>().ok()?, m.parse::<u64>().ok()?)))
        {
            self.usage.used.store(used, Ordering::Relaxed);
            self.usage.max.store(max, Ordering::Relaxed);
        }
    }

    /// Refuse to spend past the integration's share of the daily allocation.
    fn within_budget(&self) -> Result<(), CrmError> {
        let (used, max) = self.usage.api_usage();
        let share = self.config.daily_budget_share.clamp(0.0, 1.0);
        if max > 0 && (used as f64) >= share * max as f64 {
            return Err(CrmError::RateLimited {
                policy: format!(
                    "DAILY_BUDGET: {used} of the org's {max} daily requests used, past this \
                     integration's share of {:.0} %",
                    share * 100.0
                ),
            });
        }
        Ok(())
    }

    /// One API call (`path` under the instance URL, or a full `/services/…` path) with
    /// retries; the body parsed as JSON. A 401 logs in again once.
    ///
    /// # Errors
    /// [`CrmError`]: 4xx other than a first 401 are not retried.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Value, CrmError> {
        let mut attempt = 0u32;
        let mut relogged = false;
        loop {
            self.within_budget()?;
            let session = match self.current() {
                Some(s) => s,
                None => self.login().await?,
            };
            let url = format!("{}{path}", session.instance_url);
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(session.token.expose_secret());
            for (k, v) in headers {
                request = request.header(*k, v);
            }
            if let Some(b) = body {
                request = request.json(b);
            }
            self.usage.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = match request.send().await {
                Ok(answer) => {
                    self.note_limits(answer.headers());
                    let status = answer.status();
                    match answer.text().await {
                        Ok(text) => Ok((status, text)),
                        Err(e) => Err(transport_error(&e)),
                    }
                }
                Err(e) => Err(transport_error(&e)),
            };
            let error = match outcome {
                Ok((status, text)) if status.is_success() => {
                    match serde_json::from_str::<Value>(&text) {
                        Ok(v) => return Ok(v),
                        Err(e) => CrmError::Decode(format!("{path}: {e}")),
                    }
                }
                Ok((StatusCode::UNAUTHORIZED, text)) => {
                    let (code, message) = error_code(&text);
                    if relogged {
                        tracing::error!(error_code = %code, "Salesforce refused a fresh session.");
                        return Err(CrmError::Unauthorized);
                    }
                    tracing::info!(error_code = %code, %message, "Salesforce session ended; logging in again.");
                    relogged = true;
                    self.login().await?;
                    continue;
                }
                Ok((status, text)) => {
                    let (code, message) = error_code(&text);
                    if code == "REQUEST_LIMIT_EXCEEDED" {
                        return Err(CrmError::RateLimited {
                            policy: format!("DAILY: {message}"),
                        });
                    }
                    if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
                        CrmError::Unavailable {
                            status: status.as_u16(),
                            message: format!("{code}: {message}"),
                        }
                    } else {
                        return Err(CrmError::Rejected {
                            status: status.as_u16(),
                            message: format!("{code}: {message} ({path})"),
                        });
                    }
                }
                Err(e) => e,
            };
            if attempt >= self.config.max_retries {
                return Err(error);
            }
            attempt += 1;
            tracing::warn!(attempt, error = %error, "Salesforce call failed; retrying.");
            tokio::time::sleep(self.config.backoff * attempt).await;
        }
    }

    fn data(&self, rest: &str) -> String {
        format!("/services/data/v{}{rest}", self.config.api_version)
    }

    /// A SOQL query's records, every page (`nextRecordsUrl` followed), `queryAll` when
    /// `all`.
    ///
    /// # Errors
    /// [`CrmError`]; [`CrmError::Decode`] when an answer lacks `records`.
    pub async fn query(&self, soql: &str, all: bool) -> Result<Vec<Value>, CrmError> {
        let endpoint = if all { "/queryAll" } else { "/query" };
        let batch = [(
            "Sforce-Query-Options",
            format!("batchSize={}", self.config.page_size.clamp(200, 2_000)),
        )];
        let mut path = format!(
            "{}?q={}",
            self.data(endpoint),
            form_urlencoded::byte_serialize(soql.as_bytes()).collect::<String>()
        );
        let mut out = Vec::new();
        loop {
            let page = self.call(reqwest::Method::GET, &path, None, &batch).await?;
            let records = page
                .get("records")
                .and_then(Value::as_array)
                .ok_or_else(|| CrmError::Decode("query answer without records".into()))?;
            out.extend(records.iter().cloned());
            match page.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(next) if page.get("done") != Some(&Value::Bool(true)) => {
                    path = next.to_owned();
                }
                _ => return Ok(out),
            }
        }
    }

    /// `SELECT COUNT() …`'s `totalSize`.
    ///
    /// # Errors
    /// [`CrmError`].
    pub async fn count(&self, soql: &str) -> Result<u64, CrmError> {
        let path = format!(
            "{}?q={}",
            self.data("/query"),
            form_urlencoded::byte_serialize(soql.as_bytes()).collect::<String>()
        );
        let page = self.call(reqwest::Method::GET, &path, None, &[]).await?;
        page.get("totalSize")
            .and_then(Value::as_u64)
            .ok_or_else(|| CrmError::Decode("count answer without totalSize".into()))
    }

    /// A call under `/services/data/vNN.0`.
    ///
    /// # Errors
    /// [`CrmError`].
    pub async fn data_call(
        &self,
        method: reqwest::Method,
        rest: &str,
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        self.call(method, &self.data(rest), body, &[]).await
    }
}
