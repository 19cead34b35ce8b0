//! `HubSpotCrm`: its configuration and the transport every call goes through — the governor,
//! the retry policy, the classification of answers (429s, 5xx, cut-short bodies). The jobs are
//! beside it: `pull` (pages from the walk, companies, deals), `reads` (batch reads), `push`,
//! `properties` (the bootstrap) and `crm` (the port); the walk itself is `crate::walk`.

use crate::mapping::{
    self, COMPANY_PROPERTIES, CONTACT_PROPERTIES, CompanyFacts, DEAL_PROPERTIES, HubSpotObject,
};
mod crm;
mod properties;
mod pull;
mod push;
mod reads;

use properties::*;
use pull::*;
use reads::*;

pub use properties::PROPERTY_GROUP;
pub use reads::ASSOCIATION_BATCH_LIMIT;

use crate::walk::{Gathered, MAX_IN_VALUES, Walk, id_bounds, parse_cursor, scope_filters};
use futures::{StreamExt, TryStreamExt, stream};
use leadsync_domain::criteria::{CrmObject, CrmProperty, CrmReads, FieldType};
use leadsync_domain::ports::{
    Crm, CrmError, PropertyKind, PropertySpec, PropertyUpdate, PullPage, PushFailure, PushOutcome,
};
use leadsync_domain::runs::{Census, PullScope, ScopeKey};
use leadsync_domain::{Deal, LeadId};
use leadsync_ratelimit::{RateGovernor, RateLimits};
use leadsync_retry::{Failure, Policy, Verdict};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The adapter's maps and sets of ids hash with foldhash, not SipHash (4 % of a pull's CPU).
/// The keys are the CRM's own ids, and the seed is still random per process.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
use std::sync::Arc;
use std::time::Duration;

/// The most inputs one batch call takes.
pub const BATCH_LIMIT: usize = 100;

/// How to reach HubSpot.
#[derive(Debug, Clone)]
pub struct HubSpotConfig {
    /// `https://api.hubapi.com`, or a sandbox's `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub token: SecretString,
    /// Search page size, 1–200.
    pub page_size: u32,
    pub timeout: Duration,
    /// How failed requests are retried (429, 408, 5xx, timeouts, truncated bodies): jittered
    /// exponential backoff; a 429's `Retry-After` is honoured, a ten-secondly 429 without one
    /// is tried again within a second (the governor holds the window; without HubSpot's limit
    /// headers it waits the window), a daily 429 is not retried.
    pub retry: Policy,
    /// The private app's limits; the governor keeps every request under them.
    pub limits: RateLimits,
    /// Id ranges (lanes) one pull walk searches at once, 1–8. Each lane is its own keyset walk;
    /// their searches still pass the governor, so HubSpot's 5 searches per second caps them —
    /// lanes hide search latency up to that cap, they never exceed it.
    pub pull_lanes: u32,
}

impl HubSpotConfig {
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token,
            page_size: 200,
            timeout: Duration::from_secs(30),
            retry: Policy::HTTP,
            limits: RateLimits::FREE,
            pull_lanes: 5,
        }
    }
}

/// The HubSpot adapter of the [`Crm`] port.
#[derive(Debug, Clone)]
pub struct HubSpotCrm {
    http: reqwest::Client,
    pub(crate) config: HubSpotConfig,
    governor: Arc<RateGovernor>,
    /// Requests sent and the limits HubSpot's headers state ([`HubSpotCrm::usage`]).
    usage: Arc<crate::account::UsageCounter>,
    /// Properties known to exist (checked or created by this client), so the check runs once
    /// per cold start.
    ensured: Arc<std::sync::Mutex<HashSet<String>>>,
    /// Companies already read by this client's walks, so each is read once per run however
    /// many of its contacts changed and however many slices one invocation walks. A walk that
    /// starts when the cache is older than [`COMPANY_CACHE_MAX_AGE`] empties it first.
    companies: Arc<std::sync::Mutex<HashMap<String, Arc<CompanyFacts>>>>,
    /// When the company cache was last emptied.
    companies_since: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// Walks in progress, each with its producer searching ahead ([`crate::walk`]), kept for
    /// the call that asks for the next page.
    walks: Arc<std::sync::Mutex<Vec<Walk>>>,
    /// Whole pages being read in the background ([`HubSpotCrm::spawn_page_ahead`]).
    pages_ahead: Arc<std::sync::Mutex<Vec<Ahead>>>,
    /// What the criteria's `[fields]` add to the properties read ([`Crm::set_reads`]).
    reads: Arc<std::sync::RwLock<Arc<Reads>>>,
    /// Property definitions by object type, as listed at most [`COMPANY_CACHE_MAX_AGE`] ago.
    described: Arc<std::sync::Mutex<HashMap<&'static str, Listed>>>,
}

/// The properties one pull reads of each object: leadsync's own, then the criteria's.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    pub(crate) asked: CrmReads,
    pub(crate) contact: Vec<String>,
    company: Vec<String>,
    deal: Vec<String>,
}

impl Reads {
    fn new(asked: &CrmReads) -> Self {
        let all = |base: &[&str], extra: &mut dyn Iterator<Item = &String>| {
            let mut list: Vec<String> = base.iter().map(|p| (*p).to_owned()).collect();
            for p in extra {
                if !list.contains(p) {
                    list.push(p.clone());
                }
            }
            list
        };
        let moved = [
            &asked.budget,
            &asked.authority,
            &asked.need,
            &asked.timeline,
            &asked.lead_status,
            &asked.rejection_reason,
        ];
        Self {
            contact: all(
                CONTACT_PROPERTIES,
                &mut asked
                    .contact
                    .iter()
                    .chain(moved.into_iter().flatten())
                    .chain(&asked.results),
            ),
            company: all(COMPANY_PROPERTIES, &mut asked.company.iter()),
            deal: all(DEAL_PROPERTIES, &mut asked.deal.iter()),
            asked: asked.clone(),
        }
    }
}

/// A search answer, its results as records (the pull's walk maps its own as it reads them:
/// `walk::AnswerSeed`).
#[derive(Debug, Deserialize)]
pub(crate) struct SearchResponse {
    #[serde(default)]
    pub(crate) total: Option<u64>,
    #[serde(default)]
    pub(crate) results: Vec<HubSpotObject>,
    #[serde(default)]
    pub(crate) paging: Option<Value>,
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

/// One attempt's failure and its verdict.
type Failed = Failure<CrmError>;

/// The most a response's `Content-Length` reserves up front (a longer body still grows).
const BODY_CAPACITY_LIMIT: u64 = 16 << 20;

/// A response we read: status and body.
struct Answer {
    status: StatusCode,
    body: String,
}

pub(crate) fn header_u64(headers: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl HubSpotCrm {
    /// # Errors
    /// [`CrmError::Transport`] when the HTTP client cannot be built.
    pub fn new(config: HubSpotConfig) -> Result<Self, CrmError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| CrmError::Transport(e.to_string()))?;
        let governor = Arc::new(RateGovernor::new(config.limits));
        Ok(Self {
            http,
            config,
            governor,
            usage: Arc::default(),
            ensured: Arc::default(),
            companies: Arc::default(),
            companies_since: Arc::default(),
            walks: Arc::default(),
            pages_ahead: Arc::default(),
            reads: Arc::new(std::sync::RwLock::new(Arc::new(Reads::new(
                &CrmReads::default(),
            )))),
            described: Arc::default(),
        })
    }

    /// The properties pulls read now.
    pub(crate) fn usage_counter(&self) -> &crate::account::UsageCounter {
        &self.usage
    }

    pub(crate) fn token_text(&self) -> &str {
        self.config.token.expose_secret()
    }

    pub(crate) fn reads(&self) -> Arc<Reads> {
        self.reads
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// POST JSON under the governor and the retry policy. Returns 2xx answers (including 207)
    /// and non-retryable 4xx other than 401 as `Answer`s; 401 and exhausted retries as errors.
    async fn post<B: Serialize + ?Sized + Sync>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<Answer, CrmError> {
        self.send_with(reqwest::Method::POST, path, Some(body), Ok)
            .await
    }

    /// POST and parse a 2xx body (see [`HubSpotCrm::send_parsed`]).
    pub(crate) async fn post_parsed<T: DeserializeOwned, B: Serialize + ?Sized + Sync>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(StatusCode, T), CrmError> {
        self.send_parsed(reqwest::Method::POST, path, Some(body))
            .await
    }

    /// GET and parse a 2xx body (see [`HubSpotCrm::send_parsed`]).
    pub(crate) async fn get_parsed<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(StatusCode, T), CrmError> {
        self.send_parsed(reqwest::Method::GET, path, None::<&Value>)
            .await
    }

    /// Send and parse a 2xx body. A body cut short in transit is retried like a 5xx, within
    /// the same budget as the send: one policy, one count of attempts.
    async fn send_parsed<T: DeserializeOwned, B: Serialize + ?Sized + Sync>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, T), CrmError> {
        self.send_read(method, path, body, |status, text| {
            serde_json::from_str(text)
                .map(|parsed| (status, parsed))
                .map_err(|e| CrmError::Decode(format!("{path}: {e}")))
        })
        .await
    }

    /// Send and read a 2xx body with `read` (any other status is the CRM's refusal). A body
    /// `read` cannot decode was likely cut short in transit: retried like a 5xx, within the
    /// same budget as the send.
    pub(crate) async fn send_read<T, B: Serialize + ?Sized + Sync>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        read: impl Fn(StatusCode, &str) -> Result<T, CrmError>,
    ) -> Result<T, CrmError> {
        self.send_with(method, path, body, |answer| {
            if !answer.status.is_success() {
                return Err(Failed::give_up(CrmError::Rejected {
                    status: answer.status.as_u16(),
                    message: error_message(&answer.body),
                }));
            }
            read(answer.status, &answer.body).map_err(Failed::retry)
        })
        .await
    }

    /// Send under the governor and the retry policy ([`HubSpotConfig::retry`]); each attempt's
    /// answer goes through `read`, whose retryable failures spend the same budget.
    async fn send_with<T, B: Serialize + ?Sized + Sync>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        read: impl Fn(Answer) -> Result<T, Failed>,
    ) -> Result<T, CrmError> {
        let url = format!("{}{}", self.config.base_url, path);
        let (url, method, read) = (&url, &method, &read);
        self.config
            .retry
            .run(path, || async move {
                let answer = self.attempt(method.clone(), url, path, body).await?;
                read(answer)
            })
            .await
    }

    /// One request under the governor, classified: 2xx and non-retryable 4xx answer; 401,
    /// 429, 408, 5xx (but 501), timeouts and transport failures fail with their verdict.
    async fn attempt<B: Serialize + ?Sized + Sync>(
        &self,
        method: reqwest::Method,
        url: &str,
        path: &str,
        body: Option<&B>,
    ) -> Result<Answer, Failed> {
        let permit = self.governor.acquire(path.ends_with("/search")).await;
        self.usage.sent();
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.config.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Failed::retry(classify_transport(&e)))?;
        // The answer's headers are in: HubSpot counted the request before it sent them.
        let sent_at = permit.sent_at();
        drop(permit);
        let status = response.status();
        let headers = response.headers();
        let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
        let remaining = header_u64(headers, "x-hubspot-ratelimit-remaining");
        self.usage.observe(headers);
        self.governor.observe_answer(
            sent_at,
            remaining,
            header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds")
                .map(Duration::from_millis),
        );
        // Bytes, then UTF-8: reqwest's `text()` would decode by charset, and HubSpot answers
        // UTF-8 JSON. The chunks go straight into one buffer sized by `Content-Length` (within
        // reason): `bytes()` would gather them, then copy them again into a `String`.
        let mut body = Vec::with_capacity(
            response
                .content_length()
                .map_or(0, |n| n.min(BODY_CAPACITY_LIMIT) as usize),
        );
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failed::retry(classify_transport(&e)))?
        {
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failed::give_up(CrmError::Unauthorized));
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
            tracing::debug!(
                %policy,
                remaining,
                retry_after_s = retry_after.map(|d| d.as_secs()),
                "HubSpot answered 429"
            );
            let verdict =
                verdict_of_429(&policy, retry_after, remaining, self.config.limits.window);
            return Err(Failed {
                error: CrmError::RateLimited { policy },
                verdict,
            });
        }
        if status == StatusCode::REQUEST_TIMEOUT
            || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
        {
            return Err(Failed::retry(CrmError::Unavailable {
                status: status.as_u16(),
                message: error_message(&text),
            }));
        }
        Ok(Answer { status, body: text })
    }
}

/// What to do after a 429: by its policy, HubSpot's `Retry-After`, and whether its
/// `X-HubSpot-RateLimit-Remaining` counted the window (`window`: the app's rolling window).
fn verdict_of_429(
    policy: &str,
    retry_after: Option<Duration>,
    remaining: Option<u64>,
    window: Duration,
) -> Verdict {
    match (retry_after, policy) {
        // The day's allowance is spent: no retry tonight will get through.
        (_, "DAILY") => Verdict::GiveUp,
        // HubSpot says when: wait that, however many 429s this call has met (a growing backoff
        // would idle the page that waits on it; the governor keeps the rate).
        (Some(after), _) => Verdict::Throttled(after),
        // The window is not spent by HubSpot's own count (a burst guard, another app's traffic
        // on a shared limit), or it is spent and the governor knows when (it holds the window;
        // or it paused for the window when someone else spends it): try again soon — the
        // governor, not a growing backoff, holds the next attempt until the window has room. A
        // backoff grown to seconds after two or three such 429s in a row stalled a whole pull
        // page (and the searches queued behind it) while the rest of the limit went unused.
        (None, "TEN_SECONDLY_ROLLING") if remaining.is_some() => Verdict::Burst,
        // No count at all: the rolling window frees up a window's length after it filled.
        (None, "TEN_SECONDLY_ROLLING") => Verdict::RetryAfter(window),
        (None, _) => Verdict::Retry,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_is_retried_as_its_policy_and_headers_say() {
        let window = Duration::from_secs(10);
        let second = Some(Duration::from_secs(1));
        let v = |policy, after, remaining| verdict_of_429(policy, after, remaining, window);
        assert_eq!(v("DAILY", second, Some(0)), Verdict::GiveUp);
        assert_eq!(
            v("TEN_SECONDLY_ROLLING", second, Some(0)),
            Verdict::Throttled(Duration::from_secs(1))
        );
        // HubSpot counts the window (spent or not): soon, under the governor.
        assert_eq!(v("TEN_SECONDLY_ROLLING", None, Some(150)), Verdict::Burst);
        assert_eq!(v("TEN_SECONDLY_ROLLING", None, Some(0)), Verdict::Burst);
        // No count: the window's length.
        assert_eq!(
            v("TEN_SECONDLY_ROLLING", None, None),
            Verdict::RetryAfter(window)
        );
        assert_eq!(v("SECONDLY", None, Some(3)), Verdict::Retry);
    }
}
