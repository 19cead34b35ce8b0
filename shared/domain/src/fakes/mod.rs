//! In-memory implementations of every port, for tests of the layers above. Each can be told to
//! fail its next calls (`fail_next`) so retries and partial failures can be tested.
#![allow(clippy::expect_used)] // a poisoned test mutex is a failed test already
//!
//! One file per port; each child module reads the imports below (`use super::*`).

use crate::facts::{Fact, MilestoneFact};
use crate::lead::{Firmographics, Lead, LeadId};
use crate::ports::{
    Crm, CrmError, FirmographicProvider, LeadStore, Lookup, Origin, PropertyUpdate, ProviderError,
    PullPage, PushFailure, PushOutcome, RecordOutcome, Rejected, RunReport, SnapshotKey,
    SnapshotLine, SnapshotStore, SnapshotWriter, StoreError,
};
use crate::ports::{PeriodStatus, RollupStore, RowsWritten};
use crate::rollup::RollupRow;
use crate::runs::{
    Census, Lease, PullScope, RunPlan, RunProgress, ScopeKey, SliceResult, SliceSpec,
};
use crate::transition::{LeadState, Transition};
use chrono::Datelike as _;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("fake mutex poisoned")
}

mod crm;
mod enrich;
mod events;
mod queue;
mod snapshots;
mod store;

pub use crm::FakeCrm;
pub use enrich::{FakeFirmographicCache, FakeProvider};
pub use events::FakeEventSink;
pub use queue::FakeSliceQueue;
pub use snapshots::{FakeSnapshotStore, FakeSnapshotWriter};
pub use store::FakeLeadStore;
