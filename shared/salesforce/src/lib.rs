//! The Salesforce adapter: implements the domain's [`leadsync_domain::ports::Crm`] port over
//! one org's REST API (v63.0) with reqwest.
//!
//! # Layout
//! - [`client`]: the transport — OAuth session (client credentials or JWT bearer) renewed once on
//!   `INVALID_SESSION_ID`, retries (5xx, timeouts, cut-short bodies), the governor that keeps
//!   the run inside its share of the org's daily allocation (read from `Sforce-Limit-Info`),
//!   SOQL queries followed through `nextRecordsUrl`.
//! - [`keys`]: record Ids as scope keys — ordered, split arithmetically in base 62.
//! - [`mapping`]: Lead / Contact / Opportunity records → domain types; the fields read.
//! - [`bulk`]: Bulk API 2.0 query jobs (create, poll, CSV results by locator) for large
//!   first syncs.
//! - [`crm`]: `SalesforceCrm` — the keyset pull, merges and conversions, push by collection.
//!
//! The secret and the session are `secrecy::SecretString`s and never logged; neither is any
//! email address.

pub mod bulk;
pub mod client;
pub mod crm;
pub mod keys;
pub mod mapping;

#[cfg(test)]
mod hostile_tests;

pub use client::{JwtBearer, SalesforceConfig};
pub use crm::SalesforceCrm;
pub use leadsync_retry::Policy as RetryPolicy;
