//! The rollup store: KPI and incentive rows by period, period status (open, closed) and
//! what erasure removed.

use super::*;

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
