//! The sandbox's HTTP server: its configuration, its state and the router. The routes live by
//! API area: `auth` (token, scopes, limits, faults), `objects` (render, search, merge,
//! archive), `batch`, `associations`, `properties`, `compat` (endpoints only third-party taps
//! call), `admin` (`/__sandbox/…` and the enrichment provider); `handle` is the running
//! sandbox tests hold.

mod admin;
mod associations;
mod auth;
mod batch;
mod compat;
mod handle;
mod objects;
mod properties;

use admin::*;
use associations::*;
use auth::*;
use batch::*;
use objects::*;
use properties::*;

pub use handle::Sandbox;

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

// The error is the 400 response itself, returned straight to the client.
