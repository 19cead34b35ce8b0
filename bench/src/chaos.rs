//! `leadsync-bench chaos --kills N`: crash anywhere, converge anyway.
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
    /// How the nights ran ([`Shape`]).
    pub shape: String,
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
            "chaos: {} kills over a clean night of {:.1} s ({}; {} contacts, {} table items), seed {}",
            self.kills.len(),
            self.clean.as_secs_f64(),
            self.shape,
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

    /// Every kill converged to the clean night — every item and every contact as it left
    /// them — with no CRM write beyond the clean night's.
    pub fn passed(&self) -> bool {
        self.kills.iter().all(|k| {
            k.converged && k.items_differing == 0 && k.crm_differing == 0 && k.extra_crm_writes == 0
        })
    }
}

/// One world: a sandbox of the seeded contacts and a fresh table and bucket.
pub(crate) struct World {
    pub(crate) sandbox: Sandbox,
    pub(crate) table: String,
    pub(crate) dynamo: aws_sdk_dynamodb::Client,
    /// Extra environment for the function (enrichment, …).
    pub(crate) extra: Vec<(&'static str, String)>,
    /// The slice queue of a fanned-out night.
    pub(crate) queue_url: Option<String>,
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
        queue_url: None,
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

    /// A lead's line in the night's snapshots (its inputs and scorecard as scored last), for
    /// saying why a state differs.
    pub(crate) async fn snapshot_line(&self, moto_endpoint: &str, lead: &str) -> Option<String> {
        let sdk = leadsync_localstack::sdk_config_for(moto_endpoint).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let store = leadsync_store::s3::S3SnapshotStore::new(s3, self.table.clone());
        for object in store.list("snapshots/").await.ok()? {
            for line in store.read_snapshot(&object.key).await.ok()? {
                if line.lead.id.as_str() == lead {
                    return serde_json::to_string(&line.lead).ok();
                }
            }
        }
        None
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
        let finished = run_finished(&items);
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

/// Whether the night's run is marked finished (its plan item's `finished`, a DynamoDB BOOL, as
/// [`normalised`] writes it).
fn run_finished(items: &BTreeMap<(String, String), String>) -> bool {
    items.iter().any(|((pk, sk), body)| {
        pk.starts_with("RUN#") && sk == "PLAN" && body.contains(r#""finished":"Bool(true)""#)
    })
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

/// How a night runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One `nightly-sync` invocation does the whole night.
    Inline,
    /// `nightly-sync` plans the night into slices of `slice_contacts` on an SQS queue (moto);
    /// `sync-slice` invocations do them, one message each, as the event source mapping hands
    /// them over — the last one finishes the run.
    FanOut { slice_contacts: u64 },
}

impl Shape {
    fn name(self) -> String {
        match self {
            Shape::Inline => "inline nightly-sync".to_owned(),
            Shape::FanOut { slice_contacts } => {
                format!(
                    "fanned out: nightly-sync plans, sync-slice runs slices of {slice_contacts}"
                )
            }
        }
    }
}

/// A function process and its Runtime API — the process first, so it is killed before its
/// Runtime API stops answering (a poll cut short makes `lambda_runtime` panic).
type Slot = Option<(FunctionProcess, RuntimeApi)>;

/// What one invocation came to.
enum Invoked {
    Answer(serde_json::Value),
    Failed(String),
    /// The kill landed while it ran: the process is gone.
    Killed,
}

/// The running pieces of one night: the binaries, where AWS is, the world and the pending kill.
struct Night<'a> {
    nightly: &'a Path,
    aws: String,
    world: &'a World,
    /// When the kill lands (taken once it has).
    deadline: Option<tokio::time::Instant>,
    invocations: u32,
    /// Where the night was when the kill landed.
    point: Option<String>,
    clean_items: usize,
}

impl Night<'_> {
    /// Invoke `payload` under `id` on the process in `slot` (started first when there is none),
    /// killing it if the deadline passes before it answers.
    async fn invoke(
        &mut self,
        binary: &Path,
        slot: &mut Slot,
        id: &str,
        payload: &serde_json::Value,
    ) -> anyhow::Result<Invoked> {
        if slot.is_none() {
            let api = RuntimeApi::start().await?;
            let process = start(binary, &api, &self.aws, self.world).await?;
            *slot = Some((process, api));
        }
        let Some((process, api)) = slot.as_mut() else {
            unreachable!("started above")
        };
        self.invocations += 1;
        let answer = api.invoke_as(id, payload, Duration::from_secs(1800));
        let killed = match self.deadline {
            Some(deadline) => tokio::select! {
                answer = answer => Err(answer),
                () = tokio::time::sleep_until(deadline) => Ok(()),
            },
            None => Err(answer.await),
        };
        match killed {
            Err(Ok(answer)) => Ok(Invoked::Answer(answer)),
            Err(Err(e)) => Ok(Invoked::Failed(e.to_string())),
            Ok(()) => {
                process.child.start_kill().context("SIGKILL")?;
                let _ = process.child.wait().await;
                *slot = None;
                self.deadline = None;
                let at = self.world.point(self.clean_items).await?;
                self.point = Some(match binary.file_name().and_then(|n| n.to_str()) {
                    Some("sync-slice") => format!("slices: {at}"),
                    _ => at,
                });
                Ok(Invoked::Killed)
            }
        }
    }

    /// nightly-sync until it answers `want` (retried as Lambda retries an asynchronous
    /// invocation: same request id, a fresh process). False when it never did.
    async fn nightly(&mut self, want: &str) -> anyhow::Result<bool> {
        let mut slot: Slot = None;
        for _ in 0..4 {
            match self
                .invoke(self.nightly, &mut slot, REQUEST_ID, &night())
                .await?
            {
                Invoked::Answer(answer) if answer["status"] == want => return Ok(true),
                Invoked::Answer(answer) => eprintln!("nightly-sync answered {answer}"),
                Invoked::Failed(e) => eprintln!("nightly-sync failed: {e}"),
                Invoked::Killed => {}
            }
        }
        Ok(false)
    }

    /// Drain the slice queue through sync-slice, one message per invocation: a message that
    /// failed, or whose invocation was killed, is made visible again (its visibility timeout,
    /// shortened) and handed to a fresh process. False when one failed 5 times (a redrive
    /// policy would have dead-lettered it).
    async fn slices(&mut self, queue: &str) -> anyhow::Result<bool> {
        let sqs = aws_sdk_sqs::Client::new(&leadsync_localstack::sdk_config_for(&self.aws).await);
        let slice = self.nightly.with_file_name("sync-slice");
        require(&slice)?;
        let mut slot: Slot = None;
        let mut failures: HashMap<String, u32> = HashMap::new();
        let mut n = 0u32;
        loop {
            let received = sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(1)
                .wait_time_seconds(0)
                .send()
                .await?;
            let Some(message) = received.messages.unwrap_or_default().into_iter().next() else {
                return Ok(true);
            };
            let id = message.message_id.clone().unwrap_or_default();
            let event = serde_json::json!({"Records": [{
                "messageId": id,
                "receiptHandle": message.receipt_handle.clone().unwrap_or_default(),
                "body": message.body.clone().unwrap_or_default(),
                "eventSource": "aws:sqs",
            }]});
            n += 1;
            let done = match self
                .invoke(&slice, &mut slot, &format!("slice-{n}"), &event)
                .await?
            {
                Invoked::Answer(answer) => {
                    let ok = answer["batchItemFailures"]
                        .as_array()
                        .is_some_and(Vec::is_empty);
                    if !ok {
                        eprintln!("sync-slice answered {answer}");
                    }
                    ok
                }
                Invoked::Failed(e) => {
                    eprintln!("sync-slice failed: {e}");
                    false
                }
                Invoked::Killed => false,
            };
            let handle = message.receipt_handle.unwrap_or_default();
            if done {
                sqs.delete_message()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            } else {
                let count = failures.entry(id).or_default();
                *count += 1;
                if *count >= 5 {
                    return Ok(false);
                }
                sqs.change_message_visibility()
                    .queue_url(queue)
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .send()
                    .await?;
            }
        }
    }

    /// The whole night, in its shape. True when it finished.
    async fn run(&mut self, shape: Shape) -> anyhow::Result<bool> {
        match (shape, &self.world.queue_url) {
            (Shape::Inline, _) => self.nightly("finished").await,
            (Shape::FanOut { .. }, Some(queue)) => {
                let queue = queue.clone();
                Ok(self.nightly("queued").await?
                    && self.slices(&queue).await?
                    && run_finished(&self.world.items().await?))
            }
            (Shape::FanOut { .. }, None) => bail!("a fanned-out night needs a slice queue"),
        }
    }
}

/// A world for `shape`: the seeded sandbox and a fresh table and bucket, and for a fanned-out
/// night a fresh slice queue.
async fn shaped_world(
    moto: &leadsync_localstack::MotoServer,
    seed: u64,
    contacts: u64,
    shape: Shape,
) -> anyhow::Result<World> {
    let mut w = world(moto, seed, contacts).await?;
    if let Shape::FanOut { slice_contacts } = shape {
        let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
        let url = leadsync_store::bootstrap::create_queue(&sqs, &w.table).await?;
        w.extra.extend([
            ("SLICE_QUEUE_URL", url.clone()),
            ("SLICE_CONTACTS", slice_contacts.to_string()),
            // One slice at a time, each with the whole rate (the bench hands over one message
            // per invocation, in turn).
            ("SLICE_CONCURRENCY", "1".to_owned()),
            ("INLINE_MAX_CONTACTS", slice_contacts.to_string()),
        ]);
        w.queue_url = Some(url);
    }
    Ok(w)
}

/// Run the bench. `binary` is the `nightly-sync` executable (release for figures; the debug
/// one in CI); a fanned-out night also runs the `sync-slice` beside it.
///
/// # Errors
/// moto, the sandbox or the binary could not be started, or the clean night did not finish.
pub async fn run(
    binary: &Path,
    kills: u32,
    seed: u64,
    contacts: u64,
    shape: Shape,
) -> anyhow::Result<ChaosReport> {
    require(binary)?;
    let moto = tokio::task::spawn_blocking(leadsync_localstack::MotoServer::start).await??;

    // The clean night.
    let clean = shaped_world(&moto, seed, contacts, shape).await?;
    let began = Instant::now();
    let mut night = Night {
        nightly: binary,
        aws: moto.endpoint(),
        world: &clean,
        deadline: None,
        invocations: 0,
        point: None,
        clean_items: 0,
    };
    if !night.run(shape).await? {
        bail!("the clean night did not finish ({})", shape.name());
    }
    let length = began.elapsed();
    let (clean_items, clean_crm, clean_writes) =
        (clean.items().await?, clean.crm(), clean.crm_writes());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut report = ChaosReport {
        seed,
        contacts,
        shape: shape.name(),
        clean: length,
        clean_items: clean_items.len(),
        kills: Vec::new(),
    };
    for n in 0..kills {
        let at = length.mul_f64(rng.random_range(0.0..1.0));
        let w = shaped_world(&moto, seed, contacts, shape).await?;
        let mut night = Night {
            nightly: binary,
            aws: moto.endpoint(),
            world: &w,
            deadline: Some(tokio::time::Instant::now() + at),
            invocations: 0,
            point: None,
            clean_items: clean_items.len(),
        };
        let converged = night.run(shape).await?;
        let point = night
            .point
            .take()
            .unwrap_or_else(|| "answered before the kill".to_owned());
        let invocations = night.invocations;
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
            "kill {}/{kills} at {:.2} s: {} → {}, {} items differing, {} extra CRM writes",
            n + 1,
            at.as_secs_f64(),
            kill.point,
            if kill.converged {
                "converged"
            } else {
                "NOT converged"
            },
            kill.items_differing,
            kill.extra_crm_writes
        );
        report.kills.push(kill);
        // Keep moto small: a finished world's table is not needed any more.
        let _ = w.dynamo.delete_table().table_name(&w.table).send().await;
    }
    Ok(report)
}
