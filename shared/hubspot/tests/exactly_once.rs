//! Lossless incremental sync under concurrent change, through the real pipeline and adapter.
//!
//! While a run pages through the sandbox, random contacts are edited and created. Then:
//! every contact that existed when the run started is pulled exactly once by that run, and
//! every contact changed during the run is pulled by the next run. Lookback and index lag are 0
//! so no slack hides a gap.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use leadsync_domain::Criteria;
use leadsync_domain::fakes::{FakeLeadStore, FakeSnapshotStore};
use leadsync_domain::ports::{Crm, CrmError, PropertyUpdate, PullPage, PushOutcome};
use leadsync_enrich::NoProvider;
use leadsync_hubspot::{HubSpotConfig, HubSpotCrm, RateLimits};
use leadsync_pipeline::{SyncDeps, SyncInput, sync};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use proptest::prelude::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

const CRITERIA: &str = include_str!("../../../infra/criteria/b2b-saas.toml");

#[derive(Debug, Clone, Copy)]
enum Op {
    Edit(usize),
    Create,
}

/// The adapter, plus: record what each page returned, and apply scripted changes after it.
struct ChangingCrm<'a> {
    inner: HubSpotCrm,
    sandbox: &'a Sandbox,
    ops_per_page: Mutex<Vec<Vec<Op>>>,
    pulled: Mutex<Vec<String>>,
    changed: Mutex<BTreeSet<u64>>,
}

impl Crm for ChangingCrm<'_> {
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
    ) -> Result<Vec<(leadsync_domain::LeadId, chrono::DateTime<chrono::Utc>)>, CrmError> {
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
    ) -> Result<PullPage, CrmError> {
        let page = self.inner.pull_page(scope, cursor).await?;
        self.pulled
            .lock()
            .unwrap()
            .extend(page.leads.iter().map(|l| l.id.to_string()));
        let ops = self.ops_per_page.lock().unwrap().pop().unwrap_or_default();
        let ids: Vec<u64> = self.sandbox.contacts().iter().map(|c| c.id).collect();
        for op in ops {
            let id = match op {
                Op::Edit(i) => {
                    let id = ids[i % ids.len()];
                    self.sandbox.edit_contact(id, &[("hs_email_click", "7")]);
                    id
                }
                Op::Create => self
                    .sandbox
                    .create_contact(&[("email", "new.lead@acme-example.com")]),
            };
            self.changed.lock().unwrap().insert(id);
        }
        Ok(page)
    }

    async fn count(
        &self,
        scope: &leadsync_domain::runs::PullScope,
    ) -> Result<leadsync_domain::runs::Census, CrmError> {
        self.inner.count(scope).await
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        // Pushes would touch every contact and blur the test; they are not its subject.
        Ok(PushOutcome {
            written: updates.iter().map(|u| u.lead_id.clone()).collect(),
            ..PushOutcome::default()
        })
    }
}

fn crm(sandbox: &Sandbox, page_size: u32) -> HubSpotCrm {
    let mut config = HubSpotConfig::new(sandbox.base_url(), sandbox.token().to_owned().into());
    config.page_size = page_size;
    config.limits = RateLimits {
        per_window: 100_000,
        window: std::time::Duration::from_secs(10),
        search_per_second: 100_000,
    };
    HubSpotCrm::new(config).unwrap()
}

fn input(run: &str, now: DateTime<Utc>) -> SyncInput {
    let mut input = SyncInput::nightly(run, now);
    input.lookback = Duration::zero();
    input.index_lag = Duration::zero();
    input
}

async fn scenario(contacts: u64, page_size: u32, shared_timestamp: bool, ops: Vec<Vec<Op>>) {
    let sandbox = Sandbox::start(SandboxConfig::new(contacts, contacts))
        .await
        .unwrap();
    if shared_timestamp {
        sandbox.stamp_all_contacts(
            DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        );
    }
    let existing: BTreeSet<String> = sandbox
        .contacts()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    let changing = ChangingCrm {
        inner: crm(&sandbox, page_size),
        sandbox: &sandbox,
        ops_per_page: Mutex::new(ops),
        pulled: Mutex::default(),
        changed: Mutex::default(),
    };
    let (store, snapshots) = (FakeLeadStore::new(), FakeSnapshotStore::new());
    let criteria = Criteria::parse("c", CRITERIA).unwrap();
    let deps = SyncDeps {
        crm: &changing,
        store: &store,
        snapshots: &snapshots,
        providers: &[] as &[NoProvider],
        criteria: &criteria,
        events: None,
    };

    let run_start = Utc::now();
    sync(&deps, &input("run-1", run_start)).await.unwrap();
    let first: Vec<String> = std::mem::take(&mut *changing.pulled.lock().unwrap());
    let first_set: BTreeSet<String> = first.iter().cloned().collect();
    assert_eq!(
        first.len(),
        first_set.len(),
        "no contact pulled twice in one run"
    );
    let missing: Vec<&String> = existing.difference(&first_set).collect();
    assert!(
        missing.is_empty(),
        "contacts existing at run start but not pulled: {missing:?}"
    );

    // Changes happen during run 1 only.
    changing.ops_per_page.lock().unwrap().clear();
    let changed: BTreeSet<String> = changing
        .changed
        .lock()
        .unwrap()
        .iter()
        .map(u64::to_string)
        .collect();
    sync(&deps, &input("run-2", Utc::now())).await.unwrap();
    let second: Vec<String> = std::mem::take(&mut *changing.pulled.lock().unwrap());
    let second_set: BTreeSet<String> = second.iter().cloned().collect();
    assert_eq!(
        second.len(),
        second_set.len(),
        "no contact pulled twice in one run"
    );
    let lost: Vec<&String> = changed.difference(&second_set).collect();
    assert!(
        lost.is_empty(),
        "changed during run 1, not pulled by run 2: {lost:?}"
    );

    // Every contact ends with a state in the store: nothing lost end to end.
    let states: HashMap<_, _> = store.states();
    assert_eq!(states.len(), sandbox.contacts().len());
}

fn ops_strategy() -> impl Strategy<Value = Vec<Vec<Op>>> {
    let op = prop_oneof![3 => any::<usize>().prop_map(Op::Edit), 1 => Just(Op::Create)];
    proptest::collection::vec(proptest::collection::vec(op, 0..6), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn no_gap_no_duplicate_under_concurrent_change(
        contacts in 20u64..400,
        page_size in 7u32..60,
        shared_timestamp in any::<bool>(),
        ops in ops_strategy(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(scenario(contacts, page_size, shared_timestamp, ops));
    }
}
