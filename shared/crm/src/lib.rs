//! The HubSpot adapter: implements the domain's [`leadsync_domain::ports::Crm`] port over
//! HubSpot's CRM v3 API with reqwest.
//!
//! # Layout
//! - [`client`]: `HubSpotCrm` — configuration, the retrying request helper, pull and push.
//! - [`mapping`]: HubSpot records → domain `Lead`s; what cannot be mapped is `Rejected` with
//!   the field and the reason.
//!
//! # Contract highlights
//! - Pull: `lastmodifieddate >= since`, sorted by `hs_object_id` ascending; before the search's
//!   10,000-result ceiling the query restarts with `hs_object_id > last id`, so no record is
//!   skipped however many changed. Company data comes from `associatedcompanyid` via
//!   `companies/batch/read`.
//! - Push: `contacts/batch/update` in batches of at most 100; 207 errors are mapped back to
//!   their rows by `context.ids`.
//! - Retries: 429 (honouring `Retry-After`), 5xx except 501, timeouts and connection errors,
//!   with a linear backoff; never other 4xx.
//!
//! The token is a `secrecy::SecretString` and is never logged; neither is any email address.

pub mod client;
pub mod mapping;

pub use client::{HubSpotConfig, HubSpotCrm};
