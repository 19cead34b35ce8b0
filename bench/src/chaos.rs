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

mod world;
use world::run_finished;
pub(crate) use world::{World, night, require, start, world};

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
