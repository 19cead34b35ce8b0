//! The nightly-sync function: the scheduled entry point of leadsync.
//!
//! EventBridge Scheduler invokes it once a night; it runs [`leadsync_pipeline::sync`] over
//! every contact changed since the watermark and returns the run report.
//!
//! # Layout
//! - [`config`]: `Config::from_env`, every key validated at cold start.
//! - [`deps`]: the adapters, built once per cold start.
//! - [`handler`]: event → typed input → pipeline → report.
//!
//! # Not yet
//! Fan-out to SQS slices, the run lease and Secrets Manager come with the functions issue; the
//! CRM token is read from `CRM_TOKEN` until then.

pub mod config;
pub mod deps;
pub mod handler;

pub use config::{Config, ConfigError};
pub use deps::Deps;
pub use handler::{HandlerError, NightlyEvent, handle};
