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

mod aws;
mod crm;

use aws::aws_checks;
pub use aws::s3_client;
use crm::crm_checks;

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
