//! The rollups API's handler: finance's read path over the rollups, behind the `rollups-api`
//! Lambda function URL (payload 2.0, `AuthType: AWS_IAM`, so every caller is a signed IAM
//! principal).
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
//! read-only URL), 404 (unknown route or no rows), 409 (already closed), 500 (store failure;
//! retry).
//!
//! One binary, two URLs (`ROLLUPS_API_ACCESS`): `read` answers the GETs and refuses close and
//! export, under a role that can only read the table; `write` answers everything. Reading and
//! writing are thus separate IAM permissions (`FinanceReadPolicy`, `FinanceClosePolicy` in
//! `infra/template.yaml`).

use chrono::{DateTime, Utc};
use lambda_runtime::LambdaEvent;
use leadsync_domain::facts::is_period;
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::{RowBody, incentive_rows};
use leadsync_pipeline::rollups::{self, RollupError};
use leadsync_store::{DynamoLeadStore, S3SnapshotStore};
use serde_json::{Value, json};

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
#[derive(Debug)]
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
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(sdk.endpoint_url().is_some())
                .build(),
        );
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

fn response(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": body.to_string(),
    })
}

fn error(status: u16, message: impl std::fmt::Display) -> Value {
    response(status, &json!({"error": message.to_string()}))
}

/// Handle one function-URL request. Never fails as an invocation: errors are HTTP answers.
///
/// # Errors
/// None in practice; the signature is the runtime's.
pub async fn handle(
    event: LambdaEvent<Value>,
    api: &Api,
    now: DateTime<Utc>,
) -> Result<Value, lambda_runtime::Error> {
    let request = &event.payload;
    let method = request
        .pointer("/requestContext/http/method")
        .and_then(Value::as_str)
        .unwrap_or("GET");
    let path = request
        .get("rawPath")
        .and_then(Value::as_str)
        .unwrap_or("/");
    let query = |name: &str| {
        request
            .pointer(&format!("/queryStringParameters/{name}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let caller = request
        .pointer("/requestContext/authorizer/iam/userArn")
        .and_then(Value::as_str)
        .unwrap_or("unknown caller")
        .to_owned();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (period, action) = match parts.as_slice() {
        ["periods", period, action] => (*period, *action),
        _ => return Ok(error(404, format!("no route for {method} {path}"))),
    };
    if !is_period(period) {
        return Ok(error(400, format!("{period:?} is not a period (YYYY-MM)")));
    }
    let q = Query {
        version: query("version"),
        points: query("points"),
        stall_days: query("stall_days"),
        team: query("team"),
        owner: query("owner"),
    };
    let answer = route(api, method, period, action, &q, &caller, now).await;
    Ok(answer.unwrap_or_else(|e| {
        tracing::error!(error = %e, period, action, "Rollups request failed.");
        match e {
            RollupError::AlreadyClosed { .. } | RollupError::Busy { .. } => error(409, e),
            RollupError::BadPeriod(_) => error(400, e),
            _ => error(500, e),
        }
    }))
}

/// The query string parameters a route reads.
#[derive(Debug, Default)]
struct Query {
    version: Option<String>,
    points: Option<String>,
    stall_days: Option<String>,
    team: Option<String>,
    owner: Option<String>,
}

async fn route(
    api: &Api,
    method: &str,
    period: &str,
    action: &str,
    q: &Query,
    caller: &str,
    now: DateTime<Utc>,
) -> Result<Value, RollupError> {
    let store_error = |step| {
        move |source| RollupError::Store {
            step,
            period: period.to_owned(),
            source,
        }
    };
    if method == "POST" && api.access == Access::Read {
        return Ok(error(
            403,
            format!(
                "this URL is read-only: {action} goes to finance's admin URL (FinanceClosePolicy)"
            ),
        ));
    }
    if (method, action) == ("POST", "close") {
        let status = rollups::close(&api.store, period, caller, now).await?;
        leadsync_pipeline::dashboard::publish(&api.store, &api.exports, &[period.to_owned()], now)
            .await?;
        return Ok(response(200, &json!(status)));
    }
    if (method, action) == ("GET", "dashboard") {
        return Ok(
            match leadsync_pipeline::dashboard::page(&api.store, period, q.version.as_deref(), now)
                .await?
            {
                Some(html) => json!({
                    "statusCode": 200,
                    "headers": {"content-type": "text/html; charset=utf-8"},
                    "body": html,
                }),
                None => error(404, format!("period {period} has no rows")),
            },
        );
    }
    let rows = api
        .store
        .rows(period)
        .await
        .map_err(store_error("reading rows"))?;
    let Some(version) = q
        .version
        .clone()
        .or_else(|| rollups::busiest_version(&rows))
    else {
        return Ok(error(404, format!("period {period} has no incentive rows")));
    };
    let currency = api
        .store
        .plans()
        .await
        .map_err(store_error("reading plans"))?
        .get(&version)
        .map_or_else(|| "USD".to_owned(), |p| p.currency.clone());
    Ok(match (method, action) {
        ("GET", "kpis") => {
            let kpis: Vec<_> = rows
                .iter()
                .filter_map(|r| match r.parse() {
                    Ok(RowBody::Kpi(k)) if k.criteria_version == version => Some(k),
                    _ => None,
                })
                .collect();
            response(
                200,
                &json!({"period": period, "criteria_version": version, "kpis": kpis}),
            )
        }
        ("GET", "incentives") => {
            let (incentives, totals) = incentive_rows(&rows, &version);
            response(
                200,
                &json!({"period": period, "criteria_version": version, "currency": currency,
                        "incentives": incentives, "control_totals": totals}),
            )
        }
        ("GET", "funnel") => {
            let points = match q.points.as_deref().map(str::parse::<f64>) {
                None => 1.0,
                Some(Ok(p)) if (0.0..=100.0).contains(&p) => p,
                Some(_) => return Ok(error(400, "points must be a number from 0 to 100")),
            };
            let stall_days = match q.stall_days.as_deref().map(str::parse::<u32>) {
                None => 30,
                Some(Ok(d)) if (1..=365).contains(&d) => d,
                Some(_) => {
                    return Ok(error(
                        400,
                        "stall_days must be a whole number from 1 to 365",
                    ));
                }
            };
            let report =
                rollups::funnel_report(&api.store, period, &version, now, stall_days, points)
                    .await?;
            response(200, &json!(report))
        }
        ("GET", "statements") => {
            let team = match q.team.as_deref() {
                None => None,
                Some("sales") => Some(leadsync_domain::incentives::Team::Sales),
                Some("marketing") => Some(leadsync_domain::incentives::Team::Marketing),
                Some(other) => {
                    return Ok(error(
                        400,
                        format!("team {other:?}: expected sales or marketing"),
                    ));
                }
            };
            let mut lines = rollups::statements(&api.store, period, &version).await?;
            lines.retain(|l| {
                team.is_none_or(|t| l.team == t) && q.owner.as_ref().is_none_or(|o| &l.owner == o)
            });
            let total: i64 = lines.iter().map(|l| l.credit_cents).sum();
            response(
                200,
                &json!({"period": period, "criteria_version": version, "currency": currency,
                        "lines": lines, "total_credits_cents": total}),
            )
        }
        ("POST", "export") => {
            let (export, files) =
                rollups::export_files(&api.store, period, &version, &currency).await?;
            let mut written = Vec::new();
            for f in files {
                let key = api
                    .exports
                    .put_export_file(
                        period,
                        &version,
                        &f.name,
                        f.bytes,
                        &f.sha256,
                        f.content_type,
                        f.athena_table,
                    )
                    .await
                    .map_err(store_error("writing the export"))?;
                written.push(json!({"key": key, "sha256": f.sha256}));
            }
            response(
                200,
                &json!({"key": written[0]["key"], "sha256": export.sha256,
                        "control_totals": export.totals, "files": written}),
            )
        }
        _ => error(
            404,
            format!("no route for {method} /periods/{period}/{action}"),
        ),
    })
}
