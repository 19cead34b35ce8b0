//! The CRM port: pull pages of leads by scope and cursor, count a scope, read what changed
//! or was deleted, create the properties leadsync writes, push changed values.

use super::*;

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
    #[error("the CRM answered 429: its rate limit was hit (policy {policy})")]
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
