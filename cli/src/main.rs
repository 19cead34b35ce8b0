//! `leadsync`: the command-line tool for operators and local users.
//!
//! - `leadsync sandbox`: serve the HubSpot-compatible sandbox until interrupted.
//! - `leadsync demo`: start the sandbox and a moto server, run the nightly sync on them, print
//!   the run summary.
//! - `leadsync erase --lead ID`: erase a person on request, and say what was removed.
//! - `leadsync doctor`, `leadsync sync [--dry-run]`, `leadsync backfill --since DATE`: the
//!   first hour on a real portal, from a laptop (see README, "Try it on your own portal").

mod criteria_cmd;
mod demo;
mod doctor;
mod erase_cmd;
mod rollups_cmd;
mod sync_cmd;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use leadsync_sandbox::{Faults, Limits, Sandbox, SandboxConfig};

#[derive(Debug, Parser)]
#[command(
    name = "leadsync",
    version,
    about = "Shared lead qualification for sales and marketing, synced with your CRM."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HubSpot-compatible CRM sandbox on 127.0.0.1 until Ctrl-C.
    Sandbox {
        /// Which CRM to serve: HubSpot's API or a Salesforce org's.
        #[arg(long, value_enum, default_value_t = demo::DemoCrm::Hubspot)]
        crm: demo::DemoCrm,
        #[arg(long, default_value_t = 18080)]
        port: u16,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 1000)]
        contacts: u64,
        /// The bearer token clients must present.
        #[arg(long, default_value = "sandbox-token")]
        token: String,
        /// Rate limits of a HubSpot tier: free (100 per 10 s), pro (190 per 10 s), none.
        #[arg(long, default_value = "free")]
        tier: Tier,
        /// Added to every answer.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Share of requests answered 429 although under the limit (0–1).
        #[arg(long, default_value_t = 0.0)]
        rate_limit_rate: f64,
        /// Share of requests answered 5xx (0–1).
        #[arg(long, default_value_t = 0.0)]
        server_error_rate: f64,
        /// Share of answers with a truncated JSON body (0–1).
        #[arg(long, default_value_t = 0.0)]
        malformed_rate: f64,
        /// Records modified within this many milliseconds are not yet visible to search.
        #[arg(long, default_value_t = 0)]
        index_lag_ms: u64,
        /// A portal without the BANT and rejection-reason properties (HubSpot's own
        /// default): leadsync's bootstrap creates them.
        #[arg(long)]
        bare_portal: bool,
    },
    /// Check a setup before the first run: the CRM token, its scopes and rate tier, the
    /// properties leadsync reads and writes, the table, the bucket, the criteria and their
    /// sign-off. One line per check; exit 1 if any failed. Reads only.
    Doctor {
        /// The leadsync table (default: TABLE_NAME; unset: not checked).
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
        /// The leadsync bucket (default: BUCKET_NAME; unset: not checked).
        #[arg(long, env = "BUCKET_NAME")]
        bucket: Option<String>,
    },
    /// Run the nightly job from here. With --dry-run: pull, enrich, score and print what would
    /// change in the CRM (before → after), writing nothing anywhere and needing no AWS.
    /// Without: the same job `nightly-sync` runs, against TABLE_NAME and BUCKET_NAME.
    Sync {
        /// Write nothing: print every contact whose leadsync properties would change.
        #[arg(long)]
        dry_run: bool,
        /// Dry run: stop after this many contacts.
        #[arg(long)]
        limit: Option<u64>,
        /// Dry run: how to print the changes.
        #[arg(long, value_enum, default_value_t = sync_cmd::Format::Table)]
        format: sync_cmd::Format,
        /// Read everything modified since this instant (RFC 3339 or YYYY-MM-DD) instead of
        /// since the watermark.
        #[arg(long, value_parser = parse_since)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
        #[arg(long, env = "BUCKET_NAME")]
        bucket: Option<String>,
    },
    /// The historical sync a new install needs: every contact modified since DATE, scored,
    /// recorded and pushed, with a progress bar. Resumable: stopped and run again with the same
    /// DATE, it goes on after the slices it finished.
    Backfill {
        /// RFC 3339 or YYYY-MM-DD (midnight UTC).
        #[arg(long, value_parser = parse_since)]
        since: chrono::DateTime<chrono::Utc>,
        /// Contacts per slice: the checkpoint's grain.
        #[arg(long, default_value_t = 2_000)]
        slice_contacts: u64,
        #[arg(long, env = "TABLE_NAME")]
        table: Option<String>,
        #[arg(long, env = "BUCKET_NAME")]
        bucket: Option<String>,
    },
    /// Work with a criteria document: check it.
    Criteria {
        #[command(subcommand)]
        what: CriteriaWhat,
    },
    /// Score leads (JSONL, one lead per line) with a criteria document, in input order.
    Score {
        #[arg(long)]
        criteria: std::path::PathBuf,
        #[arg(long)]
        leads: std::path::PathBuf,
        /// Score as of this instant (RFC 3339); default now.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value = "jsonl")]
        format: criteria_cmd::Format,
    },
    /// KPI and shared-incentive rollups: show, export to S3, close a period, recompute.
    Rollups {
        #[command(subcommand)]
        what: RollupsWhat,
        #[arg(long, env = "TABLE_NAME", global = true, default_value = "")]
        table: String,
        #[arg(long, env = "BUCKET_NAME", global = true, default_value = "")]
        bucket: String,
    },
    /// Erase a person on request (GDPR Art. 17): their state and every snapshot and quarantine
    /// line go; their facts stay under a pseudonym (open periods) or as paid records (closed
    /// periods), so the funnel and incentive totals do not change. Says what it removed.
    Erase {
        /// The CRM's id of the person (HubSpot contact id, Salesforce Lead or Contact Id).
        #[arg(long = "lead")]
        lead: String,
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        #[arg(long, env = "BUCKET_NAME")]
        bucket: String,
        /// Print what was done as JSON instead of sentences.
        #[arg(long)]
        json: bool,
    },
    /// The whole system on a local HubSpot sandbox and moto: a nightly run fanned out through
    /// SQS, a criteria change published and re-scored, funnel and incentive tables, the export.
    Demo {
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 10_000)]
        contacts: u64,
        /// The CRM sandbox to run against (the same seeded people in either).
        #[arg(long, value_enum, default_value_t = demo::DemoCrm::Hubspot)]
        crm: demo::DemoCrm,
    },
}

#[derive(Debug, Subcommand)]
enum CriteriaWhat {
    /// Validate a document: exit 0 if valid, else every problem with file:line:col.
    Check { file: std::path::PathBuf },
    /// Publish a signed, valid document and make it the active version (AWS from the environment).
    Publish {
        file: std::path::PathBuf,
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        #[arg(long, env = "BUCKET_NAME")]
        bucket: String,
        /// Publish without checking the document's [fields] against the CRM (each run still
        /// checks them before it pulls).
        #[arg(long)]
        skip_crm_check: bool,
    },
    /// Compare a proposed document with the current one over the same leads (a run's snapshot
    /// in S3, or JSONL of leads or snapshot lines): stage-transition matrix, bands, segments,
    /// what each stage's leads went on to do, credits per team and owner that would change,
    /// and the rules that drive it.
    Simulate {
        #[arg(long)]
        current: std::path::PathBuf,
        #[arg(long)]
        proposed: std::path::PathBuf,
        /// The leads: `s3://BUCKET/PREFIX` — a run's snapshot, every slice (the newest run
        /// under the prefix, e.g. `s3://BUCKET/snapshots/2026-12-04/`) — or a local JSON Lines
        /// file (gzipped or not) or directory of them.
        #[arg(long, alias = "leads", value_name = "S3_URL_OR_PATH")]
        snapshot: criteria_cmd::LeadsInput,
        /// Score as of this instant (RFC 3339); default now.
        #[arg(long)]
        now: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value = "table")]
        format: criteria_cmd::SimulateFormat,
    },
}

#[derive(Debug, Subcommand)]
enum RollupsWhat {
    /// Print a period: incentives with control totals, KPIs, the funnel reality check.
    Show {
        #[arg(long)]
        period: String,
        /// Criteria version (default: the one the period was scored under most recently).
        #[arg(long)]
        criteria_version: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: rollups_cmd::Format,
        /// Conversion improvement, in points, for the funnel's revenue sensitivity.
        #[arg(long, default_value_t = 1.0)]
        points: f64,
        /// A lead still in a step after this many days is counted as stalled.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=365))]
        stall_days: u32,
    },
    /// One owner's (or one source's) statement: every credited lead or deal, with its outcome,
    /// date, amount, criteria version and the rule reasons behind it; a total last.
    Statement {
        #[arg(long)]
        period: String,
        #[arg(long, value_parser = ["sales", "marketing"])]
        team: Option<String>,
        /// The sales owner id, or the lead source for marketing (default: every owner).
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        criteria_version: Option<String>,
        /// `table` or `csv`.
        #[arg(long, default_value = "table", value_parser = ["table", "csv"])]
        format: String,
    },
    /// Write the incentive CSV (corrections, control totals last) and the statements CSV, each
    /// with its .sha256, to s3://BUCKET/exports/PERIOD/.
    Export {
        #[arg(long)]
        period: String,
        #[arg(long)]
        criteria_version: Option<String>,
    },
    /// Close a period: recompute it once more, then freeze its rows for good.
    Close {
        #[arg(long)]
        period: String,
        /// Who closes it (recorded with the period).
        #[arg(long, env = "USER")]
        by: String,
    },
    /// Write a period's shared dashboard (one self-contained HTML page) to a file.
    Dashboard {
        #[arg(long)]
        period: String,
        #[arg(long)]
        criteria_version: Option<String>,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Recompute a period's rows from its facts (corrections go forward if it is closed).
    Recompute {
        #[arg(long)]
        period: String,
    },
}

/// An instant from RFC 3339 or a date (midnight UTC).
fn parse_since(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        .map_err(|_| format!("{text:?} is neither an RFC 3339 instant nor a YYYY-MM-DD date"))
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Tier {
    Free,
    Pro,
    None,
}

impl Tier {
    fn limits(self) -> Limits {
        match self {
            Tier::Free => Limits {
                per_window: 100,
                window_ms: 10_000,
                search_per_second: 5,
                daily: 250_000,
            },
            Tier::Pro => Limits {
                per_window: 190,
                window_ms: 10_000,
                search_per_second: 5,
                daily: 650_000,
            },
            Tier::None => SandboxConfig::new(0, 0).limits,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let done = |r: anyhow::Result<()>| r.map(|()| std::process::ExitCode::SUCCESS);
    match Cli::parse().command {
        Command::Doctor { table, bucket } => doctor::run(&doctor::Target { table, bucket }).await,
        Command::Sync {
            dry_run,
            limit,
            format,
            since,
            table,
            bucket,
        } => {
            sync_cmd::sync(&sync_cmd::SyncArgs {
                dry_run,
                limit,
                format,
                since,
                target: doctor::Target { table, bucket },
            })
            .await
        }
        Command::Backfill {
            since,
            slice_contacts,
            table,
            bucket,
        } => sync_cmd::backfill(since, slice_contacts, &doctor::Target { table, bucket }).await,
        Command::Criteria {
            what: CriteriaWhat::Check { file },
        } => criteria_cmd::check(&file),
        Command::Criteria {
            what:
                CriteriaWhat::Publish {
                    file,
                    table,
                    bucket,
                    skip_crm_check,
                },
        } => criteria_cmd::publish(&file, &table, &bucket, skip_crm_check).await,
        Command::Criteria {
            what:
                CriteriaWhat::Simulate {
                    current,
                    proposed,
                    snapshot,
                    now,
                    format,
                },
        } => criteria_cmd::simulate(&current, &proposed, &snapshot, now, format).await,
        Command::Score {
            criteria,
            leads,
            now,
            format,
        } => criteria_cmd::score(&criteria, &leads, now, format),
        Command::Sandbox {
            crm,
            port,
            seed,
            contacts,
            token,
            tier,
            latency_ms,
            rate_limit_rate,
            server_error_rate,
            malformed_rate,
            index_lag_ms,
            bare_portal,
        } => {
            let faults = Faults {
                latency_ms,
                rate_limit_rate,
                retry_after_rate: 0.5,
                server_error_rate,
                malformed_rate,
                index_lag_ms,
                ..Faults::default()
            };
            // The world ends now: its months of history are the last months.
            let config = SandboxConfig {
                token,
                port,
                limits: tier.limits(),
                faults,
                inputs_defined: !bare_portal,
                ..SandboxConfig::new(seed, contacts).anchored_at(chrono::Utc::now())
            };
            match crm {
                demo::DemoCrm::Hubspot => done(sandbox(config).await),
                demo::DemoCrm::Salesforce => done(salesforce_org(config).await),
            }
        }
        Command::Erase {
            lead,
            table,
            bucket,
            json,
        } => done(erase_cmd::run(&lead, &table, &bucket, json).await),
        Command::Rollups {
            what,
            table,
            bucket,
        } => {
            if table.is_empty() {
                anyhow::bail!("set TABLE_NAME (or --table) to the leadsync table");
            }
            let stores = rollups_cmd::stores(&table, &bucket).await;
            match what {
                RollupsWhat::Show {
                    period,
                    criteria_version,
                    format,
                    points,
                    stall_days,
                } => {
                    let view = rollups_cmd::View {
                        points,
                        stall_days,
                        as_of: chrono::Utc::now(),
                    };
                    rollups_cmd::show(&stores, &period, criteria_version, format, &view).await
                }
                RollupsWhat::Statement {
                    period,
                    team,
                    owner,
                    criteria_version,
                    format,
                } => {
                    rollups_cmd::statement(
                        &stores,
                        &period,
                        criteria_version,
                        team.as_deref(),
                        owner.as_deref(),
                        format == "csv",
                    )
                    .await
                }
                RollupsWhat::Export {
                    period,
                    criteria_version,
                } => {
                    if bucket.is_empty() {
                        anyhow::bail!("set BUCKET_NAME (or --bucket) for the export");
                    }
                    rollups_cmd::export(&stores, &period, criteria_version).await
                }
                RollupsWhat::Close { period, by } => {
                    rollups_cmd::close(&stores, &period, &by).await
                }
                RollupsWhat::Recompute { period } => rollups_cmd::recompute(&stores, &period).await,
                RollupsWhat::Dashboard {
                    period,
                    criteria_version,
                    out,
                } => rollups_cmd::dashboard(&stores, &period, criteria_version, &out).await,
            }
        }
        Command::Demo {
            seed,
            contacts,
            crm,
        } => done(demo::demo(seed, contacts, crm).await),
    }
}

/// The Salesforce sandbox org with the same people the HubSpot sandbox would serve for this
/// seed, latency and faults (the HubSpot tier's rate limits do not apply: an org has a daily
/// allocation instead).
async fn salesforce_org(config: SandboxConfig) -> anyhow::Result<()> {
    use leadsync_salesforce_sandbox::{SalesforceConfig, SalesforceSandbox};
    let (seed, contacts) = (config.seed, config.contacts);
    let org = SalesforceSandbox::start(SalesforceConfig {
        port: config.port,
        faults: config.faults,
        ..SalesforceConfig::new(seed, contacts).anchored_at(config.anchor)
    })
    .await?;
    println!(
        "Salesforce sandbox org on {} (seed {seed}, {contacts} people)",
        org.base_url()
    );
    println!("  client id:     {}", org.client_id());
    println!("  client secret: {}", org.client_secret());
    println!(
        "  token: curl -s -d grant_type=client_credentials -d client_id={} -d client_secret={} {}/services/oauth2/token",
        org.client_id(),
        org.client_secret(),
        org.base_url()
    );
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    org.shutdown().await;
    Ok(())
}

async fn sandbox(config: SandboxConfig) -> anyhow::Result<()> {
    let (seed, contacts) = (config.seed, config.contacts);
    let sandbox = Sandbox::start(config).await?;
    println!(
        "HubSpot sandbox on {} (seed {seed}, {contacts} contacts)",
        sandbox.base_url()
    );
    println!("  token:  {}", sandbox.token());
    println!(
        "  search: curl -s -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' \\",
        sandbox.token()
    );
    println!(
        "            -d '{{\"limit\":2}}' {}/crm/v3/objects/contacts/search",
        sandbox.base_url()
    );
    println!("Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sandbox.shutdown().await;
    Ok(())
}
