//! `leadsync-bench compare`: leadsync's pull side by side with the HubSpot extractors teams use
//! today — the singer-io `tap-hubspot`, MeltanoLabs' `meltano-tap-hubspot` and
//! `airbyte-source-hubspot` — on one sandbox with fixed data.
//!
//! Every system runs as its own process against the same sandbox (itself a separate process),
//! interleaved (the order rotates every repeat) and repeated; medians are reported. Each run
//! writes its records to stdout as the extractors do (one JSON message per record), which the
//! bench reads and counts. Each process reports its own CPU time and peak RSS at exit
//! (`getrusage` for the Python extractors, `/proc/self` for leadsync), and the sandbox counts
//! the requests made.
//!
//! The extractors are installed from PyPI into their own virtualenvs on first use (pinned
//! versions, under `--venv-dir`); `peers/peer.py` points their hard-coded `api.hubapi.com` at the
//! sandbox and refuses any request off loopback.

use anyhow::{Context as _, bail};
use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod report;
pub use report::{chart_svg, goals, markdown, met, thousands};

const PEER_PY: &str = include_str!("../peers/peer.py");

/// A third-party extractor, pinned.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The name `peer.py` knows it by, and its virtualenv's directory name.
    pub system: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// What it reads contacts with.
    pub endpoint: &'static str,
}

pub const PEERS: [Peer; 3] = [
    Peer {
        system: "singer",
        package: "tap-hubspot",
        version: "4.5.0",
        endpoint: "GET /crm/v3/objects/contacts, 100 per page",
    },
    Peer {
        system: "meltano",
        package: "meltano-tap-hubspot",
        version: "0.10.1",
        endpoint: "POST /crm/v3/objects/contacts/search, 100 per page",
    },
    Peer {
        system: "airbyte",
        package: "airbyte-source-hubspot",
        version: "5.7.0",
        endpoint: "GET /crm/v3/objects/contact, 100 per page",
    },
];

/// Who is measured in one run.
#[derive(Debug, Clone, Copy)]
pub enum System {
    Leadsync,
    Peer(Peer),
}

impl System {
    pub fn label(self) -> String {
        match self {
            System::Leadsync => "leadsync".to_owned(),
            System::Peer(p) => format!("{} {}", p.package, p.version),
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            System::Leadsync => "leadsync",
            System::Peer(p) => p.system,
        }
    }
}

/// One run of one system.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub rss_mib: f64,
    /// Distinct records delivered.
    pub records: u64,
    /// Records delivered more than once (e.g. re-read across a search window).
    pub duplicates: u64,
    pub requests: u64,
    /// leadsync only: distinct companies and deals read along with the contacts.
    pub companies: u64,
    pub deals: u64,
}

/// Make sure every peer's virtualenv exists with its pinned package; install on first use.
pub fn ensure_venvs(dir: &Path, peers: &[Peer]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("peer.py"), PEER_PY)?;
    let python = std::env::var("LEADSYNC_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    for peer in peers {
        let venv = dir.join(peer.system);
        let marker = venv.join("leadsync-installed.txt");
        let wanted = format!("{}=={}", peer.package, peer.version);
        if std::fs::read_to_string(&marker).is_ok_and(|m| m.trim() == wanted) {
            continue;
        }
        eprintln!(
            "installing {wanted} into {} (first use; a minute or two)",
            venv.display()
        );
        run_checked(
            Command::new(&python)
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
        )
        .with_context(|| format!("creating the virtualenv {}", venv.display()))?;
        run_checked(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .arg(&wanted),
        )
        .with_context(|| format!("pip install {wanted}"))?;
        std::fs::write(&marker, &wanted)?;
    }
    Ok(())
}

fn run_checked(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(())
}

/// Untimed setup for a peer: its config and a catalog selecting the contacts stream.
pub fn prepare(venv_dir: &Path, peer: Peer, base_url: &str, workdir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(workdir)?;
    run_checked(
        Command::new(venv_dir.join(peer.system).join("bin/python"))
            .arg(venv_dir.join("peer.py"))
            .args([peer.system, "catalog", base_url])
            .arg(workdir),
    )
    .with_context(|| format!("{}: writing its catalog", peer.package))
}

/// The id of the record a RECORD message carries: `record.id` (Singer, Meltano, leadsync) or
/// `record.data.id` (Airbyte); `None` for any other message.
fn record_id(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("type")?.as_str()? != "RECORD" {
        return None;
    }
    let record = v.get("record")?;
    let id = record
        .get("id")
        .or_else(|| record.get("data").and_then(|d| d.get("id")))?;
    Some(match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

#[derive(Debug, serde::Deserialize)]
struct Rusage {
    cpu_s: f64,
    max_rss_kib: f64,
    #[serde(default)]
    companies: u64,
    #[serde(default)]
    deals: u64,
}

/// Run one system to completion; count the RECORD messages it writes.
pub fn run_once(
    system: System,
    venv_dir: &Path,
    base_url: &str,
    workdir: &Path,
) -> anyhow::Result<Sample> {
    std::fs::create_dir_all(workdir)?;
    let rusage_path = workdir.join("rusage.json");
    let _ = std::fs::remove_file(&rusage_path);
    let mut cmd = match system {
        System::Leadsync => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["pull-child", "--base-url", base_url, "--rusage"])
                .arg(&rusage_path);
            c
        }
        System::Peer(p) => {
            let mut c = Command::new(venv_dir.join(p.system).join("bin/python"));
            c.arg(venv_dir.join("peer.py"))
                .args([p.system, "run", base_url])
                .arg(workdir);
            c
        }
    };
    let stderr_path = workdir.join("stderr.log");
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path)?)
        .spawn()
        .with_context(|| format!("starting {}", system.label()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (mut messages, mut ids) = (0u64, std::collections::HashSet::new());
    for line in BufReader::with_capacity(1 << 20, stdout).lines() {
        if let Some(id) = record_id(&line?) {
            messages += 1;
            ids.insert(id);
        }
    }
    let records = ids.len() as u64;
    let status = child.wait()?;
    let wall_s = started.elapsed().as_secs_f64();
    if !status.success() {
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        bail!(
            "{} exited with {status}; last lines of {}:\n{}",
            system.label(),
            stderr_path.display(),
            log.lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let usage: Rusage = serde_json::from_str(
        &std::fs::read_to_string(&rusage_path)
            .with_context(|| format!("{} wrote no {}", system.label(), rusage_path.display()))?,
    )?;
    Ok(Sample {
        wall_s,
        cpu_s: usage.cpu_s,
        rss_mib: usage.max_rss_kib / 1024.0,
        records,
        duplicates: messages - records,
        requests: 0,
        companies: usage.companies,
        deals: usage.deals,
    })
}

/// `leadsync-bench pull-child`: the leadsync side of a comparison run — pull every contact
/// (with its company and deals, as the nightly does) and write each as a RECORD message, then
/// this process's CPU time and peak RSS to `rusage`.
pub async fn pull_child(base_url: &str, rusage: &Path) -> anyhow::Result<()> {
    use std::collections::HashSet;

    let crm = crate::bench::client(base_url)?;
    // Each page's messages are written to stdout by a thread of their own: the pull runs on
    // the functions' one-thread runtime, and a write blocked on a full pipe (the parent still
    // reading) would stop every request in flight with it.
    let (pages, to_write) = std::sync::mpsc::channel::<Vec<u8>>();
    // Written buffers come back to be filled again (a page's is ~200 KB).
    let (spare, spares) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for mut page in to_write {
            out.write_all(&page)?;
            page.clear();
            let _ = spare.send(page);
        }
        out.flush()
    });
    let (mut companies, mut deals) = (HashSet::new(), HashSet::new());
    crate::bench::for_each_page(&crm, |page| {
        // About 800 bytes a message.
        let mut out = spares.try_recv().unwrap_or_default();
        out.reserve((page.leads.len() + page.rejected.len()) * 1024);
        for lead in &page.leads {
            // Counted for the report; an id is copied the first time it is seen only.
            if let Some(c) = lead
                .company_id
                .as_deref()
                .filter(|c| !companies.contains(*c))
            {
                companies.insert(c.to_owned());
            }
            for d in &lead.deals {
                if !deals.contains(d.id.as_str()) {
                    deals.insert(d.id.clone());
                }
            }
            serde_json::to_writer(&mut out, &RecordMessage::new("contacts", lead))?;
            out.push(b'\n');
        }
        for rejected in &page.rejected {
            serde_json::to_writer(&mut out, &RecordMessage::new("quarantine", rejected))?;
            out.push(b'\n');
        }
        pages
            .send(out)
            .map_err(|_| anyhow::anyhow!("the stdout writer stopped"))
    })
    .await?;
    drop(pages);
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the stdout writer panicked"))??;
    std::fs::write(
        rusage,
        serde_json::to_vec(&serde_json::json!({
            "cpu_s": crate::bench::cpu_time().as_secs_f64(),
            "max_rss_kib": crate::bench::peak_rss_mib() * 1024.0,
            "companies": companies.len(),
            "deals": deals.len(),
        }))?,
    )?;
    Ok(())
}

#[derive(serde::Serialize)]
struct RecordMessage<'a, T: serde::Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    stream: &'static str,
    record: &'a T,
}

impl<'a, T: serde::Serialize> RecordMessage<'a, T> {
    fn new(stream: &'static str, record: &'a T) -> Self {
        Self {
            kind: "RECORD",
            stream,
            record,
        }
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The medians of one system at one point (contacts, latency).
#[derive(Debug, Clone)]
pub struct Point {
    pub system: System,
    pub contacts: u64,
    pub latency_ms: u64,
    pub runs: usize,
    pub records_per_s: f64,
    pub cpu_per_10k: f64,
    pub rss_mib: f64,
    pub requests: u64,
    pub minimum: u64,
    pub duplicates: u64,
    pub wall_s: f64,
}

impl Point {
    fn from_samples(
        system: System,
        contacts: u64,
        latency_ms: u64,
        samples: &[Sample],
    ) -> anyhow::Result<Self> {
        for s in samples {
            if s.records != contacts {
                bail!(
                    "{} delivered {} distinct records of {contacts} contacts",
                    system.label(),
                    s.records
                );
            }
        }
        let first = samples.first().context("no samples")?;
        let minimum = match system {
            // One search page of 200 per 200 contacts, one batch read per 100 companies and per
            // 100 deals, one association read per 1,000 contacts.
            System::Leadsync => {
                contacts.div_ceil(200)
                    + first.companies.div_ceil(100)
                    + contacts.div_ceil(1000)
                    + first.deals.div_ceil(100)
            }
            // The list endpoint returns at most 100 contacts (with their associations) a page.
            System::Peer(_) => contacts.div_ceil(100),
        };
        Ok(Point {
            system,
            contacts,
            latency_ms,
            runs: samples.len(),
            records_per_s: median(
                samples
                    .iter()
                    .map(|s| s.records as f64 / s.wall_s)
                    .collect(),
            ),
            cpu_per_10k: median(
                samples
                    .iter()
                    .map(|s| s.cpu_s * 10_000.0 / s.records.max(1) as f64)
                    .collect(),
            ),
            rss_mib: median(samples.iter().map(|s| s.rss_mib).collect()),
            requests: median(samples.iter().map(|s| s.requests as f64).collect()) as u64,
            minimum,
            duplicates: median(samples.iter().map(|s| s.duplicates as f64).collect()) as u64,
            wall_s: median(samples.iter().map(|s| s.wall_s).collect()),
        })
    }
}

/// Options of one comparison.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub contacts: Vec<u64>,
    pub latencies: Vec<u64>,
    pub repeat: usize,
    /// Repeats at and above 100,000 contacts (the slowest extractor takes minutes a run).
    pub repeat_large: usize,
    pub systems: Vec<System>,
    pub venv_dir: PathBuf,
    pub work_dir: PathBuf,
}

/// Run the whole comparison; print each point as it is measured.
pub async fn compare(opts: &CompareOptions) -> anyhow::Result<Vec<Point>> {
    let peers: Vec<Peer> = opts
        .systems
        .iter()
        .filter_map(|s| match s {
            System::Peer(p) => Some(*p),
            System::Leadsync => None,
        })
        .collect();
    tokio::task::block_in_place(|| ensure_venvs(&opts.venv_dir, &peers))?;
    let mut points = Vec::new();
    for &contacts in &opts.contacts {
        for &latency in &opts.latencies {
            let sandbox = crate::bench::spawn_sandbox(contacts, latency)?;
            let base = sandbox.base_url.clone();
            let dir_of = |s: System| {
                opts.work_dir
                    .join(format!("{contacts}-{latency}ms"))
                    .join(s.key())
            };
            for peer in &peers {
                tokio::task::block_in_place(|| {
                    prepare(&opts.venv_dir, *peer, &base, &dir_of(System::Peer(*peer)))
                })?;
            }
            let repeat = if contacts >= 100_000 {
                opts.repeat_large
            } else {
                opts.repeat
            }
            .max(1);
            let mut samples: BTreeMap<usize, Vec<Sample>> = BTreeMap::new();
            for r in 0..repeat {
                // Interleaved: every repeat runs every system once, starting one further along.
                for k in 0..opts.systems.len() {
                    let i = (r + k) % opts.systems.len();
                    let system = opts.systems[i];
                    let before = crate::bench::total_requests(&base).await?;
                    let mut sample = tokio::task::block_in_place(|| {
                        run_once(system, &opts.venv_dir, &base, &dir_of(system))
                    })?;
                    sample.requests = crate::bench::total_requests(&base).await? - before;
                    eprintln!(
                        "  {contacts} contacts, {latency} ms, run {}/{repeat}: {:<32} {:>9.0} records/s {:>8.2} s CPU {:>6.0} MiB {:>6} requests",
                        r + 1,
                        system.label(),
                        sample.records as f64 / sample.wall_s,
                        sample.cpu_s,
                        sample.rss_mib,
                        sample.requests
                    );
                    samples.entry(i).or_default().push(sample);
                }
            }
            for (i, s) in samples {
                points.push(Point::from_samples(opts.systems[i], contacts, latency, &s)?);
            }
        }
    }
    Ok(points)
}

/// Parse `--systems`.
pub fn systems(names: &[String]) -> anyhow::Result<Vec<System>> {
    names
        .iter()
        .map(|n| match n.trim() {
            "leadsync" => Ok(System::Leadsync),
            other => PEERS
                .iter()
                .find(|p| p.system == other)
                .map(|p| System::Peer(*p))
                .with_context(|| {
                    format!("--systems: {other:?} is not one of leadsync, singer, meltano, airbyte")
                }),
        })
        .collect()
}

/// What each system is and what it reads contacts with.
pub fn systems_table(systems: &[System]) -> String {
    let mut s = String::from("| system | what it reads |\n|---|---|\n");
    for system in systems {
        let reads = match system {
            System::Leadsync => {
                "POST /crm/v3/objects/contacts/search, 200 per page, plus each contact's company (batch read, 100 per request), deal associations (v4, 1,000 per request) and deals (batch read, 100 per request)"
            }
            System::Peer(p) => p.endpoint,
        };
        s.push_str(&format!("| {} | {reads} |\n", system.label()));
    }
    s
}

/// The machine a bench ran on, for the record: CPU model, cores, memory, OS.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// Replace the text between `<!-- bench:{name} -->` and `<!-- /bench:{name} -->` in `doc`
/// (appending the section when the markers are missing).
pub fn update_doc(doc: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let (open, close) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let text = std::fs::read_to_string(doc).unwrap_or_default();
    let section = format!("{open}\n{body}\n{close}");
    let updated = match (text.find(&open), text.find(&close)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{section}{}", &text[..a], &text[b + close.len()..])
        }
        _ => format!("{text}\n{section}\n"),
    };
    std::fs::write(doc, updated).with_context(|| format!("writing {}", doc.display()))
}

/// `leadsync-bench compare`: measure, print, and (with `--doc`) update the document and chart.
pub async fn command(opts: CompareOptions, doc: Option<&Path>) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let points = compare(&opts).await?;
    let tables = format!("{}\n{}", systems_table(&opts.systems), markdown(&points));
    let goals = goals(&points);
    println!("{tables}");
    for g in &goals {
        println!("- {g}");
    }
    if let Some(doc) = doc {
        let chart = doc.with_file_name("benchmarks-compare.svg");
        std::fs::write(&chart, chart_svg(&points))?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let body = format!(
            "Measured {} on {}.\n\nCommand: `leadsync-bench {}`\n\n{tables}\nGoals (leadsync against the fastest peer at each point):\n\n{}\n\n![records/s by system]({})\n",
            started.format("%Y-%m-%d %H:%M UTC"),
            machine(),
            args.join(" "),
            goals
                .iter()
                .map(|g| format!("- {g}"))
                .collect::<Vec<_>>()
                .join("\n"),
            chart
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        update_doc(doc, "compare", &body)?;
        eprintln!("updated {} and {}", doc.display(), chart.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
