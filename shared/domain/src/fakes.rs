//! In-memory implementations of every port, for tests of the layers above. Each can be told to
//! fail its next calls (`fail_next`) so retries and partial failures can be tested.
#![allow(clippy::expect_used)] // a poisoned test mutex is a failed test already

use crate::facts::{Fact, MilestoneFact};
use crate::lead::{Firmographics, Lead, LeadId};
use crate::ports::{
    Crm, CrmError, FirmographicProvider, LeadStore, Lookup, Origin, PropertyUpdate, ProviderError,
    PullPage, PushFailure, PushOutcome, RecordOutcome, Rejected, RunReport, SnapshotKey,
    SnapshotLine, SnapshotStore, SnapshotWriter, StoreError,
};
use crate::ports::{PeriodStatus, RollupStore, RowsWritten};
use crate::rollup::RollupRow;
use crate::runs::{
    Census, Lease, PullScope, RunPlan, RunProgress, ScopeKey, SliceResult, SliceSpec,
};
use crate::transition::{LeadState, Transition};
use chrono::Datelike as _;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("fake mutex poisoned")
}

/// A CRM in memory: leads in, property writes recorded.
#[derive(Debug, Default)]
pub struct FakeCrm {
    leads: Mutex<BTreeMap<LeadId, Lead>>,
    rejected: Mutex<Vec<Rejected>>,
    written: Mutex<Vec<PropertyUpdate>>,
    failures: Mutex<VecDeque<CrmError>>,
    refuse: Mutex<HashMap<LeadId, bool>>,
    properties: Mutex<Vec<String>>,
    /// Deleted contacts and when.
    deleted: Mutex<BTreeMap<LeadId, DateTime<Utc>>>,
    /// Contacts whose deal or company changed, and when.
    touched: Mutex<BTreeMap<LeadId, DateTime<Utc>>>,
    page_size: usize,
    /// Property definitions `describe_properties` gives, per object.
    described: Mutex<crate::criteria::Described>,
    /// What the last `set_reads` asked for.
    reads: Mutex<crate::criteria::CrmReads>,
    pub pull_calls: AtomicU64,
    pub push_calls: AtomicU64,
    pub count_calls: AtomicU64,
}

impl FakeCrm {
    pub fn new(leads: impl IntoIterator<Item = Lead>) -> Self {
        Self {
            leads: Mutex::new(leads.into_iter().map(|l| (l.id.clone(), l)).collect()),
            page_size: 100,
            ..Self::default()
        }
    }

    /// Records that the pull returns as unreadable (on the first page).
    pub fn with_rejected(self, rejected: Vec<Rejected>) -> Self {
        *lock(&self.rejected) = rejected;
        self
    }

    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The next `n` calls (pull or push) fail with `error`.
    pub fn fail_next(&self, n: usize, error: CrmError) {
        lock(&self.failures).extend(std::iter::repeat_n(error, n));
    }

    /// Pushes to this lead are refused row by row, as retryable or not.
    pub fn refuse_writes_to(&self, id: LeadId, retryable: bool) {
        lock(&self.refuse).insert(id, retryable);
    }

    pub fn upsert(&self, lead: Lead) {
        lock(&self.leads).insert(lead.id.clone(), lead);
    }

    /// Change a lead's deals or company at `at` without touching the contact's own record,
    /// as closing a deal in HubSpot does.
    pub fn touch_related(&self, lead: Lead, at: DateTime<Utc>) {
        lock(&self.touched).insert(lead.id.clone(), at);
        lock(&self.leads).insert(lead.id.clone(), lead);
    }

    /// Delete a contact at `at`, as archiving it in HubSpot does: it leaves every pull.
    pub fn delete(&self, id: &LeadId, at: DateTime<Utc>) {
        lock(&self.leads).remove(id);
        lock(&self.deleted).insert(id.clone(), at);
    }

    /// Merge `loser` into `winner` at `at`: the winner carries the loser's id in its merged
    /// ids and is modified; the loser is deleted.
    pub fn merge(&self, winner: &LeadId, loser: &LeadId, at: DateTime<Utc>) {
        let mut leads = lock(&self.leads);
        let absorbed = leads.remove(loser);
        if let Some(w) = leads.get_mut(winner) {
            w.merged_ids.push(loser.clone());
            if let Some(l) = absorbed {
                w.merged_ids.extend(l.merged_ids);
            }
            w.modified_at = at;
        }
        drop(leads);
        lock(&self.deleted).insert(loser.clone(), at);
    }

    /// Every update written so far, in order.
    pub fn written(&self) -> Vec<PropertyUpdate> {
        lock(&self.written).clone()
    }

    fn take_failure(&self) -> Result<(), CrmError> {
        lock(&self.failures).pop_front().map_or(Ok(()), Err)
    }
}

fn numeric_id(id: &LeadId) -> Option<u64> {
    id.as_str().parse().ok()
}

/// The fake's keys are its numeric ids in decimal (as HubSpot's); anything else is the start.
fn fake_key(key: &ScopeKey) -> u64 {
    key.as_str().parse().unwrap_or(0)
}

impl FakeCrm {
    /// The leads a scope selects, in ascending numeric id order (the order HubSpot's search
    /// walks); ids that are not numbers sort first and belong to the unbounded start.
    fn in_scope(&self, scope: &PullScope) -> Vec<Lead> {
        let mut matching: Vec<Lead> = lock(&self.leads)
            .values()
            .filter(|l| {
                if !scope.only.is_empty() {
                    return scope.only.contains(&l.id);
                }
                let after = scope.after.as_ref().map(fake_key);
                let through = scope.through.as_ref().map(fake_key);
                let in_range = match numeric_id(&l.id) {
                    Some(n) => n > after.unwrap_or(0) && through.is_none_or(|t| n <= t),
                    None => after.is_none(),
                };
                in_range && l.modified_at >= scope.since
            })
            .cloned()
            .collect();
        matching.sort_by_key(|l| numeric_id(&l.id));
        matching
    }

    /// Define an object's properties (what `describe_properties` lists).
    pub fn define_properties(
        &self,
        object: crate::criteria::CrmObject,
        properties: Vec<crate::criteria::CrmProperty>,
    ) {
        lock(&self.described).insert(object, properties);
    }

    /// What the last `set_reads` asked for.
    pub fn reads(&self) -> crate::criteria::CrmReads {
        lock(&self.reads).clone()
    }

    /// Names of the properties `ensure_properties` created.
    pub fn properties(&self) -> Vec<String> {
        lock(&self.properties).clone()
    }
}

impl Crm for FakeCrm {
    fn max_ids(&self) -> usize {
        100
    }

    fn name(&self) -> &'static str {
        "the fake CRM"
    }

    async fn describe_properties(
        &self,
        object: crate::criteria::CrmObject,
    ) -> Result<Vec<crate::criteria::CrmProperty>, CrmError> {
        self.take_failure()?;
        Ok(lock(&self.described)
            .get(&object)
            .cloned()
            .unwrap_or_default())
    }

    fn set_reads(&self, reads: &crate::criteria::CrmReads) -> Result<(), CrmError> {
        *lock(&self.reads) = reads.clone();
        Ok(())
    }

    /// HubSpot's names (the mapped `lead_status` input's property when the reads move it).
    fn forward_properties(&self) -> Option<crate::criteria::ForwardProperties> {
        Some(crate::criteria::ForwardProperties {
            lifecycle_stage: "lifecyclestage".to_owned(),
            lead_status: lock(&self.reads)
                .lead_status
                .clone()
                .unwrap_or_else(|| "hs_lead_status".to_owned()),
        })
    }

    fn split_keys(&self, after: Option<&ScopeKey>, through: &ScopeKey) -> Option<ScopeKey> {
        let (after, through) = (after.map_or(0, fake_key), fake_key(through));
        (through > after + 1).then(|| ScopeKey::new((after + (through - after) / 2).to_string()))
    }

    async fn contacts_touched_since(&self, since: DateTime<Utc>) -> Result<Vec<LeadId>, CrmError> {
        self.take_failure()?;
        Ok(lock(&self.touched)
            .iter()
            .filter(|(_, at)| **at >= since)
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn deleted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>)>, CrmError> {
        self.take_failure()?;
        Ok(lock(&self.deleted)
            .iter()
            .filter(|(_, at)| **at >= since)
            .map(|(id, at)| (id.clone(), *at))
            .collect())
    }

    async fn ensure_properties(
        &self,
        specs: &[crate::ports::PropertySpec],
    ) -> Result<u32, CrmError> {
        self.take_failure()?;
        let mut known = lock(&self.properties);
        let mut created = 0;
        for spec in specs {
            if !known.contains(&spec.name) {
                known.push(spec.name.clone());
                created += 1;
            }
        }
        Ok(created)
    }

    async fn pull_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        self.pull_calls.fetch_add(1, Ordering::Relaxed);
        self.take_failure()?;
        let offset: usize = cursor
            .map_or(Ok(0), str::parse)
            .map_err(|_| CrmError::Rejected {
                status: 400,
                message: "bad cursor".into(),
            })?;
        let matching = self.in_scope(scope);
        let leads: Vec<Lead> = matching
            .iter()
            .skip(offset)
            .take(self.page_size)
            .cloned()
            .collect();
        let end = offset + leads.len();
        Ok(PullPage {
            leads,
            // Unreadable records have no usable id: they come with the first slice's first page.
            rejected: if offset == 0 && scope.after.is_none() && scope.only.is_empty() {
                lock(&self.rejected).clone()
            } else {
                Vec::new()
            },
            next: (end < matching.len()).then(|| end.to_string()),
        })
    }

    async fn count(&self, scope: &PullScope) -> Result<Census, CrmError> {
        self.count_calls.fetch_add(1, Ordering::Relaxed);
        self.take_failure()?;
        let matching = self.in_scope(scope);
        Ok(Census {
            first: None,
            total: matching.len() as u64,
            last: matching
                .iter()
                .filter_map(|l| numeric_id(&l.id))
                .max()
                .map(|n| ScopeKey::new(n.to_string())),
        })
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        self.push_calls.fetch_add(1, Ordering::Relaxed);
        self.take_failure()?;
        let refuse = lock(&self.refuse).clone();
        let mut outcome = PushOutcome {
            requests: u32::try_from(updates.len().div_ceil(100)).unwrap_or(u32::MAX),
            ..PushOutcome::default()
        };
        for update in updates {
            if let Some(retryable) = refuse.get(&update.lead_id) {
                outcome.failed.push(PushFailure {
                    lead_id: update.lead_id.clone(),
                    message: "refused".into(),
                    retryable: *retryable,
                });
            } else {
                lock(&self.written).push(update.clone());
                outcome.written.push(update.lead_id.clone());
            }
        }
        Ok(outcome)
    }
}

/// A lead store in memory.
#[derive(Debug, Default)]
pub struct FakeLeadStore {
    states: Mutex<HashMap<LeadId, LeadState>>,
    transitions: Mutex<BTreeMap<(LeadId, String, String), Transition>>,
    watermarks: Mutex<HashMap<String, DateTime<Utc>>>,
    runs: Mutex<Vec<RunReport>>,
    failures: Mutex<VecDeque<StoreError>>,
    milestones: Mutex<BTreeMap<String, MilestoneFact>>,
    /// Rollup rows by period: key → (body, frozen).
    rows: Mutex<BTreeMap<String, PeriodRows>>,
    closed: Mutex<BTreeMap<String, PeriodStatus>>,
    plans: Mutex<BTreeMap<String, crate::incentives::IncentivePlan>>,
    links: Mutex<crate::facts::LeadLinks>,
    /// Periods each run noted it records facts in.
    noted: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
    lease: Mutex<Option<Lease>>,
    /// Runs: plan, finished slices, finished flag.
    run_records: Mutex<BTreeMap<String, RunRecord>>,
    /// Operations so far, and the one (1-based) that fails as a crash would.
    ops: AtomicU64,
    crash_at: AtomicU64,
}

/// A run in the fake: its plan, finished slices by number, and whether it finished.
type RunRecord = (RunPlan, BTreeMap<u32, SliceResult>, bool);

/// One period's rollup rows in the fake: key → (body, frozen).
type PeriodRows = BTreeMap<String, (String, bool)>;

impl FakeLeadStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` calls fail with `error`.
    pub fn fail_next(&self, n: usize, error: StoreError) {
        lock(&self.failures).extend(std::iter::repeat_n(error, n));
    }

    pub fn states(&self) -> HashMap<LeadId, LeadState> {
        lock(&self.states).clone()
    }

    pub fn transitions(&self) -> Vec<Transition> {
        lock(&self.transitions).values().cloned().collect()
    }

    pub fn milestones(&self) -> Vec<MilestoneFact> {
        lock(&self.milestones).values().cloned().collect()
    }

    pub fn runs(&self) -> Vec<RunReport> {
        lock(&self.runs).clone()
    }

    /// Fail the `n`-th store operation from now (1-based) as a crash would; 0 disables.
    pub fn crash_at(&self, n: u64) {
        self.ops.store(0, Ordering::SeqCst);
        self.crash_at.store(n, Ordering::SeqCst);
    }

    /// Store operations made since the last [`FakeLeadStore::crash_at`].
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Every rollup row, by period.
    pub fn all_rows(&self) -> BTreeMap<String, Vec<RollupRow>> {
        lock(&self.rows)
            .iter()
            .map(|(p, rows)| {
                (
                    p.clone(),
                    rows.iter()
                        .map(|(sk, (body, _))| RollupRow {
                            sk: sk.clone(),
                            body: body.clone(),
                        })
                        .collect(),
                )
            })
            .collect()
    }

    fn take_failure(&self) -> Result<(), StoreError> {
        let op = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if op == self.crash_at.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                operation: "crash",
                message: format!("injected crash at store operation {op}"),
            });
        }
        lock(&self.failures).pop_front().map_or(Ok(()), Err)
    }
}

impl LeadStore for FakeLeadStore {
    async fn load_states(&self, ids: &[LeadId]) -> Result<HashMap<LeadId, LeadState>, StoreError> {
        self.take_failure()?;
        let states = lock(&self.states);
        Ok(ids
            .iter()
            .filter_map(|id| states.get(id).map(|s| (id.clone(), s.clone())))
            .collect())
    }

    async fn append_transitions(
        &self,
        transitions: &[Transition],
    ) -> Result<RecordOutcome, StoreError> {
        self.take_failure()?;
        let mut outcome = RecordOutcome::default();
        let mut stored = lock(&self.transitions);
        for t in transitions {
            let key = (
                t.lead_id.clone(),
                t.to.as_str().to_owned(),
                t.criteria_version.clone(),
            );
            match stored.entry(key) {
                std::collections::btree_map::Entry::Occupied(existing) => {
                    outcome.transitions_existing += 1;
                    let stored = existing.get();
                    if stored.run_id == t.run_id {
                        outcome.existing_since.insert(
                            stored.lead_id.clone(),
                            stored.occurred_at.unwrap_or(stored.observed_at),
                        );
                    }
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(t.clone());
                    outcome.transitions_new += 1;
                }
            }
        }
        Ok(outcome)
    }

    async fn save_states(&self, states: &[LeadState]) -> Result<u64, StoreError> {
        self.take_failure()?;
        let mut all = lock(&self.states);
        for s in states {
            all.insert(s.lead_id.clone(), s.clone());
        }
        Ok(states.len() as u64)
    }

    async fn due_leads(
        &self,
        through: DateTime<Utc>,
        months: u32,
        limit: usize,
    ) -> Result<Vec<LeadId>, StoreError> {
        self.take_failure()?;
        let from = through
            .date_naive()
            .with_day(1)
            .and_then(|d| d.checked_sub_months(chrono::Months::new(months.saturating_sub(1))))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(DateTime::<Utc>::UNIX_EPOCH, |d| d.and_utc());
        let mut due: Vec<LeadId> = lock(&self.states)
            .values()
            .filter(|s| s.rescore_at.is_some_and(|at| at >= from && at <= through))
            .map(|s| s.lead_id.clone())
            .collect();
        due.sort();
        due.truncate(limit);
        Ok(due)
    }

    async fn watermark(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.take_failure()?;
        Ok(lock(&self.watermarks).get(source).copied())
    }

    async fn set_watermark(&self, source: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.take_failure()?;
        lock(&self.watermarks).insert(source.to_owned(), at);
        Ok(())
    }

    async fn save_run(&self, report: &RunReport) -> Result<(), StoreError> {
        self.take_failure()?;
        let mut runs = lock(&self.runs);
        runs.retain(|r| !(r.run_id == report.run_id && r.slice == report.slice));
        runs.push(report.clone());
        Ok(())
    }
}

/// A snapshot store in memory.
#[derive(Debug, Default)]
pub struct FakeSnapshotStore {
    snapshots: Arc<Mutex<BTreeMap<String, Vec<SnapshotLine>>>>,
    quarantine: Mutex<BTreeMap<String, Vec<Rejected>>>,
    dashboards: Mutex<BTreeMap<String, String>>,
}

impl FakeSnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn snapshots(&self) -> BTreeMap<String, Vec<SnapshotLine>> {
        lock(&self.snapshots).clone()
    }

    pub fn quarantined(&self) -> BTreeMap<String, Vec<Rejected>> {
        lock(&self.quarantine).clone()
    }
}

/// A snapshot kept in memory until finished, then stored in its [`FakeSnapshotStore`].
#[derive(Debug)]
pub struct FakeSnapshotWriter {
    name: String,
    lines: Vec<SnapshotLine>,
    store: Arc<Mutex<BTreeMap<String, Vec<SnapshotLine>>>>,
}

impl SnapshotWriter for FakeSnapshotWriter {
    fn append(&mut self, lines: &[SnapshotLine]) -> Result<(), StoreError> {
        self.lines.extend_from_slice(lines);
        Ok(())
    }

    async fn finish(self) -> Result<String, StoreError> {
        lock(&self.store).insert(self.name.clone(), self.lines);
        Ok(self.name)
    }
}

impl SnapshotStore for FakeSnapshotStore {
    type Writer = FakeSnapshotWriter;

    fn snapshot_writer(&self, key: &SnapshotKey) -> FakeSnapshotWriter {
        FakeSnapshotWriter {
            name: format!(
                "snapshots/{}/{}/{}.jsonl.gz",
                key.date, key.run_id, key.slice
            ),
            lines: Vec::new(),
            store: Arc::clone(&self.snapshots),
        }
    }

    async fn put_quarantine(
        &self,
        key: &SnapshotKey,
        records: &[Rejected],
    ) -> Result<String, StoreError> {
        let name = format!("quarantine/{}/{}.jsonl", key.run_id, key.slice);
        lock(&self.quarantine).insert(name.clone(), records.to_vec());
        Ok(name)
    }

    async fn erase_lead(&self, id: &LeadId) -> Result<crate::ports::SnapshotsErased, StoreError> {
        let mut erased = crate::ports::SnapshotsErased::default();
        for lines in lock(&self.snapshots).values_mut() {
            erased.objects_read += 1;
            let before = lines.len();
            lines.retain(|l| &l.lead.id != id);
            if lines.len() < before {
                erased.objects_rewritten += 1;
                erased.lines_removed += (before - lines.len()) as u64;
            }
        }
        for records in lock(&self.quarantine).values_mut() {
            erased.objects_read += 1;
            let before = records.len();
            records.retain(|r| r.lead_id.as_deref() != Some(id.as_str()));
            if records.len() < before {
                erased.objects_rewritten += 1;
                erased.lines_removed += (before - records.len()) as u64;
            }
        }
        Ok(erased)
    }

    async fn put_dashboard(&self, period: &str, html: String) -> Result<String, StoreError> {
        let name = format!("dashboards/{period}/index.html");
        lock(&self.dashboards).insert(period.to_owned(), html);
        Ok(name)
    }
}

impl FakeSnapshotStore {
    /// The dashboard page last published for `period`.
    pub fn dashboard(&self, period: &str) -> Option<String> {
        lock(&self.dashboards).get(period).cloned()
    }
}

/// (domain, provider)
type CacheKey = (String, String);
/// (answer, expires at)
type CacheEntry = (Option<Firmographics>, DateTime<Utc>);

/// A firmographic cache in memory.
#[derive(Debug, Default)]
pub struct FakeFirmographicCache {
    entries: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl FakeFirmographicCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::ports::FirmographicCache for FakeFirmographicCache {
    async fn get(
        &self,
        domain: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<Firmographics>>, StoreError> {
        Ok(lock(&self.entries)
            .get(&(domain.to_owned(), provider.to_owned()))
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value.clone()))
    }

    async fn get_many(
        &self,
        domains: &[String],
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Option<Firmographics>>, StoreError> {
        let entries = lock(&self.entries);
        Ok(domains
            .iter()
            .filter_map(|d| {
                entries
                    .get(&(d.clone(), provider.to_owned()))
                    .filter(|(_, expires)| *expires > now)
                    .map(|(value, _)| (d.clone(), value.clone()))
            })
            .collect())
    }

    async fn put(
        &self,
        domain: &str,
        provider: &str,
        value: Option<&Firmographics>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        lock(&self.entries).insert(
            (domain.to_owned(), provider.to_owned()),
            (value.cloned(), expires_at),
        );
        Ok(())
    }
}

/// A firmographic provider in memory, counting its lookups.
#[derive(Debug, Default)]
pub struct FakeProvider {
    name: String,
    data: HashMap<String, Firmographics>,
    failures: Mutex<VecDeque<ProviderError>>,
    pub calls: AtomicU64,
}

impl FakeProvider {
    pub fn new(name: &str, data: impl IntoIterator<Item = (String, Firmographics)>) -> Self {
        Self {
            name: name.to_owned(),
            data: data.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn fail_next(&self, n: usize, error: ProviderError) {
        lock(&self.failures).extend(std::iter::repeat_n(error, n));
    }
}

impl FirmographicProvider for FakeProvider {
    fn name(&self) -> &str {
        &self.name
    }

    /// Bills every match, like a per-match vendor.
    async fn lookup(&self, domain: &str) -> Result<Lookup, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        let firmographics = self.data.get(domain).cloned();
        Ok(Lookup {
            origin: Origin::Call {
                billed: firmographics.is_some(),
            },
            firmographics,
            cacheable: true,
        })
    }
}

impl RollupStore for FakeLeadStore {
    async fn record_links(
        &self,
        links: &[(LeadId, crate::facts::LeadLink)],
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.take_failure()?;
        let mut stored = lock(&self.links);
        let mut periods = std::collections::BTreeSet::new();
        for (id, link) in links {
            let keep_merge = matches!(
                (stored.get(id), link),
                (
                    Some(crate::facts::LeadLink::Merged { .. }),
                    crate::facts::LeadLink::Deleted { .. }
                )
            );
            if !keep_merge {
                stored.insert(id.clone(), link.clone());
            }
            periods.extend(
                lock(&self.transitions)
                    .values()
                    .filter(|t| &t.lead_id == id)
                    .map(|t| Fact::Stage(t.clone()).period()),
            );
            periods.extend(
                lock(&self.milestones)
                    .values()
                    .filter(|m| &m.lead_id == id)
                    .map(|m| Fact::Milestone(m.clone()).period()),
            );
        }
        Ok(periods)
    }

    async fn links(&self) -> Result<crate::facts::LeadLinks, StoreError> {
        self.take_failure()?;
        Ok(lock(&self.links).clone())
    }

    async fn erase_lead(
        &self,
        id: &LeadId,
        pseudonym: &LeadId,
        closed: &std::collections::BTreeSet<String>,
    ) -> Result<crate::ports::LeadErased, StoreError> {
        self.take_failure()?;
        let mut erased = crate::ports::LeadErased {
            pseudonym: pseudonym.as_str().to_owned(),
            state_deleted: lock(&self.states).remove(id).is_some(),
            ..crate::ports::LeadErased::default()
        };
        let note = |fact: &Fact, erased: &mut crate::ports::LeadErased| {
            let period = fact.period();
            if closed.contains(&period) {
                erased.facts_kept += 1;
                erased.closed_periods.insert(period);
                false
            } else {
                erased.facts_anonymised += 1;
                erased.periods.insert(period);
                true
            }
        };
        {
            let mut transitions = lock(&self.transitions);
            let mine: Vec<_> = transitions.keys().filter(|k| &k.0 == id).cloned().collect();
            for key in mine {
                let Some(t) = transitions.get(&key).cloned() else {
                    continue;
                };
                if note(&Fact::Stage(t.clone()), &mut erased) {
                    transitions.remove(&key);
                    let mut moved = t;
                    moved.lead_id = pseudonym.clone();
                    transitions.insert((pseudonym.clone(), key.1, key.2), moved);
                }
            }
        }
        {
            let mut milestones = lock(&self.milestones);
            let mine: Vec<_> = milestones
                .iter()
                .filter(|(_, m)| &m.lead_id == id)
                .map(|(k, _)| k.clone())
                .collect();
            for key in mine {
                let Some(m) = milestones.get(&key).cloned() else {
                    continue;
                };
                let fact = Fact::Milestone(m);
                if note(&fact, &mut erased) {
                    milestones.remove(&key);
                    if let Fact::Milestone(moved) = fact.anonymised(pseudonym) {
                        milestones.insert(Fact::Milestone(moved.clone()).key(), moved);
                    }
                }
            }
        }
        let mut links = lock(&self.links);
        if let Some(own) = links.remove(id) {
            links.insert(pseudonym.clone(), own);
            erased.links += 1;
        }
        for link in links.values_mut() {
            if let crate::facts::LeadLink::Merged { into, .. } = link
                && into == id
            {
                *into = pseudonym.clone();
                erased.links += 1;
            }
        }
        Ok(erased)
    }

    async fn note_periods(
        &self,
        run_id: &str,
        periods: &std::collections::BTreeSet<String>,
    ) -> Result<(), StoreError> {
        // Not a counted operation: the crash points of existing tests stay where they were.
        lock(&self.noted)
            .entry(run_id.to_owned())
            .or_default()
            .extend(periods.iter().cloned());
        Ok(())
    }

    async fn noted_periods(
        &self,
        run_id: &str,
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        Ok(lock(&self.noted).get(run_id).cloned().unwrap_or_default())
    }

    async fn record_milestones(&self, facts: &[MilestoneFact]) -> Result<u64, StoreError> {
        self.take_failure()?;
        let mut stored = lock(&self.milestones);
        let mut new = 0;
        for m in facts {
            let key = Fact::Milestone(m.clone()).key();
            if let std::collections::btree_map::Entry::Vacant(slot) = stored.entry(key) {
                slot.insert(m.clone());
                new += 1;
            }
        }
        Ok(new)
    }

    async fn visit_facts<F>(&self, period: &str, mut visit: F) -> Result<u64, StoreError>
    where
        F: FnMut(Fact) + Send,
    {
        self.take_failure()?;
        let facts: Vec<Fact> = lock(&self.transitions)
            .values()
            .map(|t| Fact::Stage(t.clone()))
            .chain(
                lock(&self.milestones)
                    .values()
                    .map(|m| Fact::Milestone(m.clone())),
            )
            .filter(|f| f.period() == period)
            .collect();
        let n = facts.len() as u64;
        // In reverse key order, unlike DynamoDB's: callers must not depend on the order.
        for f in facts.into_iter().rev() {
            visit(f);
        }
        Ok(n)
    }

    async fn rows(&self, period: &str) -> Result<Vec<RollupRow>, StoreError> {
        self.take_failure()?;
        Ok(self.all_rows().remove(period).unwrap_or_default())
    }

    async fn replace_rows(
        &self,
        period: &str,
        rows: &[RollupRow],
    ) -> Result<RowsWritten, StoreError> {
        self.take_failure()?;
        let closed = lock(&self.closed).contains_key(period);
        let mut all = lock(&self.rows);
        let stored = all.entry(period.to_owned()).or_default();
        if closed || stored.values().any(|(_, frozen)| *frozen) {
            return Err(StoreError::Rejected {
                operation: "replace rows",
                message: format!("period {period} is closed"),
            });
        }
        let mut out = RowsWritten::default();
        let keep: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.sk.as_str()).collect();
        let before = stored.len();
        stored.retain(|sk, _| keep.contains(sk.as_str()));
        out.deleted = (before - stored.len()) as u64;
        for row in rows {
            match stored.get(&row.sk) {
                Some((body, _)) if *body == row.body => out.unchanged += 1,
                _ => {
                    stored.insert(row.sk.clone(), (row.body.clone(), false));
                    out.written += 1;
                }
            }
        }
        Ok(out)
    }

    async fn save_plan(
        &self,
        criteria_version: &str,
        plan: &crate::incentives::IncentivePlan,
    ) -> Result<(), StoreError> {
        self.take_failure()?;
        lock(&self.plans).insert(criteria_version.to_owned(), plan.clone());
        Ok(())
    }

    async fn plans(
        &self,
    ) -> Result<BTreeMap<String, crate::incentives::IncentivePlan>, StoreError> {
        self.take_failure()?;
        Ok(lock(&self.plans).clone())
    }

    async fn closed_periods(&self) -> Result<Vec<PeriodStatus>, StoreError> {
        self.take_failure()?;
        Ok(lock(&self.closed).values().cloned().collect())
    }

    async fn close_period(&self, status: &PeriodStatus) -> Result<bool, StoreError> {
        self.take_failure()?;
        let new = match lock(&self.closed).entry(status.period.clone()) {
            std::collections::btree_map::Entry::Occupied(_) => false,
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(status.clone());
                true
            }
        };
        if let Some(rows) = lock(&self.rows).get_mut(&status.period) {
            for (_, frozen) in rows.values_mut() {
                *frozen = true;
            }
        }
        Ok(new)
    }
}

impl crate::ports::RunStore for FakeLeadStore {
    async fn acquire_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        self.take_failure()?;
        let mut lease = lock(&self.lease);
        match &*lease {
            Some(current) if current.holder != holder && current.until > now => {
                Ok(Some(current.clone()))
            }
            _ => {
                *lease = Some(Lease {
                    holder: holder.to_owned(),
                    until,
                });
                Ok(None)
            }
        }
    }

    async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.take_failure()?;
        let mut lease = lock(&self.lease);
        if lease.as_ref().is_some_and(|l| l.holder == holder) {
            *lease = None;
        }
        Ok(())
    }

    async fn create_run(&self, plan: &RunPlan) -> Result<(), StoreError> {
        self.take_failure()?;
        lock(&self.run_records)
            .entry(plan.run_id.clone())
            .or_insert_with(|| (plan.clone(), BTreeMap::new(), false));
        Ok(())
    }

    async fn finish_slice(
        &self,
        run_id: &str,
        result: &SliceResult,
    ) -> Result<RunProgress, StoreError> {
        self.take_failure()?;
        let mut runs = lock(&self.run_records);
        let Some((plan, slices, finished)) = runs.get_mut(run_id) else {
            return Err(StoreError::Rejected {
                operation: "finish_slice",
                message: format!("run {run_id} was never planned"),
            });
        };
        slices.entry(result.slice).or_insert_with(|| result.clone());
        Ok(RunProgress {
            slices: plan.slices,
            done: u32::try_from(slices.len()).unwrap_or(u32::MAX),
            finished: *finished,
        })
    }

    async fn slice_results(&self, run_id: &str) -> Result<Vec<SliceResult>, StoreError> {
        self.take_failure()?;
        Ok(lock(&self.run_records)
            .get(run_id)
            .map(|(_, slices, _)| slices.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn finish_run(&self, run_id: &str, report: &RunReport) -> Result<(), StoreError> {
        self.take_failure()?;
        if let Some(run) = lock(&self.run_records).get_mut(run_id) {
            run.2 = true;
        }
        let mut runs = lock(&self.runs);
        runs.retain(|r| !(r.run_id == report.run_id && r.slice == report.slice));
        runs.push(report.clone());
        Ok(())
    }
}

impl FakeLeadStore {
    /// The lease as it stands.
    pub fn lease(&self) -> Option<Lease> {
        lock(&self.lease).clone()
    }

    /// A run's plan, finished slices and whether it finished.
    pub fn run_record(&self, run_id: &str) -> Option<(RunPlan, usize, bool)> {
        lock(&self.run_records)
            .get(run_id)
            .map(|(p, s, f)| (p.clone(), s.len(), *f))
    }
}

/// A slice queue in memory: sent slices wait until a test takes them.
#[derive(Debug, Default)]
pub struct FakeSliceQueue {
    queued: Mutex<VecDeque<SliceSpec>>,
    deferred: Mutex<VecDeque<(crate::runs::DeferredRescore, std::time::Duration)>>,
    erasures: Mutex<VecDeque<(crate::runs::DeferredErase, std::time::Duration)>>,
    failures: Mutex<VecDeque<StoreError>>,
}

impl FakeSliceQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` sends fail with `error`.
    pub fn fail_next(&self, n: usize, error: StoreError) {
        lock(&self.failures).extend(std::iter::repeat_n(error, n));
    }

    /// Take every queued slice, oldest first.
    pub fn drain(&self) -> Vec<SliceSpec> {
        lock(&self.queued).drain(..).collect()
    }

    /// Take every deferred erasure with its delay, oldest first.
    pub fn drain_erasures(&self) -> Vec<(crate::runs::DeferredErase, std::time::Duration)> {
        lock(&self.erasures).drain(..).collect()
    }

    /// Take every deferred re-score with its delay, oldest first.
    pub fn drain_deferred(&self) -> Vec<(crate::runs::DeferredRescore, std::time::Duration)> {
        lock(&self.deferred).drain(..).collect()
    }
}

impl crate::ports::SliceQueue for FakeSliceQueue {
    async fn send(&self, slices: &[SliceSpec]) -> Result<(), StoreError> {
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        lock(&self.queued).extend(slices.iter().cloned());
        Ok(())
    }

    async fn defer(
        &self,
        rescore: &crate::runs::DeferredRescore,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        lock(&self.deferred).push_back((rescore.clone(), delay));
        Ok(())
    }

    async fn defer_erase(
        &self,
        erase: &crate::runs::DeferredErase,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        lock(&self.erasures).push_back((erase.clone(), delay));
        Ok(())
    }
}

/// An event bus that keeps what it is sent; it can be told to refuse the next calls.
#[derive(Debug, Default)]
pub struct FakeEventSink {
    sent: Mutex<Vec<crate::news::LeadEvent>>,
    /// Calls to refuse (as a whole) before accepting again.
    refuse_calls: std::sync::atomic::AtomicU32,
}

impl FakeEventSink {
    pub fn sent(&self) -> Vec<crate::news::LeadEvent> {
        lock(&self.sent).clone()
    }

    /// Refuse the next `calls` calls.
    pub fn refuse(&self, calls: u32) {
        self.refuse_calls.store(calls, Ordering::SeqCst);
    }
}

impl crate::ports::EventSink for FakeEventSink {
    fn send<'a>(
        &'a self,
        events: &'a [crate::news::LeadEvent],
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Vec<bool>, crate::ports::EventError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let refused = self
                .refuse_calls
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if refused {
                return Err(crate::ports::EventError("refused (fake)".into()));
            }
            lock(&self.sent).extend(events.iter().cloned());
            Ok(vec![true; events.len()])
        })
    }
}
