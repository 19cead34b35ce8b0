//! `leadsync-bench crm` and `leadsync-bench enrich`: figures printed as tables.
//!
//! The sandbox runs as a separate process (this binary's `sandbox` command), so the CPU time
//! and memory measured are leadsync's alone. For each latency it measures, over fresh data:
//! - the pull: every contact (with company data) walked through the adapter — records/s, CPU
//!   seconds per 10,000 records (median of the repeats);
//! - a full sync (pull → score → record in memory → push): CRM requests made per 1,000 leads,
//!   against the minimum the batch limits allow: ⌈N/200⌉ searches + ⌈companies/100⌉ company
//!   reads + ⌈N/1000⌉ deal-association reads + ⌈deals/100⌉ deal reads + ⌈N/100⌉ updates.

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use leadsync_domain::Criteria;
use leadsync_domain::fakes::{FakeLeadStore, FakeSnapshotStore};
use leadsync_domain::ports::Crm;
use leadsync_domain::runs::PullScope;
use leadsync_enrich::NoProvider;
use leadsync_hubspot::{HubSpotConfig, HubSpotCrm, RateLimits};
use leadsync_pipeline::{SyncDeps, SyncInput, sync};
use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct SandboxProcess {
    child: Child,
    pub(crate) base_url: String,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn spawn_sandbox(contacts: u64, latency_ms: u64) -> anyhow::Result<SandboxProcess> {
    spawn_crm_sandbox("hubspot", contacts, latency_ms)
}

/// The `leadsync` binary beside this one (it serves the sandboxes).
///
/// # Errors
/// It is missing, with the command that builds it.
pub(crate) fn leadsync_exe() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("leadsync");
    crate::chaos::require(&exe)?;
    Ok(exe)
}

/// `crm` is `hubspot` or `salesforce` (the `sandbox` command's `--crm`).
pub(crate) fn spawn_crm_sandbox(
    crm: &str,
    contacts: u64,
    latency_ms: u64,
) -> anyhow::Result<SandboxProcess> {
    spawn_sandbox_with(
        crm,
        contacts,
        &["--tier", "none", "--latency-ms", &latency_ms.to_string()],
    )
}

/// The sandbox of `crm` with these further `sandbox` options (tier, faults, latency).
pub(crate) fn spawn_sandbox_with(
    crm: &str,
    contacts: u64,
    options: &[&str],
) -> anyhow::Result<SandboxProcess> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(leadsync_exe()?)
        .args([
            "sandbox",
            "--crm",
            crm,
            "--port",
            &port.to_string(),
            "--seed",
            "7",
            "--contacts",
            &contacts.to_string(),
        ])
        .args(options)
        .stdout(Stdio::null())
        .spawn()
        .context("starting the sandbox process")?;
    let sandbox = SandboxProcess {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("the sandbox did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(sandbox)
}

/// User + system CPU time of a process (`proc` is `"self"` or a pid).
pub(crate) fn proc_cpu_time(proc: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{proc}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields after the command name: state is 0, utime 11, stime 12 (clock ticks, 100 Hz).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// Peak resident memory of a process (`proc` is `"self"` or a pid), in MiB.
pub(crate) fn proc_peak_rss_mib(proc: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{proc}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU time of this process and its threads, to the microsecond
/// (`getrusage(RUSAGE_SELF)`, as the bench reads the Python extractors' own). `/proc`'s
/// counters are in 10 ms ticks: ± 9 % of a 10,000-contact pull.
pub(crate) fn cpu_time() -> Duration {
    use nix::sys::resource::{UsageWho, getrusage};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let micros = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
                    + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
            };
            micros(usage.user_time()) + micros(usage.system_time())
        }
        Err(_) => proc_cpu_time("self"),
    }
}

/// Start this process's peak-RSS count afresh (Linux `clear_refs` 5), so that each measured
/// point reports its own peak, not an earlier one's.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process, in MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    proc_peak_rss_mib("self")
}

pub(crate) fn client(base_url: &str) -> anyhow::Result<HubSpotCrm> {
    let mut config = HubSpotConfig::new(base_url, "sandbox-token".to_owned().into());
    config.page_size = 200;
    // The sandbox is unlimited here: this measures leadsync, not HubSpot's limits.
    config.limits = RateLimits {
        per_window: u32::MAX,
        window: Duration::from_secs(10),
        search_per_second: u32::MAX,
    };
    Ok(HubSpotCrm::new(config)?)
}

/// Walk every contact through the adapter, handing each page to `each`.
pub(crate) async fn for_each_page(
    crm: &HubSpotCrm,
    mut each: impl FnMut(&leadsync_domain::ports::PullPage) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut cursor = None::<String>;
    loop {
        let page = crm
            .pull_page(
                &PullScope::since(DateTime::<Utc>::UNIX_EPOCH),
                cursor.as_deref(),
            )
            .await?;
        each(&page)?;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Every person the adapter pulls over the whole key space, page by page.
async fn pull_all(crm: &impl Crm) -> anyhow::Result<u64> {
    let (mut n, mut cursor) = (0u64, None::<String>);
    loop {
        let page = crm
            .pull_page(
                &PullScope::since(DateTime::<Utc>::UNIX_EPOCH),
                cursor.as_deref(),
            )
            .await?;
        n += (page.leads.len() + page.rejected.len()) as u64;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(n),
        }
    }
}

pub(crate) async fn request_counts(base_url: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    Ok(reqwest::get(format!("{base_url}/__sandbox/requests"))
        .await?
        .json()
        .await?)
}

/// Every request the sandbox has answered so far.
pub(crate) async fn total_requests(base_url: &str) -> anyhow::Result<u64> {
    Ok(request_counts(base_url).await?.values().sum())
}

use crate::compare::median;

pub async fn crm(contacts: u64, latencies: &[u64], repeat: usize) -> anyhow::Result<()> {
    let criteria = Criteria::parse("bundled", leadsync_app::deps::BUNDLED_CRITERIA)?;
    println!(
        "leadsync-bench crm — {contacts} contacts, page size 200, {repeat} repeats (median), sandbox in its own process"
    );
    println!();
    println!(
        "| latency | records/s pulled | CPU s / 10k records | CRM requests / 1k leads synced | minimum / 1k | ratio | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &latency in latencies {
        let sandbox = spawn_sandbox(contacts, latency)?;
        reset_peak_rss();
        let crm = client(&sandbox.base_url)?;
        let (mut rates, mut cpus) = (vec![], vec![]);
        for _ in 0..repeat.max(1) {
            let (cpu0, t0) = (cpu_time(), Instant::now());
            let n = pull_all(&crm).await?;
            let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
            if n != contacts {
                bail!("pulled {n} of {contacts} contacts");
            }
            rates.push(n as f64 / wall.as_secs_f64());
            cpus.push(cpu.as_secs_f64() * 10_000.0 / n as f64);
        }
        let before: u64 = request_counts(&sandbox.base_url).await?.values().sum();
        let (store, snapshots) = (FakeLeadStore::new(), FakeSnapshotStore::new());
        let deps = SyncDeps {
            crm: &crm,
            store: &store,
            snapshots: &snapshots,
            providers: &[] as &[NoProvider],
            criteria: &criteria,
            events: None,
        };
        let report = sync(&deps, &SyncInput::nightly("bench", Utc::now())).await?;
        let made: u64 = request_counts(&sandbox.base_url)
            .await?
            .values()
            .sum::<u64>()
            - before;
        let companies: HashSet<String> = snapshots
            .snapshots()
            .values()
            .flatten()
            .filter_map(|line| line.lead.company_id.clone())
            .collect();
        let deals: u64 = snapshots
            .snapshots()
            .values()
            .flatten()
            .map(|line| line.lead.deals.len() as u64)
            .sum();
        let minimum = report.scored.div_ceil(200)
            + (companies.len() as u64).div_ceil(100)
            + report.scored.div_ceil(1000)
            + deals.div_ceil(100)
            + report.pushed.div_ceil(100);
        let per_k = |x: u64| x as f64 * 1000.0 / report.scored.max(1) as f64;
        println!(
            "| {latency} ms | {:.0} | {:.3} | {:.1} | {:.1} | {:.3}× | {:.0} MiB |",
            median(rates),
            median(cpus),
            per_k(made),
            per_k(minimum),
            made as f64 / minimum.max(1) as f64,
            peak_rss_mib()
        );
    }
    Ok(())
}

/// `leadsync-bench enrich`: enrichment throughput, cold (every distinct domain asked of the
/// PDL-shaped sandbox and written to the DynamoDB cache on moto) and warm (every answer read
/// back from that cache; no provider call), plus the same warm pass over an in-memory cache to
/// show what the enrichment step itself costs without DynamoDB's round trips.
pub async fn enrich(leads: usize, domains: usize, repeat: usize) -> anyhow::Result<()> {
    use leadsync_domain::fakes::FakeFirmographicCache;
    use leadsync_domain::{Lead, LeadId};
    use leadsync_enrich::{Cached, PdlConfig, PdlProvider};
    use leadsync_pipeline::enrich::Enricher;
    use leadsync_store::DynamoFirmographicCache;

    // The sandbox makes one company per four contacts.
    let contacts = domains as u64 * 4;
    let sandbox = spawn_sandbox(contacts, 0)?;
    let (generated, _) =
        leadsync_sandbox::data::generate(leadsync_sandbox::DataSpec::new(7, contacts));
    let domains: Vec<String> = generated
        .iter()
        .filter_map(|c| c.properties.get("domain").cloned())
        .take(domains)
        .collect();
    if domains.is_empty() {
        bail!("the sandbox generated no company domains");
    }
    let make_leads = || -> anyhow::Result<Vec<Lead>> {
        (0..leads)
            .map(|i| {
                let mut lead = Lead::new(LeadId::new(i.to_string())?, DateTime::<Utc>::UNIX_EPOCH);
                lead.email = Some(format!("p{i}@{}", domains[i % domains.len()]));
                Ok(lead)
            })
            .collect()
    };
    let moto = tokio::task::spawn_blocking(leadsync_localstack::MotoServer::start).await??;
    let dynamo = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let table = "leadsync-bench";
    leadsync_store::bootstrap::create_table(&dynamo, table).await?;
    let pdl = || -> anyhow::Result<PdlProvider> {
        let mut config = PdlConfig::new(
            sandbox.base_url.clone(),
            leadsync_sandbox::enrich::API_KEY.to_owned().into(),
        );
        config.min_likelihood = 1;
        config.rate = RateLimits::new(u32::MAX, Duration::from_secs(60));
        Ok(PdlProvider::new(config)?)
    };
    let dynamo_cached = [Cached::new(
        pdl()?,
        DynamoFirmographicCache::new(dynamo.clone(), table),
    )];
    let memory_cached = [Cached::new(pdl()?, FakeFirmographicCache::new())];

    println!(
        "leadsync-bench enrich — {leads} leads over {} company domains, pages of 200, {repeat} repeats (median); \
         sandbox in its own process, DynamoDB on moto",
        domains.len().min(leads)
    );
    println!();
    println!("| pass | provider calls | cache hits | leads/s | CPU s / 10k leads | wall s |");
    println!("|---|---|---|---|---|---|");
    async fn pass<P: leadsync_domain::ports::FirmographicProvider>(
        providers: &[P],
        mut leads: Vec<Lead>,
    ) -> (leadsync_pipeline::enrich::EnrichStats, f64, f64, f64) {
        let mut enricher = Enricher::new(providers);
        let (cpu0, t0) = (cpu_time(), Instant::now());
        for page in leads.chunks_mut(200) {
            enricher.enrich(page).await;
        }
        let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed().as_secs_f64());
        let n = leads.len() as f64;
        (
            enricher.stats,
            n / wall,
            cpu.as_secs_f64() * 10_000.0 / n,
            wall,
        )
    }
    let row = |name: &str, runs: Vec<(leadsync_pipeline::enrich::EnrichStats, f64, f64, f64)>| {
        let stats = runs[0].0;
        println!(
            "| {name} | {} | {} | {:.0} | {:.3} | {:.2} |",
            stats.provider_calls,
            stats.cache_hits,
            median(runs.iter().map(|r| r.1).collect()),
            median(runs.iter().map(|r| r.2).collect()),
            median(runs.iter().map(|r| r.3).collect()),
        );
    };
    row(
        "cold (provider → DynamoDB cache)",
        vec![pass(&dynamo_cached, make_leads()?).await],
    );
    let mut warm = vec![];
    for _ in 0..repeat.max(1) {
        warm.push(pass(&dynamo_cached, make_leads()?).await);
    }
    if warm.iter().any(|r| r.0.provider_calls != 0) {
        bail!("a warm pass called the provider");
    }
    row("warm (DynamoDB cache)", warm);
    pass(&memory_cached, make_leads()?).await;
    let mut memory = vec![];
    for _ in 0..repeat.max(1) {
        memory.push(pass(&memory_cached, make_leads()?).await);
    }
    row("warm (in-memory cache)", memory);
    println!();
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}

/// Cold start of every function binary in `bin_dir`: spawn it against a local Runtime API
/// (moto for AWS, the sandbox as the CRM), time process start → first poll, `runs` times.
pub async fn coldstart(bin_dir: &std::path::Path, runs: usize) -> anyhow::Result<()> {
    use leadsync_localstack::runtime_api::{FunctionProcess, RuntimeApi};
    let moto = tokio::task::spawn_blocking(leadsync_localstack::MotoServer::start).await??;
    let sdk = moto.sdk_config().await;
    let table = "leadsync-coldstart".to_owned();
    leadsync_store::bootstrap::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table).await?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    leadsync_store::bootstrap::create_bucket(&s3, &table).await?;
    let sandbox =
        leadsync_sandbox::Sandbox::start(leadsync_sandbox::SandboxConfig::new(1, 10)).await?;
    let env = [
        ("TABLE_NAME", table.clone()),
        ("BUCKET_NAME", table.clone()),
        ("CRM_BASE_URL", sandbox.base_url()),
        ("CRM_TOKEN", sandbox.token().to_owned()),
    ];
    println!(
        "Cold start: process start → first Runtime API poll, {runs} runs each ({})",
        bin_dir.display()
    );
    println!("| function | binary size | median ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    for name in ["nightly-sync", "sync-slice", "rescore", "rollups-api"] {
        let path = bin_dir.join(name);
        let size = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "{} (build it first: cargo build --release --workspace --bins)",
                    path.display()
                )
            })?
            .len();
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let api = RuntimeApi::start().await?;
            let process =
                FunctionProcess::spawn(&path.display().to_string(), &api, &moto.endpoint(), &env)?;
            let polled = api
                .first_poll(std::time::Duration::from_secs(30))
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            times.push(polled.duration_since(process.spawned_at).as_secs_f64() * 1000.0);
            drop(process);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} MB | {:.1} | {:.1} | {:.1} |",
            size as f64 / 1e6,
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    sandbox.shutdown().await;
    Ok(())
}

/// `leadsync-bench crm --crm salesforce`: the same figures for the Salesforce adapter against
/// the sandbox org in its own process (the same people for the seed: unconverted ones as
/// Leads, the rest as Contacts with Accounts, Opportunities and contact roles). Requests are
/// the org's own count (`Sforce-Limit-Info`'s `api-usage`, before and after). The minimum the
/// batch limits allow for a full sync: ⌈leads/2,000⌉ + ⌈contacts/2,000⌉ query pages, the
/// contact roles of each contact page (⌈roles/2,000⌉, at least one per contact page),
/// ⌈updates/200⌉ collection updates, and the calls the run cannot skip (token requests do not
/// count against the allocation): 4 describes, the result fields' creation on a fresh org (one
/// Tooling call per field and object, then 2 describes), 2 merge queries and the converted
/// leads (⌈converted/2,000⌉), 2 deletes (a first run asks for no changed deals or accounts:
/// everything is read). When the Leads go through a Bulk API 2.0 job they cost one REST page,
/// the job's creation, one poll, its results pages (10,000 records each) and its deletion.
/// Peak RSS is the pull's (before the sync, whose in-memory store holds every lead).
pub async fn salesforce(contacts: u64, latencies: &[u64], repeat: usize) -> anyhow::Result<()> {
    use leadsync_salesforce::{SalesforceConfig, SalesforceCrm};
    use leadsync_salesforce_sandbox::SalesforceConfig as OrgConfig;

    let criteria = Criteria::parse("bundled", leadsync_app::deps::BUNDLED_CRITERIA)?;
    let org = OrgConfig::new(7, contacts);
    println!(
        "leadsync-bench crm --crm salesforce — {contacts} people, query pages of 2,000, {repeat} repeats (median), sandbox org in its own process"
    );
    println!();
    println!(
        "| latency | records/s pulled | CPU s / 10k records | requests / 1k leads synced | minimum / 1k | ratio | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &latency in latencies {
        use leadsync_salesforce_sandbox::Counters;
        let sandbox = spawn_crm_sandbox("salesforce", contacts, latency)?;
        reset_peak_rss();
        let crm = || -> anyhow::Result<SalesforceCrm> {
            Ok(SalesforceCrm::new(SalesforceConfig::new(
                sandbox.base_url.clone(),
                org.client_id.clone(),
                org.client_secret.clone().into(),
            ))?)
        };
        let (mut rates, mut cpus, mut used_before) = (vec![], vec![], 0);
        for _ in 0..repeat.max(1) {
            // A fresh adapter each time: its login and describes are part of a cold pull.
            let crm = crm()?;
            let (cpu0, t0) = (cpu_time(), Instant::now());
            let n = pull_all(&crm).await?;
            let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
            if n != contacts {
                bail!("pulled {n} of {contacts} people");
            }
            rates.push(n as f64 / wall.as_secs_f64());
            cpus.push(cpu.as_secs_f64() * 10_000.0 / n as f64);
            used_before = crm.api_usage().0;
        }
        // The pull's own peak, before the sync below holds every lead in memory (its fakes).
        let pull_rss = peak_rss_mib();
        let crm = crm()?;
        let (store, snapshots) = (FakeLeadStore::new(), FakeSnapshotStore::new());
        let deps = SyncDeps {
            crm: &crm,
            store: &store,
            snapshots: &snapshots,
            providers: &[] as &[NoProvider],
            criteria: &criteria,
            events: None,
        };
        let counted = || async {
            anyhow::Ok(
                reqwest::get(format!("{}/__sandbox/counters", sandbox.base_url))
                    .await?
                    .json::<Counters>()
                    .await?,
            )
        };
        let before = counted().await?;
        let report = sync(&deps, &SyncInput::nightly("bench", Utc::now())).await?;
        let after = counted().await?;
        let d = |f: fn(&Counters) -> u64| f(&after) - f(&before);
        // The org's own count, from its last answer (token requests do not count against the
        // allocation, as in Salesforce).
        let (used, allocation) = crm.api_usage();
        let made = used - used_before;
        let lines: Vec<_> = snapshots.snapshots().into_values().flatten().collect();
        let leads = lines
            .iter()
            .filter(|l| l.lead.id.as_str().starts_with("00Q"))
            .count() as u64;
        let people_contacts = lines.len() as u64 - leads;
        let roles: u64 = lines.iter().map(|l| l.lead.deals.len() as u64).sum();
        // A fresh org: the result fields are created on each object (one Tooling call each)
        // and both objects described again.
        let fields = criteria
            .crm_property_specs()
            .iter()
            .filter(|s| !s.read_only)
            .count() as u64
            * 2
            + 2;
        // The converted leads the walk's start lists (not people: counted by the org after).
        let census = leadsync_salesforce::client::Transport::new(SalesforceConfig::new(
            sandbox.base_url.clone(),
            org.client_id.clone(),
            org.client_secret.clone().into(),
        ))?;
        let converted = census
            .count("SELECT COUNT() FROM Lead WHERE IsConverted = true")
            .await?;
        let defaults = SalesforceConfig::new("", "", String::new().into());
        let bulk = d(|c| c.bulk_jobs) > 0;
        // Leads: by REST pages of 2,000, or one REST page (whose totalSize decides) then a
        // job (create, one poll, results pages, delete).
        let lead_requests = if bulk {
            1 + 2
                + leads
                    .saturating_sub(u64::from(defaults.page_size))
                    .div_ceil(defaults.bulk_page_size as u64)
                + 1
        } else {
            leads.div_ceil(2_000)
        };
        let minimum = lead_requests
            + people_contacts.div_ceil(2_000)
            + roles.div_ceil(2_000).max(people_contacts.div_ceil(2_000))
            + report.pushed.div_ceil(200)
            + 4
            + fields
            + 2
            + converted.div_ceil(2_000).max(1)
            + 2;
        let per_k = |x: u64| x as f64 * 1000.0 / report.scored.max(1) as f64;
        println!(
            "| {latency} ms | {:.0} | {:.3} | {:.2} | {:.2} | {:.3}× | {:.0} MiB |",
            median(rates),
            median(cpus),
            per_k(made),
            per_k(minimum),
            made as f64 / minimum.max(1) as f64,
            pull_rss
        );
        eprintln!(
            "  {latency} ms: {} people ({leads} leads, {people_contacts} contacts, {roles} roles, {converted} converted), {} pushed; {made} requests by the org's api-usage ({used} of {allocation} used), {} by its counters: {} queries, {} query-more, {} collection updates, {} describes, {} Tooling, {} tokens, bulk {} jobs / {} polls / {} results pages; peak RSS with the sync's in-memory store {:.0} MiB",
            report.scored,
            report.pushed,
            d(|c| c.requests),
            d(|c| c.queries),
            d(|c| c.query_more),
            d(|c| c.collection_updates),
            d(|c| c.describes),
            d(|c| c.tooling),
            d(|c| c.tokens),
            d(|c| c.bulk_jobs),
            d(|c| c.bulk_polls),
            d(|c| c.bulk_results),
            peak_rss_mib(),
        );
    }
    Ok(())
}
