//! `leadsync sync` and `leadsync backfill`: the nightly job from a laptop.
//!
//! - `sync --dry-run`: pull, enrich (the provider asked directly, no cache), score, and print
//!   every contact whose leadsync properties would change — before and after — with a summary.
//!   Nothing is written anywhere: the CRM sees reads only, state lives in memory, no AWS.
//! - `sync`: the nightly job itself (`leadsync_app::nightly`, the code `nightly-sync` runs)
//!   against the configured table and bucket.
//! - `backfill --since DATE`: the same job reading everything modified since DATE, in small
//!   slices under a fixed run id: killed and started again, it skips the slices it recorded.

use crate::doctor::{Target, local_config};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use leadsync_app::nightly::{self, NightlyEvent};
use leadsync_app::watched::{Mode, Watched, WouldChange};
use leadsync_app::{AnyCrm, Config, Deps, RunOutcome};
use leadsync_domain::Criteria;
use leadsync_domain::fakes::{FakeLeadStore, FakeSnapshotStore};
use leadsync_domain::ports::RunReport;
use leadsync_enrich::{PdlConfig, PdlProvider};
use leadsync_pipeline::{SyncDeps, SyncInput};
use std::io::Write as _;
use std::process::ExitCode;

/// How a dry run prints what would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One block per contact: each property before → after.
    Table,
    /// One JSON object per contact: `lead_id`, `before`, `after`.
    Jsonl,
    /// One row per changed property: lead_id, property, before, after.
    Csv,
}

/// What `leadsync sync` was asked.
#[derive(Debug, Clone)]
pub struct SyncArgs {
    pub dry_run: bool,
    pub limit: Option<u64>,
    pub format: Format,
    pub since: Option<DateTime<Utc>>,
    pub target: Target,
}

/// `leadsync sync [--dry-run]`.
///
/// # Errors
/// Configuration, criteria, CRM or store failures, each with what to set or check.
pub async fn sync(args: &SyncArgs) -> anyhow::Result<ExitCode> {
    if args.dry_run {
        return dry_run(args).await;
    }
    if args.limit.is_some() {
        anyhow::bail!("--limit is for --dry-run: a real run syncs every contact in scope");
    }
    let deps = live_deps(&args.target, None).await?;
    let now = Utc::now();
    let run_id = nightly::local_run_id(now);
    let event = NightlyEvent {
        since: args.since,
        scheduled_time: None,
    };
    let crm = Watched::new(&deps.crm, Mode::Live);
    let outcome = with_progress(&crm, &deps.crm, "sync", async {
        nightly::run_with(&deps, &crm, &event, &run_id, now, Utc::now).await
    })
    .await?;
    report_outcome(&run_id, &outcome, &deps.crm);
    Ok(ExitCode::SUCCESS)
}

/// `leadsync backfill --since DATE`.
///
/// # Errors
/// See [`sync`].
pub async fn backfill(
    since: DateTime<Utc>,
    slice_contacts: u64,
    target: &Target,
) -> anyhow::Result<ExitCode> {
    let deps = live_deps(target, Some(slice_contacts)).await?;
    // One name per starting date: run again, it is the same run, and its recorded slices are
    // its checkpoint.
    let run_id = format!("backfill-{}", since.format("%Y%m%dT%H%M%SZ"));
    let event = NightlyEvent {
        since: Some(since),
        scheduled_time: None,
    };
    let crm = Watched::new(&deps.crm, Mode::Live);
    let now = Utc::now();
    eprintln!(
        "backfill {run_id}: every contact modified since {} (slices of {slice_contacts}; stop it any time and run the same command to go on)",
        since.format("%Y-%m-%d %H:%M UTC")
    );
    let outcome = with_progress(&crm, &deps.crm, "backfill", async {
        nightly::run_with(&deps, &crm, &event, &run_id, now, Utc::now).await
    })
    .await?;
    report_outcome(&run_id, &outcome, &deps.crm);
    Ok(ExitCode::SUCCESS)
}

async fn live_deps(target: &Target, slice_contacts: Option<u64>) -> anyhow::Result<Deps> {
    if target.table.is_none() || target.bucket.is_none() {
        anyhow::bail!(
            "a real run records state: set TABLE_NAME and BUCKET_NAME (or --table/--bucket) to the stack's, or use --dry-run to see what it would do without AWS"
        );
    }
    let mut config: Config = local_config(target)?;
    // Runs from a laptop are inline: slices go to no queue.
    config.slice_queue_url = None;
    if let Some(n) = slice_contacts {
        config.slice_contacts = n;
    }
    let sdk = leadsync_app::sdk_config().await;
    Deps::new(config, &sdk)
        .await
        .context("building the run's clients")
}

/// Run `job` with a progress bar on stderr: contacts pulled of the census, CRM requests, rate
/// and the time left.
async fn with_progress<T, E>(
    watched: &Watched<'_, AnyCrm>,
    crm: &AnyCrm,
    what: &'static str,
    job: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} contacts · {msg} · {per_sec} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(what);
    let tick = async {
        loop {
            let census = watched.census();
            let pulled = watched.pulled();
            bar.set_length(census.max(pulled));
            bar.set_position(pulled);
            bar.set_message(format!(
                "{} CRM requests · {} pushed",
                requests(crm).map_or("?".to_owned(), |u| u.requests.to_string()),
                watched.pushed()
            ));
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    };
    let result = tokio::select! {
        r = job => r,
        () = tick => unreachable!("the ticker never ends"),
    };
    bar.set_position(watched.pulled());
    bar.finish_and_clear();
    Ok(result?)
}

fn requests(crm: &AnyCrm) -> Option<leadsync_hubspot::Usage> {
    match crm {
        AnyCrm::HubSpot(h) => Some(h.usage()),
        AnyCrm::Salesforce(_) => None,
    }
}

fn report_outcome(run_id: &str, outcome: &RunOutcome, crm: &AnyCrm) {
    match outcome {
        RunOutcome::Finished { report } => {
            println!("run {run_id} finished");
            print_summary(report, crm, None);
        }
        RunOutcome::Queued { slices, .. } => println!("run {run_id}: {slices} slices queued"),
        RunOutcome::Busy { holder, until } => println!(
            "not started: run {holder} holds the lease until {} — try again then",
            until.format("%H:%M:%S UTC")
        ),
    }
}

async fn dry_run(args: &SyncArgs) -> anyhow::Result<ExitCode> {
    let config = local_config(&args.target)?;
    let sdk = leadsync_app::sdk_config().await;
    let crm = leadsync_app::deps::build_crm(&config, &aws_sdk_secretsmanager::Client::new(&sdk))
        .await
        .context("building the CRM client (CRM_KIND, CRM_BASE_URL, CRM_TOKEN)")?;
    let (source, text) = crate::doctor::criteria_text(&config, &args.target, &sdk)
        .await
        .map_err(anyhow::Error::msg)?;
    let criteria = Criteria::parse(&source, &text)?;
    eprintln!(
        "dry run against {} with criteria {} {} ({source}): nothing is written",
        leadsync_domain::ports::Crm::name(&crm),
        criteria.id,
        criteria.version
    );
    // The provider is asked directly: no cache table on a laptop.
    let mut providers = Vec::new();
    if let Some(pdl) = &config.pdl {
        let key = leadsync_app::secrets::resolve(
            &aws_sdk_secretsmanager::Client::new(&sdk),
            &pdl.api_key,
        )
        .await?;
        let mut pdl_config = PdlConfig::new(pdl.base_url.clone(), key);
        pdl_config.min_likelihood = pdl.min_likelihood;
        providers.push(PdlProvider::new(pdl_config)?);
    }
    let watched = Watched::new(&crm, Mode::DryRun).with_limit(args.limit);
    // State in memory: every contact is compared with what the CRM shows, as on a first run.
    let (store, snapshots) = (FakeLeadStore::new(), FakeSnapshotStore::new());
    let deps = SyncDeps {
        crm: &watched,
        store: &store,
        snapshots: &snapshots,
        providers: &providers,
        criteria: &criteria,
        events: None,
    };
    let now = Utc::now();
    let mut input = SyncInput::nightly("dry-run", now);
    input.source = config.crm_kind.watermark_key();
    input.lookback = config.lookback;
    input.index_lag = config.index_lag;
    input.since_override = args.since;
    input.max_reject_ratio = 1.0;
    input.enrich_budget = config.enrich_budget;
    let report = with_progress(&watched, &crm, "dry run", async {
        leadsync_pipeline::sync(&deps, &input).await
    })
    .await?;
    let changes = watched.would_push();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    write_changes(&mut out, &changes, args.format)?;
    out.flush()?;
    drop(out);
    let created = watched.would_create();
    print_summary(&report, &crm, Some((changes.len(), &created)));
    Ok(ExitCode::SUCCESS)
}

/// What would change, in `format`.
///
/// # Errors
/// Writing failed.
pub fn write_changes(
    out: &mut impl std::io::Write,
    changes: &[WouldChange],
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Jsonl => {
            for c in changes {
                serde_json::to_writer(&mut *out, c)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(["lead_id", "property", "before", "after"])?;
            for c in changes {
                for (name, after) in &c.after {
                    let before = c.before.get(name).map_or("", String::as_str);
                    w.write_record([c.lead_id.as_str(), name, before, after])?;
                }
            }
            w.flush()?;
        }
        Format::Table => {
            let width = changes
                .iter()
                .flat_map(|c| c.after.keys())
                .map(String::len)
                .max()
                .unwrap_or(0);
            for c in changes {
                writeln!(out, "contact {}", c.lead_id)?;
                for (name, after) in &c.after {
                    let before = c.before.get(name).map_or("(empty)", String::as_str);
                    let mark = if before == after { "=" } else { "→" };
                    // A multi-line value (the summary) keeps its lines under its column.
                    let pad = format!("\n  {:width$}  ", "");
                    writeln!(
                        out,
                        "  {name:<width$}  {} {mark} {}",
                        before.replace('\n', &pad),
                        after.replace('\n', &pad)
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn print_summary(report: &RunReport, crm: &AnyCrm, dry: Option<(usize, &[String])>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n{} contacts pulled, {} scored, {} quarantined (bad records, kept with their reason)",
        report.pulled, report.scored, report.quarantined
    );
    let stages: Vec<String> = report
        .stages
        .iter()
        .map(|(stage, n)| format!("{stage} {n}"))
        .collect();
    if !stages.is_empty() {
        let _ = writeln!(err, "stages: {}", stages.join(" · "));
    }
    match dry {
        Some((would, created)) => {
            let _ = writeln!(
                err,
                "would change {would} contacts in {} ({} already show these values); wrote nothing",
                leadsync_domain::ports::Crm::name(crm),
                report.already_in_crm
            );
            if !created.is_empty() {
                let _ = writeln!(
                    err,
                    "the first real run creates {} contact properties: {}",
                    created.len(),
                    created.join(", ")
                );
            }
        }
        None => {
            let _ = writeln!(
                err,
                "pushed {} contacts ({} already showed these values, {} failed)",
                report.pushed, report.already_in_crm, report.push_failed
            );
        }
    }
    if let Some(u) = requests(crm) {
        let daily = match (u.daily_remaining, u.daily) {
            (Some(left), Some(day)) => format!(
                "; {} of the day's {day} used so far, {left} left",
                day.saturating_sub(left)
            ),
            _ => String::new(),
        };
        let _ = writeln!(err, "CRM requests: {} by this run{daily}", u.requests);
    }
}
