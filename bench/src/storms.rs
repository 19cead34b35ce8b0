//! `leadsync-bench storms`: every dependency having a bad night, one at a time and together.
//!
//! The `nightly-sync` binary under the local Runtime API runs the same scheduled night as a
//! clean baseline, then once per storm on a fresh copy of the world: the HubSpot sandbox
//! answering 30 % 429 (with and without `Retry-After`), 10 % 5xx, 5 % cut-short bodies or 5 %
//! timeouts (answers held past the client's timeout); the
//! enrichment provider (a second sandbox) the same; DynamoDB and S3, through the counting proxy
//! in front of moto, answering `ProvisionedThroughputExceededException` /
//! `ThrottlingException`, `InternalServerError`, `SlowDown` and `InternalError`. Each stormy
//! night must end finished or failed cleanly (an answer, never a crash or a hang), and leave the
//! lease free; then the storm stops, the same night is invoked again, and the world must
//! converge to the clean night's (run twice as well) — every table item but the run records
//! (a stormy night's report is its history: what the storm did), compared as the chaos bench
//! compares them, and every contact's leadsync properties.

use crate::chaos::{REQUEST_ID, World, night, start, world};
use anyhow::bail;
use leadsync_localstack::counting::{AwsFaults, CountingProxy};
use leadsync_localstack::runtime_api::RuntimeApi;
use leadsync_sandbox::{Faults, Sandbox, SandboxConfig};
use std::path::Path;
use std::time::{Duration, Instant};

/// One storm: what each dependency does wrong.
#[derive(Debug, Clone, Copy)]
struct Storm {
    name: &'static str,
    crm: Faults,
    provider: Faults,
    aws: AwsFaults,
}

fn storms() -> Vec<Storm> {
    let none = Faults::default();
    let r429 = Faults {
        rate_limit_rate: 0.30,
        retry_after_rate: 1.0,
        ..none
    };
    let r429_bare = Faults {
        rate_limit_rate: 0.30,
        retry_after_rate: 0.0,
        ..none
    };
    let s5xx = Faults {
        server_error_rate: 0.10,
        ..none
    };
    let cut = Faults {
        malformed_rate: 0.05,
        ..none
    };
    // Held a second past the client's timeout (HubSpot 30 s, PDL 10 s): each is a timeout.
    let crm_timeouts = Faults {
        timeout_rate: 0.05,
        hang_ms: 31_000,
        ..none
    };
    let provider_timeouts = Faults {
        hang_ms: 11_000,
        ..crm_timeouts
    };
    let dynamo = AwsFaults {
        dynamo_throttle: 0.10,
        ..AwsFaults::default()
    };
    let dynamo_500 = AwsFaults {
        dynamo_500: 0.05,
        ..AwsFaults::default()
    };
    // A night makes only a handful of S3 requests (snapshot, quarantine, dashboards): half of
    // them fail, so the storm bites.
    let s3 = AwsFaults {
        s3: 0.50,
        ..AwsFaults::default()
    };
    let calm = AwsFaults::default();
    let all = Faults {
        rate_limit_rate: 0.30,
        retry_after_rate: 0.5,
        server_error_rate: 0.10,
        malformed_rate: 0.05,
        ..crm_timeouts
    };
    let storm = |name, crm, provider, aws| Storm {
        name,
        crm,
        provider,
        aws,
    };
    vec![
        storm("CRM 30 % 429 with Retry-After", r429, none, calm),
        storm("CRM 30 % 429 without Retry-After", r429_bare, none, calm),
        storm("CRM 10 % 5xx", s5xx, none, calm),
        storm("CRM 5 % cut-short bodies", cut, none, calm),
        storm("CRM 5 % timeouts", crm_timeouts, none, calm),
        storm("provider 30 % 429 with Retry-After", none, r429, calm),
        storm(
            "provider 30 % 429 without Retry-After",
            none,
            r429_bare,
            calm,
        ),
        storm("provider 10 % 5xx", none, s5xx, calm),
        storm("provider 5 % cut-short bodies", none, cut, calm),
        storm("provider 5 % timeouts", none, provider_timeouts, calm),
        storm("DynamoDB 10 % throttled", none, none, dynamo),
        storm("DynamoDB 5 % InternalServerError", none, none, dynamo_500),
        storm("S3 50 % SlowDown / InternalError", none, none, s3),
        storm(
            "all of them at once",
            all,
            Faults {
                hang_ms: 11_000,
                ..all
            },
            AwsFaults {
                dynamo_throttle: 0.10,
                dynamo_500: 0.05,
                s3: 0.20,
            },
        ),
    ]
}

/// What one storm did.
#[derive(Debug, Clone)]
pub struct StormRow {
    pub name: &'static str,
    /// `finished`, or the error type the function answered.
    pub outcome: String,
    pub seconds: f64,
    pub crm_requests: u64,
    pub provider_requests: u64,
    pub aws_requests: u64,
    /// Faults the storm injected (CRM and provider 429/5xx/cut bodies/timeouts; AWS errors).
    pub injected: u64,
    pub quarantined: u64,
    pub lease_free: bool,
    pub converged: bool,
    pub items_differing: u64,
    pub contacts_differing: u64,
}

/// The figures of a storms run.
#[derive(Debug, Clone)]
pub struct StormsReport {
    pub contacts: u64,
    pub clean: StormRow,
    pub rows: Vec<StormRow>,
}

impl StormsReport {
    /// A markdown table (what docs/reliability.md holds).
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| storm | stormy night | s | CRM requests | provider requests | AWS requests | faults injected | quarantined | lease free after | converged after (items / contacts differing) |\n|---|---|---:|---:|---:|---:|---:|---:|---|---|\n",
        );
        for r in std::iter::once(&self.clean).chain(&self.rows) {
            out += &format!(
                "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} ({} / {}) |\n",
                r.name,
                r.outcome,
                r.seconds,
                r.crm_requests,
                r.provider_requests,
                r.aws_requests,
                r.injected,
                r.quarantined,
                if r.lease_free { "yes" } else { "**no**" },
                if r.converged { "yes" } else { "**no**" },
                r.items_differing,
                r.contacts_differing
            );
        }
        out
    }

    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.lease_free && r.converged)
    }
}

/// The provider sandbox of a world (its companies are the CRM sandbox's: the same seed).
async fn provider(seed: u64, contacts: u64) -> anyhow::Result<Sandbox> {
    let mut config = SandboxConfig::new(seed, contacts);
    config.limits.daily = u64::MAX;
    Ok(Sandbox::start(config).await?)
}

fn requests(sandbox: &Sandbox, provider: bool) -> u64 {
    sandbox
        .request_counts()
        .iter()
        .filter(|(k, _)| k.contains("/v5/") == provider && !k.contains("/admin"))
        .map(|(_, n)| n)
        .sum()
}

/// Run the storms. `binary` is the `nightly-sync` executable.
///
/// # Errors
/// moto, a sandbox or the binary could not be started, or the clean night failed.
pub async fn run(
    binary: &Path,
    seed: u64,
    contacts: u64,
    only: Option<&str>,
) -> anyhow::Result<StormsReport> {
    crate::chaos::require(binary)?;
    let moto = tokio::task::spawn_blocking(leadsync_localstack::MotoServer::start).await??;
    let proxy = CountingProxy::start(&moto.endpoint()).await?;
    let aws = proxy.endpoint();

    // One night on a world: (answer, seconds, the provider sandbox).
    let setup = |w: &mut World, p: &Sandbox| {
        w.extra = vec![
            ("ENRICH_PDL_URL", p.base_url()),
            (
                "ENRICH_PDL_API_KEY",
                leadsync_sandbox::enrich::API_KEY.to_owned(),
            ),
            ("ENRICH_PDL_RATE_PER_MINUTE", "600000".to_owned()),
        ];
    };

    let mut clean = world(&moto, seed, contacts).await?;
    let clean_provider = provider(seed, contacts).await?;
    setup(&mut clean, &clean_provider);
    let api = RuntimeApi::start().await?;
    let process = start(binary, &api, &aws, &clean).await?;
    proxy.reset();
    let began = Instant::now();
    let answer = api
        .invoke_as(REQUEST_ID, &night(), Duration::from_secs(1800))
        .await
        .map_err(|e| anyhow::anyhow!("the clean night failed: {e}"))?;
    if answer["status"] != "finished" {
        bail!("the clean night did not finish: {answer}");
    }
    let counts = proxy.counts();
    // Every stormy world runs its night twice (the storm, then again without it): the baseline
    // does too, so the last attempt's slice report is the same kind of report on both sides.
    let again = api
        .invoke_as(REQUEST_ID, &night(), Duration::from_secs(1800))
        .await
        .map_err(|e| anyhow::anyhow!("the clean night, again, failed: {e}"))?;
    if again["status"] != "finished" {
        bail!("the clean night, again, did not finish: {again}");
    }
    let figure = |k: &str| again["report"][k].as_u64().unwrap_or(0);
    eprintln!(
        "the clean night, again: {} pulled, {} states written, {} transitions new, {} cache hits, {} provider calls",
        figure("pulled"),
        figure("states_written"),
        figure("transitions_new"),
        figure("enrich_cache_hits"),
        figure("enrich_calls")
    );
    drop(process);
    let clean_row = StormRow {
        name: "none (the clean night)",
        outcome: "finished".into(),
        seconds: began.elapsed().as_secs_f64(),
        crm_requests: requests(&clean.sandbox, false),
        provider_requests: requests(&clean_provider, true),
        aws_requests: counts.requests_of("DynamoDB.") + counts.requests_of("S3."),
        injected: 0,
        quarantined: answer["report"]["quarantined"].as_u64().unwrap_or(0),
        lease_free: true,
        converged: true,
        items_differing: 0,
        contacts_differing: 0,
    };
    let (clean_items, clean_crm) = (clean.items().await?, clean.crm());

    let mut rows = Vec::new();
    for storm in storms()
        .into_iter()
        .filter(|s| only.is_none_or(|o| s.name.contains(o)))
    {
        let mut w = world(&moto, seed, contacts).await?;
        let p = provider(seed, contacts).await?;
        setup(&mut w, &p);
        w.sandbox.set_faults(storm.crm);
        p.set_faults(storm.provider);
        let api = RuntimeApi::start().await?;
        let _process = start(binary, &api, &aws, &w).await?;
        proxy.reset();
        proxy.set_faults(storm.aws);
        let began = Instant::now();
        let answer = api
            .invoke_as(REQUEST_ID, &night(), Duration::from_secs(1800))
            .await;
        let seconds = began.elapsed().as_secs_f64();
        proxy.set_faults(AwsFaults::default());
        let counts = proxy.counts();
        let (outcome, quarantined) = match &answer {
            Ok(a) => (
                a["status"].as_str().unwrap_or("?").to_owned(),
                a["report"]["quarantined"].as_u64().unwrap_or(0),
            ),
            Err(e) => (
                format!(
                    "failed cleanly ({})",
                    e["errorType"].as_str().unwrap_or("no answer")
                ),
                0,
            ),
        };
        let stats = (w.sandbox.limit_stats(), p.limit_stats());
        let injected = stats.0.injected_429
            + stats.0.injected_5xx
            + stats.0.injected_malformed
            + stats.0.injected_timeouts
            + stats.1.injected_timeouts
            + stats.1.injected_429
            + stats.1.injected_5xx
            + stats.1.injected_malformed
            + counts
                .requests
                .iter()
                .filter(|(k, _)| k.starts_with("fault."))
                .map(|(_, n)| n)
                .sum::<u64>();
        // The lease: free, or held by nobody past its own run (a finished or failed night
        // releases it).
        let lease = w
            .dynamo
            .get_item()
            .table_name(&w.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("LOCK#sync".into()),
            )
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("LOCK".into()),
            )
            .send()
            .await?;
        let lease_free = lease.item().is_none_or(|i| {
            i.get("holder")
                .and_then(|h| h.as_s().ok())
                .is_none_or(String::is_empty)
        });
        let crm_requests = requests(&w.sandbox, false);
        let provider_requests = requests(&p, true);
        // The storm passes; the night is invoked again.
        w.sandbox.set_faults(Faults::default());
        p.set_faults(Faults::default());
        let again = api
            .invoke_as(REQUEST_ID, &night(), Duration::from_secs(1800))
            .await;
        let finished = again.as_ref().is_ok_and(|a| a["status"] == "finished");
        if let (Ok(first), Ok(second)) = (&answer, &again) {
            let figures = |a: &serde_json::Value| {
                [
                    "pulled",
                    "scored",
                    "states_written",
                    "unchanged",
                    "enrich_held",
                    "enrich_unavailable",
                    "enrich_calls",
                    "already_in_crm",
                    "pushed",
                ]
                .map(|k| format!("{k} {}", a["report"][k]))
                .join(", ")
            };
            eprintln!(
                "{}: stormy night {}; again {}",
                storm.name,
                figures(first),
                figures(second)
            );
        }
        let items = w.items().await?;
        // Run records (`RUN#…`) are the nights' history, not state: a stormy night's report
        // says what the storm did (lookups left unavailable, pages retried) — that is its
        // point. Everything else is compared.
        let keys: std::collections::BTreeSet<_> = clean_items
            .keys()
            .chain(items.keys())
            .filter(|(pk, _)| !pk.starts_with("RUN#"))
            .collect();
        let differing: Vec<_> = keys
            .into_iter()
            .filter(|k| clean_items.get(*k) != items.get(*k))
            .collect();
        for key in differing.iter().take(2) {
            eprintln!(
                "{}: item {key:?} differs\n  clean: {:?}\n  after: {:?}",
                storm.name,
                clean_items
                    .get(*key)
                    .map(|t| t.chars().take(600).collect::<String>()),
                items
                    .get(*key)
                    .map(|t| t.chars().take(600).collect::<String>())
            );
        }
        // A lead's state that differs: its inputs as each world scored them last.
        if let Some((pk, _)) = differing
            .iter()
            .find(|(pk, sk)| pk.starts_with("LEAD#") && sk == "STATE")
        {
            let lead = pk.rsplit('#').next().unwrap_or_default();
            eprintln!(
                "{}: lead {lead} as scored\n  clean: {:?}\n  after: {:?}",
                storm.name,
                clean.snapshot_line(&moto.endpoint(), lead).await,
                w.snapshot_line(&moto.endpoint(), lead).await
            );
        }
        let items_differing = differing.len() as u64;
        let crm = w.crm();
        let contacts_differing = clean_crm
            .iter()
            .filter(|(id, props)| crm.get(id) != Some(props))
            .count() as u64;
        let row = StormRow {
            name: storm.name,
            outcome,
            seconds,
            crm_requests,
            provider_requests,
            aws_requests: counts.requests_of("DynamoDB.") + counts.requests_of("S3."),
            injected,
            quarantined,
            lease_free,
            converged: finished && items_differing == 0 && contacts_differing == 0,
            items_differing,
            contacts_differing,
        };
        eprintln!(
            "{}: {} in {:.1} s, {} faults; lease {}; {}",
            row.name,
            row.outcome,
            row.seconds,
            row.injected,
            if row.lease_free { "free" } else { "HELD" },
            if row.converged {
                "converged".to_owned()
            } else {
                format!(
                    "NOT converged ({} items, {} contacts differing; again: {:?})",
                    row.items_differing,
                    row.contacts_differing,
                    again.as_ref().map(|a| a["status"].clone())
                )
            }
        );
        rows.push(row);
        let _ = w.dynamo.delete_table().table_name(&w.table).send().await;
    }
    Ok(StormsReport {
        contacts,
        clean: clean_row,
        rows,
    })
}

/// Put the table into `doc` between `<!-- storms:begin -->` and `<!-- storms:end -->`
/// (appended with the markers when absent).
///
/// # Errors
/// The file cannot be read or written.
pub fn write_doc(doc: &Path, report: &StormsReport, table: &str) -> anyhow::Result<()> {
    let body = format!(
        "`leadsync-bench storms --contacts {}` (nightly-sync binary, one night per storm on a fresh world):\n\n{table}",
        report.contacts
    );
    write_section(doc, "storms", &body)
}

/// Replace the text between `<!-- {name}:begin -->` and `<!-- {name}:end -->` in `doc` (the
/// markers and the text are appended when absent).
///
/// # Errors
/// The file cannot be read or written.
pub fn write_section(doc: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let text = std::fs::read_to_string(doc).unwrap_or_default();
    let section = format!("{begin}\n{body}{end}");
    let out = match (text.find(&begin), text.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            format!("{}{section}{}", &text[..a], &text[b + end.len()..])
        }
        _ => format!("{text}\n{section}\n"),
    };
    std::fs::write(doc, out)?;
    Ok(())
}
