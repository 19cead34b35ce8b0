//! `leadsync criteria simulate`: a proposed criteria version against the current one over the
//! same leads — a run's snapshot in S3 (every slice of the newest run under a prefix) or local
//! JSON Lines files — and the report both teams read before they sign.

use super::load;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use leadsync_domain::simulate::Simulation;
use leadsync_domain::{Criteria, Lead};
use leadsync_store::s3::StoredObject;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::ExitCode;

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
pub(super) struct Source {
    pub(super) name: String,
    pub(super) bytes: Vec<u8>,
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
    leadsync_store::s3_client(&leadsync_store::sdk_config().await)
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
pub(super) fn simulate_over(
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
