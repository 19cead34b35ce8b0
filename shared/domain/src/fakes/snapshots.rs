//! The snapshot store fake: snapshots, quarantine files and dashboard pages in memory.

use super::*;

/// A snapshot store in memory.
#[derive(Debug, Default)]
pub struct FakeSnapshotStore {
    snapshots: Arc<Mutex<BTreeMap<String, Vec<SnapshotLine>>>>,
    quarantine: Mutex<BTreeMap<String, Vec<Rejected>>>,
    dashboards: Mutex<BTreeMap<String, String>>,
    /// Faults scripted per operation (`"finish"` — a snapshot's upload —, `"put_quarantine"`,
    /// `"erase_lead"`, `"put_dashboard"`).
    pub script: Arc<super::Script<StoreError>>,
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
    script: Arc<super::Script<StoreError>>,
}

impl SnapshotWriter for FakeSnapshotWriter {
    fn append(&mut self, lines: &[SnapshotLine]) -> Result<(), StoreError> {
        self.lines.extend_from_slice(lines);
        Ok(())
    }

    async fn finish(self) -> Result<String, StoreError> {
        self.script.check("finish")?;
        lock(&self.store).insert(self.name.clone(), self.lines);
        Ok(self.name)
    }
}

impl SnapshotStore for FakeSnapshotStore {
    type Writer = FakeSnapshotWriter;

    fn snapshot_writer(&self, key: &SnapshotKey) -> FakeSnapshotWriter {
        FakeSnapshotWriter {
            // The S3 store's keys.
            name: format!(
                "snapshots/{}/{}/{:05}.jsonl.gz",
                key.date, key.run_id, key.slice
            ),
            lines: Vec::new(),
            store: Arc::clone(&self.snapshots),
            script: Arc::clone(&self.script),
        }
    }

    async fn put_quarantine(
        &self,
        key: &SnapshotKey,
        records: &[Rejected],
    ) -> Result<String, StoreError> {
        self.script.check("put_quarantine")?;
        let name = format!("quarantine/{}/{:05}.jsonl", key.run_id, key.slice);
        lock(&self.quarantine).insert(name.clone(), records.to_vec());
        Ok(name)
    }

    async fn erase_lead(&self, id: &LeadId) -> Result<crate::ports::SnapshotsErased, StoreError> {
        self.script.check("erase_lead")?;
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
        self.script.check("put_dashboard")?;
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
