//! Firmographic providers — the adapters of the domain's `FirmographicProvider` port: an HTTP
//! provider, a dataset file, and a cache in front of either.
//!
//! # Layout
//! - [`pdl`]: the People Data Labs–shaped HTTP provider (rate limit kept, bounded retries,
//!   billing reported per answer).
//! - [`dataset`]: a JSONL/CSV firmographic file (from S3) indexed by domain; free.
//! - [`cache`]: [`Cached`], any provider behind a [`FirmographicCache`](leadsync_domain::ports::FirmographicCache)
//!   (DynamoDB in production) with a TTL and a shorter negative TTL.
//!
//! The use case over these — dedupe, waterfall, budget, the cost ledger — is
//! `leadsync_pipeline::enrich`; a deployment with no provider uses [`NoProvider`] and keeps
//! the firmographics of the CRM company record.
//!
//! Must not: log an email address or an API key.

pub mod cache;
pub mod dataset;
pub mod pdl;

#[cfg(test)]
mod hostile_tests;

pub use cache::Cached;
pub use dataset::{BadRow, DatasetProvider};
pub use leadsync_domain::domain_name::{self, DomainError, FREE_MAIL, registrable_domain};
pub use leadsync_domain::ports::NoProvider;
pub use pdl::{PDL_FREE, PDL_PAID, PDL_RETRY, PdlConfig, PdlProvider};
