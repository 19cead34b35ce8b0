//! `HubSpotCrm`: the HTTP client, its retry policy, the incremental pull and the batch push.

use crate::mapping::{
    self, COMPANY_PROPERTIES, CONTACT_PROPERTIES, DEAL_PROPERTIES, HubSpotObject,
};
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
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
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
    /// backs off (the governor holds the window; without HubSpot's limit headers it waits the
    /// window), a daily 429 is not retried.
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
    companies: Arc<std::sync::Mutex<HashMap<String, Arc<HubSpotObject>>>>,
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

/// An object type's property definitions and when they were listed.
type Listed = (std::time::Instant, Vec<CrmProperty>);

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

/// A HubSpot property definition's type as a criteria document reads it.
fn field_type(kind: &str, field_type: &str) -> Option<FieldType> {
    match (kind, field_type) {
        (_, "booleancheckbox") | ("bool", _) => Some(FieldType::Boolean),
        ("enumeration", "checkbox") => Some(FieldType::MultiSelect),
        ("enumeration", _) => Some(FieldType::Enumeration),
        ("string", _) => Some(FieldType::Text),
        ("number", _) => Some(FieldType::Number),
        ("date" | "datetime", _) => Some(FieldType::Date),
        _ => None,
    }
}

/// A whole pull page being read in the background.
type PageAhead = tokio::task::JoinHandle<Result<PullPage, CrmError>>;
/// The query a page read ahead answers (scope, cursor), and the task reading it.
type Ahead = ((PullScope, String), PageAhead);

/// Batch reads of one kind (companies, deal associations, deals) in flight at once.
const READ_CONCURRENCY: usize = 4;
/// Push batches in flight at once.
const PUSH_CONCURRENCY: usize = 4;

/// Walks and read-ahead pages kept at most (one per walk in progress on this client; more only
/// if a caller abandons walks, and the oldest is dropped).
const PREFETCH_SLOTS: usize = 4;

/// The company cache stops growing here.
const COMPANY_CACHE_LIMIT: usize = 50_000;
/// Company data at most this old is reused by a new walk: the walks of one invocation (a
/// Lambda runs ≤ 15 minutes) share it, as do a warm container's invocations within that time
/// (the slices of a fan-out, a re-score soon after); the next night's run reads afresh.
const COMPANY_CACHE_MAX_AGE: Duration = Duration::from_secs(15 * 60);

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
    async fn post(&self, path: &str, body: &Value) -> Result<Answer, CrmError> {
        self.send_with(reqwest::Method::POST, path, Some(body), Ok)
            .await
    }

    /// POST and parse a 2xx body (see [`HubSpotCrm::send_parsed`]).
    pub(crate) async fn post_parsed<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(StatusCode, T), CrmError> {
        self.send_parsed(reqwest::Method::POST, path, Some(body))
            .await
    }

    /// Send and parse a 2xx body. A body cut short in transit is retried like a 5xx, within
    /// the same budget as the send: one policy, one count of attempts.
    async fn send_parsed<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, T), CrmError> {
        self.send_with(method, path, body, |answer| {
            if !answer.status.is_success() {
                return Err(Failed::give_up(CrmError::Rejected {
                    status: answer.status.as_u16(),
                    message: error_message(&answer.body),
                }));
            }
            serde_json::from_str(&answer.body)
                .map(|parsed| (answer.status, parsed))
                .map_err(|e| Failed::retry(CrmError::Decode(format!("{path}: {e}"))))
        })
        .await
    }

    /// Send under the governor and the retry policy ([`HubSpotConfig::retry`]); each attempt's
    /// answer goes through `read`, whose retryable failures spend the same budget.
    async fn send_with<T>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
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
    async fn attempt(
        &self,
        method: reqwest::Method,
        url: &str,
        path: &str,
        body: Option<&Value>,
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
        let response = request
            .send()
            .await
            .map_err(|e| Failed::retry(classify_transport(&e)))?;
        // The answer's headers are in: HubSpot counted the request before it sent them.
        drop(permit);
        let status = response.status();
        let headers = response.headers();
        let retry_after = header_u64(headers, "retry-after").map(Duration::from_secs);
        let remaining = header_u64(headers, "x-hubspot-ratelimit-remaining");
        self.usage.observe(headers);
        self.governor.observe(
            remaining,
            header_u64(headers, "x-hubspot-ratelimit-interval-milliseconds")
                .map(Duration::from_millis),
        );
        // Bytes, then UTF-8: reqwest's `text()` would decode by charset, and HubSpot answers
        // UTF-8 JSON.
        let text = response
            .bytes()
            .await
            .map(|bytes| {
                String::from_utf8(Vec::from(bytes))
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            })
            .map_err(|e| Failed::retry(classify_transport(&e)))?;
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
            let verdict = match (retry_after, policy.as_str()) {
                // The day's allowance is spent: no retry tonight will get through.
                (_, "DAILY") => Verdict::GiveUp,
                (Some(after), _) => Verdict::RetryAfter(after),
                // The window is not spent by HubSpot's own count (a burst guard, another
                // app's traffic on a shared limit), or it is spent and the governor knows
                // when (it holds the window; or it paused for the window, above, when someone
                // else spends it): back off as for any transient failure, rather than idling a
                // whole window while the rest of the limit goes unused.
                (None, "TEN_SECONDLY_ROLLING") if remaining.is_some() => Verdict::Retry,
                // No count at all: the rolling window frees up a window's length after it filled.
                (None, "TEN_SECONDLY_ROLLING") => Verdict::RetryAfter(self.config.limits.window),
                (None, _) => Verdict::Retry,
            };
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

    /// Companies by id, in batches of 100. Ids the CRM no longer has are simply absent.
    async fn read_companies(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Arc<HubSpotObject>>, CrmError> {
        let reads = self.reads();
        let properties: Vec<&str> = reads.company.iter().map(String::as_str).collect();
        let companies = self.batch_read("companies", ids, &properties).await?;
        Ok(companies
            .into_iter()
            .map(|c| (c.id.clone(), Arc::new(c)))
            .collect())
    }

    /// `objects/<type>/batch/read` of these ids: 100 a request, [`READ_CONCURRENCY`] requests
    /// in flight (each under the governor). Ids the CRM does not have are simply absent.
    async fn batch_read(
        &self,
        object_type: &str,
        ids: &[String],
        properties: &[&str],
    ) -> Result<Vec<HubSpotObject>, CrmError> {
        let bodies = ids
            .chunks(BATCH_LIMIT)
            .map(|chunk| {
                json!({
                    "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                    "properties": properties,
                })
            })
            .collect();
        let path = format!("/crm/v3/objects/{object_type}/batch/read");
        let pages: Vec<BatchResponse> = self.post_all(&path, bodies).await?;
        Ok(pages.into_iter().flat_map(|p| p.results).collect())
    }

    /// POST each body to `path`, [`READ_CONCURRENCY`] at a time (each under the governor and
    /// the retry policy); the parsed answers in no particular order.
    async fn post_all<T: DeserializeOwned + Send>(
        &self,
        path: &str,
        bodies: Vec<Value>,
    ) -> Result<Vec<T>, CrmError> {
        // Collected first: a lazy iterator held across the await would not be `Send`.
        let posts: Vec<_> = bodies
            .into_iter()
            .map(|body| async move {
                let (_, parsed): (_, T) = self.post_parsed(path, &body).await?;
                Ok::<_, CrmError>(parsed)
            })
            .collect();
        stream::iter(posts)
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Batches of 100, [`PUSH_CONCURRENCY`] in flight (each under the governor), outcomes in
    /// the batches' order: a batch waiting out a 429 does not hold the others back.
    async fn push_all(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        let calls: Vec<_> = updates
            .chunks(BATCH_LIMIT)
            .map(|chunk| async move {
                let mut outcome = PushOutcome::default();
                self.push_batch(chunk, &mut outcome).await.map(|()| outcome)
            })
            .collect();
        let batches: Vec<PushOutcome> = stream::iter(calls)
            .buffered(PUSH_CONCURRENCY)
            .try_collect()
            .await?;
        let mut outcome = PushOutcome::default();
        for batch in batches {
            outcome.written.extend(batch.written);
            outcome.failed.extend(batch.failed);
            outcome.requests += batch.requests;
        }
        Ok(outcome)
    }

    async fn push_batch(
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
        Ok(())
    }
}

/// The most inputs one v4 association batch read takes.
pub const ASSOCIATION_BATCH_LIMIT: usize = 1_000;

#[derive(Debug, Deserialize)]
struct AssociationsResponse {
    #[serde(default)]
    results: Vec<AssociationResult>,
}

#[derive(Debug, Deserialize)]
struct AssociationResult {
    from: AssociationFrom,
    #[serde(default)]
    to: Vec<AssociationTo>,
}

#[derive(Debug, Deserialize)]
struct AssociationFrom {
    id: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationTo {
    to_object_id: Value,
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// leadsync's own property group on contacts.
pub const PROPERTY_GROUP: &str = "leadsync";

#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(default)]
    results: Vec<Value>,
}

fn property_body(spec: &PropertySpec) -> Value {
    let (kind, field_type) = match spec.kind {
        PropertyKind::Text => ("string", "text"),
        PropertyKind::LongText => ("string", "textarea"),
        PropertyKind::Number => ("number", "number"),
        PropertyKind::Enumeration => ("enumeration", "select"),
    };
    let options: Vec<Value> = spec
        .options
        .iter()
        .enumerate()
        .map(|(i, o)| json!({"label": o, "value": o, "displayOrder": i, "hidden": false}))
        .collect();
    json!({
        "name": spec.name,
        "label": spec.label,
        "type": kind,
        "fieldType": field_type,
        "groupName": PROPERTY_GROUP,
        "description": "Written by leadsync from the shared lead criteria.",
        "options": options,
    })
}

impl HubSpotCrm {
    /// POST a creation; `Ok(false)` when it already exists (409), which is fine.
    async fn create_once(&self, path: &str, body: &Value) -> Result<bool, CrmError> {
        let answer = self.post(path, body).await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            s => Err(CrmError::Rejected {
                status: s.as_u16(),
                message: error_message(&answer.body),
            }),
        }
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

impl HubSpotCrm {
    /// Deals of these contacts: v4 associations (≤ 1,000 contacts a call), then the deals by
    /// batch read (≤ 100 a call). Contacts without deals are simply absent from the map.
    async fn read_contact_deals(
        &self,
        contacts: &[HubSpotObject],
    ) -> Result<HashMap<String, Vec<Deal>>, CrmError> {
        let ids: Vec<&str> = contacts.iter().map(HubSpotObject::id).collect();
        let bodies = ids
            .chunks(ASSOCIATION_BATCH_LIMIT)
            .map(|chunk| json!({ "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>() }))
            .collect();
        let answers: Vec<AssociationsResponse> = self
            .post_all("/crm/v4/associations/contacts/deals/batch/read", bodies)
            .await?;
        let mut links: Vec<(String, String)> = Vec::new();
        for result in answers.into_iter().flat_map(|a| a.results) {
            let from = value_text(&result.from.id);
            links.extend(
                result
                    .to
                    .iter()
                    .map(|to| (from.clone(), value_text(&to.to_object_id))),
            );
        }
        let mut unique: Vec<String> = links.iter().map(|(_, deal)| deal.clone()).collect();
        unique.sort();
        unique.dedup();
        let reads = self.reads();
        let properties: Vec<&str> = reads.deal.iter().map(String::as_str).collect();
        let deals: HashMap<String, Deal> = self
            .batch_read("deals", &unique, &properties)
            .await?
            .iter()
            .map(|object| (object.id.clone(), mapping::deal(object, &reads.asked.deal)))
            .collect();
        let mut by_contact: HashMap<String, Vec<Deal>> = HashMap::new();
        for (contact, deal_id) in links {
            if let Some(deal) = deals.get(&deal_id) {
                by_contact.entry(contact).or_default().push(deal.clone());
            }
        }
        for list in by_contact.values_mut() {
            // A stable order keeps the lead's input hash stable across runs.
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(by_contact)
    }

    /// Empty the company cache if it is older than [`COMPANY_CACHE_MAX_AGE`] (a walk starts).
    fn expire_company_cache(&self) {
        let mut since = self
            .companies_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if since.is_none_or(|t| t.elapsed() > COMPANY_CACHE_MAX_AGE) {
            self.lock_companies().clear();
            *since = Some(std::time::Instant::now());
        }
    }

    /// One pull page, read here (see [`Crm::pull_page`]): its contacts from the walk (a new
    /// one without a cursor; the one kept for this cursor, else one resumed from it), then
    /// their companies and deals, read at once.
    async fn read_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let (mut walk, first) = match cursor {
            Some(raw) => {
                let lanes = parse_cursor(raw, scope)?;
                let walk = self
                    .take_walk(scope, raw)
                    .unwrap_or_else(|| self.walk_from(scope, lanes));
                (walk, Vec::new())
            }
            None => {
                self.expire_company_cache();
                self.lock_walks().retain(|w| w.scope() != scope);
                self.lock_pages_ahead().retain(|((s, _), handle)| {
                    let keep = s != scope;
                    if !keep {
                        handle.abort();
                    }
                    keep
                });
                self.start_walk(scope).await?
            }
        };
        let Gathered { contacts, pending } = self.gather(&mut walk, first).await?;
        let next = (!walk.is_done()).then(|| walk.cursor());
        if next.is_some() {
            self.keep_walk(walk);
        }
        // Companies and deals are independent reads: overlap them.
        let companies_read = async {
            if pending.is_empty() {
                Ok(HashMap::new())
            } else {
                self.read_companies(&pending).await
            }
        };
        let (fetched, deals) = tokio::join!(companies_read, self.read_contact_deals(&contacts));
        let (fetched, mut deals) = (fetched?, deals?);
        let companies = {
            let mut cache = self.lock_companies();
            // The companies this page needs, just fetched or from earlier in the walk (shared,
            // not copied: a company's properties are read by every contact of it).
            let mut needed: HashMap<String, Arc<HubSpotObject>> = HashMap::new();
            for id in contacts
                .iter()
                .filter_map(|c| c.text("associatedcompanyid"))
            {
                if let Some(company) = fetched.get(id).or_else(|| cache.get(id)) {
                    needed
                        .entry(id.to_owned())
                        .or_insert_with(|| Arc::clone(company));
                }
            }
            for (id, company) in fetched {
                if cache.len() < COMPANY_CACHE_LIMIT {
                    cache.insert(id, company);
                }
            }
            needed
        };

        let mut page = PullPage::default();
        let reads = self.reads();
        for object in &contacts {
            match mapping::map_contact(object, |id| companies.get(id).map(|c| &**c), &reads.asked) {
                Ok(mut lead) => {
                    lead.deals = deals.remove(lead.id.as_str()).unwrap_or_default();
                    page.leads.push(lead);
                }
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        page.next = next;
        Ok(page)
    }

    /// The whole next page (searches, companies, deals), read in the background while the
    /// caller works on this one — scoring, recording and pushing it — so the walk's searches
    /// (5 a second at most) never wait for a push, and the rate limit is used by both at once.
    /// Every request still passes the one governor.
    fn spawn_page_ahead(&self, scope: &PullScope, cursor: &str) {
        let this = self.clone();
        let (scope, cursor) = (scope.clone(), cursor.to_owned());
        let key = (scope.clone(), cursor.clone());
        let handle = tokio::spawn(async move { this.read_page(&scope, Some(&cursor)).await });
        let mut ahead = self.lock_pages_ahead();
        if ahead.len() >= PREFETCH_SLOTS {
            let (_, oldest) = ahead.remove(0);
            oldest.abort();
        }
        ahead.push((key, handle));
    }

    /// The walk whose next page is `(scope, cursor)`, if this client has it.
    fn take_walk(&self, scope: &PullScope, cursor: &str) -> Option<Walk> {
        let mut walks = self.lock_walks();
        let i = walks.iter().position(|w| w.resumes(scope, cursor))?;
        Some(walks.remove(i))
    }

    /// Keep a walk for the call that asks for its next page (the oldest kept is dropped past
    /// [`PREFETCH_SLOTS`], and with it its producer).
    fn keep_walk(&self, walk: Walk) {
        let mut walks = self.lock_walks();
        if walks.len() >= PREFETCH_SLOTS {
            walks.remove(0);
        }
        walks.push(walk);
    }

    fn lock_walks(&self) -> std::sync::MutexGuard<'_, Vec<Walk>> {
        self.walks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The page read ahead for `(scope, cursor)`, if the previous call started it.
    fn take_page_ahead(&self, scope: &PullScope, cursor: &str) -> Option<PageAhead> {
        let mut ahead = self.lock_pages_ahead();
        let i = ahead
            .iter()
            .position(|((s, c), _)| c == cursor && s == scope)?;
        Some(ahead.remove(i).1)
    }

    fn lock_pages_ahead(&self) -> std::sync::MutexGuard<'_, Vec<Ahead>> {
        self.pages_ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The search page size, within HubSpot's 1–200.
    pub(crate) fn page_size(&self) -> u32 {
        self.config.page_size.clamp(1, 200)
    }

    pub(crate) fn lock_companies(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<HubSpotObject>>> {
        self.companies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One page of `GET /crm/v3/objects/contacts?archived=true`.
#[derive(Debug, Deserialize)]
struct ArchivedPage {
    #[serde(default)]
    results: Vec<ArchivedContact>,
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct ArchivedContact {
    id: String,
    #[serde(rename = "archivedAt")]
    archived_at: Option<String>,
    /// Archiving is a record's last change: the fallback when `archivedAt` is missing.
    #[serde(rename = "updatedAt")]
    updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    next: Option<PagingNext>,
}

#[derive(Debug, Deserialize)]
struct PagingNext {
    after: String,
}

impl HubSpotCrm {
    /// Ids of `object`s modified at or after `since`: a keyset walk by id (200 a search, no
    /// 10,000 ceiling), asking for nothing but the id.
    async fn changed_ids(
        &self,
        object: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, CrmError> {
        let mut ids = Vec::new();
        let mut after_id = 0u64;
        loop {
            let body = json!({
                "filterGroups": [{ "filters": [
                    { "propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since.timestamp_millis().to_string() },
                    { "propertyName": "hs_object_id", "operator": "GT", "value": after_id.to_string() },
                ]}],
                "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
                "properties": ["hs_object_id"],
                "limit": 200,
            });
            let (_, page): (_, SearchResponse) = self
                .post_parsed(&format!("/crm/v3/objects/{object}/search"), &body)
                .await?;
            let n = page.results.len();
            for r in page.results {
                after_id = after_id.max(r.id.parse().unwrap_or(after_id));
                ids.push(r.id);
            }
            if n < 200 || page.paging.is_none() {
                return Ok(ids);
            }
        }
    }
}

impl Crm for HubSpotCrm {
    fn name(&self) -> &'static str {
        "HubSpot"
    }

    async fn describe_properties(&self, object: CrmObject) -> Result<Vec<CrmProperty>, CrmError> {
        let path = match object {
            CrmObject::Contact => "contacts",
            CrmObject::Company => "companies",
            CrmObject::Deal => "deals",
        };
        if let Some((at, listed)) = self
            .described
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            && at.elapsed() < COMPANY_CACHE_MAX_AGE
        {
            return Ok(listed.clone());
        }
        let (_, listed): (_, Listing) = self
            .send_parsed(
                reqwest::Method::GET,
                &format!("/crm/v3/properties/{path}"),
                None,
            )
            .await?;
        let text = |p: &Value, key: &str| {
            p.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let properties: Vec<CrmProperty> = listed
            .results
            .iter()
            .map(|p| {
                let (kind, field) = (text(p, "type"), text(p, "fieldType"));
                CrmProperty {
                    name: text(p, "name"),
                    kind: field_type(&kind, &field),
                    crm_type: format!("{kind}/{field}"),
                }
            })
            .filter(|p| !p.name.is_empty())
            .collect();
        self.described
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path, (std::time::Instant::now(), properties.clone()));
        Ok(properties)
    }

    fn forward_properties(&self) -> Option<leadsync_domain::criteria::ForwardProperties> {
        Some(leadsync_domain::criteria::ForwardProperties {
            lifecycle_stage: "lifecyclestage".to_owned(),
            lead_status: self
                .reads
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .asked
                .lead_status
                .clone()
                .unwrap_or_else(|| "hs_lead_status".to_owned()),
        })
    }

    fn forget_properties(&self) {
        self.described
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn set_reads(&self, reads: &CrmReads) -> Result<(), CrmError> {
        let mut current = self
            .reads
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.asked != *reads {
            *current = Arc::new(Reads::new(reads));
            // Walks, pages read ahead and companies read before asked for other properties.
            self.lock_walks().clear();
            for (_, handle) in self.lock_pages_ahead().drain(..) {
                handle.abort();
            }
            self.companies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        }
        Ok(())
    }

    fn max_ids(&self) -> usize {
        MAX_IN_VALUES
    }

    /// Contact ids are numbers: the midpoint, when one lies strictly between.
    fn split_keys(&self, after: Option<&ScopeKey>, through: &ScopeKey) -> Option<ScopeKey> {
        let after = match after {
            Some(key) => key.as_str().parse::<u64>().ok()?,
            None => 0,
        };
        let through = through.as_str().parse::<u64>().ok()?;
        (through > after.saturating_add(1))
            .then(|| ScopeKey::new((after + (through - after) / 2).to_string()))
    }

    /// Deals and companies modified since `since` (search), then their contacts (v4
    /// associations, 1,000 a call).
    async fn contacts_touched_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<LeadId>, CrmError> {
        let mut contacts = std::collections::BTreeSet::new();
        for object in ["deals", "companies"] {
            let ids = self.changed_ids(object, since).await?;
            if ids.is_empty() {
                continue;
            }
            let bodies = ids
                .chunks(ASSOCIATION_BATCH_LIMIT)
                .map(|chunk| json!({ "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>() }))
                .collect();
            let answers: Vec<AssociationsResponse> = self
                .post_all(
                    &format!("/crm/v4/associations/{object}/contacts/batch/read"),
                    bodies,
                )
                .await?;
            for result in answers.into_iter().flat_map(|a| a.results) {
                contacts.extend(result.to.iter().map(|to| value_text(&to.to_object_id)));
            }
        }
        Ok(contacts
            .into_iter()
            .filter_map(|id| LeadId::new(id).ok())
            .collect())
    }

    /// HubSpot lists archived contacts (100 a page, id order) but cannot filter them by when:
    /// the walk reads them all and keeps those archived since `since`. HubSpot keeps archived
    /// records 90 days, which bounds the walk.
    async fn deleted_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(LeadId, chrono::DateTime<chrono::Utc>)>, CrmError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                None => "/crm/v3/objects/contacts?archived=true&limit=100".to_owned(),
                Some(a) => format!("/crm/v3/objects/contacts?archived=true&limit=100&after={a}"),
            };
            let (_, page): (_, ArchivedPage) =
                self.send_parsed(reqwest::Method::GET, &path, None).await?;
            for c in page.results {
                let at = c
                    .archived_at
                    .as_deref()
                    .or(c.updated_at.as_deref())
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc));
                match (LeadId::new(c.id.as_str()), at) {
                    (Ok(id), Some(at)) if at >= since => out.push((id, at)),
                    (Ok(_), Some(_)) => {}
                    (id, _) => {
                        tracing::warn!(contact = %c.id, valid_id = id.is_ok(), "An archived contact without a readable id or archive time; skipped.");
                    }
                }
            }
            match page.paging.and_then(|p| p.next) {
                Some(next) => after = Some(next.after),
                None => return Ok(out),
            }
        }
    }

    async fn count(&self, scope: &PullScope) -> Result<Census, CrmError> {
        // One result, highest id first: the response's `total` counts the scope.
        let (after_id, through_id) = id_bounds(scope)?;
        let body = json!({
            "filterGroups": [{ "filters": scope_filters(scope, after_id, through_id) }],
            "sorts": [{ "propertyName": "hs_object_id", "direction": "DESCENDING" }],
            "properties": ["hs_object_id"],
            "limit": 1,
        });
        let (_, parsed): (_, SearchResponse) = self
            .post_parsed("/crm/v3/objects/contacts/search", &body)
            .await?;
        let last_id = parsed
            .results
            .first()
            .and_then(|o| o.id.parse::<u64>().ok());
        let total = parsed
            .total
            .unwrap_or(parsed.results.len() as u64)
            .max(u64::from(last_id.is_some()));
        Ok(Census {
            first: None,
            total,
            last: last_id.map(|id| ScopeKey::new(id.to_string())),
        })
    }

    async fn pull_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let ahead = cursor.and_then(|c| self.take_page_ahead(scope, c));
        let page = match ahead {
            Some(handle) => match handle.await {
                Ok(Ok(page)) => page,
                // The read ahead failed past its retries (or its task died): read the page
                // here, with a retry budget of its own.
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "Page read ahead failed; reading it again.");
                    self.read_page(scope, cursor).await?
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Page read ahead ended abnormally; reading it again.");
                    self.read_page(scope, cursor).await?
                }
            },
            None => self.read_page(scope, cursor).await?,
        };
        if let Some(next) = &page.next {
            self.spawn_page_ahead(scope, next);
        }
        Ok(page)
    }

    async fn ensure_properties(&self, specs: &[PropertySpec]) -> Result<u32, CrmError> {
        let missing_locally: Vec<&PropertySpec> = {
            let ensured = self
                .ensured
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            specs
                .iter()
                .filter(|s| !ensured.contains(&s.name))
                .collect()
        };
        if missing_locally.is_empty() {
            return Ok(0);
        }
        let (_, listed): (_, Listing) = self
            .send_parsed(reqwest::Method::GET, "/crm/v3/properties/contacts", None)
            .await?;
        let existing: HashSet<String> = listed
            .results
            .iter()
            .filter_map(|p| p.get("name")?.as_str().map(str::to_owned))
            .collect();
        // Existing enumerations must offer every value leadsync writes (a new stage, a renamed
        // band): add the missing options, keeping the account's own.
        for spec in missing_locally
            .iter()
            // An input the account already has is the account's: its options stay as they are.
            .filter(|s| {
                s.kind == PropertyKind::Enumeration && !s.read_only && existing.contains(&s.name)
            })
        {
            let Some(current) = listed
                .results
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(spec.name.as_str()))
            else {
                continue;
            };
            let mut options: Vec<Value> = current
                .get("options")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let have: HashSet<String> = options
                .iter()
                .filter_map(|o| o.get("value")?.as_str().map(str::to_owned))
                .collect();
            let missing: Vec<&String> =
                spec.options.iter().filter(|o| !have.contains(*o)).collect();
            if missing.is_empty() {
                continue;
            }
            for value in missing {
                options.push(json!({"label": value, "value": value, "displayOrder": options.len(), "hidden": false}));
            }
            let path = format!("/crm/v3/properties/contacts/{}", spec.name);
            let answer = self
                .send_with(
                    reqwest::Method::PATCH,
                    &path,
                    Some(&json!({ "options": options })),
                    Ok,
                )
                .await?;
            if !answer.status.is_success() {
                return Err(CrmError::Rejected {
                    status: answer.status.as_u16(),
                    message: error_message(&answer.body),
                });
            }
        }
        let to_create: Vec<&PropertySpec> = missing_locally
            .into_iter()
            .filter(|s| !existing.contains(&s.name))
            .collect();
        let mut created = 0;
        if !to_create.is_empty() {
            let (_, groups): (_, Listing) = self
                .send_parsed(
                    reqwest::Method::GET,
                    "/crm/v3/properties/contacts/groups",
                    None,
                )
                .await?;
            if !groups
                .results
                .iter()
                .any(|g| g.get("name").and_then(Value::as_str) == Some(PROPERTY_GROUP))
            {
                let group =
                    json!({"name": PROPERTY_GROUP, "label": "leadsync", "displayOrder": -1});
                self.create_once("/crm/v3/properties/contacts/groups", &group)
                    .await?;
            }
            for spec in &to_create {
                if self
                    .create_once("/crm/v3/properties/contacts", &property_body(spec))
                    .await?
                {
                    created += 1;
                }
            }
        }
        let mut ensured = self
            .ensured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ensured.extend(specs.iter().map(|s| s.name.clone()));
        Ok(created)
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        self.push_all(updates).await
    }
}
