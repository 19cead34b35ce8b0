//! `leadsync bench chaos --kills N`: crash anywhere, converge anyway.
//!
//! One clean night first: the `nightly-sync` binary under the local Runtime API, against a
//! HubSpot sandbox and a fresh table and bucket on moto, timed. Then N nights on fresh copies of
//! the same world, each SIGKILLed at an instant drawn uniformly over the clean night's length
//! (seeded, printed), and invoked again under the same request id — as Lambda retries an
//! asynchronous invocation — by a fresh process, until it answers. Each is compared with the
//! clean night: every item of the table, every contact's leadsync properties, and the CRM
//! writes made beyond the clean night's.
//!
//! Every night is the same scheduled night (`{"scheduled_time": …}`), so runs score at the same
//! instant under the same run id, and almost nothing is excluded from the comparison — see
//! [`EXCLUDED`] for what is, and why.

use anyhow::{Context as _, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use leadsync_localstack::runtime_api::{FunctionProcess, RuntimeApi};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// The night every run is: the run id and `now` follow from it.
const NIGHT: &str = "2026-11-20T03:00:00Z";
/// The request id every invocation of the night carries (a retry keeps it).
pub(crate) const REQUEST_ID: &str = "chaos-night";

/// What the comparison leaves out, and why. Everything else of every item must be equal.
pub const EXCLUDED: &[(&str, &str)] = &[
    (
        "item LOCK#sync",
        "the lease: its holder and expiry are the wall clock's, and a killed run's lease is \
         taken over, not released",
    ),
    (
        "attributes started_at, finished_at",
        "when a process ran, by the wall clock",
    ),
    (
        "attributes expires_at, fetched_at (firmographic cache items)",
        "when the provider was asked, by the wall clock, and the cache entry's TTL that follows \
         from it (the storms bench enriches; chaos nights do not)",
    ),
    (
        "attributes report, result, pulled, pushed, scored, quarantined of RUN#… items (run, \
         slice and finished-slice reports)",
        "what the invocation that finished the night did: a retry counts the facts, pushes and \
         rows its killed attempt had already written as existing, not new (the plan and the \
         finished flag are compared; the facts, states and rows themselves are compared item by \
         item)",
    ),
    (
        "attribute at of SOURCE#…/WATERMARK",
        "the newest contact modification a night saw: after a kill while pushing, the retry \
         also sees HubSpot's stamps of our own push — later than anything the clean night saw, \
         never past the night's instant minus the index lag, and nothing before it unread",
    ),
];

/// Keys removed from every item and, recursively, from every JSON body in it.
const EXCLUDED_KEYS: &[&str] = &["started_at", "finished_at", "expires_at", "fetched_at"];

/// Attributes left out of particular items (by partition key prefix), as [`EXCLUDED`] says.
const EXCLUDED_BY_ITEM: &[(&str, &[&str])] = &[
    (
        "RUN#",
        &[
            "report",
            "result",
            "pulled",
            "pushed",
            "quarantined",
            "scored",
        ],
    ),
    ("SOURCE#", &["at"]),
];

/// One kill and what came of it.
#[derive(Debug, Clone)]
pub struct Kill {
    pub at: Duration,
    /// Where the night was when it was killed (read from the table and the sandbox).
    pub point: String,
    pub converged: bool,
    pub items_differing: u64,
    pub crm_differing: u64,
    pub extra_crm_writes: i64,
    pub invocations: u32,
}

/// The figures of one chaos run.
#[derive(Debug, Clone)]
pub struct ChaosReport {
    pub seed: u64,
    pub contacts: u64,
    pub clean: Duration,
    pub clean_items: usize,
    pub kills: Vec<Kill>,
}

impl ChaosReport {
    /// What [`ChaosReport::print`] prints, as text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    pub fn print(&self) {
        print!("{}", self.text());
    }

    fn write(&self, out: &mut String) {
        use std::fmt::Write as _;
        macro_rules! println {
            ($($t:tt)*) => { let _ = writeln!(out, $($t)*); };
        }
        println!(
            "chaos: {} kills over a clean night of {:.1} s ({} contacts, {} table items), seed {}",
            self.kills.len(),
            self.clean.as_secs_f64(),
            self.contacts,
            self.clean_items,
            self.seed
        );
        println!(
            "{:>4} {:>8}  {:<34} {:>9} {:>11} {:>6} {:>5} {:>6}",
            "kill", "at (s)", "point reached", "converged", "invocations", "items", "crm", "extra"
        );
        for (i, k) in self.kills.iter().enumerate() {
            println!(
                "{:>4} {:>8.2}  {:<34} {:>9} {:>11} {:>6} {:>5} {:>6}",
                i + 1,
                k.at.as_secs_f64(),
                k.point,
                if k.converged { "yes" } else { "NO" },
                k.invocations,
                k.items_differing,
                k.crm_differing,
                k.extra_crm_writes
            );
        }
        let mut points: BTreeMap<&str, u32> = BTreeMap::new();
        for k in &self.kills {
            *points
                .entry(k.point.split(" (").next().unwrap_or(&k.point))
                .or_default() += 1;
        }
        let converged = self.kills.iter().filter(|k| k.converged).count();
        println!(
            "kills {} · points reached {} · runs converged {}/{} · items differing {} · contacts differing {} · CRM writes beyond the clean night's {}",
            self.kills.len(),
            points
                .iter()
                .map(|(p, n)| format!("{p} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            converged,
            self.kills.len(),
            self.kills.iter().map(|k| k.items_differing).sum::<u64>(),
            self.kills.iter().map(|k| k.crm_differing).sum::<u64>(),
            self.kills.iter().map(|k| k.extra_crm_writes).sum::<i64>()
        );
        println!("excluded from the comparison:");
        for (what, why) in EXCLUDED {
            println!("  {what}: {why}");
        }
    }

    /// Every kill converged to the clean night: every item and every contact as it left them.
    /// (CRM writes beyond the clean night's are reported, not failed: a kill between a page's
    /// push and its states re-pushes the same values.)
    pub fn passed(&self) -> bool {
        self.kills
            .iter()
            .all(|k| k.converged && k.items_differing == 0 && k.crm_differing == 0)
    }
}

/// One world: a sandbox of the seeded contacts and a fresh table and bucket.
pub(crate) struct World {
    pub(crate) sandbox: Sandbox,
    pub(crate) table: String,
    pub(crate) dynamo: aws_sdk_dynamodb::Client,
    /// Extra environment for the function (enrichment, …).
    pub(crate) extra: Vec<(&'static str, String)>,
}

pub(crate) async fn world(
    moto: &leadsync_localstack::MotoServer,
    seed: u64,
    contacts: u64,
) -> anyhow::Result<World> {
    let sdk = moto.sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let table = leadsync_localstack::unique_name("chaos");
    leadsync_store::bootstrap::create_table(&dynamo, &table).await?;
    leadsync_store::bootstrap::create_bucket(&s3, &table).await?;
    let mut config = SandboxConfig::new(seed, contacts);
    config.limits.daily = u64::MAX;
    Ok(World {
        sandbox: Sandbox::start(config).await?,
        table,
        dynamo,
        extra: Vec::new(),
    })
}

impl World {
    fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("TABLE_NAME", self.table.clone()),
            ("BUCKET_NAME", self.table.clone()),
            ("CRM_BASE_URL", self.sandbox.base_url()),
            ("CRM_TOKEN", self.sandbox.token().to_owned()),
            ("CRM_RATE_TIER", "pro".to_owned()),
            ("INLINE_MAX_CONTACTS", "10000000".to_owned()),
            // A killed night's lease is taken over by its own retry (same run id) at once.
            ("LEASE_MINUTES", "20".to_owned()),
        ];
        env.extend(self.extra.iter().cloned());
        env
    }

    /// Every item of the table, normalised, by (pk, sk).
    pub(crate) async fn items(&self) -> anyhow::Result<BTreeMap<(String, String), String>> {
        let mut out = BTreeMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .dynamo
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await?;
            for item in page.items() {
                let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
                let (Some(pk), Some(sk)) = (text("pk"), text("sk")) else {
                    continue;
                };
                if pk == "LOCK#sync" {
                    continue;
                }
                let mut item = item.clone();
                for (prefix, attributes) in EXCLUDED_BY_ITEM {
                    if pk.starts_with(prefix) {
                        item.retain(|k, _| !attributes.contains(&k.as_str()));
                    }
                }
                out.insert((pk, sk), normalised(&item));
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Each contact's leadsync properties.
    pub(crate) fn crm(&self) -> BTreeMap<u64, BTreeMap<String, String>> {
        self.sandbox
            .contacts()
            .into_iter()
            .map(|c| {
                let ours = c
                    .properties
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("leadsync_"))
                    .collect();
                (c.id, ours)
            })
            .collect()
    }

    pub(crate) fn crm_writes(&self) -> i64 {
        let counts = self.sandbox.request_counts();
        counts
            .get("POST /crm/v3/objects/contacts/batch/update")
            .copied()
            .unwrap_or(0) as i64
    }

    /// Where a killed night stopped, from what it left behind.
    async fn point(&self, clean_items: usize) -> anyhow::Result<String> {
        let items = self.items().await?;
        let count = |prefix: &str| {
            items
                .keys()
                .filter(|(pk, _)| pk.starts_with(prefix))
                .count()
        };
        let states = items.keys().filter(|(_, sk)| sk == "STATE").count();
        let writes = self.crm_writes();
        let finished = items.iter().any(|((pk, sk), body)| {
            pk.starts_with("RUN#") && sk == "PLAN" && body.contains("\"finished\":true")
        });
        Ok(if items.is_empty() {
            "starting (nothing written)".to_owned()
        } else if finished {
            "answering (run finished)".to_owned()
        } else if count("ROLLUP#") > 0 {
            format!("rollups ({} of {clean_items} items)", items.len())
        } else if writes > 0 {
            format!("pushing ({states} states, {writes} CRM writes)")
        } else if states > 0 {
            format!("recording ({states} states)")
        } else {
            "planning (run recorded)".to_owned()
        })
    }
}

/// An item as comparable text: attributes sorted, wall-clock keys removed (also inside JSON
/// bodies).
fn normalised(item: &HashMap<String, AttributeValue>) -> String {
    let mut attrs: BTreeMap<&str, String> = BTreeMap::new();
    for (k, v) in item {
        if EXCLUDED_KEYS.contains(&k.as_str()) {
            continue;
        }
        let text = match v {
            AttributeValue::S(s) => match serde_json::from_str::<serde_json::Value>(s) {
                Ok(mut json) if json.is_object() => {
                    strip(&mut json);
                    json.to_string()
                }
                _ => s.clone(),
            },
            AttributeValue::N(n) => format!("N:{n}"),
            other => format!("{other:?}"),
        };
        attrs.insert(k, text);
    }
    serde_json::to_string(&attrs).unwrap_or_default()
}

fn strip(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| !EXCLUDED_KEYS.contains(&k.as_str()));
            map.values_mut().for_each(strip);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// A function binary the bench runs must have been built.
///
/// # Errors
/// It is missing, with the command that builds it.
pub(crate) fn require(binary: &Path) -> anyhow::Result<()> {
    if !binary.exists() {
        bail!(
            "{} is missing (build it first: cargo build --release --workspace --bins)",
            binary.display()
        );
    }
    Ok(())
}

pub(crate) fn night() -> serde_json::Value {
    serde_json::json!({ "scheduled_time": NIGHT })
}

/// Start `binary` for `world` (AWS at `aws`: moto, or a proxy in front of it) and wait for
/// its first poll.
pub(crate) async fn start(
    binary: &Path,
    api: &RuntimeApi,
    aws: &str,
    world: &World,
) -> anyhow::Result<FunctionProcess> {
    let process = FunctionProcess::spawn(&binary.display().to_string(), api, aws, &world.env())?;
    api.first_poll(Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("{} did not start: {e}", binary.display()))?;
    Ok(process)
}

/// Run the bench. `binary` is the `nightly-sync` executable (release for figures; the debug
/// one in CI).
///
/// # Errors
/// moto, the sandbox or the binary could not be started, or a night never answered.
pub async fn run(
    binary: &Path,
    kills: u32,
    seed: u64,
    contacts: u64,
) -> anyhow::Result<ChaosReport> {
    require(binary)?;
    let moto = tokio::task::spawn_blocking(leadsync_localstack::MotoServer::start).await??;

    // The clean night.
    let clean = world(&moto, seed, contacts).await?;
    let api = RuntimeApi::start().await?;
    let _process = start(binary, &api, &moto.endpoint(), &clean).await?;
    let began = Instant::now();
    let answer = api
        .invoke_as(REQUEST_ID, &night(), Duration::from_secs(1800))
        .await
        .map_err(|e| anyhow::anyhow!("the clean night failed: {e}"))?;
    let length = began.elapsed();
    if answer["status"] != "finished" {
        bail!("the clean night did not finish: {answer}");
    }
    drop(_process);
    let (clean_items, clean_crm, clean_writes) =
        (clean.items().await?, clean.crm(), clean.crm_writes());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut report = ChaosReport {
        seed,
        contacts,
        clean: length,
        clean_items: clean_items.len(),
        kills: Vec::new(),
    };
    for n in 0..kills {
        let at = length.mul_f64(rng.random_range(0.0..1.0));
        let w = world(&moto, seed, contacts).await?;
        let api = RuntimeApi::start().await?;
        let mut process = start(binary, &api, &moto.endpoint(), &w).await?;
        let first = {
            let api = &api;
            async move {
                api.invoke_as(REQUEST_ID, &night(), Duration::from_secs(1800))
                    .await
            }
        };
        let killed = tokio::select! {
            answer = first => { answer.ok(); false }
            () = tokio::time::sleep(at) => {
                process.child.start_kill().context("SIGKILL")?;
                let _ = process.child.wait().await;
                true
            }
        };
        let point = if killed {
            w.point(clean_items.len()).await?
        } else {
            "answered before the kill".to_owned()
        };
        // Lambda retries the invocation under the same id, in a fresh process.
        let mut invocations = 1;
        let mut converged = !killed;
        if killed {
            let api = RuntimeApi::start().await?;
            let _again = start(binary, &api, &moto.endpoint(), &w).await?;
            for _ in 0..3 {
                invocations += 1;
                match api
                    .invoke_as(REQUEST_ID, &night(), Duration::from_secs(1800))
                    .await
                {
                    Ok(answer) if answer["status"] == "finished" => {
                        converged = true;
                        break;
                    }
                    Ok(answer) => eprintln!("kill {}: retry answered {answer}", n + 1),
                    Err(e) => eprintln!("kill {}: retry failed: {e}", n + 1),
                }
            }
        }
        let items = w.items().await?;
        let mut differing = 0u64;
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for key in clean_items
            .keys()
            .chain(items.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            if clean_items.get(key) != items.get(key) {
                let kind = format!(
                    "{}/{}",
                    key.0.split('#').next().unwrap_or(""),
                    key.1.split('#').next().unwrap_or("")
                );
                *kinds.entry(kind).or_default() += 1;
                if differing < 3 {
                    eprintln!(
                        "kill {}: item {key:?} differs:\n  clean: {:?}\n  here:  {:?}",
                        n + 1,
                        clean_items.get(key),
                        items.get(key)
                    );
                }
                differing += 1;
            }
        }
        if differing > 0 {
            eprintln!("kill {}: differing items by kind: {kinds:?}", n + 1);
        }
        let crm = w.crm();
        let crm_differing = clean_crm
            .iter()
            .filter(|(id, props)| crm.get(id) != Some(props))
            .count() as u64;
        let kill = Kill {
            at,
            point,
            converged,
            items_differing: differing,
            crm_differing,
            extra_crm_writes: w.crm_writes() - clean_writes,
            invocations,
        };
        eprintln!(
            "kill {}/{kills} at {:.2} s: {} → {}, {} items differing",
            n + 1,
            at.as_secs_f64(),
            kill.point,
            if kill.converged {
                "converged"
            } else {
                "NOT converged"
            },
            kill.items_differing
        );
        report.kills.push(kill);
        // Keep moto small: a finished world's table is not needed any more.
        let _ = w.dynamo.delete_table().table_name(&w.table).send().await;
    }
    Ok(report)
}
