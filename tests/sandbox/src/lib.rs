//! A HubSpot-compatible CRM sandbox: an axum server on 127.0.0.1 serving deterministic
//! synthetic contacts and companies, speaking the CRM v3 API shapes leadsync uses (see
//! `../shared/APIS.md`). Tests, the demo and `leadsync sandbox` run it; nothing here talks to
//! the internet.
//!
//! # Layout
//! - [`data`]: the synthetic records, the same for the same seed.
//! - [`search`]: the search endpoint's filtering, sorting and paging.
//! - [`limits`]: rate limits with HubSpot's headers and 429 bodies; fault injection.
//! - [`server`]: routes, bearer auth, batch read/update, admin endpoints, start/stop.
//!
//! # What it does not do yet
//! Deals and associations v4.

pub mod data;
pub mod enrich;
pub mod limits;
pub mod properties;
pub mod search;
pub mod server;

pub use data::{DataSpec, Record};
pub use limits::{Faults, LimitStats, Limits};
pub use server::{ALL_SCOPES, Sandbox, SandboxConfig, SandboxError};
