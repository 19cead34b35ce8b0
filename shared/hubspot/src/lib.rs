//! The HubSpot adapter: implements the domain's [`leadsync_domain::ports::Crm`] port over
//! HubSpot's CRM v3 API with reqwest.
//!
//! # Layout
//! - [`client`]: `HubSpotCrm` — configuration and the governed, retrying transport; beside it
//!   the pull page, batch reads, push, property bootstrap and the `Crm` port, a file each.
//! - `walk`: the pull walk — lanes, cursor, and the producer that keeps searches queued.
//! - [`account`]: the token's scopes, the account's limits, the requests made (`doctor`).
//! - [`object`]: one HubSpot object as read from a response (properties in one buffer).
//! - [`mapping`]: HubSpot records → domain `Lead`s; what cannot be mapped is `Rejected` with
//!   the field and the reason.
//!
//! # Contract highlights
//! - Pull: `lastmodifieddate >= since`, sorted by `hs_object_id` ascending, each page asking
//!   for `hs_object_id > last id` (keyset paging): no record is skipped or repeated within a
//!   walk however many changed, share a timestamp, or start matching mid-walk, and the search's
//!   10,000-result ceiling is never reached. Company data comes from `associatedcompanyid` via
//!   `companies/batch/read`.
//!   A walk's searches come from a producer that keeps every lane's next search queued, and
//!   the next page is read in the background while the caller works on this one; batch reads
//!   and pushes go out up to 4 at a time, each under the governor.
//! - Push: `contacts/batch/update` in batches of at most 100; 207 errors are mapped back to
//!   their rows by `context.ids`.
//! - Rate: a [`RateGovernor`] keeps every request under the app's limits (rolling
//!   window, search per second) and pauses when HubSpot's headers say the window is spent.
//! - Retries: 429 (honouring `Retry-After`; a daily 429 is final), 408, 5xx except 501,
//!   timeouts, connection errors and bodies cut short, on the one jittered exponential policy
//!   of `leadsync-retry` (a cut-short body spends the same budget as the send); never other 4xx.
//!
//! The token is a `secrecy::SecretString` and is never logged; neither is any email address.

pub mod account;
pub mod client;
pub mod mapping;
pub mod object;
mod walk;

#[cfg(test)]
mod hostile_tests;

pub use account::{REQUIRED_SCOPES, TokenInfo, Usage};
pub use client::{HubSpotConfig, HubSpotCrm};
pub use leadsync_ratelimit::{RateGovernor, RateLimits};
pub use leadsync_retry::Policy as RetryPolicy;
