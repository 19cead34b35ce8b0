//! `leadsync criteria check`, `publish` and `simulate`, and `leadsync score`: the criteria
//! document from the command line.
//!
//! - [`simulate`]: a proposed version against the current one over real leads (a run's
//!   snapshot in S3, or local files), and how that is printed.

mod simulate;

pub use simulate::{LeadsInput, SimulateFormat, print_simulation, simulate, simulate_snapshot};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use leadsync_domain::{Criteria, Lead};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

/// Output formats of `score`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Table,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn load(path: &Path) -> anyhow::Result<Result<Criteria, leadsync_domain::CriteriaError>> {
    Ok(Criteria::parse(&path.display().to_string(), &read(path)?))
}

/// Check a document: exit 0 when valid (saying whether it may be published), 1 with every
/// problem as `file:line:col: message` otherwise.
pub fn check(path: &Path) -> anyhow::Result<ExitCode> {
    match load(path)? {
        Err(error) => {
            eprintln!("{error}");
            eprintln!("{}: {} problem(s)", path.display(), error.issues.len());
            Ok(ExitCode::FAILURE)
        }
        Ok(criteria) => {
            println!(
                "{}: ok — {} version {} (effective {})",
                path.display(),
                criteria.id,
                criteria.version,
                criteria.effective
            );
            match (&criteria.sales_sign_off, &criteria.marketing_sign_off) {
                (Some(sales), Some(marketing)) => println!(
                    "  signed by sales ({}, {}) and marketing ({}, {}): may be published",
                    sales.name, sales.date, marketing.name, marketing.date
                ),
                (sales, marketing) => println!(
                    "  not signed by {}: can be checked and simulated, not published",
                    match (sales, marketing) {
                        (None, None) => "sales or marketing",
                        (None, Some(_)) => "sales",
                        _ => "marketing",
                    }
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Score every lead of a JSONL file, in input order. A line that is not a lead is reported on
/// stderr with its line number and skipped; the exit code is 1 when any line was skipped.
pub fn score(
    criteria_path: &Path,
    leads_path: &Path,
    now: Option<DateTime<Utc>>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let criteria = match load(criteria_path)? {
        Ok(c) => c,
        Err(error) => {
            eprintln!("{error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let now = now.unwrap_or_else(Utc::now);
    let file = std::fs::File::open(leads_path)
        .with_context(|| format!("cannot read {}", leads_path.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if matches!(format, Format::Table) {
        writeln!(
            out,
            "{:<14} {:<13} {:>5} {:>4} {:>4} {:>4}  reasons",
            "lead", "stage", "total", "band", "fit", "eng"
        )?;
    }
    let (mut scored, mut skipped) = (0u64, 0u64);
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line
            .with_context(|| format!("{}:{number}: cannot read the line", leads_path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let lead: Lead = match serde_json::from_str(&line) {
            Ok(lead) => lead,
            Err(e) => {
                eprintln!(
                    "{}:{number}: not a lead, skipped: {e}",
                    leads_path.display()
                );
                skipped += 1;
                continue;
            }
        };
        let card = criteria.evaluate(&lead, now);
        match format {
            Format::Jsonl => {
                let mut value = serde_json::to_value(&card)?;
                value["lead_id"] = serde_json::json!(lead.id);
                serde_json::to_writer(&mut out, &value)?;
                writeln!(out)?;
            }
            Format::Table => {
                let reasons: Vec<&str> = card.matched_codes().collect();
                writeln!(
                    out,
                    "{:<14} {:<13} {:>5} {:>4} {:>4} {:>4}  {}",
                    lead.id.as_str(),
                    card.stage.as_str(),
                    card.total,
                    card.band,
                    card.fit,
                    card.engagement,
                    reasons.join(" ")
                )?;
            }
        }
        scored += 1;
    }
    out.flush()?;
    eprintln!(
        "scored {scored} lead(s) with {} v{} as of {}; skipped {skipped} bad line(s)",
        criteria.id,
        criteria.version,
        now.to_rfc3339()
    );
    Ok(if skipped > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Publish a document to the deployment's bucket and table (AWS credentials, region and
/// `AWS_ENDPOINT_URL` from the environment). Refused — and the active version kept — unless the
/// document is valid and signed by both teams.
///
/// A document with `[fields]` is first checked against the CRM the functions use (configured
/// from the same environment: `CRM_KIND`, `CRM_BASE_URL`, `CRM_TOKEN`, …): a property the CRM
/// lacks, or of another type, refuses the publish by name and line.
pub async fn publish(
    path: &Path,
    table: &str,
    bucket: &str,
    skip_crm_check: bool,
) -> anyhow::Result<ExitCode> {
    let text = read(path)?;
    let sdk = leadsync_store::sdk_config().await;
    // An invalid document is reported by the registry below, with every problem.
    if let Ok(criteria) = Criteria::parse(&path.display().to_string(), &text)
        && !criteria.crm_reads().is_default()
    {
        if skip_crm_check {
            eprintln!(
                "warning: the document's [fields] were not checked against the CRM (--skip-crm-check); every run checks them before it pulls and stops if one does not hold"
            );
        } else {
            let lookup = |key: &str| match key {
                leadsync_app::config::TABLE_NAME => Some(table.to_owned()),
                leadsync_app::config::BUCKET_NAME => Some(bucket.to_owned()),
                _ => std::env::var(key).ok(),
            };
            let config = leadsync_app::Config::from_lookup(lookup).with_context(|| {
                "the document's [fields] are checked against the CRM before it is published: set the CRM's variables as the functions have them (CRM_KIND, CRM_BASE_URL, CRM_TOKEN or CRM_TOKEN_SECRET_ARN; SF_* for Salesforce), or pass --skip-crm-check"
            })?;
            let crm =
                leadsync_app::deps::build_crm(&config, &aws_sdk_secretsmanager::Client::new(&sdk))
                    .await?;
            match leadsync_pipeline::sync::prepare_reads(&crm, &criteria).await {
                Ok(()) => println!(
                    "[fields] checked against {}: {} mapped properties exist with the types the document reads",
                    leadsync_domain::ports::Crm::name(&crm),
                    criteria.fields.len()
                ),
                Err(error) => {
                    eprintln!("{error}");
                    if let leadsync_pipeline::sync::SyncError::Reads(source) = &error {
                        eprintln!("{source}");
                    }
                    eprintln!("nothing was published; the active criteria are unchanged");
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    let s3 = leadsync_store::s3_client(&sdk);
    let registry =
        leadsync_store::CriteriaStore::new(s3, aws_sdk_dynamodb::Client::new(&sdk), bucket, table);
    match registry
        .publish(&path.display().to_string(), &text, Utc::now())
        .await
    {
        Ok(published) => {
            let how = if published.new {
                "published and activated"
            } else {
                "already published; activated"
            };
            println!(
                "{} v{}: {how} (s3://{bucket}/{}, sha256 {})",
                published.id, published.version, published.key, published.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("{error}");
            eprintln!("nothing was published; the active criteria are unchanged");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod hostile_tests;
