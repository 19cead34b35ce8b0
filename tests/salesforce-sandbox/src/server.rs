//! The org sandbox's HTTP server: configuration, the org's state and the router. The routes
//! live by API area: `auth` (OAuth, session, limits, faults), `query` (SOQL), `sobjects`
//! (describe, collections, Tooling), `info` (versions, limits, counters); `handle` is the
//! running sandbox tests hold. Bulk API 2.0 is [`crate::bulk`].

mod auth;
mod handle;
mod info;
mod query;
mod sobjects;

use auth::*;
use info::*;
use query::*;
use sobjects::*;

pub use handle::SalesforceSandbox;

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

fn touch(r: &mut SObject, now: DateTime<Utc>) {
    r.fields
        .insert("LastModifiedDate".into(), json!(sf_time(now)));
    r.fields
        .insert("SystemModstamp".into(), json!(sf_time(now)));
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

/// A path resolved: `(None, field)` on the record itself, `(Some((fk, parent kind, rel)), field)`.
type Resolved = (Option<(String, &'static str, String)>, String);

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
