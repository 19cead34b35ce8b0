//! `leadsync criteria check` and `leadsync score`: the criteria document from the command line.

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

/// Output formats of `simulate`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SimulateFormat {
    Table,
    Json,
}

/// A line of the leads file: a lead, or a snapshot line (`{"lead": …, "scorecard": …}`).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LeadLine {
    Snapshot { lead: Lead },
    Plain(Lead),
}

/// What a proposed document would change, compared with the current one.
#[derive(Debug, Default, serde::Serialize)]
pub struct Simulation {
    pub current: String,
    pub proposed: String,
    pub leads: u64,
    pub skipped: u64,
    /// from stage → to stage → leads.
    pub matrix: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    pub changed: u64,
    /// band → leads, under each document.
    pub bands_current: std::collections::BTreeMap<String, u64>,
    pub bands_proposed: std::collections::BTreeMap<String, u64>,
    /// segment (`source:…`, `industry:…`) → qualified (MQL or SQL) leads under each document.
    pub segments: std::collections::BTreeMap<String, (u64, u64)>,
    /// For leads whose stage changed, per rule code: (now matched, no longer matched, matched
    /// under both — it carried the lead across a changed bar).
    pub drivers: Vec<(String, u64, u64, u64)>,
}

/// Compare two documents over the same leads. Bad lines are reported and skipped.
pub fn simulate(
    current: &Path,
    proposed: &Path,
    leads_path: &Path,
    now: Option<DateTime<Utc>>,
    format: SimulateFormat,
) -> anyhow::Result<ExitCode> {
    let (a, b) = match (load(current)?, load(proposed)?) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            for error in [a.err(), b.err()].into_iter().flatten() {
                eprintln!("{error}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let now = now.unwrap_or_else(Utc::now);
    let file = std::fs::File::open(leads_path)
        .with_context(|| format!("cannot read {}", leads_path.display()))?;
    let mut sim = Simulation {
        current: format!("{} v{}", a.id, a.version),
        proposed: format!("{} v{}", b.id, b.version),
        ..Simulation::default()
    };
    let mut drivers: std::collections::BTreeMap<String, (u64, u64, u64)> =
        std::collections::BTreeMap::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let line = line
            .with_context(|| format!("{}:{number}: cannot read the line", leads_path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let lead = match serde_json::from_str::<LeadLine>(&line) {
            Ok(LeadLine::Snapshot { lead } | LeadLine::Plain(lead)) => lead,
            Err(e) => {
                eprintln!(
                    "{}:{number}: not a lead or snapshot line, skipped: {e}",
                    leads_path.display()
                );
                sim.skipped += 1;
                continue;
            }
        };
        let (x, y) = (a.score(&lead, now), b.score(&lead, now));
        sim.leads += 1;
        *sim.matrix
            .entry(x.stage.as_str().to_owned())
            .or_default()
            .entry(y.stage.as_str().to_owned())
            .or_default() += 1;
        *sim.bands_current
            .entry(a.band_name(x.band).to_owned())
            .or_default() += 1;
        *sim.bands_proposed
            .entry(b.band_name(y.band).to_owned())
            .or_default() += 1;
        let qualified = |s: leadsync_domain::Stage| {
            u64::from(matches!(
                s,
                leadsync_domain::Stage::Mql | leadsync_domain::Stage::Sql
            ))
        };
        let industry = lead
            .firmographics
            .industry
            .as_ref()
            .map_or("unknown", |s| s.value.as_str());
        for segment in [
            format!("source:{}", lead.source.as_deref().unwrap_or("unknown")),
            format!("industry:{industry}"),
        ] {
            let entry = sim.segments.entry(segment).or_default();
            entry.0 += qualified(x.stage);
            entry.1 += qualified(y.stage);
        }
        if x.stage != y.stage {
            sim.changed += 1;
            let before: std::collections::BTreeSet<&str> = a.matched_codes(&x).collect();
            let after: std::collections::BTreeSet<&str> = b.matched_codes(&y).collect();
            for code in after.difference(&before) {
                drivers.entry((*code).to_owned()).or_default().0 += 1;
            }
            for code in before.difference(&after) {
                drivers.entry((*code).to_owned()).or_default().1 += 1;
            }
            for code in before.intersection(&after) {
                drivers.entry((*code).to_owned()).or_default().2 += 1;
            }
        }
    }
    sim.drivers = drivers
        .into_iter()
        .map(|(code, (gained, lost, both))| (code, gained, lost, both))
        .collect();
    sim.drivers.sort_by(|x, y| {
        (y.1 + y.2, y.3)
            .cmp(&(x.1 + x.2, x.3))
            .then_with(|| x.0.cmp(&y.0))
    });
    match format {
        SimulateFormat::Json => println!("{}", serde_json::to_string_pretty(&sim)?),
        SimulateFormat::Table => print_simulation(&sim),
    }
    Ok(if sim.skipped > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_simulation(sim: &Simulation) {
    let stages = leadsync_domain::Stage::ALL.map(|s| s.as_str());
    println!(
        "{} leads: current {} → proposed {}; {} change stage\n",
        sim.leads, sim.current, sim.proposed, sim.changed
    );
    println!("stage transitions (rows: current, columns: proposed)");
    print!("{:<14}", "");
    for to in stages {
        print!("{to:>13}");
    }
    println!();
    for from in stages {
        print!("{from:<14}");
        for to in stages {
            let n = sim
                .matrix
                .get(from)
                .and_then(|row| row.get(to))
                .copied()
                .unwrap_or(0);
            print!("{n:>13}");
        }
        println!();
    }
    println!("\nbands            current   proposed");
    let names: std::collections::BTreeSet<&String> = sim
        .bands_current
        .keys()
        .chain(sim.bands_proposed.keys())
        .collect();
    for band in names {
        let (c, p) = (
            sim.bands_current.get(band).copied().unwrap_or(0),
            sim.bands_proposed.get(band).copied().unwrap_or(0),
        );
        println!("  {band:<14} {c:>7} {p:>10}");
    }
    println!("\nqualified (MQL+SQL) by segment      current   proposed   change");
    for (segment, (c, p)) in &sim.segments {
        if c != p || *c > 0 {
            println!(
                "  {segment:<32} {c:>7} {p:>10} {:>+8}",
                *p as i64 - *c as i64
            );
        }
    }
    println!(
        "\nrules driving the changes (leads that changed stage)   now match   no longer match   matched both"
    );
    for (code, gained, lost, both) in sim.drivers.iter().take(15) {
        println!("  {code:<52} {gained:>9} {lost:>17} {both:>14}");
    }
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
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
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
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build(),
    );
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
