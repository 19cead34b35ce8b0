//! Deployment wiring shared by every function and the CLI: what a cold start does.
//!
//! # Layout
//! - [`config`]: `Config::from_env`, every key validated at cold start; errors name the key.
//! - [`outcome`]: what run-starting functions answer; error chains for Lambda diagnostics.
//! - [`secrets`]: a secret's value from env (local) or Secrets Manager (deployed).
//! - [`deps`]: the adapters, built once; the criteria (active, or the version a slice was
//!   planned with), reloaded only when the published version changes.
//! - [`nightly`]: the nightly job (event → run), shared by `nightly-sync` and `leadsync sync`.
//! - [`watched`]: a CRM adapter counted for a progress bar, or with its writes held back for a
//!   dry run (`leadsync sync --dry-run`).
//!
//! Must not: hold business rules (those live in `leadsync-pipeline` and `leadsync-domain`).

pub mod config;
pub mod crm;
pub mod deps;
pub mod nightly;
pub mod outcome;
pub mod rescore;
pub mod rollups_api;
pub mod secrets;
pub mod slice;
pub mod watched;

pub use config::{Config, ConfigError, CrmKind, SecretSource};
pub use crm::AnyCrm;
pub use deps::{BUNDLED_CRITERIA, Deps, DepsError};
pub use leadsync_store::sdk_config;

/// The runtime every function runs on: one thread. At the functions' 512 MB a Lambda has under
/// a third of one vCPU (a whole one only from 1,769 MB), so a second worker could never run
/// beside the first; it would only add wakeups, work stealing and hand-offs between threads to
/// every answer read. The pull bench's `pull-child` runs on it too, so it measures what a
/// function spends.
///
/// # Errors
/// The runtime's I/O driver cannot be set up.
pub fn function_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// A fresh pseudonym for a person being erased (`erased-<16 hex>`): random, so nothing links it
/// back to them.
pub fn pseudonym() -> leadsync_domain::LeadId {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    leadsync_domain::LeadId::new(format!("erased-{}", &hex[..16]))
        .unwrap_or_else(|_| unreachable!("erased-<hex> is a valid id"))
}
pub use outcome::{RunOutcome, chain};
