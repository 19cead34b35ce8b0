//! Runs over the fakes: a fanned-out run (slices through a queue, in any order, some delivered
//! twice) ends exactly like an inline run; the lease keeps a second run out; a re-score of
//! chosen leads touches only them and never the watermark.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::{at, leads_n};
use leadsync_domain::Criteria;
use leadsync_domain::LeadId;
use leadsync_domain::fakes::{FakeCrm, FakeLeadStore, FakeSliceQueue, FakeSnapshotStore};
use leadsync_domain::ports::NoProvider;
use leadsync_domain::ports::{LeadStore, RunStore};
use leadsync_domain::runs::RunKind;
use leadsync_pipeline::{
    RescoreTarget, RunOptions, SliceDone, Started, SyncDeps, SyncInput, run_slice, start_run,
};

const CRITERIA: &str = include_str!("../../../infra/criteria/b2b-saas.toml");
const LEADS: u32 = 500;

struct World {
    crm: FakeCrm,
    store: FakeLeadStore,
    snapshots: FakeSnapshotStore,
    queue: FakeSliceQueue,
    criteria: Criteria,
}

impl World {
    fn new() -> Self {
        Self {
            crm: FakeCrm::new(leads_n(at("2026-11-10T09:00:00Z"), LEADS)).with_page_size(40),
            store: FakeLeadStore::new(),
            snapshots: FakeSnapshotStore::new(),
            queue: FakeSliceQueue::new(),
            criteria: Criteria::parse("b2b-saas.toml", CRITERIA).unwrap(),
        }
    }

    fn deps(&self) -> SyncDeps<'_, FakeCrm, FakeLeadStore, FakeSnapshotStore, NoProvider> {
        SyncDeps {
            crm: &self.crm,
            store: &self.store,
            snapshots: &self.snapshots,
            providers: &[],
            criteria: &self.criteria,
            events: None,
        }
    }

    fn options(inline_max: u64) -> RunOptions {
        let mut options = RunOptions::new(SyncInput::nightly("template", now()));
        options.inline_max = inline_max;
        options.slice_target = 90;
        options
    }

    async fn start(&self, run_id: &str, inline_max: u64) -> Started {
        start_run(
            &self.deps(),
            &self.queue,
            RunKind::Nightly,
            None,
            &Self::options(inline_max),
            &SyncInput::nightly(run_id, now()),
            now,
        )
        .await
        .unwrap()
    }
}

fn now() -> DateTime<Utc> {
    at("2026-11-20T03:00:00Z")
}

#[tokio::test]
async fn a_fanned_out_run_ends_exactly_like_an_inline_run() {
    let inline = World::new();
    let Started::Finished(inline_report) = inline.start("run-1", u64::MAX).await else {
        panic!("expected an inline run");
    };
    assert_eq!(inline_report.pulled, u64::from(LEADS));
    assert!(inline.queue.drain().is_empty());

    let fanned = World::new();
    let Started::Queued { slices, contacts } = fanned.start("run-1", 100).await else {
        panic!("expected a fan-out");
    };
    assert_eq!(contacts, u64::from(LEADS));
    assert!(slices >= 6, "{slices} slices for {LEADS} contacts of ~90");
    assert!(
        fanned.store.lease().is_some(),
        "the run keeps the lease while its slices wait"
    );
    let mut specs = fanned.queue.drain();
    assert_eq!(specs.len() as u32, slices);
    // Workers take messages in any order, and SQS delivers some twice.
    specs.reverse();
    let redelivered = specs[1].clone();
    specs.push(redelivered);
    let options = World::options(100);
    let mut finished = Vec::new();
    for spec in &specs {
        if let SliceDone::RunFinished(report) = run_slice(&fanned.deps(), spec, &options, now)
            .await
            .unwrap()
        {
            finished.push(report);
        }
    }
    // The last distinct slice finishes the run; the redelivery after it is recorded once and
    // does not finish it again.
    assert_eq!(finished.len(), 1);
    let report = &finished[0];
    assert_eq!(
        (report.pulled, report.scored, report.pushed),
        (
            inline_report.pulled,
            inline_report.scored,
            inline_report.pushed
        )
    );
    assert_eq!(report.stages, inline_report.stages);
    assert_eq!(fanned.store.all_rows(), inline.store.all_rows(), "rollups");
    assert_eq!(fanned.store.states(), inline.store.states(), "lead states");
    assert_eq!(
        fanned.store.watermark("crm#contacts").await.unwrap(),
        inline.store.watermark("crm#contacts").await.unwrap()
    );
    assert_eq!(fanned.crm.written().len(), inline.crm.written().len());
    assert!(
        fanned.store.lease().is_none(),
        "the finisher gave the lease back"
    );
    let (plan, done, finished_flag) = fanned.store.run_record("run-1").unwrap();
    assert_eq!((done as u32, finished_flag), (plan.slices, true));
}

#[tokio::test]
async fn a_second_run_waits_for_the_lease_and_changes_nothing() {
    let w = World::new();
    let Started::Queued { .. } = w.start("nightly", 100).await else {
        panic!("expected a fan-out");
    };
    let specs = w.queue.drain();
    // One slice done, the rest still queued: the run is in flight.
    run_slice(&w.deps(), &specs[0], &World::options(100), now)
        .await
        .unwrap();
    let states_before = w.store.states();

    // A re-score of everything and another nightly run are both turned away.
    let busy = start_run(
        &w.deps(),
        &w.queue,
        RunKind::Rescore,
        Some(RescoreTarget::Since(DateTime::<Utc>::UNIX_EPOCH)),
        &World::options(u64::MAX),
        &SyncInput::nightly("rescore-1", now()),
        now,
    )
    .await
    .unwrap();
    let Started::Busy(lease) = busy else {
        panic!("expected Busy, got {busy:?}");
    };
    assert_eq!(lease.holder, "nightly");
    assert!(matches!(w.start("nightly-2", 100).await, Started::Busy(_)));
    assert_eq!(
        w.store.states(),
        states_before,
        "nothing written while busy"
    );
    assert!(w.queue.drain().is_empty(), "nothing queued while busy");

    // The first run completes; then the re-score runs.
    for spec in &specs[1..] {
        run_slice(&w.deps(), spec, &World::options(100), now)
            .await
            .unwrap();
    }
    let after = start_run(
        &w.deps(),
        &w.queue,
        RunKind::Rescore,
        Some(RescoreTarget::Since(DateTime::<Utc>::UNIX_EPOCH)),
        &World::options(u64::MAX),
        &SyncInput::nightly("rescore-1", now()),
        now,
    )
    .await
    .unwrap();
    assert!(matches!(after, Started::Finished(_)), "{after:?}");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over() {
    let w = World::new();
    let Started::Queued { .. } = w.start("crashed-run", 100).await else {
        panic!("expected a fan-out");
    };
    w.queue.drain(); // its workers never come
    let later = || now() + Duration::hours(2);
    let started = start_run(
        &w.deps(),
        &w.queue,
        RunKind::Nightly,
        None,
        &World::options(u64::MAX),
        &SyncInput::nightly("next-night", now()),
        later,
    )
    .await
    .unwrap();
    assert!(matches!(started, Started::Finished(_)), "{started:?}");
}

#[tokio::test]
async fn a_rescore_of_chosen_leads_touches_only_them_and_not_the_watermark() {
    let w = World::new();
    assert!(matches!(
        w.start("nightly", u64::MAX).await,
        Started::Finished(_)
    ));
    let watermark = w.store.watermark("crm#contacts").await.unwrap();
    let ids: Vec<LeadId> = (0..150)
        .map(|i| LeadId::new((5000 + i * 3).to_string()).unwrap())
        .collect();
    let started = start_run(
        &w.deps(),
        &w.queue,
        RunKind::Rescore,
        Some(RescoreTarget::Leads(ids.clone())),
        &World::options(u64::MAX),
        &SyncInput::nightly("rescore-ids", now() + Duration::days(3)),
        now,
    )
    .await
    .unwrap();
    let Started::Finished(report) = started else {
        panic!("{started:?}");
    };
    assert_eq!(report.pulled, 150, "exactly the chosen leads, in 2 slices");
    let rescored: Vec<LeadId> = w
        .store
        .states()
        .into_values()
        .filter(|s| s.run_id == "rescore-ids")
        .map(|s| s.lead_id)
        .collect();
    assert!(rescored.iter().all(|id| ids.contains(id)), "{rescored:?}");
    assert_eq!(w.store.watermark("crm#contacts").await.unwrap(), watermark);
    assert!(w.store.lease().is_none());
}

#[tokio::test]
async fn a_slice_planned_under_other_criteria_is_refused() {
    let w = World::new();
    let Started::Queued { .. } = w.start("nightly", 100).await else {
        panic!("expected a fan-out");
    };
    let mut spec = w.queue.drain().remove(0);
    spec.criteria_version = "0.0.1".into();
    let error = run_slice(&w.deps(), &spec, &World::options(100), now)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("planned with criteria"),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert!(w.store.states().is_empty());
    let _ = w.store.slice_results("nightly").await.unwrap();
}

#[tokio::test]
async fn a_retried_inline_run_with_the_same_id_finishes_and_changes_nothing() {
    let w = World::new();
    let Started::Finished(first) = w.start("request-1", u64::MAX).await else {
        panic!("expected an inline run");
    };
    assert_eq!(first.transitions_new, u64::from(LEADS));
    let rows = w.store.all_rows();
    // Lambda retries an invocation with the same request id, hence the same run id.
    let again = w.start("request-1", u64::MAX).await;
    let Started::Finished(second) = again else {
        panic!("a retry of a finished run answers finished, got {again:?}");
    };
    assert_eq!(second.pulled, u64::from(LEADS));
    assert_eq!((second.transitions_new, second.pushed), (0, 0));
    assert_eq!(w.store.all_rows(), rows);
    assert!(w.store.lease().is_none());
}

/// A wall clock that moves a second each time it is read, from [`now`].
fn ticking() -> DateTime<Utc> {
    static TICKS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    now() + Duration::seconds(TICKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
}

#[tokio::test]
async fn every_report_says_when_it_finished_by_the_wall_clock() {
    let w = World::new();
    let Started::Queued { .. } = w.start("timed", 100).await else {
        panic!("expected a fan-out");
    };
    let mut options = World::options(100);
    options.template.wall = ticking;
    let mut run = None;
    for spec in &w.queue.drain() {
        if let SliceDone::RunFinished(report) =
            run_slice(&w.deps(), spec, &options, now).await.unwrap()
        {
            run = Some(report);
        }
    }
    let run = run.expect("the last slice finishes the run");
    let slices = w.store.slice_results("timed").await.unwrap();
    assert!(slices.len() >= 6);
    for slice in &slices {
        let (started, finished) = (
            slice.report.started_at.unwrap(),
            slice.report.finished_at.unwrap(),
        );
        assert!(
            finished > started,
            "slice {}: {started} .. {finished}",
            slice.report.slice
        );
    }
    let last_slice = slices
        .iter()
        .filter_map(|s| s.report.finished_at)
        .max()
        .unwrap();
    assert_eq!(
        run.started_at,
        Some(now()),
        "the run started when it was planned"
    );
    assert!(
        run.finished_at.unwrap() > last_slice,
        "the run finished after its last slice: {:?} vs {last_slice}",
        run.finished_at
    );
}

/// Waits for a held lease, on tokio's paused clock: the wall moves only as the loop sleeps.
async fn start_waiting(w: &World, run_id: &str, wait: Duration) -> (Started, std::time::Duration) {
    let began = tokio::time::Instant::now();
    let wall = move || now() + Duration::from_std(tokio::time::Instant::now() - began).unwrap();
    let mut options = World::options(u64::MAX);
    options.wait_for_lease = wait;
    let started = start_run(
        &w.deps(),
        &w.queue,
        RunKind::Rescore,
        Some(RescoreTarget::Since(DateTime::<Utc>::UNIX_EPOCH)),
        &options,
        &SyncInput::nightly(run_id, now()),
        wall,
    )
    .await
    .unwrap();
    (started, began.elapsed())
}

#[tokio::test(start_paused = true)]
async fn a_rescore_waits_for_a_lease_that_is_given_up_in_time_and_runs() {
    let w = World::new();
    // Another run holds the lease for 3 more seconds (and then it expires).
    let held = w
        .store
        .acquire_lease("nightly", now(), now() + Duration::seconds(3))
        .await
        .unwrap();
    assert!(held.is_none());
    let (started, waited) = start_waiting(&w, "rescore-1", Duration::seconds(30)).await;
    assert!(matches!(started, Started::Finished(_)), "{started:?}");
    assert!(
        waited >= std::time::Duration::from_secs(3) && waited < std::time::Duration::from_secs(5),
        "waited {waited:?} for a lease that was free after 3 s"
    );
    assert!(w.store.lease().is_none(), "given back after the run");
}

#[tokio::test(start_paused = true)]
async fn a_rescore_that_waits_past_its_limit_is_busy_and_writes_nothing() {
    let w = World::new();
    w.store
        .acquire_lease("nightly", now(), now() + Duration::minutes(20))
        .await
        .unwrap();
    let (started, waited) = start_waiting(&w, "rescore-1", Duration::seconds(10)).await;
    let Started::Busy(lease) = started else {
        panic!("expected Busy, got {started:?}");
    };
    assert_eq!(lease.holder, "nightly");
    assert!(
        waited >= std::time::Duration::from_secs(10) && waited < std::time::Duration::from_secs(12),
        "gave up after {waited:?}, not after the 10 s it was allowed"
    );
    assert!(w.store.states().is_empty(), "nothing scored while busy");
    assert_eq!(
        w.store.lease().unwrap().holder,
        "nightly",
        "the holder keeps it"
    );
}

#[tokio::test]
async fn a_deferred_rescore_waits_on_the_queue_while_the_lease_is_held_then_runs() {
    use leadsync_domain::runs::DeferredRescore;
    use leadsync_pipeline::{DeferredDone, run_deferred};
    let w = World::new();
    let Started::Queued { .. } = w.start("nightly", 100).await else {
        panic!("expected a fan-out");
    };
    let slices = w.queue.drain();
    let ids: Vec<LeadId> = (0..3)
        .map(|i| LeadId::new((5000 + i * 3).to_string()).unwrap())
        .collect();
    let deferred = DeferredRescore {
        run_id: "rescore-webhook-1".into(),
        target: RescoreTarget::Leads(ids.clone()),
        why: "a HubSpot webhook".into(),
        requested_at: now(),
        attempts: 0,
    };
    let options = World::options(100);

    // The nightly run holds the lease: back on the queue, each time later (60, 120, 240 s).
    let mut message = deferred.clone();
    for (attempt, seconds) in [(1, 60), (2, 120), (3, 240)] {
        let done = run_deferred(&w.deps(), &w.queue, &message, &options, now)
            .await
            .unwrap();
        assert_eq!(
            done,
            DeferredDone::Again {
                attempts: attempt,
                delay: std::time::Duration::from_secs(seconds),
                holder: "nightly".into()
            }
        );
        let mut again = w.queue.drain_deferred();
        assert_eq!(again.len(), 1, "exactly one message put back");
        let (next, delay) = again.pop().unwrap();
        assert_eq!(delay, std::time::Duration::from_secs(seconds));
        assert_eq!(
            (next.run_id.as_str(), next.attempts),
            ("rescore-webhook-1", attempt)
        );
        message = next;
    }
    assert!(
        w.store.load_states(&ids).await.unwrap().is_empty(),
        "nothing re-scored while the lease is held"
    );

    // The run finishes and gives the lease back; the next delivery re-scores the leads.
    for spec in &slices {
        run_slice(&w.deps(), spec, &options, now).await.unwrap();
    }
    assert!(w.store.lease().is_none());
    let later = || now() + Duration::minutes(10);
    let done = run_deferred(&w.deps(), &w.queue, &message, &options, later)
        .await
        .unwrap();
    let DeferredDone::Started(Started::Finished(report)) = done else {
        panic!("expected the re-score to run, got {done:?}");
    };
    assert_eq!(
        (report.run_id.as_str(), report.pulled),
        ("rescore-webhook-1", 3)
    );
    assert!(w.queue.drain_deferred().is_empty());

    // One still waiting after a day fails, for the dead-letter queue to keep.
    w.store
        .acquire_lease("nightly-2", later(), later() + Duration::days(2))
        .await
        .unwrap();
    let too_late = || now() + Duration::hours(25);
    let error = run_deferred(&w.deps(), &w.queue, &deferred, &options, too_late)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nightly-2"), "{error}");
    assert!(w.queue.drain_deferred().is_empty(), "not put back again");
}

#[test]
fn deferral_delays_double_up_to_sqs_s_fifteen_minutes() {
    use leadsync_pipeline::defer_delay;
    let secs = |attempts| defer_delay(Duration::seconds(60), attempts).as_secs();
    assert_eq!(
        (0..6).map(secs).collect::<Vec<_>>(),
        [60, 120, 240, 480, 900, 900]
    );
    assert_eq!(defer_delay(Duration::seconds(60), 40).as_secs(), 900);
    assert_eq!(defer_delay(Duration::zero(), 3).as_secs(), 0);
}

/// A finished night invoked again (Lambda's retry, or the night run again after a provider
/// storm) that now records facts the finished run had not — a lead held back for its
/// enrichment, scored now — recomputes those facts' months: the rollups end as a night that
/// had the lead from the start. (Found by the storms bench: they stayed as the storm left them.)
#[tokio::test]
async fn a_finished_night_invoked_again_recomputes_the_months_of_the_facts_it_adds() {
    let late = leads_n(at("2026-11-12T10:00:00Z"), LEADS + 1)
        .pop()
        .unwrap();
    let w = World::new();
    assert!(matches!(
        w.start("night-1", 1_000_000).await,
        Started::Finished(_)
    ));
    w.crm.upsert(late.clone());
    assert!(matches!(
        w.start("night-1", 1_000_000).await,
        Started::Finished(_)
    ));

    let whole = World::new();
    whole.crm.upsert(late);
    whole.start("night-1", 1_000_000).await;
    assert_eq!(w.store.transitions().len(), whole.store.transitions().len());
    assert_eq!(w.store.all_rows(), whole.store.all_rows());
}
