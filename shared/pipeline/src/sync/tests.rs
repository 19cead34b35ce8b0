use super::*;
use leadsync_domain::fakes::{FakeCrm, FakeLeadStore, FakeSnapshotStore, When};
use leadsync_domain::ports::NoProvider;
use leadsync_domain::ports::{CrmError, Rejected};
use leadsync_domain::{Engagement, Firmographics, Lead, Provenance, Sourced, Stage};

const CRITERIA: &str = include_str!("../../../../infra/criteria/b2b-saas.toml");

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(minutes)
}

/// 40 leads with a mix of stages: free-mail, good fit, weak fit, engaged.
fn leads() -> Vec<Lead> {
    (0..40)
        .map(|i| {
            let mut l = Lead::new(LeadId::new(format!("{}", 1000 + i)).unwrap(), at(i));
            l.email = Some(if i % 5 == 0 {
                format!("p{i}@gmail.com")
            } else {
                format!("p{i}@co{i}.com")
            });
            l.owner_id = Some(format!("owner{}", i % 3));
            l.engagement = Engagement {
                page_views: (i as u32) % 20,
                email_opens: 0,
                email_clicks: (i as u32) % 4,
                form_submissions: (i as u32) % 3,
                last_page_view_at: Some(at(i)),
                last_email_open_at: Some(at(i)),
                last_email_click_at: Some(at(i)),
                last_form_submission_at: Some(at(i)),
            };
            if i % 2 == 0 {
                l.firmographics = Firmographics {
                    industry: Some(Sourced::new("COMPUTER_SOFTWARE".into(), Provenance::crm())),
                    employees: Some(Sourced::new(200, Provenance::crm())),
                    ..Firmographics::default()
                };
            }
            l
        })
        .collect()
}

struct World {
    crm: FakeCrm,
    store: FakeLeadStore,
    snapshots: FakeSnapshotStore,
    criteria: Criteria,
}

impl World {
    fn new(crm: FakeCrm) -> Self {
        Self {
            crm,
            store: FakeLeadStore::new(),
            snapshots: FakeSnapshotStore::new(),
            criteria: Criteria::parse("c", CRITERIA).unwrap(),
        }
    }

    async fn run(&self, run_id: &str, now: DateTime<Utc>) -> Result<RunReport, SyncError> {
        let deps = SyncDeps {
            crm: &self.crm,
            store: &self.store,
            snapshots: &self.snapshots,
            providers: &[] as &[NoProvider],
            criteria: &self.criteria,
            events: None,
        };
        sync(&deps, &SyncInput::nightly(run_id, now)).await
    }
}

#[tokio::test]
async fn every_lead_is_scored_recorded_pushed_and_snapshotted() {
    let w = World::new(FakeCrm::new(leads()).with_page_size(15));
    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(
        (report.pulled, report.scored, report.quarantined),
        (40, 40, 0)
    );
    assert_eq!(report.crm_pull_pages, 3);
    assert_eq!(report.stages.values().sum::<u64>(), 40);
    assert_eq!(report.stages["disqualified"], 8);
    assert!(report.stages.len() >= 3, "{:?}", report.stages);
    assert_eq!(report.pushed, 40);
    assert_eq!(report.transitions_new, 40);

    let states = w.store.states();
    let written = w.crm.written();
    for lead in leads() {
        let card = w.criteria.evaluate(&lead, at(60));
        let state = &states[&lead.id];
        assert_eq!((state.stage, state.total), (card.stage, card.total));
        let pushed = written.iter().find(|u| u.lead_id == lead.id).unwrap();
        assert_eq!(pushed.properties, card.crm_properties(&w.criteria.crm));
        assert!(state.pushed_hash.is_some());
    }
    let snapshot = w.snapshots.snapshots();
    assert_eq!(snapshot.values().next().unwrap().len(), 40);
    assert_eq!(w.store.runs().len(), 1);
}

#[tokio::test]
async fn rerun_changes_nothing_and_writes_nothing_to_the_crm() {
    let w = World::new(FakeCrm::new(leads()));
    w.run("r1", at(60)).await.unwrap();
    let states = w.store.states();
    let writes = w.crm.written().len();
    // Re-run with the watermark wiped: everything is pulled again.
    let deps = SyncDeps {
        crm: &w.crm,
        store: &w.store,
        snapshots: &w.snapshots,
        providers: &[] as &[NoProvider],
        criteria: &w.criteria,
        events: None,
    };
    let mut input = SyncInput::nightly("r2", at(61));
    input.since_override = Some(DateTime::<Utc>::UNIX_EPOCH);
    let again = sync(&deps, &input).await.unwrap();
    assert_eq!(again.pulled, 40);
    assert_eq!(
        (
            again.pushed,
            again.push_candidates,
            again.states_written,
            again.transitions_new
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(again.unchanged, 40);
    assert_eq!(w.crm.written().len(), writes);
    assert_eq!(w.store.states(), states);
}

#[tokio::test]
async fn bad_records_are_quarantined_and_counted() {
    let rejected = vec![Rejected {
        lead_id: Some("77".into()),
        reason: "field lastmodifieddate: missing".into(),
        raw: "{}".into(),
    }];
    let w = World::new(FakeCrm::new(leads()).with_rejected(rejected.clone()));
    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(
        (report.pulled, report.scored, report.quarantined),
        (41, 40, 1)
    );
    assert_eq!(report.scored + report.quarantined, report.pulled);
    let q = w.snapshots.quarantined();
    assert_eq!(q.values().next().unwrap(), &rejected);
    assert_eq!(
        report.quarantine_key.as_deref(),
        q.keys().next().map(String::as_str)
    );
}

#[tokio::test]
async fn too_many_bad_records_fail_the_run_but_keep_them() {
    let rejected: Vec<Rejected> = (0..20)
        .map(|i| Rejected {
            lead_id: Some(i.to_string()),
            reason: "bad".into(),
            raw: "{}".into(),
        })
        .collect();
    let w = World::new(FakeCrm::new(leads()).with_rejected(rejected));
    let error = w.run("r1", at(60)).await.unwrap_err();
    assert!(
        matches!(
            error,
            SyncError::TooManyRejected {
                quarantined: 20,
                pulled: 60,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(w.snapshots.quarantined().values().next().unwrap().len(), 20);
    assert_eq!(
        w.store.watermark("crm#contacts").await.unwrap(),
        None,
        "a failed run does not move the watermark"
    );
}

#[tokio::test]
async fn crash_mid_pull_then_rerun_ends_like_one_clean_run() {
    let clean = World::new(FakeCrm::new(leads()).with_page_size(10));
    clean.run("r1", at(60)).await.unwrap();

    // Two pages go through, then the CRM fails (past the adapter's own retries).
    let w = World::new(FakeCrm::new(leads()).with_page_size(10));
    w.crm
        .script
        .fail("pull_page", When::Nth(3), CrmError::Timeout);
    let deps = SyncDeps {
        crm: &w.crm,
        store: &w.store,
        snapshots: &w.snapshots,
        providers: &[] as &[NoProvider],
        criteria: &w.criteria,
        events: None,
    };
    let partial = sync(&deps, &SyncInput::nightly("r1", at(60))).await;
    assert!(
        matches!(partial, Err(SyncError::Pull { pages: 2, .. })),
        "{partial:?}"
    );
    assert_eq!(w.store.watermark("crm#contacts").await.unwrap(), None);
    assert_eq!(
        w.store.states().len(),
        20,
        "two pages were recorded before the crash"
    );

    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(report.pulled, 40);
    assert_eq!(report.transitions_new, 20, "no transition counted twice");
    assert_eq!(report.transitions_existing, 0);
    assert_eq!(w.store.states(), clean.store.states());
    assert_eq!(w.store.transitions(), clean.store.transitions());
    assert_eq!(
        w.store.watermark("crm#contacts").await.unwrap(),
        clean.store.watermark("crm#contacts").await.unwrap()
    );
}

/// A CRM that passes every call to the fake but keeps the port's defaults for the rest
/// (`forward_properties`: none, as Salesforce today).
struct PortDefaults<'a> {
    inner: &'a FakeCrm,
}

impl Crm for PortDefaults<'_> {
    fn max_ids(&self) -> usize {
        self.inner.max_ids()
    }

    fn split_keys(
        &self,
        after: Option<&leadsync_domain::runs::ScopeKey>,
        through: &leadsync_domain::runs::ScopeKey,
    ) -> Option<leadsync_domain::runs::ScopeKey> {
        self.inner.split_keys(after, through)
    }

    async fn contacts_touched_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<leadsync_domain::LeadId>, CrmError> {
        self.inner.contacts_touched_since(since).await
    }

    async fn deleted_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(LeadId, chrono::DateTime<chrono::Utc>)>, CrmError> {
        self.inner.deleted_since(since).await
    }

    async fn ensure_properties(
        &self,
        specs: &[leadsync_domain::ports::PropertySpec],
    ) -> Result<u32, CrmError> {
        self.inner.ensure_properties(specs).await
    }

    async fn pull_page(
        &self,
        scope: &leadsync_domain::runs::PullScope,
        cursor: Option<&str>,
    ) -> Result<leadsync_domain::ports::PullPage, CrmError> {
        self.inner.pull_page(scope, cursor).await
    }

    async fn count(
        &self,
        scope: &leadsync_domain::runs::PullScope,
    ) -> Result<leadsync_domain::runs::Census, CrmError> {
        self.inner.count(scope).await
    }

    async fn push(
        &self,
        updates: &[PropertyUpdate],
    ) -> Result<leadsync_domain::ports::PushOutcome, CrmError> {
        self.inner.push(updates).await
    }
}

#[tokio::test]
async fn watermark_advances_only_to_what_was_seen_and_holds_for_failed_pushes() {
    let w = World::new(FakeCrm::new(leads()));
    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(report.watermark_after, Some(at(39)), "max modified seen");

    // A lead modified now is not past the index lag yet: the watermark stays behind now - lag.
    let mut late = leads()[3].clone();
    late.modified_at = at(120);
    late.engagement.form_submissions = 3;
    w.crm.upsert(late.clone());
    let report = w.run("r2", at(121)).await.unwrap();
    assert_eq!(report.watermark_after, Some(at(119)));

    // A refusal that is not retryable does not hold the watermark; the lead stays unpushed.
    let w = World::new(FakeCrm::new(leads()));
    let refused = leads()[10].id.clone();
    w.crm.refuse_writes_to(refused.clone(), false);
    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(report.push_failed, 1);
    assert_eq!(report.watermark_after, Some(at(39)));
    let quarantined = w.snapshots.quarantined();
    let file = quarantined
        .values()
        .next()
        .expect("the refused write is kept in quarantine");
    assert_eq!(file.len(), 1);
    assert_eq!(file[0].lead_id.as_deref(), Some(refused.as_str()));
    assert!(
        file[0].reason.contains("refused") && file[0].raw.contains("leadsync_stage"),
        "{:?}",
        file[0]
    );
    assert_eq!(
        report.quarantined, 0,
        "the lead was scored and recorded: it is not a quarantined record"
    );
    assert!(
        w.store.states()[&refused].pushed_hash.is_none(),
        "an unpushed lead is not marked pushed"
    );

    // A retryable refusal holds the watermark at that lead's modification time, so the next
    // run pulls it again and pushes it once the CRM accepts.
    let w = World::new(FakeCrm::new(leads()));
    w.crm.refuse_writes_to(refused.clone(), true);
    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(report.watermark_after, Some(at(10)));
    let fresh = FakeCrm::new(leads());
    let w2 = World {
        crm: fresh,
        store: w.store,
        snapshots: w.snapshots,
        criteria: w.criteria,
    };
    let report = w2.run("r2", at(61)).await.unwrap();
    assert_eq!(
        report.pushed, 1,
        "only the lead whose push failed is pushed again"
    );
    assert!(w2.store.states()[&refused].pushed_hash.is_some());
}

#[tokio::test]
async fn crm_down_on_push_fails_retryably_and_rerun_pushes() {
    let w = World::new(FakeCrm::new(leads()));
    // first call is the pull (ok), the next is the push: fail it.
    w.crm.script.fail(
        "push",
        When::Nth(1),
        CrmError::Unavailable {
            status: 503,
            message: "down".into(),
        },
    );
    let deps = SyncDeps {
        crm: &w.crm,
        store: &w.store,
        snapshots: &w.snapshots,
        providers: &[] as &[NoProvider],
        criteria: &w.criteria,
        events: None,
    };
    let error = sync(&deps, &SyncInput::nightly("r1", at(60)))
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(w.store.states().values().all(|s| s.pushed_hash.is_none()));
    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(report.pushed, 40);
    assert_eq!(w.store.states()[&leads()[0].id].stage, Stage::Disqualified);
}

#[tokio::test]
async fn news_of_each_new_sql_is_sent_once_and_news_the_bus_refused_is_sent_again() {
    use leadsync_domain::fakes::FakeEventSink;
    let w = World::new(FakeCrm::new(leads()));
    let sink = FakeEventSink::default();
    let run = async |run_id: &str, now: DateTime<Utc>| {
        let deps = SyncDeps {
            crm: &w.crm,
            store: &w.store,
            snapshots: &w.snapshots,
            providers: &[] as &[NoProvider],
            criteria: &w.criteria,
            events: Some(&sink as &dyn leadsync_domain::ports::EventSink),
        };
        let mut input = SyncInput::nightly(run_id, now);
        input.since_override = Some(DateTime::<Utc>::UNIX_EPOCH);
        sync(&deps, &input).await.unwrap()
    };
    // The bus is down for the first run: nothing is marked sent.
    sink.refuse(1);
    let first = run("r1", at(60)).await;
    let sql = first.stages.get("sql").copied().unwrap_or(0);
    assert!(sql >= 2, "{first:?}");
    assert_eq!((first.events_sent, first.events_failed), (0, sql));
    assert!(sink.sent().is_empty());
    // The next run sends each once; the one after sends nothing.
    let second = run("r2", at(61)).await;
    assert_eq!((second.events_sent, second.events_failed), (sql, 0));
    let third = run("r3", at(62)).await;
    assert_eq!(third.events_sent, 0);
    let sent = sink.sent();
    let mut ids: Vec<&str> = sent.iter().map(|e| e.lead_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, sql, "one event per SQL lead");
    let states = w.store.states();
    for event in &sent {
        assert_eq!(event.kind, leadsync_domain::news::LeadEventKind::Sql);
        assert_eq!(event.stage, Stage::Sql);
        assert!(!event.reasons.is_empty());
        let json = serde_json::to_string(event).unwrap();
        assert!(!json.contains('@'), "no address in an event: {json}");
        assert!(states[&event.lead_id].announced.contains(&event.key()));
    }
}

#[tokio::test]
async fn a_crm_that_cannot_move_its_own_fields_refuses_crm_forward_by_name_before_a_pull() {
    let text = include_str!("../../../../infra/criteria/b2b-saas.toml").replacen(
        "[incentives]\n",
        "[crm.forward]\nlifecycle_stage = { sql = \"salesqualifiedlead\" }\n\n[incentives]\n",
        1,
    );
    let criteria = Criteria::parse("forward.toml", &text).unwrap();
    let fake = FakeCrm::default();
    // The port's default: no forward properties (as Salesforce today).
    let crm = PortDefaults { inner: &fake };
    let error = prepare_reads(&crm, &criteria).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not move its own lifecycle stage")
            || matches!(&error, SyncError::Reads(CrmError::Rejected { message, .. }) if message.contains("[crm.forward]")),
        "{error}"
    );
    prepare_reads(&fake, &criteria)
        .await
        .expect("the fake moves HubSpot's fields");
}

/// Each of `leads()`'s company domains as a provider knows it.
fn provider_data() -> Vec<(String, Firmographics)> {
    leads()
        .iter()
        .filter_map(Lead::email_domain)
        .filter(|d| d != "gmail.com")
        .map(|d| {
            let firmographics = Firmographics {
                industry: Some(Sourced::new("COMPUTER_SOFTWARE".into(), Provenance::crm())),
                employees: Some(Sourced::new(400, Provenance::crm())),
                annual_revenue: Some(Sourced::new(40_000_000, Provenance::crm())),
                country: Some(Sourced::new("US".into(), Provenance::crm())),
                ..Firmographics::default()
            };
            (d, firmographics)
        })
        .collect()
}

/// One nightly run with `provider` and a 48 h hold window.
async fn night_with(
    w: &World,
    provider: &leadsync_domain::fakes::FakeProvider,
    run_id: &str,
    now: DateTime<Utc>,
) -> RunReport {
    let deps = SyncDeps {
        crm: &w.crm,
        store: &w.store,
        snapshots: &w.snapshots,
        providers: std::slice::from_ref(provider),
        criteria: &w.criteria,
        events: None,
    };
    let mut input = SyncInput::nightly(run_id, now);
    input.enrich_hold = Some(Duration::hours(48));
    sync(&deps, &input).await.unwrap()
}

/// Issue 19 (storms): a lead a provider could not enrich for a passing reason (rate limited
/// after its retries) is held — not scored, recorded or pushed — with the watermark kept at or
/// before it; the next run, the provider back, scores it with its data, and the world ends as
/// a night without the storm left it. Found by `leadsync-bench storms`: facts recorded during a
/// provider storm kept the band of a lead scored without its company's data.
#[tokio::test]
async fn leads_a_rate_limited_provider_could_not_enrich_are_held_for_the_next_run() {
    use leadsync_domain::fakes::FakeProvider;
    use leadsync_domain::ports::ProviderError;
    let now = at(60);
    let clean = World::new(FakeCrm::new(leads()));
    let calm = FakeProvider::new("pdl", provider_data());
    let report = night_with(&clean, &calm, "r1", now).await;
    assert_eq!(report.enrich_held, 0);

    let stormy = World::new(FakeCrm::new(leads()));
    let provider = FakeProvider::new("pdl", provider_data());
    provider.fail_next(
        3,
        ProviderError::RateLimited {
            provider: "pdl".into(),
        },
    );
    let report = night_with(&stormy, &provider, "r1", now).await;
    assert_eq!(report.enrich_held, 3, "{report:?}");
    assert_eq!(report.scored, 40 - 3);
    assert_eq!(stormy.store.states().len(), 37);
    assert_eq!(stormy.crm.written().len(), 37, "held leads are not pushed");
    let states = stormy.store.states();
    let first_held = leads()
        .into_iter()
        .filter(|l| !states.contains_key(&l.id))
        .map(|l| l.modified_at)
        .min()
        .unwrap();
    assert_eq!(
        stormy.store.watermark("crm#contacts").await.unwrap(),
        Some(first_held),
        "the watermark waits at the first held lead"
    );

    // The provider is back: the same night run again scores them with their data.
    let again = night_with(&stormy, &provider, "r1-again", now).await;
    assert_eq!((again.enrich_held, again.scored), (0, 40));
    let (a, b) = (clean.store.states(), stormy.store.states());
    assert_eq!(a.len(), b.len());
    for (id, state) in &a {
        assert_eq!(
            (state.stage, state.total, &state.band, &state.input_hash),
            (b[id].stage, b[id].total, &b[id].band, &b[id].input_hash),
            "lead {id}"
        );
    }
    let facts = |w: &World| {
        let mut t: Vec<_> = w
            .store
            .transitions()
            .into_iter()
            .map(|t| {
                let (band, reasons, occurred) = (t.band, t.reasons, t.occurred_at);
                (t.lead_id, t.from, t.to, band, reasons, occurred)
            })
            .collect();
        t.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
        t
    };
    assert_eq!(
        facts(&clean),
        facts(&stormy),
        "the same facts as the calm night's"
    );
}

/// A run reading from further back than the hold window (holds have kept the watermark there,
/// or it is catching up) does not hold: the lead is scored with what is known and says why, so
/// a long outage never stops scoring.
#[tokio::test]
async fn a_run_reading_from_beyond_the_hold_window_scores_without_the_provider() {
    use leadsync_domain::fakes::FakeProvider;
    use leadsync_domain::ports::ProviderError;
    let w = World::new(FakeCrm::new(leads()));
    w.store
        .set_watermark("crm#contacts", at(-3 * 24 * 60))
        .await
        .unwrap();
    let provider = FakeProvider::new("pdl", provider_data());
    provider.fail_next(
        3,
        ProviderError::RateLimited {
            provider: "pdl".into(),
        },
    );
    let report = night_with(&w, &provider, "r1", at(60)).await;
    assert_eq!((report.enrich_held, report.scored), (0, 40));
    assert_eq!(report.enrich_unavailable, 3);

    // Nor does a refusal (a bad key) hold anything, however recent the watermark.
    let w = World::new(FakeCrm::new(leads()));
    let provider = FakeProvider::new("pdl", provider_data());
    provider.fail_next(
        2,
        ProviderError::Rejected {
            provider: "pdl".into(),
            message: "HTTP 401".into(),
        },
    );
    let report = night_with(&w, &provider, "r1", at(60)).await;
    assert_eq!((report.enrich_held, report.scored), (0, 40));
}

/// The fakes' per-operation faults: the second push fails, then a snapshot's upload fails —
/// each run stops with the error named, and the next run ends where a clean one would, with
/// every lead pushed once and every transition recorded once.
#[tokio::test]
async fn scripted_faults_on_one_operation_stop_the_run_and_the_rerun_finishes_it() {
    use leadsync_domain::fakes::When;
    let w = World::new(FakeCrm::new(leads()).with_page_size(15));
    w.crm.script.fail(
        "push",
        When::Nth(2),
        CrmError::Unavailable {
            status: 503,
            message: "injected".into(),
        },
    );
    let cut = w.run("r1", at(60)).await.unwrap_err();
    assert!(matches!(cut, SyncError::Push(_)), "{cut:?}");
    assert_eq!(w.crm.script.calls("push"), 2);

    w.snapshots.script.fail(
        "finish",
        When::Nth(1),
        leadsync_domain::ports::StoreError::Unavailable {
            operation: "PutObject",
            message: "injected".into(),
        },
    );
    let cut = w.run("r1", at(60)).await.unwrap_err();
    assert!(matches!(cut, SyncError::Store { .. }), "{cut:?}");

    let report = w.run("r1", at(60)).await.unwrap();
    assert_eq!(report.scored, 40);
    assert_eq!(w.store.states().len(), 40);
    assert_eq!(w.store.transitions().len(), 40, "each transition once");
    let written = w.crm.written();
    let distinct: std::collections::HashSet<_> = written.iter().map(|u| &u.lead_id).collect();
    assert_eq!(distinct.len(), 40, "every lead pushed");
}
