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

/// When a scripted fault strikes, counting the calls of one operation (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The n-th call fails (once).
    Nth(u64),
    /// Every call after the first n fails.
    After(u64),
}

/// Faults scripted per operation, by the port method's name (`"push"`, `"pull_page"`,
/// `"save_states"`, `"finish"`, …): fail the n-th push, fail after n pulls, fail a snapshot's
/// upload — without a delegating wrapper in the test.
#[derive(Debug)]
pub struct Script<E> {
    calls: Mutex<HashMap<&'static str, u64>>,
    rules: Mutex<Vec<(&'static str, When, E)>>,
}

impl<E> Default for Script<E> {
    fn default() -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
            rules: Mutex::new(Vec::new()),
        }
    }
}

impl<E: Clone> Script<E> {
    /// Fail `operation` with `error` `when` its calls reach that count.
    pub fn fail(&self, operation: &'static str, when: When, error: E) {
        lock(&self.rules).push((operation, when, error));
    }

    /// Count a call of `operation`; its scripted fault, if this call is one.
    fn check(&self, operation: &'static str) -> Result<(), E> {
        let n = {
            let mut calls = lock(&self.calls);
            let n = calls.entry(operation).or_default();
            *n += 1;
            *n
        };
        lock(&self.rules)
            .iter()
            .find(|(op, when, _)| {
                *op == operation
                    && match *when {
                        When::Nth(k) => n == k,
                        When::After(k) => n > k,
                    }
            })
            .map_or(Ok(()), |(_, _, e)| Err(e.clone()))
    }

    /// How many times `operation` was called.
    pub fn calls(&self, operation: &str) -> u64 {
        lock(&self.calls).get(operation).copied().unwrap_or(0)
    }
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
