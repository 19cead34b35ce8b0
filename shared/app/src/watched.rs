//! A CRM seen from a laptop: the same adapter the functions use, with what the run pulled
//! and would push counted for a progress bar, and — for a dry run — every write kept here
//! instead of sent.
//!
//! [`Watched`] implements [`Crm`] by delegating each call to the adapter it wraps, so a run
//! through it is the functions' run; only `push` and `ensure_properties` differ, and only in
//! [`Mode::DryRun`], where they record what would be written and send nothing.

use chrono::{DateTime, Utc};
use leadsync_domain::LeadId;
use leadsync_domain::criteria::{CrmObject, CrmProperty, CrmReads};
use leadsync_domain::ports::{Crm, CrmError, PropertySpec, PropertyUpdate, PullPage, PushOutcome};
use leadsync_domain::runs::{Census, PullScope, ScopeKey};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether writes reach the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Writes go through: the run is a real one.
    Live,
    /// Writes are kept in [`Watched::would_push`] and [`Watched::would_create`]; the CRM
    /// sees reads only.
    DryRun,
}

/// One contact a dry run would change: what the CRM shows now in the properties leadsync
/// writes, and what it would write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WouldChange {
    pub lead_id: String,
    pub before: BTreeMap<String, String>,
    pub after: BTreeMap<String, String>,
}

/// The adapter `C`, watched.
#[derive(Debug)]
pub struct Watched<'a, C> {
    inner: &'a C,
    mode: Mode,
    /// Stop the walk once this many contacts were pulled (a dry run's `--limit`).
    limit: Option<u64>,
    pulled: AtomicU64,
    census: AtomicU64,
    pushed: AtomicU64,
    /// What each pulled contact showed in leadsync's properties (dry run only).
    shows: Mutex<HashMap<LeadId, BTreeMap<String, String>>>,
    updates: Mutex<Vec<PropertyUpdate>>,
    created: Mutex<Vec<String>>,
}

impl<'a, C: Crm> Watched<'a, C> {
    pub fn new(inner: &'a C, mode: Mode) -> Self {
        Self {
            inner,
            mode,
            limit: None,
            pulled: AtomicU64::new(0),
            census: AtomicU64::new(0),
            pushed: AtomicU64::new(0),
            shows: Mutex::default(),
            updates: Mutex::default(),
            created: Mutex::default(),
        }
    }

    /// End the walk after `limit` contacts (the page that reaches it is cut there).
    #[must_use]
    pub fn with_limit(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }

    /// Contacts pulled so far (quarantined ones included).
    pub fn pulled(&self) -> u64 {
        self.pulled.load(Ordering::Relaxed)
    }

    /// The largest census the run took (planning counts its scope first): the bar's length.
    pub fn census(&self) -> u64 {
        self.census.load(Ordering::Relaxed)
    }

    /// Contacts written (live) or that would be (dry run).
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Every write a dry run held back, merged per contact, in id order.
    pub fn would_push(&self) -> Vec<WouldChange> {
        let shows = lock(&self.shows);
        let mut merged: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for u in lock(&self.updates).iter() {
            merged
                .entry(u.lead_id.as_str().to_owned())
                .or_default()
                .extend(u.properties.clone());
        }
        let mut out: Vec<WouldChange> = merged
            .into_iter()
            .map(|(id, after)| {
                let shown = LeadId::new(&id)
                    .ok()
                    .and_then(|lead| shows.get(&lead).cloned())
                    .unwrap_or_default();
                let before = after
                    .keys()
                    .filter_map(|k| shown.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                WouldChange {
                    lead_id: id,
                    before,
                    after,
                }
            })
            .collect();
        // Numeric ids in numeric order (HubSpot's), others as text.
        out.sort_by(|a, b| (a.lead_id.len(), &a.lead_id).cmp(&(b.lead_id.len(), &b.lead_id)));
        out
    }

    /// The properties a dry run would have created.
    pub fn would_create(&self) -> Vec<String> {
        lock(&self.created).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<C: Crm> Crm for Watched<'_, C> {
    fn max_ids(&self) -> usize {
        self.inner.max_ids()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn describe_properties(&self, object: CrmObject) -> Result<Vec<CrmProperty>, CrmError> {
        self.inner.describe_properties(object).await
    }

    fn forget_properties(&self) {
        self.inner.forget_properties();
    }

    fn forward_properties(&self) -> Option<leadsync_domain::criteria::ForwardProperties> {
        self.inner.forward_properties()
    }

    fn set_reads(&self, reads: &CrmReads) -> Result<(), CrmError> {
        self.inner.set_reads(reads)
    }

    fn split_keys(&self, after: Option<&ScopeKey>, through: &ScopeKey) -> Option<ScopeKey> {
        self.inner.split_keys(after, through)
    }

    async fn pull_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let mut page = self.inner.pull_page(scope, cursor).await?;
        if let Some(limit) = self.limit {
            let room = usize::try_from(limit.saturating_sub(self.pulled())).unwrap_or(usize::MAX);
            if page.leads.len() + page.rejected.len() >= room {
                page.leads.truncate(room);
                page.rejected.truncate(room - page.leads.len());
                page.next = None;
            }
        }
        let n = (page.leads.len() + page.rejected.len()) as u64;
        self.pulled.fetch_add(n, Ordering::Relaxed);
        if self.mode == Mode::DryRun {
            let mut shows = lock(&self.shows);
            for lead in &page.leads {
                shows.insert(lead.id.clone(), lead.crm_shows.clone());
            }
        }
        Ok(page)
    }

    async fn count(&self, scope: &PullScope) -> Result<Census, CrmError> {
        let census = self.inner.count(scope).await?;
        let total = self.limit.map_or(census.total, |l| census.total.min(l));
        self.census.fetch_max(total, Ordering::Relaxed);
        Ok(census)
    }

    async fn missing_properties(&self, specs: &[PropertySpec]) -> Result<Vec<String>, CrmError> {
        self.inner.missing_properties(specs).await
    }

    async fn contacts_touched_since(&self, since: DateTime<Utc>) -> Result<Vec<LeadId>, CrmError> {
        self.inner.contacts_touched_since(since).await
    }

    async fn deleted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>)>, CrmError> {
        self.inner.deleted_since(since).await
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        let outcome = match self.mode {
            Mode::Live => self.inner.push(updates).await?,
            Mode::DryRun => {
                lock(&self.updates).extend_from_slice(updates);
                PushOutcome {
                    written: updates.iter().map(|u| u.lead_id.clone()).collect(),
                    failed: Vec::new(),
                    requests: 0,
                }
            }
        };
        self.pushed
            .fetch_add(outcome.written.len() as u64, Ordering::Relaxed);
        Ok(outcome)
    }

    async fn ensure_properties(&self, specs: &[PropertySpec]) -> Result<u32, CrmError> {
        match self.mode {
            Mode::Live => self.inner.ensure_properties(specs).await,
            Mode::DryRun => {
                // Listing is a read: say what would be created, create nothing.
                let missing = self.inner.missing_properties(specs).await?;
                let mut created = lock(&self.created);
                for name in missing {
                    if !created.contains(&name) {
                        created.push(name);
                    }
                }
                Ok(0)
            }
        }
    }
}
