//! `leadsync demo`: the whole system on one machine. A HubSpot sandbox and moto (DynamoDB, S3,
//! SQS) on 127.0.0.1; the real function handlers, with a local stand-in for the SQS event
//! source mapping; a nightly run fanned out into slices; a new criteria version published and
//! re-scored through the rescore function's S3 trigger; the funnel and incentive tables; the
//! finance export.

use crate::criteria_cmd;
use crate::rollups_cmd::{self, Format, Stores};
use anyhow::Context as _;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use lambda_runtime::{Context, LambdaEvent};
use leadsync_app::config as keys;
use leadsync_app::{Deps, RunOutcome};
use leadsync_domain::facts::period_of;
use leadsync_domain::ports::{LeadStore, RollupStore, RunReport, RunStore};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use leadsync_store::{CriteriaStore, DynamoLeadStore, S3SnapshotStore};
use std::collections::HashMap;
use std::time::Instant;

/// Slices run at once by the local event source mapping (the SQS maximum concurrency).
const CONCURRENCY: usize = 2;

fn event(request_id: &str, payload: serde_json::Value) -> LambdaEvent<serde_json::Value> {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    LambdaEvent::new(payload, context)
}

/// Drain the slice queue through sync-slice with a progress bar; the run's merged report.
async fn run_queued(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    deps: &Deps,
    run_id: &str,
    outcome: RunOutcome,
) -> anyhow::Result<RunReport> {
    let RunOutcome::Queued {
        slices, contacts, ..
    } = outcome
    else {
        if let RunOutcome::Finished { report } = outcome {
            return Ok(*report);
        }
        anyhow::bail!("the run did not start: {outcome:?}");
    };
    println!(
        "  {contacts} contacts planned into {slices} slices on the SQS queue; {CONCURRENCY} workers"
    );
    let bar = ProgressBar::new(u64::from(slices)).with_style(
        ProgressStyle::with_template("  slices {bar:40} {pos}/{len}  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let stats =
        leadsync_app::slice::local::pump(sqs, queue_url, deps, CONCURRENCY, 3, Utc::now, || {
            bar.inc(1)
        })
        .await
        .context("running the slices")?;
    bar.finish();
    let mut report = RunReport {
        run_id: run_id.to_owned(),
        ..RunReport::default()
    };
    for result in deps.store.slice_results(run_id).await? {
        report.absorb(&result.report);
    }
    println!(
        "  {} slice invocations, {} retried",
        stats.invocations, stats.failed
    );
    Ok(report)
}

fn print_report(report: &RunReport) {
    println!(
        "  pulled {} · scored {} · quarantined {} · pushed {} ({} batch requests) · {} CRM pages",
        report.pulled,
        report.scored,
        report.quarantined,
        report.pushed,
        report.crm_push_requests,
        report.crm_pull_pages
    );
    let stages: Vec<String> = leadsync_domain::Stage::ALL
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s.as_str(),
                report.stages.get(s.as_str()).copied().unwrap_or(0)
            )
        })
        .collect();
    println!("  stages: {}", stages.join(" · "));
    println!(
        "  new transitions {} · milestones {} · enrichment calls {} (cache hits {})",
        report.transitions_new,
        report.milestones_new,
        report.enrich_calls,
        report.enrich_cache_hits
    );
}

/// The period the demo shows, and why.
async fn pick_period(
    stores: &Stores,
    version: &str,
    now: chrono::DateTime<Utc>,
) -> anyhow::Result<(String, String)> {
    let mut months = Vec::new();
    let mut month = period_of(now);
    for _ in 0..3 {
        month = leadsync_domain::facts::previous_period(&month).unwrap_or(month);
        months.push(month.clone());
    }
    // The three months' funnels in one pass over their months' facts.
    let reports =
        leadsync_pipeline::rollups::funnel_reports(&stores.store, &months, version, now, 30, 1.0)
            .await?;
    let mut best: Option<(usize, String)> = None;
    for (month, report) in months.into_iter().zip(reports) {
        let lively = report
            .steps
            .iter()
            .filter(|s| s.advanced > 0 && s.lost_total > 0)
            .count();
        if lively == report.steps.len() {
            return Ok((
                month.clone(),
                format!(
                    "the most recent complete month in which every funnel step both advanced and lost leads (the current month has only {} days)",
                    now.format("%-d")
                ),
            ));
        }
        if best.as_ref().is_none_or(|(n, _)| lively > *n) {
            best = Some((lively, month.clone()));
        }
    }
    let (lively, month) = best.unwrap_or((0, month));
    Ok((
        month,
        format!(
            "the complete month of the last three with the most funnel steps that both advanced and lost leads ({lively} of 6)"
        ),
    ))
}

/// One sales rep's statement and one marketing source's, a few lines each: what each checks.
async fn print_statements(stores: &Stores, period: &str, version: &str) -> anyhow::Result<()> {
    let lines = leadsync_pipeline::rollups::statements(&stores.store, period, version).await?;
    let currency = stores
        .store
        .plans()
        .await?
        .get(version)
        .map_or_else(|| "USD".to_owned(), |p| p.currency.clone());
    for team in [
        leadsync_domain::incentives::Team::Sales,
        leadsync_domain::incentives::Team::Marketing,
    ] {
        // The owner with the most credited lines of the team.
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for l in lines.iter().filter(|l| l.team == team) {
            *counts.entry(l.owner.as_str()).or_default() += 1;
        }
        let Some((owner, _)) = counts
            .into_iter()
            .max_by_key(|(o, n)| (*n, std::cmp::Reverse(*o)))
        else {
            continue;
        };
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| l.team == team && l.owner == owner)
            .cloned()
            .collect();
        println!();
        println!(
            "Statement of {} {owner} for {period} (first 6 lines; `leadsync rollups statement --period {period} --team {} --owner {owner}` for all)",
            team.as_str(),
            team.as_str()
        );
        rollups_cmd::print_statement(&mine, &currency, 6);
    }
    Ok(())
}

/// Which CRM the demo runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoCrm {
    Hubspot,
    Salesforce,
}

pub async fn demo(seed: u64, contacts: u64, crm: DemoCrm) -> anyhow::Result<()> {
    let started = Instant::now();
    let now = Utc::now();
    // The HubSpot sandbox also serves the enrichment provider, whichever CRM the demo uses.
    let sandbox = Sandbox::start(SandboxConfig::new(seed, contacts).anchored_at(now)).await?;
    let org = match crm {
        DemoCrm::Hubspot => {
            println!(
                "Starting the HubSpot sandbox ({contacts} contacts, seed {seed}) and moto (DynamoDB, S3, SQS) on 127.0.0.1…"
            );
            None
        }
        DemoCrm::Salesforce => {
            println!(
                "Starting the Salesforce sandbox org (the same {contacts} people, seed {seed}: Leads, Contacts, Accounts, Opportunities) and moto (DynamoDB, S3, SQS) on 127.0.0.1…"
            );
            Some(
                leadsync_salesforce_sandbox::SalesforceSandbox::start(
                    leadsync_salesforce_sandbox::SalesforceConfig::new(seed, contacts)
                        .anchored_at(now),
                )
                .await?,
            )
        }
    };
    let moto = tokio::task::spawn_blocking(leadsync_localstack::MotoServer::start).await??;
    let sdk = moto.sdk_config().await;
    let (table, bucket) = ("leadsync-demo".to_owned(), "leadsync-demo".to_owned());
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    leadsync_store::bootstrap::create_table(&dynamo, &table).await?;
    leadsync_store::bootstrap::create_bucket(&s3, &bucket).await?;
    let queue_url = leadsync_store::bootstrap::create_queue(&sqs, "leadsync-demo-slices").await?;

    let slice_contacts = (contacts / 4).max(100).to_string();
    let mut vars: HashMap<&str, String> = HashMap::from([
        (keys::TABLE_NAME, table.clone()),
        (keys::BUCKET_NAME, bucket.clone()),
        (keys::CRM_BASE_URL, sandbox.base_url()),
        (keys::CRM_TOKEN, sandbox.token().to_owned()),
        (keys::ENRICH_PDL_URL, sandbox.base_url()),
        (
            keys::ENRICH_PDL_API_KEY,
            leadsync_sandbox::enrich::API_KEY.to_owned(),
        ),
        // The sandbox enforces no plan limit by default; a real PDL plan would be 1000.
        (keys::ENRICH_PDL_RATE_PER_MINUTE, "600000".to_owned()),
        (keys::SLICE_QUEUE_URL, queue_url.clone()),
        // Small numbers so a demo-sized run fans out the way a million-contact one would.
        (keys::INLINE_MAX_CONTACTS, "1000".to_owned()),
        (keys::SLICE_CONTACTS, slice_contacts),
        (keys::SLICE_CONCURRENCY, CONCURRENCY.to_string()),
        // The sandbox does not rate-limit unless told to; a real account is "free" or "pro".
        (keys::CRM_RATE_TIER, "pro".to_owned()),
        (keys::RESCORE_WAIT_SECONDS, "0".to_owned()),
    ]);
    if let Some(org) = &org {
        vars.insert(keys::CRM_KIND, "salesforce".to_owned());
        vars.insert(keys::CRM_BASE_URL, org.base_url());
        vars.insert(keys::SF_CLIENT_ID, org.client_id().to_owned());
        vars.insert(keys::SF_CLIENT_SECRET, org.client_secret().to_owned());
    }
    let config = leadsync_app::Config::from_lookup(|k| vars.get(k).cloned())?;
    let kind = config.crm_kind;
    let deps = Deps::new(config, &sdk).await?;

    // 1. The nightly run, fanned out.
    let criteria = deps.criteria();
    println!();
    println!(
        "1. Nightly sync (criteria {} {})",
        criteria.id, criteria.version
    );
    let outcome =
        leadsync_app::nightly::handle(event("demo-nightly", serde_json::json!({})), &deps).await?;
    let report = run_queued(&sqs, &queue_url, &deps, "demo-nightly", outcome).await?;
    print_report(&report);
    let watermark = deps.store.watermark(&kind.watermark_key()).await?;
    println!(
        "  watermark now {}",
        watermark.map_or("-".to_owned(), |w| w.to_rfc3339())
    );

    // 2. Sales and marketing sign a stricter SQL bar; publishing it re-scores everyone.
    let next_version = "2026.11.2";
    let text = leadsync_app::BUNDLED_CRITERIA
        .replacen(
            "version = \"2026.11.1\"",
            &format!("version = \"{next_version}\""),
            1,
        )
        .replacen(
            "[stages.sql]\nmin_fit = 35\nmin_total = 70",
            "[stages.sql]\nmin_fit = 40\nmin_total = 75",
            1,
        );
    // Before they sign: what the stricter bar would change, over the night's snapshot in S3.
    let proposed = leadsync_domain::Criteria::parse("demo:b2b-saas-2026.11.2.toml", &text)?;
    let run_prefix = report
        .snapshot_key
        .as_deref()
        .and_then(|k| k.rsplit_once('/'))
        .map_or_else(|| "snapshots/".to_owned(), |(dir, _)| format!("{dir}/"));
    println!();
    println!(
        "2. Before signing, the stricter SQL bar (fit 40, total 75) is simulated over the night's snapshot: `leadsync criteria simulate --snapshot s3://{bucket}/{run_prefix}`"
    );
    let sim = criteria_cmd::simulate_snapshot(&criteria, &proposed, &s3, &bucket, &run_prefix, now)
        .await?;
    criteria_cmd::print_simulation(&sim, true);

    let store = CriteriaStore::new(s3.clone(), dynamo.clone(), bucket.clone(), table.clone());
    let published = store
        .publish("demo:b2b-saas-2026.11.2.toml", &text, Utc::now())
        .await?;
    println!();
    println!(
        "3. Both teams sign; criteria {} {} published to s3://{bucket}/{} (SQL bar: fit 40, total 75); S3 notifies rescore",
        published.id, published.version, published.key
    );
    let answer = leadsync_app::rescore::handle(
        event(
            "demo-criteria",
            leadsync_app::rescore::put_notification(&bucket, &published.key, Utc::now()),
        ),
        &deps,
        None,
    )
    .await?;
    let first = answer
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_default();
    let run_id = format!("criteria-{}-{}-", published.id, published.version);
    let rescored = match first
        .get("outcome")
        .and_then(|o| o.get("status"))
        .and_then(|s| s.as_str())
    {
        Some("queued") => {
            let outcome = RunOutcome::Queued {
                run_id: String::new(),
                slices: first
                    .pointer("/outcome/slices")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0) as u32,
                contacts: first
                    .pointer("/outcome/contacts")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0),
            };
            let rescore_run = format!("{run_id}{}", &published.sha256[..12]);
            run_queued(&sqs, &queue_url, &deps, &rescore_run, outcome).await?
        }
        // Few enough contacts to re-score inline, in the function itself.
        Some("finished") => serde_json::from_value::<RunReport>(
            first
                .pointer("/outcome/report")
                .cloned()
                .unwrap_or_default(),
        )
        .with_context(|| format!("the re-score's report: {first}"))?,
        _ => anyhow::bail!("the re-score did not start: {first}"),
    };
    print_report(&rescored);

    // 3. What both teams look at: one funnel, one incentive table, one export.
    let stores = Stores {
        store: DynamoLeadStore::new(dynamo.clone(), table.clone(), kind.name()),
        exports: S3SnapshotStore::new(s3.clone(), bucket.clone()),
    };
    // The period to show: of the last three complete months (the current one has only the
    // days so far), the most recent in which every funnel step's cohort both advanced and lost
    // leads — every row of the tables has something to say.
    let (period, why) = pick_period(&stores, next_version, now).await?;
    println!();
    println!("4. Rollups for {period} under criteria {next_version} — {why}");
    rollups_cmd::show(
        &stores,
        &period,
        Some(next_version.to_owned()),
        Format::Table,
        &rollups_cmd::View {
            points: 1.0,
            stall_days: 30,
            as_of: now,
        },
    )
    .await?;
    print_statements(&stores, &period, next_version).await?;
    // The shared dashboard: published to S3 by the run, and a copy to open here.
    let out = std::path::Path::new(
        &std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned()),
    )
    .join("demo");
    std::fs::create_dir_all(&out)?;
    let file = out.join(format!("dashboard-{period}.html"));
    let html = leadsync_pipeline::dashboard::page(&stores.store, &period, Some(next_version), now)
        .await?
        .unwrap_or_default();
    std::fs::write(&file, &html)?;
    // The same page is the one published (rendered once).
    let published =
        leadsync_domain::ports::SnapshotStore::put_dashboard(&stores.exports, &period, html)
            .await?;
    println!();
    println!(
        "Dashboard: {} (open it in a browser); published to s3://{bucket}/{published}",
        std::fs::canonicalize(&file).unwrap_or(file).display(),
    );
    println!();
    print!("Finance export: ");
    rollups_cmd::export(&stores, &period, Some(next_version.to_owned())).await?;
    println!();
    println!("Done in {:.1} s.", started.elapsed().as_secs_f64());
    if let Some(org) = org {
        let c = org.counters();
        println!(
            "Salesforce org: {} API requests ({} queries, {} collection updates, {} describes), {} of its daily allocation used",
            c.requests,
            c.queries + c.query_more,
            c.collection_updates,
            c.describes,
            org.api_usage()
        );
        org.shutdown().await;
    }
    sandbox.shutdown().await;
    drop(moto);
    Ok(())
}
