//! The nightly-sync function: the scheduled entry point of leadsync.
//!
//! EventBridge Scheduler invokes it once a night. It takes the lease, plans the run's slices
//! (contact-id ranges) and runs them here when the run is small, or sends them to the slice
//! queue (the `sync-slice` function) when it is not; the last slice finishes the run.
//!
//! The handler (event → typed input → `leadsync_pipeline::start_run` → outcome) is
//! [`leadsync_app::nightly::handler`], shared with the CLI; configuration, secrets and adapters
//! are `leadsync_app`'s too. This crate is the Lambda binary around them.

pub use leadsync_app::nightly::{HandlerError, NightlyEvent, handle, handle_at};
pub use leadsync_app::{Config, Deps, RunOutcome};
