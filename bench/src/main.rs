//! `leadsync-bench`: the benchmarks and the reliability benches, apart from the `leadsync`
//! command operators install. Figures go to stdout (and, with `--doc`, into the docs).
//!
//! - `crm`, `enrich`, `compare`, `nightly`, `coldstart`: speed, requests and memory
//!   (docs/benchmarks.md, `scripts/bench`);
//! - `chaos`, `storms`: crash anywhere and every dependency failing (docs/reliability.md,
//!   `scripts/reliability`).
//!
//! The sandboxes are run as `leadsync sandbox` processes: the `leadsync` binary beside this one.

mod bench;
mod chaos;
mod compare;
mod nightly_bench;
mod ratelimit;
mod storms;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "leadsync-bench",
    version,
    about = "leadsync's benchmarks: speed, requests and memory; crashes and fault storms."
)]
struct Cli {
    #[command(subcommand)]
    what: BenchWhat,
}

/// Which CRM's adapter and sandbox.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Crm {
    Hubspot,
    Salesforce,
}

#[derive(Debug, Subcommand)]
enum BenchWhat {
    /// Pull throughput, CPU per record, and CRM requests of a full sync against the minimum.
    Crm {
        /// The CRM whose adapter is measured, against its own sandbox.
        #[arg(long, value_enum, default_value_t = Crm::Hubspot)]
        crm: Crm,
        #[arg(long, default_value_t = 10_000)]
        contacts: u64,
        /// Sandbox latencies to measure at, in milliseconds.
        #[arg(long, value_delimiter = ',', default_value = "0,50")]
        latency_ms: Vec<u64>,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Enrichment throughput: cold (provider → DynamoDB cache) and warm (cache only).
    Enrich {
        #[arg(long, default_value_t = 10_000)]
        leads: usize,
        /// Distinct company domains the leads are spread over.
        #[arg(long, default_value_t = 2_000)]
        domains: usize,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// leadsync's pull side by side with singer's tap-hubspot, Meltano's tap-hubspot and
    /// Airbyte's source-hubspot on one sandbox (installed into virtualenvs on first use).
    Compare {
        /// Sandbox sizes, in contacts.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        contacts: Vec<u64>,
        /// Sandbox latencies, in milliseconds.
        #[arg(long, value_delimiter = ',', default_value = "0,50")]
        latency_ms: Vec<u64>,
        /// Repeats below 100,000 contacts (median reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Repeats at 100,000 contacts and above (Airbyte's connector takes ≈ 5 minutes a run).
        #[arg(long, default_value_t = 1)]
        repeat_large: usize,
        /// Systems to run: leadsync, singer, meltano, airbyte.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "leadsync,singer,meltano,airbyte"
        )]
        systems: Vec<String>,
        /// Where the extractors' virtualenvs live.
        #[arg(long, default_value = "target/bench/venvs")]
        venv_dir: std::path::PathBuf,
        /// Where each run's config, catalog and logs go.
        #[arg(long, default_value = "target/bench/runs")]
        work_dir: std::path::PathBuf,
        /// Update this markdown file's generated section (and write its chart beside it).
        #[arg(long)]
        doc: Option<std::path::PathBuf>,
    },
    /// The nightly sync end to end (the release nightly-sync binary, sandbox, DynamoDB and S3
    /// on moto): leads/s, CRM requests and DynamoDB writes per 1,000 leads, peak RSS.
    Nightly {
        /// Sizes, in leads.
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        leads: Vec<u64>,
        #[arg(long, value_delimiter = ',', default_value = "0")]
        latency_ms: Vec<u64>,
        /// Directory holding the release function binaries.
        #[arg(long, default_value = "target/release")]
        bin_dir: std::path::PathBuf,
        /// Update this markdown file's generated section.
        #[arg(long)]
        doc: Option<std::path::PathBuf>,
    },
    /// Crash anywhere: the nightly-sync binary SIGKILLed at N seeded instants of a clean
    /// night, retried under the same request id, each compared item by item with the clean
    /// night (table and CRM). Exit code 1 when any did not converge.
    Chaos {
        #[arg(long, default_value_t = 50)]
        kills: u32,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 1_000)]
        contacts: u64,
        /// The nightly-sync executable (release for figures); a fanned-out night also runs the
        /// sync-slice beside it.
        #[arg(long, default_value = "target/release/nightly-sync")]
        binary: std::path::PathBuf,
        /// Fan the night out: nightly-sync plans slices of this many contacts onto an SQS queue
        /// and sync-slice runs them (at least 100). Without it the night runs inline.
        #[arg(long)]
        slice_contacts: Option<u64>,
        /// Also write the figures into this markdown file (between generated markers).
        #[arg(long)]
        doc: Option<std::path::PathBuf>,
    },
    /// Storms: every dependency (CRM, provider, DynamoDB, S3) failing a share of requests, one
    /// at a time and together; each stormy night ends cleanly and leaves the lease free, and
    /// the night run again after the storm converges to the clean night. Prints a markdown
    /// table (and writes it into --doc between the generated markers).
    Storms {
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 500)]
        contacts: u64,
        #[arg(long, default_value = "target/release/nightly-sync")]
        binary: std::path::PathBuf,
        /// Only the storms whose name contains this text (e.g. "provider 30 %").
        #[arg(long)]
        only: Option<String>,
        #[arg(long)]
        doc: Option<std::path::PathBuf>,
    },
    /// A first sync against HubSpot Professional's limits with injected 429s: the share of
    /// the allowed rate used, beside the physical minimum time.
    Ratelimit {
        #[arg(long, default_value_t = 100_000)]
        contacts: u64,
        /// Share of requests answered 429 although under the limit.
        #[arg(long, default_value_t = 0.2)]
        injected_429: f64,
        /// Update this markdown file's generated section.
        #[arg(long)]
        doc: Option<std::path::PathBuf>,
    },
    /// One leadsync pull for `compare` (records on stdout, CPU and peak RSS to --rusage).
    #[command(hide = true)]
    PullChild {
        #[arg(long)]
        base_url: String,
        #[arg(long)]
        rusage: std::path::PathBuf,
    },
    /// Cold start of each function binary: process start → first Runtime API poll (config,
    /// AWS config, secrets, criteria loaded), with the binary's size.
    Coldstart {
        /// Directory holding the built binaries (e.g. target/release).
        #[arg(long, default_value = "target/release")]
        bin_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // leadsync's side of a comparison pulls on the runtime the functions run on; the bench's
    // own drivers (which wait on child processes) on tokio's multi-threaded one.
    let runtime = match cli.what {
        BenchWhat::PullChild { .. } => leadsync_app::function_runtime()?,
        _ => tokio::runtime::Runtime::new()?,
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match cli.what {
        BenchWhat::Crm {
            crm,
            contacts,
            latency_ms,
            repeat,
        } => done(match crm {
            Crm::Hubspot => bench::crm(contacts, &latency_ms, repeat).await,
            Crm::Salesforce => bench::salesforce(contacts, &latency_ms, repeat).await,
        }),
        BenchWhat::Enrich {
            leads,
            domains,
            repeat,
        } => done(bench::enrich(leads, domains, repeat).await),
        BenchWhat::Compare {
            contacts,
            latency_ms,
            repeat,
            repeat_large,
            systems,
            venv_dir,
            work_dir,
            doc,
        } => done(
            compare::command(
                compare::CompareOptions {
                    contacts,
                    latencies: latency_ms,
                    repeat,
                    repeat_large,
                    systems: compare::systems(&systems)?,
                    venv_dir,
                    work_dir,
                },
                doc.as_deref(),
            )
            .await,
        ),
        BenchWhat::Nightly {
            leads,
            latency_ms,
            bin_dir,
            doc,
        } => done(nightly_bench::command(&bin_dir, &leads, &latency_ms, doc.as_deref()).await),
        BenchWhat::Ratelimit {
            contacts,
            injected_429,
            doc,
        } => done(ratelimit::ratelimit(contacts, injected_429, doc.as_deref()).await),
        BenchWhat::PullChild { base_url, rusage } => {
            done(compare::pull_child(&base_url, &rusage).await)
        }
        BenchWhat::Coldstart { bin_dir, runs } => done(bench::coldstart(&bin_dir, runs).await),
        BenchWhat::Chaos {
            kills,
            seed,
            contacts,
            binary,
            slice_contacts,
            doc,
        } => {
            let shape = slice_contacts.map_or(chaos::Shape::Inline, |slice_contacts| {
                chaos::Shape::FanOut { slice_contacts }
            });
            let report = chaos::run(&binary, kills, seed, contacts, shape).await?;
            report.print();
            if let Some(doc) = doc {
                let (section, flag) = match slice_contacts {
                    Some(n) => ("chaos-fan-out", format!(" --slice-contacts {n}")),
                    None => ("chaos", String::new()),
                };
                storms::write_section(
                    &doc,
                    section,
                    &format!(
                        "`leadsync-bench chaos --kills {kills} --contacts {contacts} --seed {seed}{flag}`:\n\n```\n{}```\n",
                        report.text()
                    ),
                )?;
            }
            Ok(if report.passed() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        BenchWhat::Storms {
            seed,
            contacts,
            binary,
            only,
            doc,
        } => {
            let report = storms::run(&binary, seed, contacts, only.as_deref()).await?;
            let table = report.markdown();
            println!("{table}");
            if let Some(doc) = doc {
                storms::write_doc(&doc, &report, &table)?;
            }
            Ok(if report.passed() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
    }
}
