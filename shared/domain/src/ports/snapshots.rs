//! Snapshots: each run's scored leads and its quarantine written to object storage, read
//! back for simulation and erasure.

use super::*;

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
