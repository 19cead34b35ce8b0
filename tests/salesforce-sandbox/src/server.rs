//! Routes, auth, limits and faults; the org's state; start and stop.

use crate::ids;
use crate::soql::{self, Cond, Literal, Op, Path, Query};
use crate::world::{self, SObject, sf_time};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query as UrlQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, Utc};
use leadsync_sandbox::{DataSpec, Faults};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The API version whose behaviour the sandbox follows; older ones down to v31.0 are
/// answered the same way.
pub const API_VERSION: &str = "63.0";
const MIN_VERSION: u32 = 31;
const MAX_VERSION: u32 = 63;
/// The public half of the test-only key pair in `keys/` (the connected app's certificate key
/// by default); [`JWT_PRIVATE_KEY`] signs assertions in tests. Never use it anywhere real.
pub const JWT_PUBLIC_KEY: &str = include_str!("../keys/connected-app.pub");
pub const JWT_PRIVATE_KEY: &str = include_str!("../keys/connected-app.key");
/// The integration user assertions name by default.
pub const JWT_USERNAME: &str = "integration@leadsync-sandbox.example";
/// Records per collection request.
pub const COLLECTION_LIMIT: usize = 200;

#[derive(Debug, Clone)]
pub struct SalesforceConfig {
    pub seed: u64,
    /// People (the HubSpot sandbox's contacts for the same seed).
    pub people: u64,
    pub anchor: DateTime<Utc>,
    /// The connected app's consumer key and secret (client-credentials flow).
    pub client_id: String,
    pub client_secret: String,
    /// JWT bearer flow: the public key of the certificate uploaded to the connected app (PEM)
    /// and the user assertions may name (pre-authorized for the app).
    pub jwt_public_key: String,
    pub jwt_username: String,
    /// The org's rolling 24-hour request allocation.
    pub daily_requests: u64,
    pub faults: Faults,
    /// Share of records in a collection update answered `UNABLE_TO_LOCK_ROW`.
    pub lock_row_rate: f64,
    /// Share of people without a deal who were converted to contacts anyway (0: only people
    /// with deals are contacts).
    pub contact_share: f64,
    /// Polls of a Bulk API 2.0 query job answered `InProgress` before it completes.
    pub bulk_polls: u32,
    /// The concurrent long-running request limit: at most `limit` requests in flight for
    /// longer than `after` (Salesforce: 25 over 20 s in production, 5 in Developer and
    /// Trial orgs); another request is refused with 403 `REQUEST_LIMIT_EXCEEDED`
    /// (`ConcurrentPerOrgLongTxn Limit exceeded.`) while they run.
    pub long_running: (usize, std::time::Duration),
    pub port: u16,
}

impl SalesforceConfig {
    pub fn new(seed: u64, people: u64) -> Self {
        Self {
            seed,
            people,
            anchor: DataSpec::new(seed, people).anchor,
            client_id: "sandbox-consumer-key".into(),
            client_secret: "sandbox-consumer-secret".into(),
            jwt_public_key: JWT_PUBLIC_KEY.into(),
            jwt_username: JWT_USERNAME.into(),
            daily_requests: 100_000_000,
            faults: Faults::default(),
            lock_row_rate: 0.0,
            contact_share: 0.0,
            bulk_polls: 1,
            long_running: (25, std::time::Duration::from_secs(20)),
            port: 0,
        }
    }

    #[must_use]
    pub fn anchored_at(mut self, anchor: DateTime<Utc>) -> Self {
        self.anchor = anchor;
        self
    }
}

/// A field of an object as the org describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub kind: String,
    pub updateable: bool,
    pub custom: bool,
}

/// What the sandbox counted, for tests and benchmarks (also `GET /__sandbox/counters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub requests: u64,
    pub queries: u64,
    pub query_more: u64,
    pub collection_updates: u64,
    pub records_updated: u64,
    pub describes: u64,
    pub tokens: u64,
    pub tooling: u64,
    pub injected_5xx: u64,
    pub injected_malformed: u64,
    pub injected_lock: u64,
    /// Bulk API 2.0: jobs created, job-info polls, results pages read.
    pub bulk_jobs: u64,
    pub bulk_polls: u64,
    pub bulk_results: u64,
    /// Requests refused by the concurrent long-running request limit.
    pub refused_long_running: u64,
}

struct Org {
    records: BTreeMap<String, SObject>,
    schema: BTreeMap<&'static str, Vec<Field>>,
    /// Fields the integration user's profile cannot see: absent from describe and queries.
    hidden: BTreeSet<(String, String)>,
}

pub(crate) struct AppState {
    pub(crate) config: SalesforceConfig,
    org: RwLock<Org>,
    tokens: Mutex<BTreeSet<String>>,
    cursors: Mutex<HashMap<String, Arc<Vec<Value>>>>,
    counters: Mutex<Counters>,
    used: AtomicU64,
    pub(crate) next_id: AtomicU64,
    /// Bulk API 2.0 query jobs by id.
    pub(crate) jobs: Mutex<HashMap<String, crate::bulk::Job>>,
    /// When each request in flight began (the concurrent long-running limit).
    in_flight: Mutex<BTreeMap<u64, std::time::Instant>>,
    rng: Mutex<ChaCha8Rng>,
    faults: Mutex<(Faults, f64)>,
    clock: Mutex<DateTime<Utc>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AppState {
    fn org(&self) -> RwLockReadGuard<'_, Org> {
        self.org
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn org_mut(&self) -> RwLockWriteGuard<'_, Org> {
        self.org
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut lock(&self.counters));
    }

    /// The org's clock: never behind the seeded world, always moving forward.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        let mut clock = lock(&self.clock);
        let next = Utc::now().max(*clock + chrono::Duration::milliseconds(1));
        *clock = next;
        next
    }
}

/// A running sandbox org.
pub struct SalesforceSandbox {
    addr: SocketAddr,
    state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SalesforceSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceSandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SalesforceSandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl SalesforceSandbox {
    /// Build the org for the seed and serve it on 127.0.0.1.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start(config: SalesforceConfig) -> std::io::Result<Self> {
        let spec = DataSpec::anchored(config.seed, config.people, config.anchor);
        let records = world::build(spec, config.contact_share);
        let schema = world::OBJECTS
            .iter()
            .map(|(o, _)| {
                let fields = world::fields(o)
                    .into_iter()
                    .map(|d| Field {
                        name: d.name.to_owned(),
                        kind: d.kind.to_owned(),
                        updateable: d.updateable,
                        custom: d.name.ends_with("__c"),
                    })
                    .collect();
                (*o, fields)
            })
            .collect();
        let state = Arc::new(AppState {
            org: RwLock::new(Org {
                records,
                schema,
                hidden: BTreeSet::new(),
            }),
            tokens: Mutex::default(),
            cursors: Mutex::default(),
            jobs: Mutex::default(),
            in_flight: Mutex::default(),
            counters: Mutex::default(),
            used: AtomicU64::new(0),
            next_id: AtomicU64::new(10_000_000),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.seed ^ 0x5f5f)),
            faults: Mutex::new((config.faults, config.lock_row_rate)),
            clock: Mutex::new(config.anchor),
            config,
        });
        let listener = TcpListener::bind(("127.0.0.1", state.config.port)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = served.await {
                tracing::error!(%error, "Salesforce sandbox stopped with an error.");
            }
        });
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`: the login URL and the instance URL alike.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client_id(&self) -> &str {
        &self.state.config.client_id
    }

    pub fn client_secret(&self) -> &str {
        &self.state.config.client_secret
    }

    /// A valid session without the token flow (what simple-salesforce is given).
    pub fn session(&self) -> String {
        issue_token(&self.state)
    }

    /// Every session ends: the next request with one gets `INVALID_SESSION_ID`.
    pub fn expire_sessions(&self) {
        lock(&self.state.tokens).clear();
    }

    pub fn counters(&self) -> Counters {
        lock(&self.state.counters).clone()
    }

    /// Requests counted against the daily allocation so far.
    pub fn api_usage(&self) -> u64 {
        self.state.used.load(AtomicOrdering::Relaxed)
    }

    pub fn set_faults(&self, faults: Faults, lock_row_rate: f64) {
        *lock(&self.state.faults) = (faults, lock_row_rate);
    }

    /// A record by Id (deleted ones too).
    pub fn record(&self, id: &str) -> Option<SObject> {
        self.state.org().records.get(id).cloned()
    }

    /// Every record of an object (deleted ones too).
    pub fn records(&self, kind: &str) -> Vec<SObject> {
        self.state
            .org()
            .records
            .values()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect()
    }

    /// The Ids of the people the org holds now: contacts and unconverted leads, not deleted.
    pub fn people(&self) -> std::collections::BTreeSet<String> {
        self.state
            .org()
            .records
            .values()
            .filter(|r| {
                (r.kind == "Contact" || r.kind == "Lead")
                    && !r.flag("IsDeleted")
                    && !r.flag("IsConverted")
            })
            .map(|r| r.id().to_owned())
            .collect()
    }

    /// Hide a field from the integration user (its profile lacks field-level security).
    pub fn hide_field(&self, kind: &str, field: &str) {
        self.state
            .org_mut()
            .hidden
            .insert((kind.to_owned(), field.to_owned()));
    }

    /// Change fields of a record as a user in the UI would: `SystemModstamp` moves.
    pub fn edit(&self, id: &str, fields: &[(&str, Value)]) -> bool {
        let now = self.state.now();
        let mut org = self.state.org_mut();
        let Some(r) = org.records.get_mut(id) else {
            return false;
        };
        for (k, v) in fields {
            r.fields.insert((*k).to_owned(), v.clone());
        }
        touch(r, now);
        true
    }

    /// Delete a record (to the recycle bin: `queryAll` still sees it, `IsDeleted = true`).
    pub fn delete(&self, id: &str) -> bool {
        let now = self.state.now();
        let mut org = self.state.org_mut();
        let Some(r) = org.records.get_mut(id) else {
            return false;
        };
        r.fields.insert("IsDeleted".into(), json!(true));
        touch(r, now);
        true
    }

    /// Merge `loser` into `master` as Salesforce does: the loser is deleted with
    /// `MasterRecordId` set.
    pub fn merge(&self, master: &str, loser: &str) -> bool {
        let now = self.state.now();
        let mut org = self.state.org_mut();
        if !org.records.contains_key(master) {
            return false;
        }
        let Some(r) = org.records.get_mut(loser) else {
            return false;
        };
        r.fields.insert("IsDeleted".into(), json!(true));
        r.fields.insert("MasterRecordId".into(), json!(master));
        touch(r, now);
        if let Some(m) = org.records.get_mut(master) {
            touch(m, now);
        }
        true
    }

    /// Create a record (a new lead signing up): returns its Id.
    pub fn create(&self, kind: &'static str, fields: &[(&str, Value)]) -> String {
        let now = self.state.now();
        let n = self.state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
        let id = ids::id(world::prefix(kind), n);
        let mut o = SObject {
            kind,
            fields: BTreeMap::new(),
        };
        for f in self.state.org().schema.get(kind).into_iter().flatten() {
            let v = if f.kind == "boolean" {
                json!(false)
            } else {
                Value::Null
            };
            o.fields.insert(f.name.clone(), v);
        }
        o.fields.insert("Id".into(), json!(id));
        for (k, v) in fields {
            o.fields.insert((*k).to_owned(), v.clone());
        }
        o.fields.insert("CreatedDate".into(), json!(sf_time(now)));
        touch(&mut o, now);
        self.state.org_mut().records.insert(id.clone(), o);
        id
    }

    /// Convert a lead: a contact (under a new account when `account` is `None`) takes over
    /// the person; the lead is marked converted. Returns the contact's Id.
    pub fn convert(&self, lead: &str, account: Option<&str>) -> Option<String> {
        let source = self.record(lead)?;
        if source.kind != "Lead" || source.flag("IsConverted") {
            return None;
        }
        let shared: Vec<(String, Value)> = source
            .fields
            .iter()
            .filter(|(k, _)| {
                world::fields("Contact")
                    .iter()
                    .any(|f| f.name == k.as_str())
                    && !matches!(
                        k.as_str(),
                        "Id" | "CreatedDate" | "LastModifiedDate" | "SystemModstamp" | "IsDeleted"
                    )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let account = match account {
            Some(a) => a.to_owned(),
            None => self.create("Account", &[("Name", source.fields["Company"].clone())]),
        };
        let mut fields: Vec<(&str, Value)> = shared
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        fields.push(("AccountId", json!(account)));
        fields.push(("Lead_Status__c", source.fields["Status"].clone()));
        let contact = self.create("Contact", &fields);
        let today = self.state.now().date_naive().to_string();
        self.edit(
            lead,
            &[
                ("IsConverted", json!(true)),
                ("ConvertedContactId", json!(contact)),
                ("ConvertedAccountId", json!(account)),
                ("ConvertedDate", json!(today)),
                ("Status", json!("Closed - Converted")),
            ],
        );
        Some(contact)
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn touch(r: &mut SObject, now: DateTime<Utc>) {
    r.fields
        .insert("LastModifiedDate".into(), json!(sf_time(now)));
    r.fields
        .insert("SystemModstamp".into(), json!(sf_time(now)));
}

fn issue_token(state: &AppState) -> String {
    let n = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
    let token = format!("00D5g000000SANDBOX!{}", ids::id("00D", n));
    lock(&state.tokens).insert(token.clone());
    token
}

fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/queryAll", get(query_all))
        // simple-salesforce asks with a trailing slash.
        .route("/services/data/{version}/query/", get(query))
        .route("/services/data/{version}/queryAll/", get(query_all))
        .route("/services/data/{version}/query/{locator}", get(query_more))
        .route(
            "/services/data/{version}/queryAll/{locator}",
            get(query_more),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe",
            get(describe),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe/",
            get(describe),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            patch(collection_update),
        )
        .route(
            "/services/data/{version}/tooling/sobjects/CustomField",
            post(create_field),
        )
        .route("/services/data/{version}/limits", get(limits))
        .route(
            "/services/data/{version}/jobs/query",
            post(crate::bulk::create),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}",
            get(crate::bulk::info).delete(crate::bulk::delete),
        )
        .route(
            "/services/data/{version}/jobs/query/{id}/results",
            get(crate::bulk::results),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), govern))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .merge(api)
        .route("/services/oauth2/token", post(token))
        .route("/services/data", get(versions))
        // Not Salesforce's: the counters, for a benchmark running the org in another process.
        .route("/__sandbox/counters", get(admin_counters))
        .route("/services/data/", get(versions))
        .fallback(not_found)
        .with_state(state)
}

/// Salesforce's REST error body: a list of `{message, errorCode}`.
pub(crate) fn sf_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    json_response(
        status,
        &json!([{ "message": message.into(), "errorCode": code }]),
    )
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

async fn admin_counters(State(state): State<Arc<AppState>>) -> Response {
    json_response(StatusCode::OK, &json!(*lock(&state.counters)))
}

pub(crate) async fn not_found() -> Response {
    sf_error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

pub(crate) fn version_ok(version: &str) -> bool {
    version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| (MIN_VERSION..=MAX_VERSION).contains(&v))
}

async fn versions() -> Response {
    let list: Vec<Value> = (MIN_VERSION..=MAX_VERSION)
        .map(|v| json!({"version": format!("{v}.0"), "label": format!("v{v}"), "url": format!("/services/data/v{v}.0")}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

async fn require_session(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::to_owned);
    if token.is_some_and(|t| lock(&state.tokens).contains(&t)) {
        return next.run(request).await;
    }
    let mut response = sf_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    response
}

/// The daily allocation, `Sforce-Limit-Info` on every answer, and the faults.
async fn govern(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    state.count(|c| c.requests += 1);
    let used = state.used.fetch_add(1, AtomicOrdering::Relaxed) + 1;
    let max = state.config.daily_requests;
    let info = HeaderValue::from_str(&format!("api-usage={}/{max}", used.min(max)))
        .unwrap_or_else(|_| HeaderValue::from_static("api-usage=0/0"));
    let with_info = |mut r: Response| {
        r.headers_mut().insert("sforce-limit-info", info.clone());
        r
    };
    if used > max {
        return with_info(sf_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ));
    }
    let (limit, after) = state.config.long_running;
    let ticket = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
    {
        let mut in_flight = lock(&state.in_flight);
        let long = in_flight.values().filter(|t| t.elapsed() >= after).count();
        if long >= limit {
            drop(in_flight);
            state.count(|c| c.refused_long_running += 1);
            return with_info(sf_error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded.",
            ));
        }
        in_flight.insert(ticket, std::time::Instant::now());
    }
    // Leaves the in-flight set however the request ends (a dropped connection included).
    struct InFlight<'a>(&'a AppState, u64);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            lock(&self.0.in_flight).remove(&self.1);
        }
    }
    let _in_flight = InFlight(&state, ticket);
    let (faults, _) = *lock(&state.faults);
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    let (server_error, malformed) = {
        let mut rng = lock(&state.rng);
        (
            rng.random_bool(faults.server_error_rate.clamp(0.0, 1.0)),
            rng.random_bool(faults.malformed_rate.clamp(0.0, 1.0)),
        )
    };
    if server_error {
        state.count(|c| c.injected_5xx += 1);
        return with_info(sf_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable",
        ));
    }
    let response = next.run(request).await;
    if malformed && response.status().is_success() {
        state.count(|c| c.injected_malformed += 1);
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let cut = bytes.slice(..bytes.len() / 2);
        return with_info(Response::from_parts(parts, Body::from(cut)));
    }
    with_info(response)
}

#[derive(Debug, serde::Deserialize)]
struct Assertion {
    iss: String,
    sub: String,
    aud: String,
}

/// A JWT bearer assertion as Salesforce checks it: RS256 signed by the key of the certificate
/// uploaded to the connected app, `iss` its consumer key, `sub` a user who may use the app,
/// `aud` the login URL, `exp` not passed. The error pairs are Salesforce's.
fn verify_assertion(
    config: &SalesforceConfig,
    assertion: Option<&str>,
    audiences: &[String],
) -> Result<(), (&'static str, &'static str)> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, errors::ErrorKind};
    let invalid = ("invalid_grant", "invalid assertion");
    let assertion = assertion.ok_or(invalid)?;
    let key = DecodingKey::from_rsa_pem(config.jwt_public_key.as_bytes()).map_err(|_| invalid)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.validate_aud = false;
    validation.leeway = 0;
    let claims = match decode::<Assertion>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
            return Err(("invalid_grant", "expired authorization code"));
        }
        Err(_) => return Err(invalid),
    };
    if claims.iss != config.client_id {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    if !audiences
        .iter()
        .any(|a| a.trim_end_matches('/') == claims.aud.trim_end_matches('/'))
    {
        return Err(("invalid_grant", "audience is invalid"));
    }
    if claims.sub != config.jwt_username {
        return Err(("invalid_grant", "user hasn't approved this consumer"));
    }
    Ok(())
}

/// The OAuth 2.0 token endpoint: client credentials (in the form or as HTTP Basic) and the
/// JWT bearer flow.
async fn token(State(state): State<Arc<AppState>>, headers: HeaderMap, body: String) -> Response {
    state.count(|c| c.tokens += 1);
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let oauth_error = |code: &str, description: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": code, "error_description": description}),
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            let (id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
                (Some(id), Some(secret), _) => (id.clone(), secret.clone()),
                (_, _, Some(pair)) => pair,
                _ => return oauth_error("invalid_client", "invalid client credentials"),
            };
            if id != state.config.client_id {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if secret != state.config.client_secret {
                return oauth_error("invalid_client", "invalid client credentials");
            }
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let audiences = [
                "https://login.salesforce.com".to_owned(),
                "https://test.salesforce.com".to_owned(),
                format!("http://{host}"),
            ];
            if let Err((code, description)) = verify_assertion(
                &state.config,
                form.get("assertion").map(String::as_str),
                &audiences,
            ) {
                return oauth_error(code, description);
            }
        }
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    }
    let access = issue_token(&state);
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "signature": "c2FuZGJveA==",
            "scope": "api",
            "instance_url": format!("http://{host}"),
            "id": format!("http://{host}/id/00D5g000000SANDBOX/0055g000000INTEGR"),
            "token_type": "Bearer",
            "issued_at": state.now().timestamp_millis().to_string(),
        }),
    )
}

#[derive(serde::Deserialize)]
struct Q {
    q: Option<String>,
}

async fn query(
    state: State<Arc<AppState>>,
    version: UrlPath<String>,
    headers: HeaderMap,
    q: UrlQuery<Q>,
) -> Response {
    run_query(state, version, headers, q, false).await
}

async fn query_all(
    state: State<Arc<AppState>>,
    version: UrlPath<String>,
    headers: HeaderMap,
    q: UrlQuery<Q>,
) -> Response {
    run_query(state, version, headers, q, true).await
}

fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
                .and_then(|n| n.trim().parse::<usize>().ok())
        })
        .map_or(2_000, |n| n.clamp(200, 2_000))
}

async fn run_query(
    State(state): State<Arc<AppState>>,
    UrlPath(version): UrlPath<String>,
    headers: HeaderMap,
    UrlQuery(q): UrlQuery<Q>,
    all: bool,
) -> Response {
    if !version_ok(&version) {
        return not_found().await;
    }
    state.count(|c| c.queries += 1);
    let Some(text) = q.q.filter(|t| !t.trim().is_empty()) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let parsed = match parse_soql(&text) {
        Ok(p) => p,
        Err(e) => return *e,
    };
    let records = match execute(&state, &version, &parsed, all) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(records) = records else {
        // COUNT()
        let n = count(&state, &parsed, all);
        return json_response(
            StatusCode::OK,
            &json!({"totalSize": n, "done": true, "records": []}),
        );
    };
    page(
        &state,
        &version,
        Arc::new(records),
        0,
        batch_size(&headers),
        all,
    )
}

fn page(
    state: &AppState,
    version: &str,
    records: Arc<Vec<Value>>,
    from: usize,
    batch: usize,
    all: bool,
) -> Response {
    let end = (from + batch).min(records.len());
    let mut body = json!({
        "totalSize": records.len(),
        "done": end >= records.len(),
        "records": records[from.min(end)..end].to_vec(),
    });
    if end < records.len() {
        let n = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
        let locator = ids::id("01g", n)[..15].to_owned();
        lock(&state.cursors).insert(locator.clone(), records.clone());
        let kind = if all { "queryAll" } else { "query" };
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/{kind}/{locator}-{end}"));
    }
    json_response(StatusCode::OK, &body)
}

async fn query_more(
    State(state): State<Arc<AppState>>,
    UrlPath((version, locator)): UrlPath<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    state.count(|c| c.query_more += 1);
    let all = request.uri().path().contains("/queryAll/");
    let Some((cursor, from)) = locator
        .rsplit_once('-')
        .and_then(|(c, n)| Some((c.to_owned(), n.parse::<usize>().ok()?)))
    else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
    };
    let Some(records) = lock(&state.cursors).get(&cursor).cloned() else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
    };
    page(&state, &version, records, from, batch_size(&headers), all)
}

/// The canonical name of a field the integration user can see.
fn field_name(org: &Org, kind: &str, name: &str) -> Option<String> {
    org.schema
        .get(kind)?
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
        .filter(|f| !org.hidden.contains(&(kind.to_owned(), f.name.clone())))
        .map(|f| f.name.clone())
}

/// A path resolved: `(None, field)` on the record itself, `(Some((fk, parent kind, rel)), field)`.
type Resolved = (Option<(String, &'static str, String)>, String);

fn resolve(org: &Org, kind: &'static str, path: &Path) -> Result<Resolved, String> {
    let no_column = |name: &str, on: &str| {
        format!(
            "No such column '{name}' on entity '{on}'. If you are attempting to use a custom \
             field, be sure to append the '__c' after the custom field name."
        )
    };
    match path.0.as_slice() {
        [field] => field_name(org, kind, field)
            .map(|f| (None, f))
            .ok_or_else(|| no_column(field, kind)),
        [rel, field] => {
            let (fk, target) = world::relationship(kind, rel)
                .ok_or_else(|| format!("Didn't understand relationship '{rel}' in field path."))?;
            let name = field_name(org, target, field).ok_or_else(|| no_column(field, target))?;
            let rel_name = fk.trim_end_matches("Id").to_owned();
            Ok((Some((fk.to_owned(), target, rel_name)), name))
        }
        _ => Err(format!(
            "Didn't understand relationship in field path '{}'.",
            path.text()
        )),
    }
}

fn value_of(org: &Org, record: &SObject, resolved: &Resolved) -> Value {
    match &resolved.0 {
        None => record
            .fields
            .get(&resolved.1)
            .cloned()
            .unwrap_or(Value::Null),
        Some((fk, _, _)) => record
            .text(fk)
            .and_then(|id| org.records.get(id))
            .and_then(|p| p.fields.get(&resolved.1).cloned())
            .unwrap_or(Value::Null),
    }
}

fn is_id_field(org: &Org, kind: &str, resolved: &Resolved) -> bool {
    let on = resolved.0.as_ref().map_or(kind, |(_, k, _)| k);
    org.schema
        .get(on)
        .and_then(|fs| fs.iter().find(|f| f.name == resolved.1))
        .is_some_and(|f| f.kind == "id" || f.kind == "reference")
}

fn matches(org: &Org, kind: &'static str, record: &SObject, cond: &Cond) -> Result<bool, String> {
    Ok(match cond {
        Cond::And(a, b) => matches(org, kind, record, a)? && matches(org, kind, record, b)?,
        Cond::Or(a, b) => matches(org, kind, record, a)? || matches(org, kind, record, b)?,
        Cond::Not(a) => !matches(org, kind, record, a)?,
        Cond::Compare(path, op, lit) => {
            let r = resolve(org, kind, path)?;
            let value = value_of(org, record, &r);
            let ord = soql::compare(&value, lit, is_id_field(org, kind, &r));
            match op {
                Op::Eq => ord == Some(Ordering::Equal),
                Op::Ne => ord != Some(Ordering::Equal),
                Op::Lt => ord == Some(Ordering::Less),
                Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                Op::Gt => ord == Some(Ordering::Greater),
                Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            }
        }
        Cond::In(path, values, negated) => {
            let r = resolve(org, kind, path)?;
            let value = value_of(org, record, &r);
            let id = is_id_field(org, kind, &r);
            let found = values.iter().any(|lit| {
                // An 18-character Id matches its 15-character form.
                let lit = match (lit, id) {
                    (Literal::Text(t), true) if t.len() == 15 => {
                        Literal::Text(format!("{t}{}", ids::checksum(t)))
                    }
                    _ => lit.clone(),
                };
                soql::compare(&value, &lit, id) == Some(Ordering::Equal)
            });
            found != *negated
        }
        Cond::Like(path, pattern) => {
            let r = resolve(org, kind, path)?;
            value_of(org, record, &r)
                .as_str()
                .is_some_and(|v| soql::like(v, pattern))
        }
    })
}

fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => {
            match (soql::parse_datetime(x), soql::parse_datetime(y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => x.cmp(y),
            }
        }
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

type Answer<T> = Result<T, Box<Response>>;

/// A query's text parsed, or Salesforce's `MALFORMED_QUERY` answer saying where it broke.
pub(crate) fn parse_soql(text: &str) -> Answer<Query> {
    soql::parse(text).map_err(|e| {
        Box::new(sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            format!(
                "\n{text}\nERROR at Row:1:Column:{}\n{}",
                e.column, e.message
            ),
        ))
    })
}

fn invalid_field(message: String) -> Box<Response> {
    Box::new(sf_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", message))
}

fn selected(state: &AppState, q: &Query, all: bool) -> Answer<(&'static str, Vec<SObject>)> {
    let Some(kind) = world::object(&q.from) else {
        return Err(Box::new(sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name.",
                q.from
            ),
        )));
    };
    if q.offset.is_some_and(|o| o > 2_000) {
        return Err(Box::new(sf_error(
            StatusCode::BAD_REQUEST,
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        )));
    }
    let org = state.org();
    let mut out = Vec::new();
    for r in org.records.values().filter(|r| r.kind == kind) {
        if !all && r.flag("IsDeleted") {
            continue;
        }
        if let Some(cond) = &q.filter {
            if !matches(&org, kind, r, cond).map_err(invalid_field)? {
                continue;
            }
        }
        out.push(r.clone());
    }
    if !q.order.is_empty() {
        let keys: Vec<(Resolved, bool, Option<bool>)> = q
            .order
            .iter()
            .map(|(p, asc, nulls)| Ok((resolve(&org, kind, p)?, *asc, *nulls)))
            .collect::<Result<_, String>>()
            .map_err(invalid_field)?;
        out.sort_by(|a, b| {
            for (r, asc, nulls) in &keys {
                let (x, y) = (value_of(&org, a, r), value_of(&org, b, r));
                // Nulls first ascending, last descending, unless said otherwise.
                let nulls_first = nulls.unwrap_or(*asc);
                let ord = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    _ => {
                        let o = cmp_values(&x, &y);
                        if *asc { o } else { o.reverse() }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let skip = q.offset.unwrap_or(0);
    let out: Vec<SObject> = out
        .into_iter()
        .skip(skip)
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    Ok((kind, out))
}

fn count(state: &AppState, q: &Query, all: bool) -> usize {
    selected(state, q, all).map_or(0, |(_, r)| r.len())
}

/// The records of a query as JSON (`None` for `COUNT()`).
pub(crate) fn execute(
    state: &AppState,
    version: &str,
    q: &Query,
    all: bool,
) -> Answer<Option<Vec<Value>>> {
    let (kind, records) = selected(state, q, all)?;
    let Some(select) = &q.select else {
        return Ok(None);
    };
    let org = state.org();
    let resolved: Vec<Resolved> = select
        .iter()
        .map(|p| resolve(&org, kind, p))
        .collect::<Result<_, String>>()
        .map_err(invalid_field)?;
    let attributes = |kind: &str, id: &str| json!({"type": kind, "url": format!("/services/data/{version}/sobjects/{kind}/{id}")});
    let out = records
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            o.insert("attributes".into(), attributes(kind, r.id()));
            for res in &resolved {
                match &res.0 {
                    None => {
                        o.insert(res.1.clone(), value_of(&org, r, res));
                    }
                    Some((fk, target, rel)) => {
                        let parent = r.text(fk).and_then(|id| org.records.get(id));
                        let slot = o.entry(rel.clone()).or_insert(Value::Null);
                        if let Some(p) = parent {
                            if slot.is_null() {
                                *slot = json!({"attributes": attributes(target, p.id())});
                            }
                            slot[res.1.as_str()] =
                                p.fields.get(&res.1).cloned().unwrap_or(Value::Null);
                        }
                    }
                }
            }
            Value::Object(o)
        })
        .collect();
    Ok(Some(out))
}

async fn describe(
    State(state): State<Arc<AppState>>,
    UrlPath((version, object)): UrlPath<(String, String)>,
) -> Response {
    state.count(|c| c.describes += 1);
    let Some(kind) = world::object(&object).filter(|_| version_ok(&version)) else {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    let org = state.org();
    let fields: Vec<Value> = org
        .schema
        .get(kind)
        .into_iter()
        .flatten()
        .filter(|f| !org.hidden.contains(&(kind.to_owned(), f.name.clone())))
        .map(|f| {
            json!({
                "name": f.name,
                "label": f.name.trim_end_matches("__c").replace('_', " "),
                "type": f.kind,
                "updateable": f.updateable,
                "createable": f.updateable,
                "custom": f.custom,
                "nillable": f.name != "Id" && f.name != "LastName",
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "name": kind,
            "keyPrefix": world::prefix(kind),
            "queryable": true,
            "updateable": true,
            "fields": fields,
        }),
    )
}

fn type_fits(kind: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(_) => !matches!(kind, "double" | "int" | "currency" | "percent" | "boolean"),
        Value::Number(_) => matches!(kind, "double" | "int" | "currency" | "percent"),
        Value::Bool(_) => kind == "boolean",
        _ => false,
    }
}

/// `PATCH /composite/sobjects`: up to 200 records, each answered in request order.
async fn collection_update(
    State(state): State<Arc<AppState>>,
    UrlPath(version): UrlPath<String>,
    body: String,
) -> Response {
    if !version_ok(&version) {
        return not_found().await;
    }
    state.count(|c| c.collection_updates += 1);
    let Ok(parsed) = serde_json::from_str::<Value>(&body) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Unexpected character in the request body",
        );
    };
    let Some(records) = parsed.get("records").and_then(Value::as_array) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "records: the collection is required",
        );
    };
    if records.len() > COLLECTION_LIMIT {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let lock_rate = lock(&state.faults).1;
    let now = state.now();
    let mut answers = Vec::with_capacity(records.len());
    let mut org = state.org_mut();
    for record in records {
        let id = record.get("id").and_then(Value::as_str).map(str::to_owned);
        let kind = record.pointer("/attributes/type").and_then(Value::as_str);
        let fail = |code: &str, message: String, fields: Vec<String>| json!({"id": id, "success": false, "errors": [{"statusCode": code, "message": message, "fields": fields}]});
        let Some(id_text) = id.clone() else {
            answers.push(fail(
                "MISSING_ARGUMENT",
                "Id not specified in an update call".into(),
                vec![],
            ));
            continue;
        };
        let Some(kind) = kind.and_then(world::object) else {
            answers.push(fail(
                "INVALID_TYPE",
                "sObject type is required in attributes.type".into(),
                vec![],
            ));
            continue;
        };
        match org.records.get(&id_text) {
            None => {
                answers.push(fail(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id".into(),
                    vec![],
                ));
                continue;
            }
            Some(r) if r.kind != kind => {
                answers.push(fail(
                    "INVALID_CROSS_REFERENCE_KEY",
                    format!("invalid cross reference id: {id_text} is not a {kind}"),
                    vec![],
                ));
                continue;
            }
            Some(r) if r.flag("IsDeleted") => {
                answers.push(fail(
                    "ENTITY_IS_DELETED",
                    "entity is deleted".into(),
                    vec![],
                ));
                continue;
            }
            Some(_) => {}
        }
        if lock(&state.rng).random_bool(lock_rate.clamp(0.0, 1.0)) {
            state.count(|c| c.injected_lock += 1);
            answers.push(fail(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records".into(),
                vec![],
            ));
            continue;
        }
        let mut changes = Vec::new();
        let mut error = None;
        for (name, value) in record.as_object().into_iter().flatten() {
            if name == "attributes" || name == "id" {
                continue;
            }
            let field = org
                .schema
                .get(kind)
                .and_then(|fs| fs.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
                .filter(|f| !org.hidden.contains(&(kind.to_owned(), f.name.clone())))
                .cloned();
            match field {
                None => {
                    error = Some(fail(
                        "INVALID_FIELD",
                        format!("No such column '{name}' on sobject of type {kind}"),
                        vec![name.clone()],
                    ));
                    break;
                }
                Some(f) if !f.updateable => {
                    error = Some(fail(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        format!(
                            "Unable to create/update fields: {}. Please check the security \
                             settings of this field and verify that it is read/write for your \
                             profile or permission set.",
                            f.name
                        ),
                        vec![f.name.clone()],
                    ));
                    break;
                }
                Some(f) if !type_fits(&f.kind, value) => {
                    error = Some(fail(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{}: value not of required type: {value}", f.name),
                        vec![f.name.clone()],
                    ));
                    break;
                }
                Some(f) => changes.push((f.name, value.clone())),
            }
        }
        if let Some(e) = error {
            answers.push(e);
            continue;
        }
        if let Some(r) = org.records.get_mut(&id_text) {
            for (k, v) in changes {
                r.fields.insert(k, v);
            }
            touch(r, now);
        }
        state.count(|c| c.records_updated += 1);
        answers.push(json!({"id": id_text, "success": true, "errors": []}));
    }
    json_response(StatusCode::OK, &Value::Array(answers))
}

/// Tooling API: a custom field on Lead or Contact (`FullName: "Lead.Leadsync_Score__c"`,
/// `Metadata: {type, label, …}`). The sandbox makes it visible to the integration user at
/// once (a real org needs field-level security granted too).
async fn create_field(State(state): State<Arc<AppState>>, body: String) -> Response {
    state.count(|c| c.tooling += 1);
    let Ok(parsed) = serde_json::from_str::<Value>(&body) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Unexpected character in the request body",
        );
    };
    let full = parsed.get("FullName").and_then(Value::as_str).unwrap_or("");
    let Some((object, name)) = full.split_once('.') else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "FIELD_INTEGRITY_EXCEPTION",
            "FullName must be Object.Field__c",
        );
    };
    let Some(kind) = world::object(object) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("no such object {object}"),
        );
    };
    if !name.ends_with("__c") {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "FIELD_INTEGRITY_EXCEPTION",
            "custom field names end in __c",
        );
    }
    let sf_type = match parsed.pointer("/Metadata/type").and_then(Value::as_str) {
        Some("Number") => "double",
        Some("Text") | Some("LongTextArea") => "string",
        Some("DateTime") => "datetime",
        Some("Checkbox") => "boolean",
        Some(other) => {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "FIELD_INTEGRITY_EXCEPTION",
                format!("field type {other} is not supported by the sandbox"),
            );
        }
        None => {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "REQUIRED_FIELD_MISSING",
                "Metadata.type is required",
            );
        }
    };
    let mut org = state.org_mut();
    let fields = org.schema.entry(kind).or_default();
    if fields.iter().any(|f| f.name.eq_ignore_ascii_case(name)) {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "DUPLICATE_DEVELOPER_NAME",
            format!("There is already a field named {name} on {kind}."),
        );
    }
    fields.push(Field {
        name: name.to_owned(),
        kind: sf_type.to_owned(),
        updateable: true,
        custom: true,
    });
    for r in org.records.values_mut().filter(|r| r.kind == kind) {
        r.fields.insert(name.to_owned(), Value::Null);
    }
    let n = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
    json_response(
        StatusCode::CREATED,
        &json!({"id": ids::id("00N", n), "success": true, "errors": [], "warnings": []}),
    )
}

async fn limits(State(state): State<Arc<AppState>>) -> Response {
    let max = state.config.daily_requests;
    let used = state.used.load(AtomicOrdering::Relaxed).min(max);
    json_response(
        StatusCode::OK,
        &json!({
            "DailyApiRequests": {"Max": max, "Remaining": max - used},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        }),
    )
}
