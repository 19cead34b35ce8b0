//! Deployment wiring shared by every function and the CLI: what a cold start does.
//!
//! # Layout
//! - [`config`]: `Config::from_env`, every key validated at cold start; errors name the key.
//! - [`outcome`]: what run-starting functions answer; error chains for Lambda diagnostics.
//! - [`secrets`]: a secret's value from env (local) or Secrets Manager (deployed).
//! - [`deps`]: the adapters, built once; the criteria (active, or the version a slice was
//!   planned with), reloaded only when the published version changes.
//!
//! Must not: hold business rules (those live in `leadsync-pipeline` and `leadsync-domain`).

pub mod config;
pub mod crm;
pub mod deps;
pub mod outcome;
pub mod secrets;

pub use config::{Config, ConfigError, CrmKind, SecretSource};
pub use crm::AnyCrm;
pub use deps::{BUNDLED_CRITERIA, Deps, DepsError};
pub use leadsync_store::sdk_config;
pub use outcome::{RunOutcome, chain};
