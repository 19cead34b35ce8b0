//! Runs: their records (plan, finished slices), the sync lease and the slice queue.

use super::*;

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
