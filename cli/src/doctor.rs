//! `leadsync doctor`: is this setup ready for a first run? One line per check — the CRM's
//! token, its scopes and rate tier, the properties leadsync reads and writes, the table, the
//! bucket, the criteria and their sign-off — each failure with what to do about it. Exit 1
//! when any check fails. It reads and never writes: nothing is created, pushed or published.

use leadsync_app::{AnyCrm, Config};
use leadsync_domain::Criteria;
use leadsync_domain::criteria::{CrmObject, CrmProperty};
use leadsync_domain::ports::{Crm, CrmError};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but something deserves a look.
    Warn,
    Fail,
    /// Not checked: nothing configured to check (e.g. no table for a dry run).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check's line: what was checked, what was found, and what to do when it failed.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn new(
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name,
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What to check: the table and bucket when given (flags or `TABLE_NAME` / `BUCKET_NAME`).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub table: Option<String>,
    pub bucket: Option<String>,
}

/// Run every check and print them; exit 1 when one failed.
///
/// # Errors
/// Only when the configuration itself cannot be read (a malformed variable, named).
pub async fn run(target: &Target) -> anyhow::Result<ExitCode> {
    let checks = checks(target).await?;
    print!("{}", render(&checks));
    Ok(if checks.iter().any(|c| c.status == Status::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The checks' lines, aligned, then a one-line verdict.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        let _ = writeln!(
            out,
            "{:<4}  {:<width$}  {}",
            c.status.label(),
            c.name,
            c.detail
        );
        if let Some(fix) = c
            .fix
            .as_ref()
            .filter(|f| c.status != Status::Ok && !f.is_empty())
        {
            let _ = writeln!(out, "      {:<width$}  → {fix}", "");
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    let _ = writeln!(
        out,
        "\n{}",
        if failed == 0 {
            format!(
                "ready: {} checks passed, {warned} with a warning",
                checks.len() - warned
            )
        } else {
            format!("not ready: {failed} of {} checks failed", checks.len())
        }
    );
    out
}

/// Every check, in the order an operator fixes them.
///
/// # Errors
/// A configuration variable that cannot be read.
pub async fn checks(target: &Target) -> anyhow::Result<Vec<Check>> {
    let config = local_config(target)?;
    let sdk = leadsync_store::sdk_config().await;
    let mut checks = Vec::new();
    let crm = match leadsync_app::deps::build_crm(
        &config,
        &aws_sdk_secretsmanager::Client::new(&sdk),
    )
    .await
    {
        Ok(crm) => Some(crm),
        Err(e) => {
            checks.push(Check::new(
                "crm token",
                Status::Fail,
                format!("no CRM client: {}", leadsync_app::chain(&e)),
                "set CRM_TOKEN (or CRM_TOKEN_SECRET_ARN) and CRM_BASE_URL as the functions have them",
            ));
            None
        }
    };
    let aws = aws_checks(target, &sdk).await;
    let table_usable = aws
        .iter()
        .any(|c| c.name == "table" && c.status != Status::Fail);
    let (criteria, criteria_check) =
        if config.criteria_file.is_none() && target.table.is_some() && !table_usable {
            (
                None,
                Check::new(
                    "criteria",
                    Status::Skip,
                    "the active version is read from the table, which failed its check",
                    "",
                ),
            )
        } else {
            criteria(&config, target, &sdk).await
        };
    if let Some(crm) = &crm {
        crm_checks(crm, &config, criteria.as_ref(), &mut checks).await;
    }
    checks.push(criteria_check);
    checks.extend(aws);
    Ok(checks)
}

/// The functions' configuration from the environment, the table and bucket optional: doctor
/// and a dry run work before anything is deployed.
pub fn local_config(target: &Target) -> anyhow::Result<Config> {
    use leadsync_app::config::{BUCKET_NAME, TABLE_NAME};
    let (table, bucket) = (target.table.clone(), target.bucket.clone());
    let lookup = move |key: &str| match key {
        TABLE_NAME => Some(table.clone().unwrap_or_else(|| "-".to_owned())),
        BUCKET_NAME => Some(bucket.clone().unwrap_or_else(|| "-".to_owned())),
        _ => std::env::var(key).ok(),
    };
    Ok(Config::from_lookup(lookup)?)
}

async fn crm_checks(
    crm: &AnyCrm,
    config: &Config,
    criteria: Option<&Criteria>,
    checks: &mut Vec<Check>,
) {
    match crm {
        AnyCrm::HubSpot(hubspot) => {
            let token = hubspot.token_info().await;
            let scopes_ok = match &token {
                Ok(info) => {
                    checks.push(Check::ok(
                        "crm token",
                        format!(
                            "HubSpot account {} (private app {}), {} scopes",
                            info.hub_id.map_or("?".to_owned(), |h| h.to_string()),
                            info.app_id.map_or("?".to_owned(), |a| a.to_string()),
                            info.scopes.len()
                        ),
                    ));
                    let missing = info.missing();
                    if missing.is_empty() {
                        checks.push(Check::ok(
                            "crm scopes",
                            format!(
                                "all {} scopes leadsync needs",
                                leadsync_hubspot::REQUIRED_SCOPES.len()
                            ),
                        ));
                        true
                    } else {
                        checks.push(Check::new(
                            "crm scopes",
                            Status::Fail,
                            format!(
                                "missing {}",
                                missing
                                    .iter()
                                    .map(|(scope, why)| format!("{scope} (to {why})"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            "add them in HubSpot under Settings › Integrations › Private apps › your app › Scopes, then set CRM_TOKEN to the app's token",
                        ));
                        false
                    }
                }
                Err(e) => {
                    checks.push(token_failed(e, "HubSpot"));
                    return;
                }
            };
            properties_check(crm, criteria, scopes_ok, checks).await;
            rate_check(hubspot.usage(), config, checks);
        }
        AnyCrm::Salesforce(sf) => {
            // The login and the describes every run starts with: the credentials, then every
            // field leadsync reads, checked against the integration user's view of the org.
            match sf.check_reads().await {
                Ok(()) => {
                    checks.push(Check::ok("crm token", "Salesforce login works"));
                    checks.push(Check::ok(
                        "crm properties read",
                        "every Lead, Contact, Account and Opportunity field leadsync reads is visible",
                    ));
                }
                // The adapter reports a refused login as the token endpoint's own 400 error
                // (`invalid_client`, `invalid_grant`): that is the credentials, not a field.
                Err(CrmError::Rejected { ref message, .. }) if message.contains("login") => {
                    let mut check = token_failed(&CrmError::Unauthorized, "Salesforce");
                    check.detail = format!("Salesforce: {message}");
                    checks.push(check);
                    return;
                }
                Err(e @ CrmError::Rejected { .. }) => {
                    checks.push(Check::ok("crm token", "Salesforce login works"));
                    checks.push(Check::new(
                        "crm properties read",
                        Status::Fail,
                        e.to_string(),
                        "create the fields, or grant the integration user read access to them (field-level security)",
                    ));
                }
                Err(e) => {
                    checks.push(token_failed(&e, "Salesforce"));
                    return;
                }
            }
            properties_check(crm, criteria, true, checks).await;
            let (used, allocation) = sf.api_usage();
            checks.push(if allocation == 0 {
                Check::new(
                    "crm rate tier",
                    Status::Warn,
                    "the org did not state its daily API allocation (Sforce-Limit-Info)",
                    "runs stop at SF_DAILY_BUDGET_SHARE of the allocation once the org states it",
                )
            } else {
                Check::ok(
                    "crm rate tier",
                    format!(
                        "{used} of the org's {allocation} API requests used today; a run stops at {:.0} % (SF_DAILY_BUDGET_SHARE)",
                        config
                            .salesforce
                            .as_ref()
                            .map_or(50.0, |s| s.daily_budget_share * 100.0)
                    ),
                )
            });
        }
    }
}

fn token_failed(e: &CrmError, crm: &str) -> Check {
    let fix = match e {
        CrmError::Unauthorized => match crm {
            "HubSpot" => {
                "create a private app (Settings › Integrations › Private apps) and set CRM_TOKEN to its access token"
            }
            _ => {
                "check SF_CLIENT_ID, SF_CLIENT_SECRET (or SF_USERNAME and SF_PRIVATE_KEY) and CRM_BASE_URL (the org's My Domain URL)"
            }
        },
        _ => "check CRM_BASE_URL and the network; the CRM did not answer",
    };
    Check::new("crm token", Status::Fail, format!("{crm}: {e}"), fix)
}

/// The properties leadsync reads (the adapter's standard ones and the criteria's `[fields]`)
/// and writes (its result properties, created on the first run when missing).
async fn properties_check(
    crm: &AnyCrm,
    criteria: Option<&Criteria>,
    can_create: bool,
    checks: &mut Vec<Check>,
) {
    if let AnyCrm::HubSpot(_) = crm {
        let contacts = match crm.describe_properties(CrmObject::Contact).await {
            Ok(p) => p,
            Err(e) => {
                checks.push(Check::new(
                    "crm properties read",
                    Status::Fail,
                    format!("cannot list the contact properties: {e}"),
                    "grant the token crm.schemas.contacts.read",
                ));
                return;
            }
        };
        let names: BTreeSet<&str> = contacts
            .iter()
            .map(|p: &CrmProperty| p.name.as_str())
            .collect();
        let missing: Vec<&str> = leadsync_hubspot::mapping::CONTACT_PROPERTIES
            .iter()
            .copied()
            .filter(|p| !names.contains(p))
            .filter(|p| {
                criteria.is_none_or(|c| !c.crm_property_specs().iter().any(|s| s.name == *p))
            })
            .collect();
        if missing.is_empty() {
            checks.push(Check::ok(
                "crm properties read",
                format!(
                    "the {} contact properties leadsync reads exist",
                    leadsync_hubspot::mapping::CONTACT_PROPERTIES.len()
                ),
            ));
        } else {
            checks.push(Check::new(
                "crm properties read",
                Status::Warn,
                format!(
                    "not defined on contacts: {} (read as never set)",
                    missing.join(", ")
                ),
                "these are HubSpot standard properties: check the portal's contact properties (Settings › Properties)",
            ));
        }
    }
    let Some(criteria) = criteria else {
        return;
    };
    let specs = criteria.crm_property_specs();
    match crm.missing_properties(&specs).await {
        Err(e) => checks.push(Check::new(
            "crm properties written",
            Status::Fail,
            format!("cannot list the properties leadsync writes: {e}"),
            "grant the token the scope to read contact properties (crm.schemas.contacts.read on HubSpot)",
        )),
        Ok(absent) if absent.is_empty() => checks.push(Check::ok(
            "crm properties written",
            format!("leadsync's {} properties exist", specs.len()),
        )),
        Ok(absent) if can_create => checks.push(Check::ok(
            "crm properties written",
            format!(
                "{} to be created on the first run: {}",
                absent.len(),
                absent.join(", ")
            ),
        )),
        Ok(absent) => checks.push(Check::new(
            "crm properties written",
            Status::Fail,
            format!("missing and cannot be created with this token: {}", absent.join(", ")),
            "grant crm.schemas.contacts.write, or create them by hand in leadsync's property group",
        )),
    }
    if criteria.crm_reads().is_default() {
        checks.push(Check::ok(
            "criteria fields",
            "the criteria map no CRM properties of their own",
        ));
        return;
    }
    match leadsync_pipeline::sync::prepare_reads(crm, criteria).await {
        Ok(()) => checks.push(Check::ok(
            "criteria fields",
            format!(
                "the {} [fields] the criteria map exist with the types they read",
                criteria.fields.len()
            ),
        )),
        Err(e) => {
            let mut detail = e.to_string();
            if let leadsync_pipeline::sync::SyncError::Reads(source) = &e {
                let _ = write!(detail, ": {source}");
            }
            checks.push(Check::new(
                "criteria fields",
                Status::Fail,
                detail.replace('\n', "\n        "),
                "create the property in the CRM, or correct its name in the criteria's [fields]",
            ));
        }
    }
}

/// The account's limits, from the headers of the answers so far, against `CRM_RATE_TIER`.
fn rate_check(usage: leadsync_hubspot::Usage, config: &Config, checks: &mut Vec<Check>) {
    let configured = u64::from(config.rate_per_10s);
    let daily = match (usage.daily_remaining, usage.daily) {
        (Some(left), Some(day)) if day < 1 << 40 => {
            format!("; {left} of {day} requests left today")
        }
        (Some(_), Some(_)) => "; no daily limit".to_owned(),
        _ => String::new(),
    };
    let Some(allowed) = usage
        .per_interval
        .filter(|_| usage.interval_ms == Some(10_000))
    else {
        checks.push(Check::new(
            "crm rate tier",
            Status::Warn,
            format!("HubSpot's answers carried no rate-limit headers{daily}"),
            "leave CRM_RATE_TIER=free unless the account is Professional or Enterprise",
        ));
        return;
    };
    let tier = usage.tier().unwrap_or("an unknown tier");
    if configured > allowed {
        checks.push(Check::new(
            "crm rate tier",
            Status::Fail,
            format!("CRM_RATE_TIER allows {configured} per 10 s; the account allows {allowed} ({tier}){daily}"),
            "set CRM_RATE_TIER=free: above the account's limit every run is throttled by 429s",
        ));
    } else if configured < allowed {
        checks.push(Check::new(
            "crm rate tier",
            Status::Warn,
            format!("the account allows {allowed} per 10 s ({tier}); CRM_RATE_TIER uses {configured}{daily}"),
            "set CRM_RATE_TIER=pro to use the account's whole limit",
        ));
    } else {
        checks.push(Check::ok(
            "crm rate tier",
            format!("{tier}, as CRM_RATE_TIER says{daily}"),
        ));
    }
}

/// Where the criteria a run would use come from, and their text: `CRITERIA_FILE`, else the
/// table's active version, else the bundled example (shared with `leadsync sync --dry-run`).
///
/// # Errors
/// The file cannot be read, or the table's active version cannot be.
pub async fn criteria_text(
    config: &Config,
    target: &Target,
    sdk: &aws_config::SdkConfig,
) -> Result<(String, String), String> {
    let bundled = || {
        (
            "bundled:b2b-saas.toml".to_owned(),
            leadsync_app::deps::BUNDLED_CRITERIA.to_owned(),
        )
    };
    if let Some(path) = &config.criteria_file {
        return std::fs::read_to_string(path)
            .map(|text| (path.display().to_string(), text))
            .map_err(|e| format!("cannot read {}: {e}", path.display()));
    }
    let (Some(table), Some(bucket)) = (&target.table, &target.bucket) else {
        return Ok(bundled());
    };
    let store = leadsync_store::CriteriaStore::new(
        s3_client(sdk),
        aws_sdk_dynamodb::Client::new(sdk),
        bucket.clone(),
        table.clone(),
    );
    match store.active().await {
        Ok(Some((key, text))) => Ok((format!("s3://{bucket}/{key}"), text)),
        Ok(None) => Ok(bundled()),
        Err(e) => Err(format!(
            "cannot read the active criteria: {}",
            leadsync_app::chain(&e).lines().next().unwrap_or_default()
        )),
    }
}

/// The criteria a run would score with ([`criteria_text`]) and whether both teams signed them.
async fn criteria(
    config: &Config,
    target: &Target,
    sdk: &aws_config::SdkConfig,
) -> (Option<Criteria>, Check) {
    let (name, text) = match criteria_text(config, target, sdk).await {
        Ok(found) => found,
        Err(detail) => {
            let fix = if config.criteria_file.is_some() {
                "set CRITERIA_FILE to the signed criteria document"
            } else {
                "fix the table and bucket checks below first"
            };
            return (None, Check::new("criteria", Status::Fail, detail, fix));
        }
    };
    match Criteria::parse(&name, &text) {
        Err(e) => (
            None,
            Check::new(
                "criteria",
                Status::Fail,
                format!("{name} is invalid:\n{e}"),
                "correct it (leadsync criteria check FILE lists every problem with file:line)",
            ),
        ),
        Ok(c) => {
            let check = if c.is_signed() {
                Check::ok(
                    "criteria",
                    format!(
                        "{} {} from {name}, signed by sales and marketing",
                        c.id, c.version
                    ),
                )
            } else {
                let who: Vec<&str> = [
                    c.sales_sign_off.is_none().then_some("sales"),
                    c.marketing_sign_off.is_none().then_some("marketing"),
                ]
                .into_iter()
                .flatten()
                .collect();
                Check::new(
                    "criteria",
                    Status::Fail,
                    format!(
                        "{} {} from {name} is not signed by {}",
                        c.id,
                        c.version,
                        who.join(" and ")
                    ),
                    "the agreement needs both teams' [approved_by] before it is used; publish a signed version",
                )
            };
            (Some(c), check)
        }
    }
}

pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build(),
    )
}

/// The table (exists, keys, index, TTL) and the bucket (exists, versioning), when named.
async fn aws_checks(target: &Target, sdk: &aws_config::SdkConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    match &target.table {
        None => checks.push(Check::new(
            "table",
            Status::Skip,
            "TABLE_NAME not set (a dry run needs none)",
            "",
        )),
        Some(table) => checks.push(table_check(&aws_sdk_dynamodb::Client::new(sdk), table).await),
    }
    match &target.bucket {
        None => checks.push(Check::new(
            "bucket",
            Status::Skip,
            "BUCKET_NAME not set (a dry run needs none)",
            "",
        )),
        Some(bucket) => checks.push(bucket_check(&s3_client(sdk), bucket).await),
    }
    checks
}

async fn table_check(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Check {
    use aws_sdk_dynamodb::types::{KeyType, TimeToLiveStatus};
    use leadsync_store::keys::{GSI1, GSI1_PK, GSI1_SK, PK, SK, TTL};
    let deploy =
        "deploy infra/template.yaml (its TableName output), or set TABLE_NAME to the stack's table";
    let described = match dynamo.describe_table().table_name(table).send().await {
        Ok(d) => d,
        Err(e) => {
            let not_found = e
                .as_service_error()
                .is_some_and(aws_sdk_dynamodb::operation::describe_table::DescribeTableError::is_resource_not_found_exception);
            return if not_found {
                Check::new(
                    "table",
                    Status::Fail,
                    format!("{table} does not exist"),
                    deploy,
                )
            } else {
                Check::new(
                    "table",
                    Status::Fail,
                    format!(
                        "cannot describe {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    ),
                    "check the AWS credentials and region (dynamodb:DescribeTable)",
                )
            };
        }
    };
    let Some(t) = described.table() else {
        return Check::new(
            "table",
            Status::Fail,
            format!("{table}: no description"),
            deploy,
        );
    };
    let key = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement], kind: KeyType| {
        schema
            .iter()
            .find(|k| *k.key_type() == kind)
            .map(|k| k.attribute_name().to_owned())
    };
    let keys = (
        key(t.key_schema(), KeyType::Hash),
        key(t.key_schema(), KeyType::Range),
    );
    if keys != (Some(PK.to_owned()), Some(SK.to_owned())) {
        return Check::new(
            "table",
            Status::Fail,
            format!("{table} is keyed {keys:?}, not ({PK}, {SK})"),
            "this is not a leadsync table: point TABLE_NAME at the stack's",
        );
    }
    let index = t
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(GSI1));
    let index_keys = index.map(|g| {
        (
            key(g.key_schema(), KeyType::Hash),
            key(g.key_schema(), KeyType::Range),
        )
    });
    if index_keys != Some((Some(GSI1_PK.to_owned()), Some(GSI1_SK.to_owned()))) {
        return Check::new(
            "table",
            Status::Fail,
            format!("{table} lacks the index {GSI1} ({GSI1_PK}, {GSI1_SK})"),
            deploy,
        );
    }
    let ttl = dynamo
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await;
    let ttl_on = ttl
        .as_ref()
        .ok()
        .and_then(|t| t.time_to_live_description())
        .is_some_and(|d| {
            d.time_to_live_status() == Some(&TimeToLiveStatus::Enabled)
                && d.attribute_name() == Some(TTL)
        });
    if ttl_on {
        Check::ok(
            "table",
            format!("{table}: keys, index {GSI1} and TTL on {TTL}"),
        )
    } else {
        Check::new(
            "table",
            Status::Warn,
            format!("{table}: keys and index fine, but TTL is not enabled on {TTL}"),
            format!(
                "enable TTL on attribute {TTL} (leases, cache answers and held leads expire by it)"
            ),
        )
    }
}

async fn bucket_check(s3: &aws_sdk_s3::Client, bucket: &str) -> Check {
    if let Err(e) = s3.head_bucket().bucket(bucket).send().await {
        let not_found = e
            .as_service_error()
            .is_some_and(aws_sdk_s3::operation::head_bucket::HeadBucketError::is_not_found);
        return Check::new(
            "bucket",
            Status::Fail,
            if not_found {
                format!("{bucket} does not exist")
            } else {
                format!(
                    "cannot reach {bucket}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            },
            "deploy infra/template.yaml (its BucketName output), or set BUCKET_NAME to the stack's bucket",
        );
    }
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) if v.status() == Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled) => {
            Check::ok("bucket", format!("{bucket}: exists, versioning on"))
        }
        Ok(_) => Check::new(
            "bucket",
            Status::Warn,
            format!("{bucket}: exists, versioning off"),
            "turn versioning on: criteria documents and exports are kept by version",
        ),
        // moto answers under another root element (`GetBucketVersioningResponse`), which the
        // SDK refuses: the status is read from the answer's text then.
        Err(e)
            if e.raw_response()
                .and_then(|r| r.body().bytes())
                .is_some_and(|b| {
                    String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")
                }) =>
        {
            Check::ok("bucket", format!("{bucket}: exists, versioning on"))
        }
        Err(e) => Check::new(
            "bucket",
            Status::Warn,
            format!(
                "{bucket}: exists, versioning unknown ({})",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
            "allow s3:GetBucketVersioning to check it",
        ),
    }
}
