//! The sandbox's HTTP server: routes, bearer auth, batch endpoints, admin endpoints.

mod compat;

use crate::data::{DataSpec, Record, generate, generate_deals, iso};
use crate::limits::{Faults, LimitStats, Limiter, Limits, Verdict};
use crate::properties::{
    COMPANY_STANDARD, CONTACT_STANDARD, DEAL_STANDARD, GroupDef, PropertyDef, Schema, TYPES,
};
use crate::search::{self, MAX_BODY_CHARS, SearchRequest};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub seed: u64,
    pub contacts: u64,
    /// The private-app token clients must send as `Authorization: Bearer <token>`.
    pub token: String,
    /// 0 picks a free port.
    pub port: u16,
    pub limits: Limits,
    pub faults: Faults,
    /// The world's data ends here (see [`crate::data`]): tests keep the fixed default, the demo
    /// and `leadsync sandbox` anchor it at their `now`.
    pub anchor: chrono::DateTime<Utc>,
    /// The portal already has the BANT and rejection-reason properties (`bant_*`,
    /// `lead_rejection_reason`), as one set up for leadsync does; `false`: a bare portal, where
    /// they are not defined and no contact has values for them until they are created.
    pub inputs_defined: bool,
    /// The private app's scopes; `None`: every scope. A request whose endpoint needs a scope
    /// the app lacks is answered 403 `MISSING_SCOPES`, as HubSpot does, and
    /// `POST /oauth/v2/private-apps/get/access-token-info` lists these.
    pub scopes: Option<Vec<String>>,
}

impl SandboxConfig {
    /// The same configuration with the data anchored at `anchor`.
    #[must_use]
    pub fn anchored_at(mut self, anchor: chrono::DateTime<Utc>) -> Self {
        self.anchor = anchor;
        self
    }

    pub fn new(seed: u64, contacts: u64) -> Self {
        Self {
            seed,
            contacts,
            token: "sandbox-token".into(),
            port: 0,
            // Generous by default so functional tests are not throttled; rate-limit tests set
            // HubSpot's real figures.
            limits: Limits {
                per_window: 100_000,
                window_ms: 10_000,
                search_per_second: 100_000,
                daily: u64::MAX,
            },
            faults: Faults::default(),
            anchor: DataSpec::new(seed, contacts).anchor,
            inputs_defined: true,
            scopes: None,
        }
    }
}

/// Every scope the sandbox knows (what `scopes: None` grants).
pub const ALL_SCOPES: &[&str] = &[
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.deals.read",
];

/// The scope an endpoint needs, as HubSpot's scope reference assigns them.
fn required_scope(method: &axum::http::Method, path: &str) -> Option<String> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let write = *method != axum::http::Method::GET
        && !path.ends_with("/search")
        && !path.ends_with("/batch/read");
    let access = if write { "write" } else { "read" };
    let object = |name: &str| match name {
        "contact" | "contacts" => Some("contacts"),
        "company" | "companies" => Some("companies"),
        "deal" | "deals" => Some("deals"),
        _ => None,
    };
    match parts.as_slice() {
        ["crm", "v3", "properties", obj, ..] => {
            object(obj).map(|o| format!("crm.schemas.{o}.{access}"))
        }
        ["crm", "v4", "associations", from, ..] => {
            object(from).map(|o| format!("crm.objects.{o}.read"))
        }
        ["crm", "v3", "objects", obj, ..] => {
            object(obj).map(|o| format!("crm.objects.{o}.{access}"))
        }
        ["properties", "v2", obj, ..] => object(obj).map(|o| format!("crm.schemas.{o}.read")),
        _ => None,
    }
}

/// The sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("could not bind the sandbox to 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ObjectType {
    Contacts,
    Companies,
    Deals,
}

impl ObjectType {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "contacts" | "contact" | "0-1" => Some(Self::Contacts),
            "companies" | "company" | "0-2" => Some(Self::Companies),
            "deals" | "deal" | "0-3" => Some(Self::Deals),
            _ => None,
        }
    }

    fn modified_property(self) -> &'static str {
        match self {
            Self::Contacts => "lastmodifieddate",
            Self::Companies | Self::Deals => "hs_lastmodifieddate",
        }
    }

    fn default_properties(self) -> &'static [&'static str] {
        match self {
            Self::Contacts => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
            Self::Companies => &[
                "createdate",
                "domain",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
            ],
            Self::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
        }
    }
}

#[derive(Debug, Default)]
struct Db {
    contacts: BTreeMap<u64, Record>,
    companies: BTreeMap<u64, Record>,
    deals: BTreeMap<u64, Record>,
    /// Contact → deal associations (type 4).
    contact_deals: BTreeMap<u64, Vec<u64>>,
    schemas: BTreeMap<ObjectType, Schema>,
}

impl Db {
    fn table(&self, t: ObjectType) -> &BTreeMap<u64, Record> {
        match t {
            ObjectType::Contacts => &self.contacts,
            ObjectType::Companies => &self.companies,
            ObjectType::Deals => &self.deals,
        }
    }
    fn table_mut(&mut self, t: ObjectType) -> &mut BTreeMap<u64, Record> {
        match t {
            ObjectType::Contacts => &mut self.contacts,
            ObjectType::Companies => &mut self.companies,
            ObjectType::Deals => &mut self.deals,
        }
    }
}

/// The ids a search query matched, in its order, at one generation of the data.
#[derive(Debug)]
struct CachedMatches {
    object: ObjectType,
    key: String,
    generation: u64,
    ids: Arc<Vec<u64>>,
}

/// Searches whose matches are kept (oldest dropped first).
const MATCHES_CACHED: usize = 8;

#[derive(Debug)]
struct AppState {
    token: String,
    scopes: Vec<String>,
    limiter: Mutex<Limiter>,
    db: RwLock<Db>,
    /// Bumped by every write access to `db`; cached search matches are valid for one value.
    generation: std::sync::atomic::AtomicU64,
    /// The matches of recent search queries (a search index, in effect): a walk through many
    /// pages filters the table once, not once per page.
    matches_cache: Mutex<Vec<CachedMatches>>,
    requests: Mutex<BTreeMap<String, u64>>,
    /// Billed enrichment answers (one credit per 200).
    credits: std::sync::atomic::AtomicU64,
    /// The enrichment plan's rate limit.
    plan: Mutex<crate::enrich::PlanLimit>,
}

impl AppState {
    fn db(&self) -> std::sync::RwLockReadGuard<'_, Db> {
        self.db
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn db_mut(&self) -> std::sync::RwLockWriteGuard<'_, Db> {
        let guard = self
            .db
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bumped while the write lock is held: a reader (who holds the read lock while it
        // reads the generation and the data) never pairs new data with an old generation.
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        guard
    }
    fn limiter(&self) -> std::sync::MutexGuard<'_, Limiter> {
        self.limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count(&self, endpoint: String) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *requests.entry(endpoint).or_default() += 1;
    }
}

/// A running sandbox. Dropping it without [`Sandbox::shutdown`] stops the server too.
#[derive(Debug)]
pub struct Sandbox {
    addr: SocketAddr,
    state: Arc<AppState>,
    token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Sandbox {
    /// Generate the data and serve it on 127.0.0.1.
    ///
    /// # Errors
    /// [`SandboxError::Bind`] when the port is taken.
    pub async fn start(config: SandboxConfig) -> Result<Self, SandboxError> {
        let spec = DataSpec::anchored(config.seed, config.contacts, config.anchor);
        let (companies, mut contacts) = generate(spec);
        let mut contact_schema = Schema::standard("contactinformation", CONTACT_STANDARD);
        if !config.inputs_defined {
            for name in INPUT_PROPERTIES {
                contact_schema.properties.remove(*name);
                for c in &mut contacts {
                    c.properties.remove(*name);
                }
            }
        }
        let (deals, contact_deals) = generate_deals(spec, &contacts, &companies);
        let db = Db {
            contacts: contacts.into_iter().map(|r| (r.id, r)).collect(),
            companies: companies.into_iter().map(|r| (r.id, r)).collect(),
            deals: deals.into_iter().map(|r| (r.id, r)).collect(),
            contact_deals,
            schemas: BTreeMap::from([
                (ObjectType::Contacts, contact_schema),
                (
                    ObjectType::Companies,
                    Schema::standard("companyinformation", COMPANY_STANDARD),
                ),
                (
                    ObjectType::Deals,
                    Schema::standard("dealinformation", DEAL_STANDARD),
                ),
            ]),
        };
        let state = Arc::new(AppState {
            token: config.token.clone(),
            scopes: config
                .scopes
                .clone()
                .unwrap_or_else(|| ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect()),
            limiter: Mutex::new(Limiter::new(config.limits, config.faults, config.seed)),
            db: RwLock::new(db),
            generation: std::sync::atomic::AtomicU64::new(0),
            matches_cache: Mutex::default(),
            requests: Mutex::default(),
            credits: std::sync::atomic::AtomicU64::new(0),
            plan: Mutex::default(),
        });
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(SandboxError::Bind)?;
        let addr = listener.local_addr().map_err(SandboxError::Bind)?;
        // One write per response and no Nagle delay: a split write costs ~40 ms on loopback.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = served.await {
                tracing::error!(%error, "Sandbox server stopped with an error.");
            }
        });
        Ok(Self {
            addr,
            state,
            token: config.token,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the value for `CRM_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn contact(&self, id: u64) -> Option<Record> {
        self.state.db().contacts.get(&id).cloned()
    }

    pub fn contacts(&self) -> Vec<Record> {
        self.state.db().contacts.values().cloned().collect()
    }

    pub fn deals(&self) -> Vec<Record> {
        self.state.db().deals.values().cloned().collect()
    }

    /// Deal ids associated with a contact.
    pub fn contact_deals(&self, contact: u64) -> Vec<u64> {
        self.state
            .db()
            .contact_deals
            .get(&contact)
            .cloned()
            .unwrap_or_default()
    }

    pub fn companies(&self) -> Vec<Record> {
        self.state.db().companies.values().cloned().collect()
    }

    /// Requests served per endpoint (`POST /crm/v3/objects/contacts/search`, …).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Enrichment credits billed so far (one per 200 answer).
    pub fn credits(&self) -> u64 {
        self.state
            .credits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Limit the enrichment endpoint to `per_window` requests in any rolling `window` (a
    /// provider plan's limit) from now on.
    pub fn set_enrich_limit(&self, per_window: u32, window: std::time::Duration) {
        *self.plan() = crate::enrich::PlanLimit::new(per_window, window);
    }

    /// Enrichment requests that arrived over the plan's limit.
    pub fn enrich_violations(&self) -> u64 {
        self.plan().violations
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, crate::enrich::PlanLimit> {
        self.state
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the rate limiter and fault injection did so far.
    pub fn limit_stats(&self) -> LimitStats {
        self.state.limiter().stats
    }

    /// Replace the faults injected from now on.
    pub fn set_faults(&self, faults: Faults) {
        self.state.limiter().faults = faults;
    }

    /// Replace the rate limits from now on.
    pub fn set_limits(&self, limits: Limits) {
        self.state.limiter().limits = limits;
    }

    /// Change a contact as a CRM user would: set properties and bump its modification time.
    pub fn edit_contact(&self, id: u64, properties: &[(&str, &str)]) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.contacts.get_mut(&id) else {
            return false;
        };
        for (k, v) in properties {
            record.properties.insert((*k).to_owned(), (*v).to_owned());
        }
        record.touch(Utc::now(), ObjectType::Contacts.modified_property());
        true
    }

    /// Create a contact as a CRM user would; returns its id (higher than every existing one).
    pub fn create_contact(&self, properties: &[(&str, &str)]) -> u64 {
        let mut db = self.state.db_mut();
        let id = db
            .contacts
            .keys()
            .next_back()
            .map_or(1_000_001, |last| last + 1);
        let now = Utc::now();
        let mut record = Record {
            id,
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            created_at: now,
            updated_at: now,
            archived: false,
        };
        record
            .properties
            .insert("hs_object_id".into(), id.to_string());
        record.properties.insert("createdate".into(), iso(now));
        record.touch(now, ObjectType::Contacts.modified_property());
        db.contacts.insert(id, record);
        id
    }

    /// Merge contact `merged` into `primary` as HubSpot does: the primary keeps its id, lists
    /// the merged id (and the ids merged into that one) in `hs_merged_object_ids`, takes over
    /// its deals, and is modified; the merged contact is archived.
    pub fn merge_contacts(&self, primary: u64, merged: u64) -> bool {
        merge(&mut self.state.db_mut(), primary, merged, Utc::now())
    }

    /// Change a deal (e.g. close it won) as a rep does: its `hs_lastmodifieddate` moves, its
    /// contacts' records do not.
    pub fn edit_deal(&self, id: u64, properties: &[(&str, &str)]) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.deals.get_mut(&id) else {
            return false;
        };
        for (k, v) in properties {
            record.properties.insert((*k).to_owned(), (*v).to_owned());
        }
        record.touch(Utc::now(), ObjectType::Deals.modified_property());
        true
    }

    /// Define a property on `object` (`contacts`, `companies`, `deals`), as an admin creating
    /// it in HubSpot's settings would: `kind` is HubSpot's type (`string`, `number`, `date`,
    /// `datetime`, `enumeration`, `bool`), `field_type` its field type (`text`, `select`,
    /// `checkbox`, `booleancheckbox`, …). False for an unknown object.
    pub fn define_property(&self, object: &str, name: &str, kind: &str, field_type: &str) -> bool {
        let Some(t) = ObjectType::parse(object) else {
            return false;
        };
        let mut db = self.state.db_mut();
        let schema = db.schemas.entry(t).or_default();
        let group = schema.groups.keys().next().cloned().unwrap_or_default();
        schema.properties.insert(
            name.to_owned(),
            crate::properties::PropertyDef {
                name: name.to_owned(),
                label: name.to_owned(),
                kind: kind.to_owned(),
                field_type: field_type.to_owned(),
                group_name: group,
                description: String::new(),
                options: Vec::new(),
            },
        );
        true
    }

    /// The property definitions of `object`, by name.
    pub fn property_definitions(
        &self,
        object: &str,
    ) -> BTreeMap<String, crate::properties::PropertyDef> {
        ObjectType::parse(object)
            .and_then(|t| {
                self.state
                    .db()
                    .schemas
                    .get(&t)
                    .map(|s| s.properties.clone())
            })
            .unwrap_or_default()
    }

    /// Set properties on a company, as a user editing it in HubSpot would.
    pub fn edit_company(&self, id: u64, properties: &[(&str, &str)]) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.companies.get_mut(&id) else {
            return false;
        };
        for (k, v) in properties {
            record.properties.insert((*k).to_owned(), (*v).to_owned());
        }
        record.touch(Utc::now(), ObjectType::Companies.modified_property());
        true
    }

    /// Archive a contact, as deleting it in HubSpot does: it leaves search and batch reads.
    pub fn archive_contact(&self, id: u64) -> bool {
        let mut db = self.state.db_mut();
        let Some(record) = db.contacts.get_mut(&id) else {
            return false;
        };
        record.archived = true;
        record.touch(Utc::now(), ObjectType::Contacts.modified_property());
        true
    }

    /// Give every contact the same modification time (timestamps are not unique in HubSpot).
    pub fn stamp_all_contacts(&self, at: chrono::DateTime<Utc>) {
        let mut db = self.state.db_mut();
        for record in db.contacts.values_mut() {
            record.touch(at, ObjectType::Contacts.modified_property());
        }
    }

    /// Stop serving and wait for the server task to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn router(state: Arc<AppState>) -> Router {
    let crm = Router::new()
        .route("/crm/v3/objects/{object}", get(compat::list_objects))
        .route("/crm/v3/schemas", get(compat::schemas))
        .route(
            "/properties/v2/{object}/properties",
            get(compat::legacy_properties),
        )
        .route("/crm/v3/objects/{object}/search", post(search_objects))
        .route("/crm/v3/objects/{object}/merge", post(merge_objects))
        .route(
            "/crm/v3/objects/{object}/{id}",
            axum::routing::delete(archive_object),
        )
        .route("/crm/v3/objects/{object}/batch/read", post(batch_read))
        .route("/crm/v3/objects/{object}/batch/update", post(batch_update))
        .route("/crm/v3/objects/{object}/batch/upsert", post(batch_upsert))
        .route(
            "/crm/v4/associations/{from}/{to}/batch/read",
            post(read_associations),
        )
        .route(
            "/crm/v3/properties/{object}",
            get(list_properties).post(create_property),
        )
        .route(
            "/crm/v3/properties/{object}/{name}",
            axum::routing::patch(update_property),
        )
        .route(
            "/crm/v3/properties/{object}/groups",
            get(list_groups).post(create_group),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), govern))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let enrichment = Router::new()
        .route("/v5/company/enrich", get(enrich_company))
        .route_layer(middleware::from_fn_with_state(state.clone(), govern))
        .route_layer(middleware::from_fn_with_state(state.clone(), count_request));
    Router::new()
        .merge(crm)
        .merge(enrichment)
        .route(
            "/oauth/v2/private-apps/get/access-token-info",
            post(token_info),
        )
        .route("/__sandbox/credits", get(admin_credits))
        .route("/__sandbox/requests", get(admin_requests))
        .route("/__sandbox/limits", get(admin_limits))
        .route("/__sandbox/contacts/{id}/edit", post(admin_edit_contact))
        .route("/__sandbox/faults", axum::routing::put(admin_set_faults))
        .route("/__sandbox/objects/{object}/{id}", get(admin_object))
        .fallback(not_found)
        .with_state(state)
}

/// `POST /oauth/v2/private-apps/get/access-token-info`: the token (in the body, not a header)
/// → its account and scopes.
async fn token_info(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    state.count("POST /oauth/v2/private-apps/get/access-token-info".to_owned());
    let key = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("tokenKey").and_then(Value::as_str).map(str::to_owned));
    if key.as_deref() != Some(state.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "The access token is invalid or was revoked.",
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"userId": 1, "hubId": 1_234_567, "appId": 7_654_321, "scopes": state.scopes}),
    )
}

fn error(status: StatusCode, category: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "status": "error",
        "message": message.into(),
        "correlationId": "00000000-0000-4000-8000-000000000000",
        "category": category,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    // Serialise first so the response goes out as one buffer.
    (
        status,
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "Resource not found",
    )
}

async fn require_token(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let endpoint = format!("{} {}", req.method(), req.uri().path());
    state.count(endpoint);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(state.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    if let Some(scope) = required_scope(req.method(), req.uri().path())
        && !state.scopes.contains(&scope)
    {
        let body = json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
            "correlationId": "00000000-0000-4000-8000-000000000403",
            "errors": [{
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": [scope]},
            }],
            "category": "MISSING_SCOPES",
        });
        return json_response(StatusCode::FORBIDDEN, &body);
    }
    next.run(req).await
}

/// Rate limits, latency and injected faults, after authentication.
async fn govern(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let is_search = req.uri().path().ends_with("/search");
    let (verdict, latency, hang_ms, limits, daily_remaining) = {
        let mut limiter = state.limiter();
        let verdict = limiter.admit(is_search, std::time::Instant::now());
        (
            verdict,
            limiter.faults.latency_ms,
            limiter.faults.hang_ms,
            limiter.limits,
            limiter.daily_remaining(),
        )
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let (mut response, remaining) = match verdict {
        Verdict::RateLimited {
            policy,
            message,
            retry_after,
            remaining,
        } => {
            let body = json!({
                "status": "error",
                "message": message,
                "errorType": "RATE_LIMIT",
                "correlationId": "00000000-0000-4000-8000-000000000429",
                "policyName": policy,
            });
            let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            }
            (response, remaining)
        }
        Verdict::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                error(status, "INTERNAL_ERROR", "internal error (injected)"),
                0,
            )
        }
        Verdict::Pass {
            malformed,
            hang,
            remaining,
        } => {
            if hang {
                tokio::time::sleep(std::time::Duration::from_millis(hang_ms)).await;
            }
            let response = next.run(req).await;
            if malformed && response.status().is_success() {
                let (parts, body) = response.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let cut = bytes.slice(..bytes.len() / 2);
                (
                    Response::from_parts(parts, axum::body::Body::from(cut)),
                    remaining,
                )
            } else {
                (response, remaining)
            }
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-hubspot-ratelimit-max", u64::from(limits.per_window)),
        ("x-hubspot-ratelimit-remaining", u64::from(remaining)),
        (
            "x-hubspot-ratelimit-interval-milliseconds",
            limits.window_ms,
        ),
        (
            "x-hubspot-ratelimit-daily",
            limits.daily.min(i64::MAX as u64),
        ),
        (
            "x-hubspot-ratelimit-daily-remaining",
            daily_remaining.min(i64::MAX as u64),
        ),
    ] {
        headers.insert(name, header::HeaderValue::from(value));
    }
    response
}

/// The contact properties a bare portal lacks ([`SandboxConfig::inputs_defined`]).
const INPUT_PROPERTIES: &[&str] = &[
    "bant_budget",
    "bant_authority",
    "bant_need",
    "bant_timeline",
    "lead_rejection_reason",
];

/// The requested properties the object type defines: HubSpot leaves the others out of its
/// answers without a word (a misspelt property reads as never set).
fn defined(db: &Db, t: ObjectType, requested: &[String]) -> Vec<String> {
    let schema = db.schemas.get(&t);
    requested
        .iter()
        .filter(|name| schema.is_some_and(|s| s.properties.contains_key(*name)))
        .cloned()
        .collect()
}

fn render(record: &Record, t: ObjectType, requested: &[String]) -> Value {
    let mut props = serde_json::Map::new();
    for name in t.default_properties() {
        props.insert(
            (*name).to_owned(),
            record
                .properties
                .get(*name)
                .map_or(Value::Null, |v| Value::String(v.clone())),
        );
    }
    for name in requested {
        props.insert(
            name.clone(),
            record
                .properties
                .get(name)
                .map_or(Value::Null, |v| Value::String(v.clone())),
        );
    }
    let mut rendered = json!({
        "id": record.id.to_string(),
        "properties": props,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "archived": record.archived,
    });
    if record.archived {
        // Archiving is the record's last change.
        rendered["archivedAt"] = json!(iso(record.updated_at));
    }
    rendered
}

// The error is the 400 response itself, returned straight to the client.
#[allow(clippy::result_large_err)]
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Invalid input JSON: {e}"),
        )
    })
}

async fn search_objects(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    if body.len() > MAX_BODY_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Request body exceeds {MAX_BODY_CHARS} characters"),
        );
    }
    let mut req: SearchRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    // Some clients send one AND group as a top-level `filters` list.
    if req.filter_groups.is_empty() && !req.filters.is_empty() {
        req.filter_groups.push(search::FilterGroup {
            filters: std::mem::take(&mut req.filters),
        });
    }
    let params = match search::validate(&req) {
        Ok(p) => p,
        Err(invalid) => return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", invalid.0),
    };
    let lag_ms = state.limiter().faults.index_lag_ms;
    let db = state.db();
    let table = db.table(t);
    let requested = defined(&db, t, &req.properties);
    let render_page = |page: search::Page<'_>| {
        let results: Vec<Value> = page
            .results
            .iter()
            .map(|r| render(r, t, &requested))
            .collect();
        let mut body = json!({ "total": page.total, "results": results });
        if let Some(next) = page.next_after {
            body["paging"] = json!({ "next": { "after": next.to_string(), "link": null } });
        }
        json_response(StatusCode::OK, &body)
    };
    if lag_ms > 0 {
        // The search index lags behind writes: recently modified records are not visible yet.
        let indexed_before = Utc::now() - chrono::Duration::milliseconds(lag_ms as i64);
        let hits = search::matching(
            table.values().filter(|r| r.updated_at <= indexed_before),
            &req,
            &params,
            false,
        );
        return render_page(search::page(&hits, &params));
    }
    let floor = search::floor_walk(&req, &params);
    let ids = cached_matches(&state, t, table, &req, &params, floor.is_some());
    // A walk by id: the page starts at the floor of the kept matches.
    let start = floor.map_or(0, |f| ids.partition_point(|id| *id < f));
    let visible = &ids[start..];
    let chosen: Vec<&Record> = visible
        .iter()
        .skip(params.after)
        .take(params.limit)
        .filter_map(|id| table.get(id))
        .collect();
    let end = params.after + chosen.len();
    render_page(search::Page {
        total: visible.len(),
        results: chosen,
        next_after: (end < visible.len()).then_some(end),
    })
}

/// The ids `req` matches in `table`, in order — from the cache when the data has not changed
/// since they were found.
fn cached_matches(
    state: &AppState,
    t: ObjectType,
    table: &BTreeMap<u64, Record>,
    req: &SearchRequest,
    params: &search::Params,
    walk: bool,
) -> Arc<Vec<u64>> {
    let key = search::matches_key(req, params, walk);
    // Read under the caller's read lock on the data: no write can happen meanwhile.
    let generation = state.generation.load(std::sync::atomic::Ordering::Acquire);
    let lock = || {
        state
            .matches_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(hit) = lock()
        .iter()
        .find(|c| c.object == t && c.generation == generation && c.key == key)
    {
        return Arc::clone(&hit.ids);
    }
    // A record stamped in the future is not visible yet; such matches change with the clock
    // and are not kept.
    let now = Utc::now();
    let mut hidden = false;
    let ids: Arc<Vec<u64>> = Arc::new(
        search::matching(
            table.values().filter(|r| {
                let visible = r.updated_at <= now;
                hidden |= !visible;
                visible
            }),
            req,
            params,
            walk,
        )
        .iter()
        .map(|r| r.id)
        .collect(),
    );
    if !hidden {
        let mut cache = lock();
        cache.retain(|c| c.generation == generation);
        if cache.len() >= MATCHES_CACHED {
            cache.remove(0);
        }
        cache.push(CachedMatches {
            object: t,
            key,
            generation,
            ids: Arc::clone(&ids),
        });
    }
    ids
}

#[derive(Debug, serde::Deserialize)]
struct BatchInput {
    id: Value,
    #[serde(default, rename = "idProperty")]
    id_property: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
}

#[derive(Debug, serde::Deserialize)]
struct BatchRequest {
    inputs: Vec<BatchInput>,
    #[serde(default)]
    properties: Vec<String>,
}

const MAX_BATCH: usize = 100;

fn batch_body(results: Vec<Value>, errors: Vec<Value>, started: chrono::DateTime<Utc>) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(Utc::now()),
    });
    if !errors.is_empty() {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
    }
    json_response(status, &body)
}

fn row_error(category: &str, message: String, id: &str) -> Value {
    json!({ "status": "error", "category": category, "message": message, "context": { "ids": [id] } })
}

fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The object type and body of a batch call, or the 404/400 HubSpot answers instead.
#[allow(clippy::result_large_err)] // the error is the response itself
fn batch_request(object: &str, body: &Bytes) -> Result<(ObjectType, BatchRequest), Response> {
    let t = ObjectType::parse(object).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Resource not found",
        )
    })?;
    let req: BatchRequest = parse_body(body)?;
    if req.inputs.len() > MAX_BATCH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Batch size {} exceeds the limit of {MAX_BATCH} inputs",
                req.inputs.len()
            ),
        ));
    }
    Ok((t, req))
}

async fn batch_read(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let started = Utc::now();
    let (t, req) = match batch_request(&object, &body) {
        Ok(parsed) => parsed,
        Err(resp) => return resp,
    };
    let db = state.db();
    let requested = defined(&db, t, &req.properties);
    let (mut results, mut errors) = (vec![], vec![]);
    for input in &req.inputs {
        let id = id_text(&input.id);
        match id.parse::<u64>().ok().and_then(|n| db.table(t).get(&n)).filter(|r| !r.archived) {
            Some(record) => results.push(render(record, t, &requested)),
            None => errors.push(row_error("OBJECT_NOT_FOUND", format!("Could not get some {object} objects, they may be deleted or not exist. Check that ids are valid."), &id)),
        }
    }
    batch_body(results, errors, started)
}

/// Writing a property that does not exist fails the whole batch, as HubSpot does.
fn unknown_properties(db: &Db, t: ObjectType, req: &BatchRequest) -> Option<Response> {
    let schema = db.schemas.get(&t).map(|sc| &sc.properties);
    let unknown: Vec<String> = req
        .inputs
        .iter()
        .flat_map(|i| i.properties.keys())
        .filter(|name| schema.is_some_and(|props| !props.contains_key(*name)))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        let details: Vec<String> = unknown
            .iter()
            .map(|n| format!("{{\"isValid\":false,\"message\":\"Property \\\"{n}\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"{n}\"}}"))
            .collect();
        return Some(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Property values were not valid: [{}]", details.join(",")),
        ));
    }
    None
}

/// Upsert by a unique property (`email` on contacts): update the record that has the value,
/// or create one with it. Results say which were `new`.
async fn batch_upsert(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let started = Utc::now();
    let (t, req) = match batch_request(&object, &body) {
        Ok(parsed) => parsed,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    if let Some(refusal) = unknown_properties(&db, t, &req) {
        return refusal;
    }
    let unique = match t {
        ObjectType::Contacts => "email",
        ObjectType::Companies => "domain",
        ObjectType::Deals => "hs_object_id",
    };
    let mut results = vec![];
    let now = Utc::now();
    for input in &req.inputs {
        let id_property = input.id_property.as_deref().unwrap_or("hs_object_id");
        if id_property != unique && id_property != "hs_object_id" {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("idProperty {id_property} does not have hasUniqueValue"),
            );
        }
        let key = id_text(&input.id);
        let table = db.table_mut(t);
        let found = table
            .values()
            .find(|r| {
                !r.archived
                    && r.properties
                        .get(id_property)
                        .is_some_and(|v| v.eq_ignore_ascii_case(&key))
            })
            .map(|r| r.id);
        let (id, is_new) = match found {
            Some(id) => (id, false),
            None => {
                let id = table.keys().next_back().map_or(1, |last| last + 1);
                let mut record = Record {
                    id,
                    properties: BTreeMap::new(),
                    created_at: now,
                    updated_at: now,
                    archived: false,
                };
                record
                    .properties
                    .insert("hs_object_id".into(), id.to_string());
                record.properties.insert("createdate".into(), iso(now));
                record
                    .properties
                    .insert(id_property.to_owned(), key.clone());
                table.insert(id, record);
                (id, true)
            }
        };
        let Some(record) = table.get_mut(&id) else {
            continue;
        };
        for (name, value) in &input.properties {
            let text = match value {
                Value::String(v) => v.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            record.properties.insert(name.clone(), text);
        }
        record.touch(now, t.modified_property());
        let names: Vec<String> = input.properties.keys().cloned().collect();
        let mut rendered = render(record, t, &names);
        rendered["new"] = json!(is_new);
        results.push(rendered);
    }
    batch_body(results, vec![], started)
}

async fn batch_update(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let started = Utc::now();
    let (t, req) = match batch_request(&object, &body) {
        Ok(parsed) => parsed,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    if let Some(refusal) = unknown_properties(&db, t, &req) {
        return refusal;
    }
    let (mut results, mut errors) = (vec![], vec![]);
    let now = Utc::now();
    for input in &req.inputs {
        let id = id_text(&input.id);
        let Some(record) = id
            .parse::<u64>()
            .ok()
            .and_then(|n| db.table_mut(t).get_mut(&n))
            .filter(|r| !r.archived)
        else {
            errors.push(row_error(
                "OBJECT_NOT_FOUND",
                format!("Object {id} not found"),
                &id,
            ));
            continue;
        };
        let mut values = BTreeMap::new();
        let mut bad = None;
        for (name, value) in &input.properties {
            match value {
                Value::String(s) => values.insert(name.clone(), s.clone()),
                Value::Number(n) => values.insert(name.clone(), n.to_string()),
                Value::Bool(b) => values.insert(name.clone(), b.to_string()),
                Value::Null => values.insert(name.clone(), String::new()),
                _ => {
                    bad = Some(name.clone());
                    None
                }
            };
        }
        if let Some(name) = bad {
            errors.push(row_error(
                "VALIDATION_ERROR",
                format!("Property values were not valid: {name} must be a scalar"),
                &id,
            ));
            continue;
        }
        record.properties.extend(values);
        record.touch(now, t.modified_property());
        let names: Vec<String> = input.properties.keys().cloned().collect();
        results.push(render(record, t, &names));
    }
    batch_body(results, errors, started)
}

async fn admin_requests(State(state): State<Arc<AppState>>) -> Response {
    let counts = state
        .requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    json_response(StatusCode::OK, &json!(counts))
}

/// The v4 association batch read, contacts → companies (primary, type 1) and contacts → deals
/// (type 4). At most 1,000 inputs; ids without associations come back as errors (207).
async fn read_associations(
    State(state): State<Arc<AppState>>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Input {
        id: Value,
    }
    #[derive(serde::Deserialize)]
    struct Inputs {
        inputs: Vec<Input>,
    }
    let started = Utc::now();
    let (Some(from), Some(to)) = (ObjectType::parse(&from), ObjectType::parse(&to)) else {
        return not_found().await;
    };
    if from != ObjectType::Contacts && to != ObjectType::Contacts {
        return not_found().await;
    }
    let req: Inputs = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.inputs.len() > 1000 {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Batch size {} exceeds the limit of 1000 inputs",
                req.inputs.len()
            ),
        );
    }
    let db = state.db();
    let (mut results, mut errors) = (vec![], vec![]);
    for input in &req.inputs {
        let id = id_text(&input.id);
        let number = id.parse::<u64>().ok();
        // Deals and companies to their contacts (HubSpot's type ids 3 and 2).
        if from != ObjectType::Contacts {
            let live = number
                .and_then(|n| db.table(from).get(&n))
                .filter(|r| !r.archived);
            let targets: Vec<u64> = match (live, from) {
                (Some(deal), ObjectType::Deals) => db
                    .contact_deals
                    .iter()
                    .filter(|(_, deals)| deals.contains(&deal.id))
                    .map(|(contact, _)| *contact)
                    .collect(),
                (Some(company), _) => db
                    .contacts
                    .values()
                    .filter(|c| {
                        c.properties.get("associatedcompanyid") == Some(&company.id.to_string())
                    })
                    .map(|c| c.id)
                    .collect(),
                (None, _) => vec![],
            };
            let targets: Vec<u64> = targets
                .into_iter()
                .filter(|c| db.contacts.get(c).is_some_and(|r| !r.archived))
                .collect();
            if targets.is_empty() {
                errors.push(json!({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": format!("No contact is associated with {from:?} {id}."),
                    "context": { "fromObjectId": [id] },
                }));
                continue;
            }
            let type_id = if from == ObjectType::Deals { 3 } else { 2 };
            let to_list: Vec<Value> = targets
                .iter()
                .map(|c| json!({"toObjectId": c, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": Value::Null}]}))
                .collect();
            results.push(json!({ "from": { "id": id }, "to": to_list }));
            continue;
        }
        let contact = number
            .and_then(|n| db.contacts.get(&n))
            .filter(|c| !c.archived);
        let targets: Vec<(u64, u64, &str)> = match (contact, to) {
            (Some(c), ObjectType::Companies) => c
                .properties
                .get("associatedcompanyid")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|company| vec![(company, 1, "Primary")])
                .unwrap_or_default(),
            (Some(c), ObjectType::Deals) => db
                .contact_deals
                .get(&c.id)
                .map(|d| d.iter().map(|id| (*id, 4, "")).collect())
                .unwrap_or_default(),
            _ => vec![],
        };
        if targets.is_empty() {
            errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No {to:?} is associated with contact {id}."),
                "context": { "fromObjectId": [id] },
            }));
            continue;
        }
        let to_list: Vec<Value> = targets
            .iter()
            .map(|(to_id, type_id, label)| json!({
                "toObjectId": to_id,
                "associationTypes": [{ "category": "HUBSPOT_DEFINED", "typeId": type_id, "label": if label.is_empty() { Value::Null } else { json!(label) } }],
            }))
            .collect();
        results.push(json!({ "from": { "id": id }, "to": to_list }));
    }
    batch_body(results, errors, started)
}

/// `{"results": [...]}` of one part of an object type's schema (properties or groups).
async fn list_schema<T: serde::Serialize>(
    state: &AppState,
    object: &str,
    part: impl Fn(&Schema) -> Vec<&T>,
) -> Response {
    let Some(t) = ObjectType::parse(object) else {
        return not_found().await;
    };
    let db = state.db();
    let results: Vec<&T> = db.schemas.get(&t).map(part).unwrap_or_default();
    json_response(StatusCode::OK, &json!({ "results": results }))
}

async fn list_properties(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
) -> Response {
    if ObjectType::parse(&object).is_none()
        && let Some(defs) = compat::base_properties(&object)
    {
        return json_response(StatusCode::OK, &json!({ "results": defs }));
    }
    list_schema::<PropertyDef>(&state, &object, |s| s.properties.values().collect()).await
}

async fn create_property(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let def: PropertyDef = match parse_body(&body) {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    if !TYPES.contains(&def.kind.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("type {:?} is not one of {TYPES:?}", def.kind),
        );
    }
    if def.kind == "enumeration" && def.options.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "enumeration properties need options",
        );
    }
    let mut db = state.db_mut();
    let schema = db.schemas.entry(t).or_default();
    if !schema.groups.contains_key(&def.group_name) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("property group {} does not exist", def.group_name),
        );
    }
    if schema.properties.contains_key(&def.name) {
        return error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("Property named '{}' already exists.", def.name),
        );
    }
    schema.properties.insert(def.name.clone(), def.clone());
    json_response(StatusCode::CREATED, &json!(def))
}

/// `PATCH /crm/v3/properties/{object}/{name}`: change a property's label or options.
async fn update_property(
    State(state): State<Arc<AppState>>,
    Path((object, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Patch {
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        options: Option<Vec<crate::properties::PropertyOption>>,
    }
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let patch: Patch = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    let Some(def) = db
        .schemas
        .get_mut(&t)
        .and_then(|s| s.properties.get_mut(&name))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Property {name} does not exist"),
        );
    };
    if let Some(label) = patch.label {
        def.label = label;
    }
    if let Some(options) = patch.options {
        def.options = options;
    }
    json_response(StatusCode::OK, &json!(def))
}

async fn list_groups(State(state): State<Arc<AppState>>, Path(object): Path<String>) -> Response {
    list_schema::<GroupDef>(&state, &object, |s| s.groups.values().collect()).await
}

async fn create_group(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let group: GroupDef = match parse_body(&body) {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    let schema = db.schemas.entry(t).or_default();
    if schema.groups.contains_key(&group.name) {
        return error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("Property group named '{}' already exists.", group.name),
        );
    }
    schema.groups.insert(group.name.clone(), group.clone());
    json_response(StatusCode::CREATED, &json!(group))
}

/// Change a contact as a user would, while a sync runs: body `{"property": "value", …}`.
/// Merge two live contacts (see [`Sandbox::merge_contacts`]).
fn merge(db: &mut Db, primary: u64, merged: u64, at: chrono::DateTime<Utc>) -> bool {
    let live = |db: &Db, id| db.contacts.get(&id).is_some_and(|r| !r.archived);
    if primary == merged || !live(db, primary) || !live(db, merged) {
        return false;
    }
    let mut absorbed = vec![merged.to_string()];
    if let Some(record) = db.contacts.get_mut(&merged) {
        if let Some(ids) = record.properties.get("hs_merged_object_ids") {
            absorbed.extend(ids.split(';').filter(|i| !i.is_empty()).map(str::to_owned));
        }
        record.archived = true;
        record.touch(at, ObjectType::Contacts.modified_property());
    }
    let moved = db.contact_deals.remove(&merged).unwrap_or_default();
    let deals = db.contact_deals.entry(primary).or_default();
    for d in moved {
        if !deals.contains(&d) {
            deals.push(d);
        }
    }
    if let Some(record) = db.contacts.get_mut(&primary) {
        let ids = record
            .properties
            .entry("hs_merged_object_ids".to_owned())
            .or_default();
        for id in absorbed {
            if !ids.split(';').any(|i| i == id) {
                if !ids.is_empty() {
                    ids.push(';');
                }
                ids.push_str(&id);
            }
        }
        record.touch(at, ObjectType::Contacts.modified_property());
    }
    true
}

/// `POST /crm/v3/objects/contacts/merge` with `primaryObjectId` and `objectIdToMerge`: the
/// primary, merged, as HubSpot answers.
async fn merge_objects(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Merge {
        primary_object_id: Value,
        object_id_to_merge: Value,
    }
    if ObjectType::parse(&object) != Some(ObjectType::Contacts) {
        return not_found().await;
    }
    let req: Merge = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (Ok(primary), Ok(merged)) = (
        id_text(&req.primary_object_id).parse::<u64>(),
        id_text(&req.object_id_to_merge).parse::<u64>(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "primaryObjectId and objectIdToMerge must be contact ids",
        );
    };
    let mut db = state.db_mut();
    if !merge(&mut db, primary, merged, Utc::now()) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "cannot merge contact {merged} into {primary}: both must exist, differ and be live"
            ),
        );
    }
    let record = db.contacts[&primary].clone();
    drop(db);
    json_response(
        StatusCode::OK,
        &render(
            &record,
            ObjectType::Contacts,
            &["hs_merged_object_ids".to_owned()],
        ),
    )
}

/// `DELETE /crm/v3/objects/{type}/{id}`: archive the record (204), as HubSpot does.
async fn archive_object(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let mut db = state.db_mut();
    let Some(record) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| db.table_mut(t).get_mut(&id))
        .filter(|r| !r.archived)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("{object} {id} not found"),
        );
    };
    record.archived = true;
    record.touch(Utc::now(), t.modified_property());
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_edit_contact(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let properties: BTreeMap<String, String> = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    let Some(record) = db.contacts.get_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("contact {id} not found"),
        );
    };
    record.properties.extend(properties);
    record.touch(Utc::now(), ObjectType::Contacts.modified_property());
    json_response(StatusCode::OK, &json!(record))
}

async fn count_request(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    state.count(format!("{} {}", req.method(), req.uri().path()));
    next.run(req).await
}

/// `GET /v5/company/enrich?website=…` (PDL shape): the company whose domain matches.
async fn enrich_company(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(crate::enrich::API_KEY) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"status": 401, "error": {"type": "authentication_error", "message": "Invalid API key"}}),
        );
    }
    let admitted = state
        .plan
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(std::time::Instant::now());
    if !admitted {
        return json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &crate::enrich::rate_limited(),
        );
    }
    let Some(website) = query.get("website").map(|w| w.trim().to_lowercase()) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"status": 400, "error": {"type": "invalid_request_error", "message": "one of website, name, profile or ticker is required"}}),
        );
    };
    let db = state.db();
    match db.companies.values().find(|c| {
        c.properties
            .get("domain")
            .is_some_and(|d| d.eq_ignore_ascii_case(&website))
    }) {
        Some(company) => {
            state
                .credits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json_response(StatusCode::OK, &crate::enrich::company_answer(company))
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"status": 404, "error": {"type": "not_found", "message": "No records were found matching your request"}}),
        ),
    }
}

async fn admin_credits(State(state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"credits": state.credits.load(std::sync::atomic::Ordering::Relaxed)}),
    )
}

async fn admin_limits(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.limiter().stats;
    json_response(StatusCode::OK, &json!(stats))
}

async fn admin_set_faults(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            state.limiter().faults = faults;
            json_response(StatusCode::OK, &json!(faults))
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("faults: {e}"),
        ),
    }
}

async fn admin_object(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, u64)>,
    _headers: HeaderMap,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    match state.db().table(t).get(&id) {
        Some(record) => json_response(StatusCode::OK, &json!(record)),
        None => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("{object} {id} not found"),
        ),
    }
}
