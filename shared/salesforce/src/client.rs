//! The transport: the OAuth session (client credentials, refreshed once on
//! `INVALID_SESSION_ID`), retries, the daily-allocation governor fed by `Sforce-Limit-Info`,
//! and SOQL queries followed through `nextRecordsUrl`.

use leadsync_domain::ports::CrmError;
use leadsync_retry::{Failure, Policy};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The OAuth 2.0 JWT bearer flow: an assertion signed with the private key whose certificate
/// is uploaded to the connected app, naming the user the session acts as.
#[derive(Debug, Clone)]
pub struct JwtBearer {
    /// The pre-authorized user (`integration@acme.com`).
    pub username: String,
    /// The private key, PEM (PKCS#8 or PKCS#1).
    pub private_key: SecretString,
    /// `https://login.salesforce.com`, `https://test.salesforce.com` for sandboxes, or the
    /// My Domain URL.
    pub audience: String,
}

/// How to reach one org.
#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    /// Where the token is asked: the org's My Domain (`https://acme.my.salesforce.com`) for
    /// the client-credentials flow, or a sandbox's `http://127.0.0.1:PORT`.
    pub login_url: String,
    /// The connected app's consumer key and secret (the client-credentials flow).
    pub client_id: String,
    pub client_secret: SecretString,
    /// Set: sessions come from the JWT bearer flow instead (no secret needed).
    pub jwt: Option<JwtBearer>,
    /// `63.0`.
    pub api_version: String,
    /// Records per query page (`LIMIT` of each keyset query and `batchSize`), 200–2,000.
    pub page_size: u32,
    pub timeout: Duration,
    /// How 5xx, 408, timeouts, transport errors, cut-short bodies, the concurrent
    /// long-running request limit and `UNABLE_TO_LOCK_ROW` records are retried.
    pub retry: Policy,
    /// The share of the org's daily request allocation this integration may use (0–1]: once
    /// `Sforce-Limit-Info` says more is used, calls stop with a rate-limit error until it
    /// drops (the allocation is a rolling 24 hours).
    pub daily_budget_share: f64,
    /// A first sync (nothing read before) whose unconverted Leads in a scope are at least
    /// this many reads them through a Bulk API 2.0 query job (0: never).
    pub bulk_threshold: u64,
    /// Records per Bulk API 2.0 results page (`maxRecords`).
    pub bulk_page_size: usize,
    /// How a Bulk API 2.0 job is waited for.
    pub bulk_polling: crate::bulk::Polling,
}

impl SalesforceConfig {
    /// Sessions from the JWT bearer flow for `jwt.username`.
    #[must_use]
    pub fn with_jwt(mut self, jwt: JwtBearer) -> Self {
        self.jwt = Some(jwt);
        self
    }

    pub fn new(
        login_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        Self {
            login_url: login_url.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret,
            jwt: None,
            api_version: "63.0".into(),
            page_size: 2_000,
            timeout: Duration::from_secs(60),
            retry: Policy::HTTP,
            daily_budget_share: 0.5,
            bulk_threshold: 10_000,
            bulk_page_size: 10_000,
            bulk_polling: crate::bulk::Polling {
                every: Duration::from_secs(2),
                at_most: Duration::from_secs(15 * 60),
            },
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

/// A login's error for the retry policy: transport failures and 5xx again, refusals not.
fn classified(e: CrmError) -> Failure<CrmError> {
    if matches!(
        e,
        CrmError::Timeout | CrmError::Transport(_) | CrmError::Unavailable { .. }
    ) {
        Failure::retry(e)
    } else {
        Failure::give_up(e)
    }
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

    /// A JWT bearer assertion for the configured user, valid for 3 minutes.
    fn assertion(&self, jwt: &JwtBearer) -> Result<String, CrmError> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            exp: i64,
        }
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(jwt.private_key.expose_secret().as_bytes())
                .map_err(|e| CrmError::Rejected {
                    status: 0,
                    message: format!(
                        "the Salesforce JWT private key is not an RSA key in PEM form: {e}"
                    ),
                })?;
        let claims = Claims {
            iss: &self.config.client_id,
            sub: &jwt.username,
            aud: &jwt.audience,
            exp: chrono::Utc::now().timestamp() + 180,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .map_err(|e| CrmError::Rejected {
            status: 0,
            message: format!("signing the Salesforce JWT assertion failed: {e}"),
        })
    }

    /// A session from the client-credentials flow, or the JWT bearer flow when configured.
    /// Errors name what Salesforce said (`invalid_client`, `invalid_grant`…).
    async fn login(&self) -> Result<Session, CrmError> {
        self.usage.logins.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/services/oauth2/token", self.config.login_url);
        let (form, hint) = match &self.config.jwt {
            Some(jwt) => (
                vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                    ),
                    ("assertion", self.assertion(jwt)?),
                ],
                format!(
                    "check the connected app's consumer key and certificate, that user {} is \
                     pre-authorized for it (admin-approved users, a profile or permission set), \
                     and the audience {}",
                    jwt.username, jwt.audience
                ),
            ),
            None => (
                vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", self.config.client_id.clone()),
                    (
                        "client_secret",
                        self.config.client_secret.expose_secret().to_owned(),
                    ),
                ],
                "check the connected app's consumer key and secret and its Run As user".to_owned(),
            ),
        };
        let answer = self
            .http
            .post(&url)
            .form(&form)
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
                    "Salesforce login at {} failed: {code}: {description} ({hint})",
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
        self.call_with(method, path, body, headers, |_, text| {
            if text.is_empty() {
                return Ok(Value::Null);
            }
            serde_json::from_str::<Value>(text)
                .map_err(|e| CrmError::Decode(format!("{path}: {e}")))
        })
        .await
    }

    /// One API call whose successful answer `parse` reads (its headers and body); a
    /// [`CrmError::Decode`] from `parse` (a cut-short body) is retried like a 5xx.
    ///
    /// # Errors
    /// [`CrmError`], as [`Transport::call`].
    pub async fn call_with<T>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
        parse: impl Fn(&reqwest::header::HeaderMap, &str) -> Result<T, CrmError>,
    ) -> Result<T, CrmError> {
        // A 401 logs in again once per call (the next attempt uses the new session); a second
        // 401 means the fresh session is refused too.
        let relogged = std::sync::atomic::AtomicBool::new(false);
        let (method, parse, relogged) = (&method, &parse, &relogged);
        self.config
            .retry
            .run(path, || async move {
                self.attempt(method.clone(), path, body, headers, parse, relogged)
                    .await
            })
            .await
    }

    /// One request of [`Transport::call_with`], classified for the retry policy.
    async fn attempt<T>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
        parse: impl Fn(&reqwest::header::HeaderMap, &str) -> Result<T, CrmError>,
        relogged: &std::sync::atomic::AtomicBool,
    ) -> Result<T, Failure<CrmError>> {
        self.within_budget().map_err(Failure::give_up)?;
        let session = match self.current() {
            Some(s) => s,
            None => self.login().await.map_err(classified)?,
        };
        let url = format!("{}{path}", session.instance_url);
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(session.token.expose_secret());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        self.usage.requests.fetch_add(1, Ordering::Relaxed);
        let answer = request
            .send()
            .await
            .map_err(|e| Failure::retry(transport_error(&e)))?;
        self.note_limits(answer.headers());
        let status = answer.status();
        let answer_headers = answer.headers().clone();
        let text = answer
            .text()
            .await
            .map_err(|e| Failure::retry(transport_error(&e)))?;
        if status.is_success() {
            return parse(&answer_headers, &text).map_err(|e| match e {
                // A body cut short in transit: the same request again.
                CrmError::Decode(_) => Failure::retry(e),
                e => Failure::give_up(e),
            });
        }
        let (code, message) = error_code(&text);
        if status == StatusCode::UNAUTHORIZED {
            if relogged.swap(true, Ordering::SeqCst) {
                tracing::error!(error_code = %code, "Salesforce refused a fresh session.");
                return Err(Failure::give_up(CrmError::Unauthorized));
            }
            tracing::info!(error_code = %code, %message, "Salesforce session ended; logging in again.");
            self.login().await.map_err(classified)?;
            return Err(Failure::retry(CrmError::Unauthorized));
        }
        if code == "REQUEST_LIMIT_EXCEEDED" && message.contains("ConcurrentPerOrgLongTxn") {
            // Too many of the org's requests have run for over 20 s: this one may go once
            // some end.
            return Err(Failure::retry(CrmError::Unavailable {
                status: status.as_u16(),
                message: format!("{code}: {message}"),
            }));
        }
        if code == "REQUEST_LIMIT_EXCEEDED" {
            return Err(Failure::give_up(CrmError::RateLimited {
                policy: format!("DAILY: {message}"),
            }));
        }
        if status == StatusCode::REQUEST_TIMEOUT
            || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
        {
            return Err(Failure::retry(CrmError::Unavailable {
                status: status.as_u16(),
                message: format!("{code}: {message}"),
            }));
        }
        Err(Failure::give_up(CrmError::Rejected {
            status: status.as_u16(),
            message: format!("{code}: {message} ({path})"),
        }))
    }

    fn data(&self, rest: &str) -> String {
        format!("/services/data/v{}{rest}", self.config.api_version)
    }

    /// `…/query?q=<SOQL>` (or `/queryAll`), the SOQL URL-encoded.
    fn query_path(&self, endpoint: &str, soql: &str) -> String {
        format!(
            "{}?q={}",
            self.data(endpoint),
            form_urlencoded::byte_serialize(soql.as_bytes()).collect::<String>()
        )
    }

    /// The page size asked of every query (`Sforce-Query-Options: batchSize=`, 200–2,000).
    fn batch_option(&self) -> [(&'static str, String); 1] {
        [(
            "Sforce-Query-Options",
            format!("batchSize={}", self.config.page_size.clamp(200, 2_000)),
        )]
    }

    /// A SOQL query's records, every page (`nextRecordsUrl` followed), `queryAll` when
    /// `all`.
    ///
    /// # Errors
    /// [`CrmError`]; [`CrmError::Decode`] when an answer lacks `records`.
    pub async fn query(&self, soql: &str, all: bool) -> Result<Vec<Value>, CrmError> {
        let endpoint = if all { "/queryAll" } else { "/query" };
        let batch = self.batch_option();
        let mut path = self.query_path(endpoint, soql);
        let mut out = Vec::new();
        loop {
            let mut page = self.call(reqwest::Method::GET, &path, None, &batch).await?;
            let records = page
                .get_mut("records")
                .and_then(Value::as_array_mut)
                .map(std::mem::take)
                .ok_or_else(|| CrmError::Decode("query answer without records".into()))?;
            out.extend(records);
            match page.get("nextRecordsUrl").and_then(Value::as_str) {
                Some(next) if page.get("done") != Some(&Value::Bool(true)) => {
                    path = next.to_owned();
                }
                _ => return Ok(out),
            }
        }
    }

    /// The first batch of a query's records and its `totalSize` (the whole answer's count);
    /// the rest is not read.
    ///
    /// # Errors
    /// [`CrmError`]; [`CrmError::Decode`] when the answer lacks `records` or `totalSize`.
    pub async fn query_first_page(&self, soql: &str) -> Result<(Vec<Value>, u64), CrmError> {
        let batch = self.batch_option();
        let path = self.query_path("/query", soql);
        let mut page = self.call(reqwest::Method::GET, &path, None, &batch).await?;
        let records = page
            .get_mut("records")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .ok_or_else(|| CrmError::Decode("query answer without records".into()))?;
        let total = page
            .get("totalSize")
            .and_then(Value::as_u64)
            .ok_or_else(|| CrmError::Decode("query answer without totalSize".into()))?;
        Ok((records, total))
    }

    /// `SELECT COUNT() …`'s `totalSize`.
    ///
    /// # Errors
    /// [`CrmError`].
    pub async fn count(&self, soql: &str) -> Result<u64, CrmError> {
        let path = self.query_path("/query", soql);
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
