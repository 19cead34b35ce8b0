//! The lead store fake: states, transitions, the watermark, runs and the lease, rollup rows and periods.

use super::*;

/// A lead store in memory.
#[derive(Debug, Default)]
pub struct FakeLeadStore {
    states: Mutex<HashMap<LeadId, LeadState>>,
    transitions: Mutex<BTreeMap<(LeadId, String, String), Transition>>,
    watermarks: Mutex<HashMap<String, DateTime<Utc>>>,
    runs: Mutex<Vec<RunReport>>,
    failures: Mutex<VecDeque<StoreError>>,
    /// Faults scripted per operation ([`super::Script`]).
    pub script: super::Script<StoreError>,
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
    /// The periods whose facts were read, in order (one entry per `visit_facts`).
    fact_reads: Mutex<Vec<String>>,
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

    /// The periods whose facts were read so far, in order, one entry per read.
    pub fn fact_reads(&self) -> Vec<String> {
        lock(&self.fact_reads).clone()
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

    fn take_failure(&self, operation: &'static str) -> Result<(), StoreError> {
        self.script.check(operation)?;
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
        self.take_failure("load_states")?;
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
        self.take_failure("append_transitions")?;
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
        self.take_failure("save_states")?;
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
        self.take_failure("due_leads")?;
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
        self.take_failure("watermark")?;
        Ok(lock(&self.watermarks).get(source).copied())
    }

    async fn set_watermark(&self, source: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.take_failure("set_watermark")?;
        lock(&self.watermarks).insert(source.to_owned(), at);
        Ok(())
    }

    async fn save_run(&self, report: &RunReport) -> Result<(), StoreError> {
        self.take_failure("save_run")?;
        let mut runs = lock(&self.runs);
        runs.retain(|r| !(r.run_id == report.run_id && r.slice == report.slice));
        runs.push(report.clone());
        Ok(())
    }
}

impl RollupStore for FakeLeadStore {
    async fn record_links(
        &self,
        links: &[(LeadId, crate::facts::LeadLink)],
    ) -> Result<std::collections::BTreeSet<String>, StoreError> {
        self.take_failure("record_links")?;
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
        self.take_failure("links")?;
        Ok(lock(&self.links).clone())
    }

    async fn erase_lead(
        &self,
        id: &LeadId,
        pseudonym: &LeadId,
        closed: &std::collections::BTreeSet<String>,
    ) -> Result<crate::ports::LeadErased, StoreError> {
        self.take_failure("erase_lead")?;
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
        self.take_failure("record_milestones")?;
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
        self.take_failure("visit_facts")?;
        lock(&self.fact_reads).push(period.to_owned());
        // The period's facts only are copied out (a store holds every month's).
        let month = period
            .split_once('-')
            .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)));
        let in_period = |at: DateTime<Utc>| Some((at.year(), at.month())) == month;
        let facts: Vec<Fact> = lock(&self.transitions)
            .values()
            .filter(|t| in_period(t.occurred_at.unwrap_or(t.observed_at)))
            .map(|t| Fact::Stage(t.clone()))
            .chain(
                lock(&self.milestones)
                    .values()
                    .filter(|m| in_period(m.occurred_at.unwrap_or(m.observed_at)))
                    .map(|m| Fact::Milestone(m.clone())),
            )
            .collect();
        let n = facts.len() as u64;
        // In reverse key order, unlike DynamoDB's: callers must not depend on the order.
        for f in facts.into_iter().rev() {
            visit(f);
        }
        Ok(n)
    }

    async fn rows(&self, period: &str) -> Result<Vec<RollupRow>, StoreError> {
        self.take_failure("rows")?;
        Ok(self.all_rows().remove(period).unwrap_or_default())
    }

    async fn replace_rows(
        &self,
        period: &str,
        rows: &[RollupRow],
    ) -> Result<RowsWritten, StoreError> {
        self.take_failure("replace_rows")?;
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
        self.take_failure("save_plan")?;
        lock(&self.plans).insert(criteria_version.to_owned(), plan.clone());
        Ok(())
    }

    async fn plans(
        &self,
    ) -> Result<BTreeMap<String, crate::incentives::IncentivePlan>, StoreError> {
        self.take_failure("plans")?;
        Ok(lock(&self.plans).clone())
    }

    async fn closed_periods(&self) -> Result<Vec<PeriodStatus>, StoreError> {
        self.take_failure("closed_periods")?;
        Ok(lock(&self.closed).values().cloned().collect())
    }

    async fn close_period(&self, status: &PeriodStatus) -> Result<bool, StoreError> {
        self.take_failure("close_period")?;
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
        self.take_failure("acquire_lease")?;
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
        self.take_failure("release_lease")?;
        let mut lease = lock(&self.lease);
        if lease.as_ref().is_some_and(|l| l.holder == holder) {
            *lease = None;
        }
        Ok(())
    }

    async fn create_run(&self, plan: &RunPlan) -> Result<(), StoreError> {
        self.take_failure("create_run")?;
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
        self.take_failure("finish_slice")?;
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
        self.take_failure("slice_results")?;
        Ok(lock(&self.run_records)
            .get(run_id)
            .map(|(_, slices, _)| slices.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn finish_run(&self, run_id: &str, report: &RunReport) -> Result<(), StoreError> {
        self.take_failure("finish_run")?;
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
