//! The ports: what the use cases need from the outside world, as traits with contracts.
//!
//! Only domain types cross a port. Adapters (`leadsync-hubspot`, `leadsync-store`,
//! `leadsync-enrich`) implement them for real services; [`crate::fakes`] implements them in
//! memory. Every error type says which of its variants are worth retrying.
//!
//! leadsync is at-least-once end to end: any call here may be repeated after a crash, so every
//! write a port offers is idempotent.

use crate::criteria::{CrmObject, CrmProperty, CrmReads, Scorecard};
pub use crate::criteria::{PropertyKind, PropertySpec};
use crate::lead::{Firmographics, Lead, LeadId};
use crate::news::LeadEvent;
pub use crate::runs::RunReport;
use crate::runs::{
    Census, Lease, PullScope, RunPlan, RunProgress, ScopeKey, SliceResult, SliceSpec,
};
use crate::transition::{LeadState, Transition};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

// ---------------------------------------------------------------------------------------------
// CRM

/// A record the CRM returned that could not be turned into a [`Lead`]. It is quarantined with
/// its reason, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The CRM id, when the record had a readable one.
    pub lead_id: Option<String>,
    /// What is wrong and where (field name).
    pub reason: String,
    /// The record as received (JSON text).
    pub raw: String,
}

/// One page of an incremental pull.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullPage {
    pub leads: Vec<Lead>,
    pub rejected: Vec<Rejected>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The properties to write on one contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyUpdate {
    pub lead_id: LeadId,
    pub properties: BTreeMap<String, String>,
}

/// A row the CRM refused in a batch write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFailure {
    pub lead_id: LeadId,
    pub message: String,
    pub retryable: bool,
}

/// What a push achieved, row by row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOutcome {
    pub written: Vec<LeadId>,
    pub failed: Vec<PushFailure>,
    /// Write requests made (batch calls), for the run's cost ledger.
    pub requests: u32,
}

/// A CRM call failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmError {
    #[error("the CRM refused the token (401): check the private-app token")]
    Unauthorized,
    #[error("the CRM rate limit was hit (policy {policy}) and retries ran out")]
    RateLimited { policy: String },
    #[error("the CRM is unavailable (HTTP {status}): {message}")]
    Unavailable { status: u16, message: String },
    #[error("the CRM rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("the CRM did not answer in time")]
    Timeout,
    #[error("could not reach the CRM: {0}")]
    Transport(String),
    #[error("the CRM answered with a body we cannot read: {0}")]
    Decode(String),
}

impl CrmError {
    /// Worth retrying later: rate limits, 5xx, timeouts, transport failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CrmError::RateLimited { .. }
                | CrmError::Unavailable { .. }
                | CrmError::Timeout
                | CrmError::Transport(_)
        )
    }
}

/// The CRM leadsync pulls leads from and writes results back to.
pub trait Crm: Send + Sync {
    /// The most ids one [`PullScope::only`] may name (one request's `IN` list: HubSpot's
    /// search takes 100 values).
    fn max_ids(&self) -> usize;

    /// A key strictly between `after` (exclusive; `None`: the start of the key space) and
    /// `through`, about halfway in the adapter's order — how planning bisects a range that
    /// holds too many records. `None` when no key lies between them.
    fn split_keys(&self, after: Option<&ScopeKey>, through: &ScopeKey) -> Option<ScopeKey>;

    /// One page of the contacts in `scope` (modified at or after `scope.since`, inside its key
    /// range, or exactly `scope.only`), with their company data. Start with `cursor = None`;
    /// follow [`PullPage::next`] until it is `None`. The whole walk returns every contact in
    /// scope at least once (records may repeat; callers must tolerate duplicates). Pages need
    /// not come in key order: an adapter may walk several key ranges of the scope at once.
    ///
    /// # Errors
    /// [`CrmError`]: the page could not be read at all. Records that could be read but not
    /// mapped come back in [`PullPage::rejected`], not as errors.
    fn pull_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> impl Future<Output = Result<PullPage, CrmError>> + Send;

    /// How many contacts `scope` holds and the last key among them — one cheap request,
    /// used to plan slices. The count may be slightly stale (search indexing lags); planning
    /// must not depend on it being exact.
    ///
    /// # Errors
    /// [`CrmError`].
    fn count(&self, scope: &PullScope) -> impl Future<Output = Result<Census, CrmError>> + Send;

    /// Contacts whose deals or company changed at or after `since` — their own record may
    /// not have (HubSpot does not touch a contact when its deal closes): a nightly run
    /// re-scores them so milestones and firmographics reach them.
    ///
    /// # Errors
    /// [`CrmError`].
    fn contacts_touched_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<LeadId>, CrmError>> + Send;

    /// Contacts deleted (archived) in the CRM at or after `since`, with when — merged-away
    /// contacts among them. Rollups stop counting a deleted contact's facts.
    ///
    /// # Errors
    /// [`CrmError`].
    fn deleted_since(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(LeadId, DateTime<Utc>)>, CrmError>> + Send;

    /// Write properties on contacts. Idempotent: writing the same values again is harmless.
    /// Rows the CRM refuses are reported in [`PushOutcome::failed`]; the call as a whole fails
    /// only when nothing could be sent.
    ///
    /// # Errors
    /// [`CrmError`] when the CRM cannot be reached or refuses every call.
    fn push(
        &self,
        updates: &[PropertyUpdate],
    ) -> impl Future<Output = Result<PushOutcome, CrmError>> + Send;

    /// Make sure the properties exist on contacts, creating the missing ones (in leadsync's
    /// own property group). Idempotent: existing properties are left alone, and a property that
    /// appears concurrently is not an error. Returns how many were created.
    ///
    /// # Errors
    /// [`CrmError`] when the properties cannot be listed or one cannot be created.
    fn ensure_properties(
        &self,
        specs: &[PropertySpec],
    ) -> impl Future<Output = Result<u32, CrmError>> + Send;

    /// The CRM's name, for messages (`HubSpot`, `Salesforce`).
    fn name(&self) -> &'static str {
        "the CRM"
    }

    /// The property definitions of one object (name and type), for checking a criteria
    /// document's `[fields]` before it is used. An adapter may cache them for a while.
    ///
    /// # Errors
    /// [`CrmError`]; an adapter that cannot list definitions says so (not retryable).
    fn describe_properties(
        &self,
        object: CrmObject,
    ) -> impl Future<Output = Result<Vec<CrmProperty>, CrmError>> + Send {
        async move {
            Err(CrmError::Rejected {
                status: 0,
                message: format!(
                    "{} cannot list its {} property definitions",
                    self.name(),
                    object.as_str()
                ),
            })
        }
    }

    /// Where the CRM keeps its own lifecycle stage and sales status, when the adapter can move
    /// them forward for a document's `[crm.forward]`; `None` (the default): it cannot, and a
    /// document asking for it is refused by name before a run pulls.
    fn forward_properties(&self) -> Option<crate::criteria::ForwardProperties> {
        None
    }

    /// Drop the property definitions [`Crm::describe_properties`] cached: the next call lists
    /// them afresh (after a check failed: the admin may just have created the property).
    fn forget_properties(&self) {}

    /// Which of `specs` [`Crm::ensure_properties`] would create, by the CRM's own name for
    /// each (`Lead.LeadsyncStage__c`, …) — creating nothing: what a dry run and
    /// `leadsync doctor` report. By default, the contact properties
    /// [`Crm::describe_properties`] does not list.
    ///
    /// # Errors
    /// [`CrmError`] when the definitions cannot be listed.
    fn missing_properties(
        &self,
        specs: &[PropertySpec],
    ) -> impl Future<Output = Result<Vec<String>, CrmError>> + Send {
        async move {
            let existing = self.describe_properties(CrmObject::Contact).await?;
            Ok(specs
                .iter()
                .filter(|s| !existing.iter().any(|p| p.name == s.name))
                .map(|s| s.name.clone())
                .collect())
        }
    }

    /// Read what `reads` names on every pull from now on (replacing what an earlier call set):
    /// the mapped properties into [`Lead::properties`] and [`crate::Deal::properties`], the
    /// moved inputs into their built-in places.
    ///
    /// # Errors
    /// [`CrmError::Rejected`] when the adapter cannot read some of it — never a silent
    /// "missing" on every lead.
    fn set_reads(&self, reads: &CrmReads) -> Result<(), CrmError> {
        if reads.is_default() {
            Ok(())
        } else {
            Err(CrmError::Rejected {
                status: 0,
                message: format!("{} does not read the criteria's [fields] yet", self.name()),
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Firmographic provider

/// A provider lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {provider} rate limit hit")]
    RateLimited { provider: String },
    #[error("provider {provider} unavailable: {message}")]
    Unavailable { provider: String, message: String },
    #[error("provider {provider} rejected the request: {message}")]
    Rejected { provider: String, message: String },
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::Rejected { .. })
    }
}

/// Where a provider's answer came from, for the run's cost ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Remembered (a cache): no call made, nothing billed.
    Cache,
    /// Asked of the provider; `billed` when the provider charges for this answer (PDL bills
    /// every 200, even one then set aside for low likelihood; a 404 is free).
    Call { billed: bool },
}

/// One provider answer for one domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// `None`: no (confident) match.
    pub firmographics: Option<Firmographics>,
    pub origin: Origin,
    /// Worth remembering: `false` for an answer that could not be read (billed, but no
    /// verdict on the company), so a cache asks again next time instead of keeping a "no match"
    /// the provider never gave.
    pub cacheable: bool,
}

impl Lookup {
    /// An answer from a provider that never bills (a dataset, a fake).
    pub fn free(firmographics: Option<Firmographics>) -> Self {
        Self {
            firmographics,
            origin: Origin::Call { billed: false },
            cacheable: true,
        }
    }
}

/// A source of firmographic data keyed by company domain.
pub trait FirmographicProvider: Send + Sync {
    /// Short stable name, recorded as the provenance of every value it supplies.
    fn name(&self) -> &str;

    /// Firmographics for a registrable domain (`acme.com`) — `firmographics: None` when the
    /// provider has no match — and what the answer cost. May bill per match: callers dedupe
    /// and cache.
    ///
    /// # Errors
    /// [`ProviderError`]; the lead is then scored without this provider's data.
    fn lookup(&self, domain: &str) -> impl Future<Output = Result<Lookup, ProviderError>> + Send;

    /// The answers this provider already holds for any of `domains` without a call — a cache
    /// in front of it reads them in as few requests as its store allows. Absent domains are
    /// then asked with [`FirmographicProvider::lookup_uncached`]. Default: none.
    fn cached(
        &self,
        domains: &[String],
    ) -> impl Future<Output = HashMap<String, Option<Firmographics>>> + Send {
        let _ = domains;
        std::future::ready(HashMap::new())
    }

    /// [`FirmographicProvider::lookup`] for a domain [`FirmographicProvider::cached`] did not
    /// have (a cache in front skips its own read, and keeps the answer for
    /// [`FirmographicProvider::flush`] rather than writing it at once). Default: `lookup`.
    fn lookup_uncached(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Lookup, ProviderError>> + Send {
        self.lookup(domain)
    }

    /// Write down what [`FirmographicProvider::lookup_uncached`] learnt since the last flush,
    /// in as few requests as the store allows (a cache: one `BatchWriteItem` per 25 answers).
    /// The enricher flushes once per page; answers not flushed (a crash between) are only
    /// asked again. Default: nothing to write.
    fn flush(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

impl<T: FirmographicProvider + ?Sized> FirmographicProvider for &T {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn lookup(&self, domain: &str) -> impl Future<Output = Result<Lookup, ProviderError>> + Send {
        (**self).lookup(domain)
    }

    fn cached(
        &self,
        domains: &[String],
    ) -> impl Future<Output = HashMap<String, Option<Firmographics>>> + Send {
        (**self).cached(domains)
    }

    fn lookup_uncached(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Lookup, ProviderError>> + Send {
        (**self).lookup_uncached(domain)
    }

    fn flush(&self) -> impl Future<Output = ()> + Send {
        (**self).flush()
    }
}

/// Remembered provider answers per company domain, with an expiry.
pub trait FirmographicCache: Send + Sync {
    /// The cached answer of `provider` for `domain`, if present and not expired at `now`:
    /// `Some(Some(f))` a match, `Some(None)` a remembered no-match, `None` nothing usable.
    ///
    /// # Errors
    /// [`StoreError`]; callers treat a failing cache as a miss.
    fn get(
        &self,
        domain: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Option<Firmographics>>, StoreError>> + Send;

    /// [`FirmographicCache::get`] for many domains at once (DynamoDB: `BatchGetItem`, 100
    /// keys a request): the usable answers, by domain; absent and expired ones are left out.
    ///
    /// # Errors
    /// [`StoreError`]; callers treat a failing cache as all misses.
    fn get_many(
        &self,
        domains: &[String],
        provider: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<HashMap<String, Option<Firmographics>>, StoreError>> + Send;

    /// Remember an answer (a match or a no-match) until `expires_at`. Idempotent.
    ///
    /// # Errors
    /// [`StoreError`]; callers log and carry on.
    fn put(
        &self,
        domain: &str,
        provider: &str,
        value: Option<&Firmographics>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`FirmographicCache::put`] for many answers of `provider` at once (DynamoDB:
    /// `BatchWriteItem`, 25 a request). Default: one `put` each.
    ///
    /// # Errors
    /// [`StoreError`]; callers log and carry on.
    fn put_many(
        &self,
        provider: &str,
        answers: &[CacheEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for entry in answers {
                self.put(
                    &entry.domain,
                    provider,
                    entry.value.as_ref(),
                    entry.expires_at,
                )
                .await?;
            }
            Ok(())
        }
    }
}

/// One answer to remember ([`FirmographicCache::put_many`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub domain: String,
    /// A match, or `None`: a remembered no-match.
    pub value: Option<Firmographics>,
    pub expires_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Stores

/// A store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store throttled or unavailable during {operation}: {message}")]
    Unavailable {
        operation: &'static str,
        message: String,
    },
    #[error("store rejected {operation}: {message}")]
    Rejected {
        operation: &'static str,
        message: String,
    },
    #[error("stored item {key} is corrupt: {message}")]
    Corrupt { key: String, message: String },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// What [`LeadStore::record`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOutcome {
    pub states_written: u64,
    /// Transitions that were new.
    pub transitions_new: u64,
    /// Transitions already present (a re-run): not written again.
    pub transitions_existing: u64,
    /// For each transition already present that this run recorded (an attempt of it cut
    /// short), when its stored fact says the lead got there.
    /// A run cut short after recording a page's facts and pushing it, but before writing its
    /// states, is re-run against contacts our own push just modified: their modification time
    /// is no longer when their data changed, the stored fact's is — the state takes it, so the
    /// re-run ends where a clean run would.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub existing_since: HashMap<LeadId, DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------------
// Events

/// The event bus refused the whole call or could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event bus could not take the events: {0}")]
pub struct EventError(pub String);

/// Where news about leads goes (EventBridge). Object-safe, so a run takes it as an option.
pub trait EventSink: Send + Sync + std::fmt::Debug {
    /// Send the events; the answer says, in order, which the bus accepted. At-least-once: an
    /// event may arrive twice (consumers dedupe on lead id and [`LeadEvent::key`]).
    fn send<'a>(
        &'a self,
        events: &'a [LeadEvent],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<bool>, EventError>> + Send + 'a>>;
}

/// Lead state, transitions, watermarks and run records.
pub trait LeadStore: Send + Sync {
    /// Current states of the given leads; absent leads are simply missing from the map.
    ///
    /// # Errors
    /// [`StoreError`]; `Unavailable` is retryable.
    fn load_states(
        &self,
        ids: &[LeadId],
    ) -> impl Future<Output = Result<HashMap<LeadId, LeadState>, StoreError>> + Send;

    /// Append stage transitions — facts, idempotent on their key: an existing one is left
    /// alone and counted in `transitions_existing` (with when it says its lead got there, if
    /// this run wrote it: `existing_since`). `states_written` is 0.
    ///
    /// # Errors
    /// [`StoreError`]; on error some may be written, and repeating the call is safe.
    fn append_transitions(
        &self,
        transitions: &[Transition],
    ) -> impl Future<Output = Result<RecordOutcome, StoreError>> + Send;

    /// Overwrite these leads' states. Returns how many were written.
    ///
    /// # Errors
    /// [`StoreError`]; on error some may be written, and repeating the call is safe.
    fn save_states(
        &self,
        states: &[LeadState],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`LeadStore::append_transitions`], then [`LeadStore::save_states`]: transitions first,
    /// so a crash between the two leaves a state that the re-run recomputes, never a lost
    /// transition.
    ///
    /// # Errors
    /// [`StoreError`]; on error some items may be written, and repeating the call is safe.
    fn record(
        &self,
        states: &[LeadState],
        transitions: &[Transition],
    ) -> impl Future<Output = Result<RecordOutcome, StoreError>> + Send {
        async move {
            let mut outcome = self.append_transitions(transitions).await?;
            outcome.states_written = self.save_states(states).await?;
            Ok(outcome)
        }
    }

    /// Leads whose stage or band time alone changes at or before `through` (their state's
    /// `rescore_at`), due within the `months` months up to it, in id order, at most `limit`.
    /// What a nightly run re-scores besides the leads the CRM changed.
    ///
    /// # Errors
    /// [`StoreError`].
    fn due_leads(
        &self,
        through: DateTime<Utc>,
        months: u32,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<LeadId>, StoreError>> + Send;

    /// The watermark of a source (`hubspot#contacts`), if any run has set one.
    ///
    /// # Errors
    /// [`StoreError`].
    fn watermark(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    /// Set the watermark. Only ever called after everything before it was processed.
    ///
    /// # Errors
    /// [`StoreError`].
    fn set_watermark(
        &self,
        source: &str,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Save (overwrite) a run's report.
    ///
    /// # Errors
    /// [`StoreError`].
    fn save_run(&self, report: &RunReport) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One line of a snapshot: a scored lead with its inputs — the input of `criteria simulate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotLine {
    pub lead: Lead,
    pub scorecard: Scorecard,
}

/// Where a slice's snapshot goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotKey {
    pub date: NaiveDate,
    pub run_id: String,
    pub slice: u32,
}

/// Snapshots of scored leads and quarantined records (S3).
pub trait SnapshotStore: Send + Sync {
    /// A slice's snapshot being written, page by page.
    type Writer: SnapshotWriter;

    /// Start the slice's snapshot; it is stored (overwriting any earlier attempt of the same
    /// slice) when the writer finishes.
    fn snapshot_writer(&self, key: &SnapshotKey) -> Self::Writer;

    /// Write a whole snapshot at once and return the object key.
    ///
    /// # Errors
    /// [`StoreError`].
    fn put_snapshot(
        &self,
        key: &SnapshotKey,
        lines: &[SnapshotLine],
    ) -> impl Future<Output = Result<String, StoreError>> + Send {
        let mut writer = self.snapshot_writer(key);
        let appended = writer.append(lines);
        async move {
            appended?;
            writer.finish().await
        }
    }

    /// Write the records that could not be processed, with their reasons; returns the object key.
    ///
    /// # Errors
    /// [`StoreError`].
    fn put_quarantine(
        &self,
        key: &SnapshotKey,
        records: &[Rejected],
    ) -> impl Future<Output = Result<String, StoreError>> + Send;

    /// Remove every line about lead `id` from the stored snapshots and quarantine files
    /// (each object rewritten without them, its earlier versions deleted). Repeating is safe.
    ///
    /// # Errors
    /// [`StoreError`]; `Corrupt` names an object that cannot be read.
    fn erase_lead(
        &self,
        id: &LeadId,
    ) -> impl Future<Output = Result<SnapshotsErased, StoreError>> + Send;

    /// Publish a period's dashboard page (`dashboards/<period>/index.html`, overwritten);
    /// returns the object key.
    ///
    /// # Errors
    /// [`StoreError`].
    fn put_dashboard(
        &self,
        period: &str,
        html: String,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// A snapshot being written: lines are encoded as they are appended, so a slice holds its
/// snapshot in the stored form (compressed, for S3) rather than as scored leads.
pub trait SnapshotWriter: Send {
    /// Add lines after those already appended.
    ///
    /// # Errors
    /// [`StoreError`] when a line cannot be encoded.
    fn append(&mut self, lines: &[SnapshotLine]) -> Result<(), StoreError>;

    /// Store the snapshot and return the object key.
    ///
    /// # Errors
    /// [`StoreError`].
    fn finish(self) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// A period's close record: who closed it, when, and the control totals frozen with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodStatus {
    pub period: String,
    pub closed_by: String,
    pub closed_at: DateTime<Utc>,
    /// Rows frozen, and the incentive totals of the reported criteria version at close.
    pub rows: u64,
    pub credits_cents: i64,
    pub facts: u64,
    /// The criteria version the period was reported (and paid) under when it closed: what
    /// later corrections are measured against. `None` for periods closed before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria_version: Option<String>,
}

/// What [`RollupStore::erase_lead`] did with one person's records in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadErased {
    /// The id the kept facts now carry (`erased-…`): the one proposed, or the one an earlier,
    /// interrupted erasure of the same lead chose.
    pub pseudonym: String,
    /// The lead's state (scores, stage, what was pushed) was deleted.
    pub state_deleted: bool,
    /// Facts moved under the pseudonym (open periods): counts and credits unchanged.
    pub facts_anonymised: u64,
    /// Facts left as they are because their period is closed: paid incentive records, kept
    /// for the legal retention of accounting records (they hold the CRM id, no contact data).
    pub facts_kept: u64,
    /// Merge and deletion records naming the lead: removed, or pointed at the pseudonym.
    pub links: u64,
    /// The open periods whose rollups now read the pseudonym: to be recomputed.
    pub periods: std::collections::BTreeSet<String>,
    /// The closed periods that still hold the kept facts.
    pub closed_periods: std::collections::BTreeSet<String>,
}

/// What [`SnapshotStore::erase_lead`] removed from stored snapshots and quarantine files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsErased {
    /// Objects looked through, and those rewritten without the person's lines.
    pub objects_read: u64,
    pub objects_rewritten: u64,
    /// Snapshot and quarantine lines removed.
    pub lines_removed: u64,
    /// Earlier versions of rewritten objects deleted (a versioned bucket keeps them).
    pub versions_deleted: u64,
}

/// What [`RollupStore::replace_rows`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowsWritten {
    pub written: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

/// Facts (beyond stage transitions, which [`LeadStore::append_transitions`] appends), rollup rows and
/// period closes.
pub trait RollupStore: Send + Sync {
    /// Append milestone facts, idempotent on [`Fact::key`](crate::facts::Fact::key). Returns how
    /// many were new.
    ///
    /// # Errors
    /// [`StoreError`]; repeating the call is safe.
    fn record_milestones(
        &self,
        facts: &[crate::facts::MilestoneFact],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Hand every fact (transitions and milestones) observed in `period` (`YYYY-MM`) to
    /// `visit`, in no particular order, a page at a time: a period of any size is read in
    /// bounded memory. Returns how many facts were visited.
    ///
    /// # Errors
    /// [`StoreError`]; `Corrupt` names the item that cannot be read (the facts before it have
    /// been visited).
    fn visit_facts<F>(
        &self,
        period: &str,
        visit: F,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send
    where
        F: FnMut(crate::facts::Fact) + Send;

    /// Remember that run `run_id` records facts in these periods (`YYYY-MM`) — noted before the
    /// facts are recorded, so a run cut short and started again recomputes every period its
    /// earlier attempts touched, even those its own later facts no longer name. Repeating is
    /// harmless.
    ///
    /// # Errors
    /// [`StoreError`].
    fn note_periods(
        &self,
        run_id: &str,
        periods: &std::collections::BTreeSet<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every period noted for `run_id`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn noted_periods(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, StoreError>> + Send;

    /// Remember merged and deleted leads. A merge is never overwritten by a deletion (a
    /// merged-away contact is archived too). Returns the periods the linked leads' facts
    /// occurred in: their rollups change.
    ///
    /// # Errors
    /// [`StoreError`]; repeating the call is safe.
    fn record_links(
        &self,
        links: &[(LeadId, crate::facts::LeadLink)],
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, StoreError>> + Send;

    /// Every merged or deleted lead — one Query.
    ///
    /// # Errors
    /// [`StoreError`].
    fn links(&self) -> impl Future<Output = Result<crate::facts::LeadLinks, StoreError>> + Send;

    /// Every rollup row of `period`, sorted by key — one Query (plus its pages).
    ///
    /// # Errors
    /// [`StoreError`].
    fn rows(
        &self,
        period: &str,
    ) -> impl Future<Output = Result<Vec<crate::rollup::RollupRow>, StoreError>> + Send;

    /// Make the rows of an open period exactly `rows`: write the new and changed ones, delete
    /// the ones no longer computed, leave equal ones alone — in as few requests as the store
    /// allows (DynamoDB: `BatchWriteItem`s of 25). The caller holds the sync lease, as a close
    /// does ([`crate::ports::RunStore::acquire_lease`]): close and recompute exclude each other,
    /// so the period is checked open once and its rows written unconditionally; on a closed
    /// period the call fails with `Rejected` and writes nothing.
    ///
    /// # Errors
    /// [`StoreError`]; repeating the call is safe.
    fn replace_rows(
        &self,
        period: &str,
        rows: &[crate::rollup::RollupRow],
    ) -> impl Future<Output = Result<RowsWritten, StoreError>> + Send;

    /// Remember the incentive plan of a criteria version (idempotent), so rollups of every
    /// version can be recomputed whichever version is active.
    ///
    /// # Errors
    /// [`StoreError`].
    fn save_plan(
        &self,
        criteria_version: &str,
        plan: &crate::incentives::IncentivePlan,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every remembered plan, by criteria version.
    ///
    /// # Errors
    /// [`StoreError`].
    fn plans(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, crate::incentives::IncentivePlan>, StoreError>>
    + Send;

    /// Closed periods, oldest first.
    ///
    /// # Errors
    /// [`StoreError`].
    fn closed_periods(&self) -> impl Future<Output = Result<Vec<PeriodStatus>, StoreError>> + Send;

    /// Erase a person on request: delete the lead's state, move its facts of open periods
    /// under `pseudonym` ([`Fact::anonymised`](crate::facts::Fact::anonymised)), keep those of
    /// the `closed` periods as they are (paid records), and remove or re-point the merge and
    /// deletion records naming it. Repeating the call after a failure completes it (the
    /// pseudonym must be the same).
    ///
    /// # Errors
    /// [`StoreError`].
    fn erase_lead(
        &self,
        id: &LeadId,
        pseudonym: &LeadId,
        closed: &std::collections::BTreeSet<String>,
    ) -> impl Future<Output = Result<LeadErased, StoreError>> + Send;

    /// Close a period: record the status (unless already closed: `Ok(false)`), then freeze its
    /// rows so no write can change them again. Repeating completes an interrupted close.
    ///
    /// # Errors
    /// [`StoreError`].
    fn close_period(
        &self,
        status: &PeriodStatus,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Runs, slices and the lease

/// Run records (plan, finished slices) and the sync lease.
pub trait RunStore: Send + Sync {
    /// Take the sync lease for `holder` until `until`, or renew it when `holder` has it already.
    /// Returns `Ok(None)` when taken, `Ok(Some(lease))` with the other holder's lease when it is
    /// held and not expired at `now`.
    ///
    /// # Errors
    /// [`StoreError`].
    fn acquire_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Lease>, StoreError>> + Send;

    /// Give the lease up, if `holder` still has it (otherwise nothing happens).
    ///
    /// # Errors
    /// [`StoreError`].
    fn release_lease(&self, holder: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Record a planned run. Idempotent: recording the same plan again is harmless.
    ///
    /// # Errors
    /// [`StoreError`].
    fn create_run(&self, plan: &RunPlan) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Record a finished slice — once: a slice finished again (a redelivered message) is not
    /// counted twice. Returns the run's progress after it.
    ///
    /// # Errors
    /// [`StoreError`]; `Rejected` when the run was never planned.
    fn finish_slice(
        &self,
        run_id: &str,
        result: &SliceResult,
    ) -> impl Future<Output = Result<RunProgress, StoreError>> + Send;

    /// Every finished slice of a run, by slice number.
    ///
    /// # Errors
    /// [`StoreError`].
    fn slice_results(
        &self,
        run_id: &str,
    ) -> impl Future<Output = Result<Vec<SliceResult>, StoreError>> + Send;

    /// Mark a run finished (its rollups and watermark are done), with its merged report.
    /// Idempotent.
    ///
    /// # Errors
    /// [`StoreError`].
    fn finish_run(
        &self,
        run_id: &str,
        report: &RunReport,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where slices go to be run by workers (SQS in production). At-least-once: a slice may be
/// delivered more than once, and running it again is safe.
pub trait SliceQueue: Send + Sync {
    /// Enqueue every slice; returns when all were accepted.
    ///
    /// # Errors
    /// [`StoreError`] (the queue is a store of messages): nothing is lost by retrying, a slice
    /// sent twice is run twice, harmlessly.
    fn send(&self, slices: &[SliceSpec]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Enqueue a re-score for the slice worker, visible after `delay` (SQS: at most 15
    /// minutes).
    ///
    /// # Errors
    /// [`StoreError`]; sending twice is harmless (re-scoring the same leads again changes
    /// nothing).
    fn defer(
        &self,
        rescore: &crate::runs::DeferredRescore,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Queue people to erase, to be taken after `delay` (at most 15 minutes).
    ///
    /// # Errors
    /// [`StoreError`]; sending twice is harmless (an erasure repeated does nothing more).
    fn defer_erase(
        &self,
        erase: &crate::runs::DeferredErase,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A provider type with no values: the waterfall of a deployment that has none configured.
#[derive(Debug, Clone, Copy)]
pub enum NoProvider {}

impl FirmographicProvider for NoProvider {
    fn name(&self) -> &str {
        match *self {}
    }

    async fn lookup(&self, _domain: &str) -> Result<Lookup, ProviderError> {
        match *self {}
    }
}
