//! `leadsync-bench nightly`: the whole nightly sync — pull → enrich → score → record → push —
//! as it runs in Lambda: the release `nightly-sync` binary against a local Runtime API, the
//! sandbox (CRM and enrichment provider) in its own process, DynamoDB and S3 on moto behind a
//! counting proxy. One invocation per size, inline (no fan-out), HubSpot Professional rate
//! limits (190 requests per 10 s), as a team's account would have.
//!
//! Reported per size: leads/s over the invocation, CRM requests per 1,000 leads against the
//! minimum the batch limits allow, DynamoDB write requests and items per 1,000 leads, S3 puts,
//! and the function process's CPU time and peak RSS (read from `/proc/<pid>` after it answered).

use crate::compare::thousands;
use anyhow::{Context as _, bail};
use leadsync_localstack::counting::CountingProxy;
use leadsync_localstack::runtime_api::{FunctionProcess, RuntimeApi};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// One nightly run measured.
#[derive(Debug, Clone)]
pub struct NightlyPoint {
    pub leads: u64,
    pub latency_ms: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub rss_mib: f64,
    pub crm_requests: u64,
    pub setup_requests: u64,
    pub crm_minimum: u64,
    pub enrich_requests: u64,
    pub dynamo_writes: u64,
    pub dynamo_items: u64,
    pub dynamo_reads: u64,
    /// Of `dynamo_reads`, the firmographic cache's.
    pub cache_reads: u64,
    pub s3_puts: u64,
    pub pushed: u64,
}

/// CPU seconds (user + system) and peak RSS (MiB) of a running process.
fn process_usage(pid: u32) -> (f64, f64) {
    let pid = pid.to_string();
    (
        crate::bench::proc_cpu_time(&pid).as_secs_f64(),
        crate::bench::proc_peak_rss_mib(&pid),
    )
}

/// The fewest CRM requests a full sync of the sandbox's data can make: one search page per
/// 200 contacts, one batch read per 100 companies and per 100 deals, one association read per
/// 1,000 contacts, one batch update per 100 pushed, and the run's one census search.
fn crm_minimum(contacts: u64, pushed: u64) -> u64 {
    let spec = leadsync_sandbox::DataSpec::new(7, contacts);
    let (all_companies, generated) = leadsync_sandbox::data::generate(spec);
    let companies: HashSet<&String> = generated
        .iter()
        .filter_map(|c| c.properties.get("associatedcompanyid"))
        .collect();
    let (_, deals_of) = leadsync_sandbox::data::generate_deals(spec, &generated, &all_companies);
    let deals: HashSet<u64> = deals_of.values().flatten().copied().collect();
    1 + contacts.div_ceil(200)
        + (companies.len() as u64).div_ceil(100)
        + contacts.div_ceil(1000)
        + (deals.len() as u64).div_ceil(100)
        + pushed.div_ceil(100)
}

async fn one(bin_dir: &Path, leads: u64, latency_ms: u64) -> anyhow::Result<NightlyPoint> {
    let binary = bin_dir.join("nightly-sync");
    crate::chaos::require(&binary)?;
    let moto = tokio::task::spawn_blocking(leadsync_localstack::MotoServer::start).await??;
    let proxy = CountingProxy::start(&moto.endpoint()).await?;
    let sdk = leadsync_localstack::sdk_config_for(&proxy.endpoint()).await;
    let name = format!("leadsync-bench-{leads}");
    leadsync_store::bootstrap::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &name).await?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    leadsync_store::bootstrap::create_bucket(&s3, &name).await?;
    let sandbox = crate::bench::spawn_sandbox(leads, latency_ms)?;
    let base = sandbox.base_url.clone();
    let env = [
        ("TABLE_NAME", name.clone()),
        ("BUCKET_NAME", name.clone()),
        ("CRM_BASE_URL", base.clone()),
        ("CRM_TOKEN", "sandbox-token".to_owned()),
        ("CRM_RATE_TIER", "pro".to_owned()),
        ("ENRICH_PDL_URL", base.clone()),
        (
            "ENRICH_PDL_API_KEY",
            leadsync_sandbox::enrich::API_KEY.to_owned(),
        ),
        ("ENRICH_PDL_RATE_PER_MINUTE", "600000".to_owned()),
        // One invocation does the whole night: what is measured is one process.
        ("INLINE_MAX_CONTACTS", "10000000".to_owned()),
    ];
    let api = RuntimeApi::start().await?;
    let process =
        FunctionProcess::spawn(&binary.display().to_string(), &api, &proxy.endpoint(), &env)?;
    api.first_poll(Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("nightly-sync did not start: {e}"))?;
    let pid = process.child.id().context("nightly-sync exited at start")?;
    proxy.reset();
    let crm_before = crate::bench::request_counts(&base).await?;
    let started = Instant::now();
    let answer = api
        .invoke(&serde_json::json!({}), Duration::from_secs(3600))
        .await
        .map_err(|e| anyhow::anyhow!("the nightly run failed: {e}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let (cpu_s, rss_mib) = process_usage(pid);
    let crm_after = crate::bench::request_counts(&base).await?;
    let counts = proxy.counts();
    let diff = |pred: &dyn Fn(&str) -> bool| -> u64 {
        crm_after
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(k, v)| v - crm_before.get(k).copied().unwrap_or(0))
            .sum()
    };
    let enrich_requests = diff(&|k: &str| k.contains("/v5/"));
    // A first run creates leadsync's contact properties once; counted apart from the sync.
    let setup_requests = diff(&|k: &str| k.contains("/crm/v3/properties/"));
    let crm_requests = diff(&|k: &str| !k.contains("/v5/")) - setup_requests;
    let report = answer
        .get("report")
        .with_context(|| format!("no report in the answer: {answer}"))?;
    let num = |k: &str| {
        report
            .get(k)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let scored = num("scored");
    if scored != leads {
        bail!("the run scored {scored} of {leads} leads: {answer}");
    }
    let pushed = num("pushed");
    println!(
        "    items: {} states, {} transitions, {} milestones, {} rollup rows, {} merged; {} enrichment calls",
        num("states_written"),
        num("transitions_new"),
        num("milestones_new"),
        num("rollup_rows_written"),
        num("merged"),
        num("enrich_calls")
    );
    drop(process);
    let crm_ops: Vec<String> = crm_after
        .iter()
        .map(|(k, v)| (k, v - crm_before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let aws_ops: Vec<String> = counts
        .requests
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    eprintln!("    CRM: {}", crm_ops.join(", "));
    eprintln!("    AWS: {}", aws_ops.join(", "));
    Ok(NightlyPoint {
        leads,
        latency_ms,
        wall_s,
        cpu_s,
        rss_mib,
        crm_requests,
        setup_requests,
        crm_minimum: crm_minimum(leads, pushed),
        enrich_requests,
        dynamo_writes: counts.dynamo_write_requests(),
        dynamo_items: counts.items_written,
        dynamo_reads: counts.requests_of("DynamoDB.") - counts.dynamo_write_requests(),
        cache_reads: counts.cache_reads,
        s3_puts: counts.requests.get("S3.PUT").copied().unwrap_or(0),
        pushed,
    })
}

pub fn markdown(points: &[NightlyPoint]) -> String {
    let mut s = String::from(
        "| leads | latency | leads/s | wall s | CRM requests / 1k | minimum / 1k | ratio | property setup (first run) | enrichment calls / 1k | DynamoDB write requests / 1k | items written / 1k | DynamoDB reads / 1k | of which firmographic cache / 1k | S3 puts | pushed | CPU s | peak RSS MiB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in points {
        let k = |x: u64| x as f64 * 1000.0 / p.leads.max(1) as f64;
        s.push_str(&format!(
            "| {} | {} ms | {:.0} | {:.1} | {:.1} | {:.1} | {:.2}× | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1} | {:.0} |\n",
            thousands(p.leads),
            p.latency_ms,
            p.leads as f64 / p.wall_s,
            p.wall_s,
            k(p.crm_requests),
            k(p.crm_minimum),
            p.crm_requests as f64 / p.crm_minimum.max(1) as f64,
            p.setup_requests,
            k(p.enrich_requests),
            k(p.dynamo_writes),
            k(p.dynamo_items),
            k(p.dynamo_reads),
            k(p.cache_reads),
            p.s3_puts,
            thousands(p.pushed),
            p.cpu_s,
            p.rss_mib,
        ));
    }
    s
}

/// `leadsync-bench nightly`.
pub async fn command(
    bin_dir: &Path,
    sizes: &[u64],
    latencies: &[u64],
    doc: Option<&Path>,
) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let mut points = Vec::new();
    for &leads in sizes {
        for &latency in latencies {
            eprintln!("  nightly sync of {leads} leads, {latency} ms sandbox latency…");
            let p = one(bin_dir, leads, latency).await?;
            eprintln!(
                "    {:.0} leads/s, {:.1} s, {} CRM requests, {} DynamoDB writes, {:.0} MiB",
                p.leads as f64 / p.wall_s,
                p.wall_s,
                p.crm_requests,
                p.dynamo_writes,
                p.rss_mib
            );
            points.push(p);
        }
    }
    let table = markdown(&points);
    println!("{table}");
    let rss_goal: Vec<String> = points
        .iter()
        .filter(|p| p.leads >= 100_000)
        .map(|p| {
            format!(
                "- peak RSS at {} leads, {} ms: {:.0} MiB [{}]",
                thousands(p.leads),
                p.latency_ms,
                p.rss_mib,
                crate::compare::met(p.rss_mib * 1.048_576 <= 128.0)
            )
        })
        .collect();
    // Issue 20's round-trip goals, per 1,000 leads.
    let round_trip_goals = points.iter().flat_map(|p| {
        let k = |x: u64| x as f64 * 1000.0 / p.leads.max(1) as f64;
        let (writes, cache) = (k(p.dynamo_writes), k(p.cache_reads));
        [
            format!(
                "- DynamoDB write requests at {} leads, {} ms: {writes:.1} per 1,000 (goal ≤ 120) [{}]",
                thousands(p.leads),
                p.latency_ms,
                crate::compare::met(writes <= 120.0)
            ),
            format!(
                "- firmographic cache read requests at {} leads, {} ms: {cache:.1} per 1,000 (goal ≤ 15) [{}]",
                thousands(p.leads),
                p.latency_ms,
                crate::compare::met(cache <= 15.0)
            ),
        ]
    });
    let goals: Vec<String> = round_trip_goals.chain(rss_goal).collect();
    for g in &goals {
        println!("{g}");
    }
    if let Some(doc) = doc {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let body = format!(
            "Measured {} on {}.\n\nCommand: `leadsync-bench {}`\n\n{table}\n{}\n",
            started.format("%Y-%m-%d %H:%M UTC"),
            crate::compare::machine(),
            args.join(" "),
            goals.join("\n"),
        );
        crate::compare::update_doc(doc, "nightly", &body)?;
        eprintln!("updated {}", doc.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_counts_every_batch_limit() {
        // 1,000 contacts: 1 census + 5 search pages + 1 association read + 10 updates, plus
        // the company and deal reads the generated data needs.
        let min = crm_minimum(1_000, 1_000);
        assert!(min > 1 + 5 + 1 + 10, "{min}");
        assert!(min < 1 + 5 + 1 + 10 + 10 + 10, "{min}");
    }

    #[test]
    fn this_process_reports_its_own_usage() {
        let (cpu, rss) = process_usage(std::process::id());
        assert!(cpu >= 0.0 && rss > 1.0, "{cpu} {rss}");
    }
}
