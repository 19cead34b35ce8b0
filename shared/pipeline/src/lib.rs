//! The use cases of leadsync, generic over the domain's ports: [`sync::sync`] pulls changed
//! leads, enriches, scores, records transitions, pushes changed results back and writes the
//! snapshot and run report, then recomputes the rollups of the periods it touched;
//! [`rollups`] recomputes, closes and exports periods; [`dashboard`] renders and publishes a
//! period's page; [`erase`] erases a person on request; [`runs`] takes the lease, plans slices
//! ([`plan`]), runs them inline or through a queue, and finishes the run after the last one.
//!
//! Must not: know which CRM, store or provider it talks to (only the ports), read the clock
//! (`now` is an input), or lose a record (each pulled record is scored and recorded or
//! quarantined with its reason).

pub mod dashboard;
pub mod enrich;
pub mod erase;
pub mod parquet_export;
pub mod plan;
pub mod rollups;
pub mod runs;
pub mod sync;

pub use runs::{
    DeferredDone, RescoreTarget, RunOptions, SliceDone, Started, defer_delay, run_deferred,
    run_slice, start_run,
};
pub use sync::{SyncDeps, SyncError, SyncInput, sync, system_clock};
