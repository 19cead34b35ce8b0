//! The rollups API: finance's read path over the rollups, an axum [`Router`] served by
//! `lambda_http` behind the `rollups-api` Lambda function URL (payload 2.0, `AuthType:
//! AWS_IAM`, so every caller is a signed IAM principal).
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/periods/{YYYY-MM}/kpis[?version=V]` | the month's KPI rows (every dimension) |
//! | GET | `/periods/{YYYY-MM}/incentives[?version=V]` | incentive rows and control totals |
//! | GET | `/periods/{YYYY-MM}/funnel[?version=V&points=N&stall_days=D]` | the cohort funnel: entered, advanced, lost by kind with reasons, still in stage (stalled), revenue sensitivity |
//! | GET | `/periods/{YYYY-MM}/statements[?version=V&team=T&owner=O]` | every credited lead or deal behind each incentive row |
//! | GET | `/periods/{YYYY-MM}/dashboard[?version=V]` | the shared dashboard page (`text/html`) |
//! | POST | `/periods/{YYYY-MM}/close` | freeze the period (closed by the caller's IAM ARN); its dashboard is republished, marked closed |
//! | POST | `/periods/{YYYY-MM}/export[?version=V]` | incentives and statements as CSV (corrections included) and Parquet, the KPI table as Parquet, each with its `.sha256`, to `s3://BUCKET/exports/P/` (Parquet also under `athena/`) |
//!
//! Errors are JSON `{"error": "..."}` with 400 (bad period or query), 403 (a write on the
//! read-only URL), 404 (no route for the method and path, or no rows), 409 (already closed),
//! 500 (store failure; retry).
//!
//! One binary, two URLs (`ROLLUPS_API_ACCESS`): `read` answers the GETs and refuses close and
//! export, under a role that can only read the table; `write` answers everything. Reading and
//! writing are thus separate IAM permissions (`FinanceReadPolicy`, `FinanceClosePolicy` in
//! `infra/template.yaml`).

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_runtime::LambdaEvent;
use leadsync_domain::facts::is_period;
use leadsync_domain::incentives::Team;
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::{RowBody, incentive_rows};
use leadsync_pipeline::rollups::{self, RollupError};
use leadsync_store::{DynamoLeadStore, S3SnapshotStore};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Configuration missing at cold start.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is required or invalid")]
pub struct MissingConfig(&'static str);

/// What a URL may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GETs only: close and export are refused (403).
    Read,
    /// Everything.
    Write,
}

/// The stores the API reads and writes.
#[derive(Debug, Clone)]
pub struct Api {
    pub store: DynamoLeadStore,
    pub exports: S3SnapshotStore,
    pub access: Access,
}

impl Api {
    /// # Errors
    /// [`MissingConfig`] naming the key.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, MissingConfig> {
        let get = |k: &'static str| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(MissingConfig(k))
        };
        let (table, bucket) = (get("TABLE_NAME")?, get("BUCKET_NAME")?);
        // Read-only unless told otherwise: a URL that can close periods is set up on purpose.
        let access = match std::env::var("ROLLUPS_API_ACCESS").as_deref() {
            Ok("write") => Access::Write,
            Ok("read") | Err(_) => Access::Read,
            Ok(_) => return Err(MissingConfig("ROLLUPS_API_ACCESS (read or write)")),
        };
        let s3 = leadsync_store::s3_client(sdk);
        // The CRM's namespace in the table (CRM_KIND, as the sync functions read it).
        let crm = match std::env::var("CRM_KIND").as_deref() {
            Ok("hubspot") | Ok("") | Err(_) => "hubspot",
            Ok("salesforce") => "salesforce",
            Ok(_) => return Err(MissingConfig("CRM_KIND (hubspot or salesforce)")),
        };
        Ok(Self {
            store: DynamoLeadStore::new(aws_sdk_dynamodb::Client::new(sdk), table, crm),
            exports: S3SnapshotStore::new(s3, bucket),
            access,
        })
    }
}

/// The clock a request is answered at (the wall clock in Lambda; fixed in tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// What every handler shares.
#[derive(Clone)]
struct Shared {
    api: Arc<Api>,
    clock: Clock,
}

/// The API's routes over `api`, answering at `clock`'s time.
pub fn router(api: Arc<Api>, clock: Clock) -> Router {
    // The read-only URL knows the write routes, to refuse them by name.
    let write = |route: MethodRouter<Shared>| match api.access {
        Access::Write => route,
        Access::Read => post(read_only),
    };
    Router::new()
        .route("/periods/{period}/kpis", get(kpis))
        .route("/periods/{period}/incentives", get(incentives))
        .route("/periods/{period}/funnel", get(funnel))
        .route("/periods/{period}/statements", get(statements))
        .route("/periods/{period}/dashboard", get(dashboard))
        .route("/periods/{period}/close", write(post(close)))
        .route("/periods/{period}/export", write(post(export)))
        // A known path asked with another method has no route either (404, as before).
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        .with_state(Shared {
            clock,
            api: api.clone(),
        })
}

/// Answer one function-URL event (payload 2.0 as JSON) through [`router`] at `now`, exactly as
/// `lambda_http` does in the Lambda: the local tools' and the tests' way in.
///
/// # Errors
/// The payload is not an HTTP event `lambda_http` reads.
pub async fn handle(
    event: LambdaEvent<Value>,
    api: &Api,
    now: DateTime<Utc>,
) -> Result<Value, lambda_runtime::Error> {
    use lambda_http::tower::ServiceExt;
    let (payload, context) = event.into_parts();
    let request: lambda_http::request::LambdaRequest = serde_json::from_value(payload)?;
    let app = router(Arc::new(api.clone()), Arc::new(move || now));
    let response = lambda_http::Adapter::from(app)
        .oneshot(LambdaEvent::new(request, context))
        .await?;
    Ok(serde_json::to_value(response)?)
}

/// An answer that is not a 200: JSON `{"error": ...}` with its status.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self(status, message.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<RollupError> for ApiError {
    fn from(e: RollupError) -> Self {
        tracing::error!(error = %e, "Rollups request failed.");
        let status = match e {
            RollupError::AlreadyClosed { .. } | RollupError::Busy { .. } => StatusCode::CONFLICT,
            RollupError::BadPeriod(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e)
    }
}

type Answer = Result<Response, ApiError>;

/// The query string parameters the routes read.
#[derive(Debug, Default, Deserialize)]
struct Params {
    version: Option<String>,
    points: Option<String>,
    stall_days: Option<String>,
    team: Option<String>,
    owner: Option<String>,
}

/// The IAM principal that signed the request (function URL, `AWS_IAM`).
struct Caller(String);

impl<S: Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let arn = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(context)) => context
                .authorizer
                .as_ref()
                .and_then(|a| a.iam.as_ref())
                .and_then(|iam| iam.user_arn.clone()),
            _ => None,
        };
        Ok(Self(arn.unwrap_or_else(|| "unknown caller".to_owned())))
    }
}

/// The path's period, checked (400 when it is not `YYYY-MM`).
struct Period(String);

impl<S: Send + Sync> FromRequestParts<S> for Period {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(period) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        if is_period(&period) {
            Ok(Self(period))
        } else {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{period:?} is not a period (YYYY-MM)"),
            ))
        }
    }
}

fn ok(body: &Value) -> Response {
    Json(body).into_response()
}

/// What a report route reads: the period's rows under the criteria version asked (or the
/// busiest; 404 when the period has none), that plan's currency, and the query.
struct Reported {
    period: String,
    rows: Vec<leadsync_domain::rollup::RollupRow>,
    version: String,
    currency: String,
    query: Params,
}

impl FromRequestParts<Shared> for Reported {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let Period(period) = Period::from_request_parts(parts, state).await?;
        let Query(query) = Query::<Params>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        let store_error = |step| {
            let period = period.clone();
            move |source| RollupError::Store {
                step,
                period,
                source,
            }
        };
        let store = &state.api.store;
        let rows = store
            .rows(&period)
            .await
            .map_err(store_error("reading rows"))?;
        let Some(version) = query
            .version
            .clone()
            .or_else(|| rollups::busiest_version(&rows))
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("period {period} has no incentive rows"),
            ));
        };
        let currency = store
            .plans()
            .await
            .map_err(store_error("reading plans"))?
            .get(&version)
            .map_or_else(|| "USD".to_owned(), |p| p.currency.clone());
        Ok(Self {
            period,
            rows,
            version,
            currency,
            query,
        })
    }
}

async fn kpis(r: Reported) -> Answer {
    let kpis: Vec<_> = r
        .rows
        .iter()
        .filter_map(|row| match row.parse() {
            Ok(RowBody::Kpi(k)) if k.criteria_version == r.version => Some(k),
            _ => None,
        })
        .collect();
    Ok(ok(
        &json!({"period": r.period, "criteria_version": r.version, "kpis": kpis}),
    ))
}

async fn incentives(r: Reported) -> Answer {
    let (incentives, totals) = incentive_rows(&r.rows, &r.version);
    Ok(ok(
        &json!({"period": r.period, "criteria_version": r.version, "currency": r.currency,
                "incentives": incentives, "control_totals": totals}),
    ))
}

/// A query value parsed and in `range`, `default` when absent; a 400 saying `expected` else.
fn within<T: std::str::FromStr + PartialOrd>(
    value: Option<&str>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    expected: &str,
) -> Result<T, ApiError> {
    match value.map(str::parse::<T>) {
        None => Ok(default),
        Some(Ok(v)) if range.contains(&v) => Ok(v),
        Some(_) => Err(ApiError::new(StatusCode::BAD_REQUEST, expected)),
    }
}

async fn funnel(State(s): State<Shared>, r: Reported) -> Answer {
    let points = within(
        r.query.points.as_deref(),
        1.0,
        0.0..=100.0,
        "points must be a number from 0 to 100",
    )?;
    let stall_days = within(
        r.query.stall_days.as_deref(),
        30,
        1..=365,
        "stall_days must be a whole number from 1 to 365",
    )?;
    let report = rollups::funnel_report(
        &s.api.store,
        &r.period,
        &r.version,
        (s.clock)(),
        stall_days,
        points,
    )
    .await?;
    Ok(ok(&json!(report)))
}

async fn statements(State(s): State<Shared>, r: Reported) -> Answer {
    let team = match r.query.team.as_deref() {
        None => None,
        Some("sales") => Some(Team::Sales),
        Some("marketing") => Some(Team::Marketing),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("team {other:?}: expected sales or marketing"),
            ));
        }
    };
    let mut lines = rollups::statements(&s.api.store, &r.period, &r.version).await?;
    let owner = r.query.owner.as_ref();
    lines.retain(|l| team.is_none_or(|t| l.team == t) && owner.is_none_or(|o| &l.owner == o));
    let total: i64 = lines.iter().map(|l| l.credit_cents).sum();
    Ok(ok(
        &json!({"period": r.period, "criteria_version": r.version, "currency": r.currency,
                "lines": lines, "total_credits_cents": total}),
    ))
}

async fn dashboard(
    State(s): State<Shared>,
    Period(period): Period,
    Query(q): Query<Params>,
) -> Answer {
    let page = leadsync_pipeline::dashboard::page(
        &s.api.store,
        &period,
        q.version.as_deref(),
        (s.clock)(),
    )
    .await?;
    match page {
        Some(html) => {
            Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("period {period} has no rows"),
        )),
    }
}

async fn close(State(s): State<Shared>, Period(period): Period, Caller(caller): Caller) -> Answer {
    let now = (s.clock)();
    let status = rollups::close(&s.api.store, &period, &caller, now).await?;
    leadsync_pipeline::dashboard::publish(&s.api.store, &s.api.exports, &[period], now).await?;
    Ok(ok(&json!(status)))
}

async fn export(State(s): State<Shared>, r: Reported) -> Answer {
    let period = r.period;
    let (export, files) =
        rollups::export_files(&s.api.store, &period, &r.version, &r.currency).await?;
    let written: Vec<Value> = write_export(&s.api.exports, &period, &r.version, files)
        .await
        .map_err(|source| RollupError::Store {
            step: "writing the export",
            period: period.clone(),
            source,
        })?
        .into_iter()
        .map(|w| json!({"key": w.key, "sha256": w.sha256}))
        .collect();
    Ok(ok(
        &json!({"key": written.first().map(|w| &w["key"]), "sha256": export.sha256,
                "control_totals": export.totals, "files": written}),
    ))
}

/// One export file as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub key: String,
    pub sha256: String,
    pub size: usize,
}

/// Write a period's export files to the bucket, each beside its `.sha256` (Parquet also where
/// the Glue tables read), in order: finance's API and `leadsync rollups export` alike.
///
/// # Errors
/// The first put S3 refuses.
pub async fn write_export(
    exports: &S3SnapshotStore,
    period: &str,
    version: &str,
    files: Vec<rollups::ExportFile>,
) -> Result<Vec<Written>, leadsync_domain::ports::StoreError> {
    let mut written = Vec::with_capacity(files.len());
    for f in files {
        let size = f.bytes.len();
        let key = exports
            .put_export_file(
                period,
                version,
                &f.name,
                f.bytes,
                &f.sha256,
                f.content_type,
                f.athena_table,
            )
            .await?;
        written.push(Written {
            key,
            sha256: f.sha256,
            size,
        });
    }
    Ok(written)
}

async fn read_only(uri: Uri) -> ApiError {
    let action = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("this URL is read-only: {action} goes to finance's admin URL (FinanceClosePolicy)"),
    )
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {method} {}", uri.path()),
    )
}
