//! The CRM fake: leads in, property writes recorded, scripted failures.

use super::*;

/// A CRM in memory: leads in, property writes recorded.
#[derive(Debug, Default)]
pub struct FakeCrm {
    leads: Mutex<BTreeMap<LeadId, Lead>>,
    rejected: Mutex<Vec<Rejected>>,
    written: Mutex<Vec<PropertyUpdate>>,
    failures: Mutex<VecDeque<CrmError>>,
    /// Faults scripted per operation ([`FakeCrm::script`]).
    pub script: super::Script<CrmError>,
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

    fn take_failure(&self, operation: &'static str) -> Result<(), CrmError> {
        self.script.check(operation)?;
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
        self.take_failure("describe_properties")?;
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
        self.take_failure("contacts_touched_since")?;
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
        self.take_failure("deleted_since")?;
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
        self.take_failure("ensure_properties")?;
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
        self.take_failure("pull_page")?;
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
        self.take_failure("count")?;
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
        self.take_failure("push")?;
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
