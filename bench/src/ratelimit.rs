//! `leadsync-bench ratelimit`: does a first sync use the account's whole rate limit?
//!
//! The sandbox (its own process) enforces HubSpot Professional's limits — 190 requests in any
//! rolling 10 s, 5 searches a second — and answers a share of the requests 429 although they
//! are under the limit (half with `Retry-After: 1`, half without, as HubSpot does). A first
//! sync of every contact (pull with companies and deals → score → record in memory → push)
//! runs through the production adapter with the production limits. Printed: the requests the
//! sandbox answered (429s included: they count against the window), the time, the share of the
//! allowed rate used over the sync's length, the physical minimum time (requests ÷ rate), the
//! requests that arrived over a limit (violations) and the contacts lost.

use crate::bench::{request_counts, spawn_sandbox_with};
use chrono::Utc;
use leadsync_domain::Criteria;
use leadsync_domain::fakes::{FakeLeadStore, FakeSnapshotStore};
use leadsync_enrich::NoProvider;
use leadsync_hubspot::{HubSpotConfig, HubSpotCrm, RateLimits};
use leadsync_pipeline::{SyncDeps, SyncInput, sync};
use std::time::Instant;

/// Professional's limit, per second.
const RATE: f64 = 19.0;

/// Of the sandbox's request counts: the searches, and every API request (429s included, the
/// sandbox's own admin calls not).
fn searches_and_requests(counts: &std::collections::BTreeMap<String, u64>) -> (u64, u64) {
    let sum = |keep: &dyn Fn(&str) -> bool| -> u64 {
        counts.iter().filter(|(k, _)| keep(k)).map(|(_, n)| n).sum()
    };
    (
        sum(&|k| k.ends_with("/search")),
        sum(&|k| !k.contains("/__sandbox/")),
    )
}

/// Run the measurement and print one row.
///
/// # Errors
/// The sandbox does not start, the sync fails, or contacts are lost.
pub async fn ratelimit(
    contacts: u64,
    injected_429: f64,
    doc: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let measured = Utc::now();
    let sandbox = spawn_sandbox_with(
        "hubspot",
        contacts,
        &[
            "--tier",
            "pro",
            "--rate-limit-rate",
            &injected_429.to_string(),
        ],
    )?;
    // The production adapter as `build_crm` makes it for one slice on Professional.
    let mut config =
        HubSpotConfig::new(sandbox.base_url.clone(), "sandbox-token".to_owned().into());
    config.limits = RateLimits::PRO;
    let crm = HubSpotCrm::new(config)?;
    let criteria = Criteria::parse("bundled", leadsync_app::deps::BUNDLED_CRITERIA)?;
    let (store, snapshots) = (FakeLeadStore::new(), FakeSnapshotStore::new());
    let deps = SyncDeps {
        crm: &crm,
        store: &store,
        snapshots: &snapshots,
        providers: &[] as &[NoProvider],
        criteria: &criteria,
        events: None,
    };
    println!(
        "leadsync-bench ratelimit — a first sync of {contacts} contacts, HubSpot Professional limits (190 per 10 s, 5 searches/s) enforced by the sandbox, {:.0} % of requests answered 429 under the limit",
        injected_429 * 100.0
    );
    let started = Instant::now();
    // Every 10 s: searches and other requests per second, to see where the rate goes unused.
    let timeline = {
        let base_url = sandbox.base_url.clone();
        tokio::spawn(async move {
            let (mut searches, mut others) = (0_u64, 0_u64);
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                let Ok(counts) = request_counts(&base_url).await else {
                    continue;
                };
                let (s, all) = searches_and_requests(&counts);
                let o = all - s;
                eprintln!(
                    "  {:>4.0} s: {:.1} searches/s, {:.1} other requests/s",
                    started.elapsed().as_secs_f64(),
                    (s - searches) as f64 / 10.0,
                    (o - others) as f64 / 10.0
                );
                (searches, others) = (s, o);
            }
        })
    };
    let mut input = SyncInput::nightly("ratelimit-bench", Utc::now());
    input.max_reject_ratio = 1.0;
    let report = sync(&deps, &input).await?;
    let wall = started.elapsed().as_secs_f64();
    timeline.abort();
    let (searches, requests) = searches_and_requests(&request_counts(&sandbox.base_url).await?);
    let stats: leadsync_sandbox::LimitStats =
        reqwest::get(format!("{}/__sandbox/limits", sandbox.base_url))
            .await?
            .json()
            .await?;
    let lost = contacts.saturating_sub(report.scored + report.quarantined);
    let minimum = requests as f64 / RATE;
    let share = requests as f64 / (wall * RATE);
    let met = share >= 0.9 && stats.violations == 0 && lost == 0;
    let table = format!(
        "| contacts | injected 429 | requests answered | of which 429 | searches | wall s | physical minimum s (requests ÷ 19/s) | rate used | max in a 10 s window | violations | contacts lost | pushed |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {contacts} | {:.0} % | {requests} | {} | {searches} | {wall:.1} | {minimum:.1} | **{:.1} %** | {} | {} | {lost} | {} |\n\n\
         Goal: ≥ 90 % of the allowed rate over the sync's length, 0 violations, 0 lost — **{}**.",
        injected_429 * 100.0,
        stats.injected_429 + stats.violations,
        share * 100.0,
        stats.max_in_window,
        stats.violations,
        report.pushed,
        if met { "met" } else { "missed" },
    );
    println!("\n{table}");
    if let Some(doc) = doc {
        crate::compare::update_doc(
            doc,
            "ratelimit",
            &format!(
                "Measured {} on {}.\n\nCommand: `leadsync-bench ratelimit --contacts {contacts} --injected-429 {injected_429}`\n\n{table}\n",
                measured.format("%Y-%m-%d %H:%M UTC"),
                crate::compare::machine()
            ),
        )?;
    }
    Ok(())
}
