//! `leadsync criteria check` and `leadsync score`: the criteria document from the command line.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use leadsync_domain::simulate::Simulation;
use leadsync_domain::{Criteria, Lead};
use leadsync_store::s3::StoredObject;
use std::collections::BTreeMap;
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

/// Where the simulated leads come from: a run's snapshot in S3, or local files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeadsInput {
    /// `s3://bucket/prefix`: the `.jsonl.gz` objects of one run under the prefix (every slice);
    /// the newest run when the prefix holds several.
    S3 { bucket: String, prefix: String },
    /// A JSON Lines file (gzipped or not), or a directory of them (`*.jsonl`, `*.jsonl.gz`).
    Local(std::path::PathBuf),
}

impl std::str::FromStr for LeadsInput {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!("{text}: no bucket (s3://BUCKET/PREFIX)"));
                }
                Ok(LeadsInput::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            None => Ok(LeadsInput::Local(text.into())),
        }
    }
}

/// One file or object of leads, read whole (a slice's snapshot is a few MB compressed).
struct Source {
    name: String,
    bytes: Vec<u8>,
}

impl Source {
    /// Its lines, gunzipped when it is gzip (by its magic bytes, whatever its name).
    fn lines(&self) -> Box<dyn Iterator<Item = std::io::Result<String>> + '_> {
        if self.bytes.starts_with(&[0x1f, 0x8b]) {
            Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(&self.bytes[..])).lines())
        } else {
            Box::new(BufReader::new(&self.bytes[..]).lines())
        }
    }
}

/// An S3 client for the environment's account (path-style against a local endpoint).
async fn s3_client() -> aws_sdk_s3::Client {
    let sdk = leadsync_store::sdk_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build(),
    )
}

/// The sources of an input, in a stable order; what was read is said on stderr.
/// `s3`: the client to read S3 with (default: one from the environment).
async fn sources(
    input: &LeadsInput,
    s3: Option<aws_sdk_s3::Client>,
) -> anyhow::Result<Vec<Source>> {
    match input {
        LeadsInput::Local(path) => {
            let mut files = Vec::new();
            if path.is_dir() {
                for entry in std::fs::read_dir(path)
                    .with_context(|| format!("cannot read the directory {}", path.display()))?
                {
                    let file = entry?.path();
                    let name = file.to_string_lossy();
                    if name.ends_with(".jsonl") || name.ends_with(".jsonl.gz") {
                        files.push(file);
                    }
                }
                files.sort();
                anyhow::ensure!(
                    !files.is_empty(),
                    "{}: no *.jsonl or *.jsonl.gz file in the directory",
                    path.display()
                );
            } else {
                files.push(path.clone());
            }
            files
                .into_iter()
                .map(|file| {
                    Ok(Source {
                        name: file.display().to_string(),
                        bytes: std::fs::read(&file)
                            .with_context(|| format!("cannot read {}", file.display()))?,
                    })
                })
                .collect()
        }
        LeadsInput::S3 { bucket, prefix } => {
            let client = match s3 {
                Some(client) => client,
                None => s3_client().await,
            };
            let store = leadsync_store::S3SnapshotStore::new(client, bucket.clone());
            let objects = store
                .list(prefix)
                .await
                .with_context(|| format!("cannot list s3://{bucket}/{prefix}"))?;
            // Group the snapshot objects by run: `snapshots/<date>/<run>/<slice>.jsonl.gz`.
            let mut runs: BTreeMap<&str, Vec<&StoredObject>> = BTreeMap::new();
            for object in objects.iter().filter(|o| o.key.ends_with(".jsonl.gz")) {
                let run = object.key.rsplit_once('/').map_or("", |(dir, _)| dir);
                runs.entry(run).or_default().push(object);
            }
            let newest =
                |slices: &[&StoredObject]| slices.iter().filter_map(|o| o.last_modified).max();
            let Some((run, slices)) = runs
                .iter()
                .max_by_key(|(run, slices)| (newest(slices), **run))
                .map(|(run, slices)| (*run, slices.clone()))
            else {
                anyhow::bail!(
                    "s3://{bucket}/{prefix}: no snapshot (*.jsonl.gz) under this prefix — runs write theirs under s3://{bucket}/snapshots/<date>/<run>/"
                );
            };
            if runs.len() > 1 {
                eprintln!(
                    "{} runs have snapshots under s3://{bucket}/{prefix}; reading the newest, s3://{bucket}/{run}/ (name a run's prefix to read another)",
                    runs.len()
                );
            }
            let bytes: i64 = slices.iter().map(|o| o.size.max(0)).sum();
            eprintln!(
                "reading {} slice snapshot(s) of s3://{bucket}/{run}/ ({:.2} MB compressed)",
                slices.len(),
                bytes as f64 / 1e6
            );
            let mut out = Vec::with_capacity(slices.len());
            for object in slices {
                out.push(Source {
                    name: format!("s3://{bucket}/{}", object.key),
                    bytes: store.get(&object.key, "GetObject snapshot").await?,
                });
            }
            Ok(out)
        }
    }
}

/// Compare two documents over the same leads: a run's snapshot in S3 (every slice) or local
/// JSON Lines. Bad lines are reported with their place and skipped (exit 1 when any was).
pub async fn simulate(
    current: &Path,
    proposed: &Path,
    input: &LeadsInput,
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
    let sources = sources(input, None).await?;
    let sim = simulate_over(&a, &b, &sources, now.unwrap_or_else(Utc::now))?;
    match format {
        SimulateFormat::Json => println!("{}", serde_json::to_string_pretty(&sim)?),
        SimulateFormat::Table => print_simulation(&sim, false),
    }
    Ok(if sim.skipped > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Score every lead of the sources under both documents.
fn simulate_over(
    a: &Criteria,
    b: &Criteria,
    sources: &[Source],
    now: DateTime<Utc>,
) -> anyhow::Result<Simulation> {
    let mut simulator = leadsync_domain::simulate::Simulator::new(a, b, now);
    for source in sources {
        for (index, line) in source.lines().enumerate() {
            let number = index + 1;
            let line =
                line.with_context(|| format!("{}:{number}: cannot read the line", source.name))?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LeadLine>(&line) {
                Ok(LeadLine::Snapshot { lead } | LeadLine::Plain(lead)) => {
                    if !simulator.add(&lead) {
                        eprintln!(
                            "{}:{number}: lead {} was met before; counted once",
                            source.name, lead.id
                        );
                    }
                }
                Err(e) => {
                    eprintln!(
                        "{}:{number}: not a lead or snapshot line, skipped: {e}",
                        source.name
                    );
                    simulator.skip();
                }
            }
        }
    }
    Ok(simulator.finish())
}

/// What a proposed document would change over the newest run's snapshot under
/// `s3://bucket/prefix` (the demo's step before it publishes).
pub async fn simulate_snapshot(
    a: &Criteria,
    b: &Criteria,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Simulation> {
    let input = LeadsInput::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    };
    simulate_over(a, b, &sources(&input, Some(s3.clone())).await?, now)
}

fn money(cents: i64) -> String {
    leadsync_pipeline::rollups::money(cents)
}

fn signed_money(cents: i64) -> String {
    format!("{}{}", if cents > 0 { "+" } else { "" }, money(cents))
}

/// The simulation as tables; `compact`: the transitions, conversion and credits only.
pub fn print_simulation(sim: &Simulation, compact: bool) {
    let stages = leadsync_domain::Stage::ALL.map(|s| s.as_str());
    println!(
        "{} leads: current {} → proposed {}; {} change stage (as of {})\n",
        sim.leads, sim.current, sim.proposed, sim.changed, sim.as_of
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
    if !compact {
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
    }
    println!(
        "\nwhat each stage's leads went on to do (sales verdicts and deals in the CRM)\n  {:<22} {:>6} {:>9} {:>9} {:>12} {:>11}",
        "stage", "leads", "accepted", "rejected", "with a deal", "won a deal"
    );
    let pct = |n: u64, of: u64| {
        if of == 0 {
            "–".to_owned()
        } else {
            format!("{:.0} %", n as f64 * 100.0 / of as f64)
        }
    };
    for stage in ["sql", "mql", "iql", "recycled", "disqualified"] {
        let Some(c) = sim.conversion.get(stage) else {
            continue;
        };
        for (doc, o) in [("current", &c.current), ("proposed", &c.proposed)] {
            println!(
                "  {:<22} {:>6} {:>9} {:>9} {:>12} {:>11}",
                format!("{stage} ({doc})"),
                o.leads,
                pct(o.sales_accepted, o.leads),
                pct(o.sales_rejected, o.leads),
                pct(o.opportunity, o.leads),
                pct(o.won, o.leads),
            );
        }
    }
    let currency = match (&sim.currency_current, &sim.currency_proposed) {
        (Some(c), Some(p)) if c != p => format!("{c} → {p}"),
        (Some(c), _) | (None, Some(c)) => c.clone(),
        (None, None) => {
            println!("\nneither document has [incentives]: nothing is credited");
            return;
        }
    };
    println!(
        "\ncredits per team and owner under each document's plan ({currency}): SQLs as each document stages these leads, sales verdicts and deals as the CRM has them, each deal once — all of them as of {}, not one month's ledger",
        sim.as_of
    );
    for (doc, c) in [
        ("current", &sim.currency_current),
        ("proposed", &sim.currency_proposed),
    ] {
        if c.is_none() {
            println!("  the {doc} document has no [incentives]: it credits nothing");
        }
    }
    println!(
        "  {:<10} {:<28} {:>12} {:>12} {:>12}",
        "team", "owner", "current", "proposed", "change"
    );
    let changed: Vec<_> = sim
        .credits
        .iter()
        .filter(|c| c.delta_cents() != 0)
        .collect();
    for c in &changed {
        println!(
            "  {:<10} {:<28} {:>12} {:>12} {:>12}",
            c.team.as_str(),
            c.owner,
            money(c.current_cents),
            money(c.proposed_cents),
            signed_money(c.delta_cents()),
        );
    }
    let same = sim.credits.len() - changed.len();
    if same > 0 {
        println!("  … {same} owner(s) and channel(s) credited the same under both");
    }
    for (team, (c, p)) in &sim.credit_totals {
        println!(
            "  {:<10} {:<28} {:>12} {:>12} {:>12}",
            team,
            "total",
            money(*c),
            money(*p),
            signed_money(p - c),
        );
    }
    if !compact {
        println!(
            "\nrules driving the changes (leads that changed stage)   now match   no longer match   matched both"
        );
        for (code, gained, lost, both) in sim.drivers.iter().take(15) {
            println!("  {code:<52} {gained:>9} {lost:>17} {both:>14}");
        }
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

#[cfg(test)]
mod hostile_tests;
