//! The lead store: state, facts (transitions, milestones), watermarks and run records — and
//! the error every store port shares.

use super::*;

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
