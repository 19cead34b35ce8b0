//! A Salesforce-compatible org sandbox: an axum server on 127.0.0.1 serving the same seeded
//! people as the HubSpot sandbox (same seed → the same people, companies and deals) as a
//! Salesforce org holds them ([`world`]), over the REST API surface leadsync's adapter and
//! third-party clients use. It follows **API v63.0** (Spring '25) behaviour, as collected in
//! `../shared/SALESFORCE.md`, and answers v31.0–v63.0 alike.
//!
//! # What it serves
//! - `POST /services/oauth2/token`: the client-credentials flow (id and secret in the form,
//!   or as HTTP Basic as simple-salesforce sends them) and the JWT bearer flow (an RS256
//!   assertion verified against the connected app's certificate key, `iss` the consumer key,
//!   `aud` a login URL, `sub` the pre-authorized user, `exp` not passed; the test-only key pair
//!   is in `keys/`) → `access_token`, `instance_url`, `token_type`, `issued_at`, `signature`;
//!   `invalid_client_id` / `invalid_client` / `invalid_grant` (`invalid assertion`,
//!   `audience is invalid`, `user hasn't approved this consumer`, `expired authorization
//!   code`) / `unsupported_grant_type` bodies. Expired or unknown sessions get 401
//!   `INVALID_SESSION_ID` with `WWW-Authenticate: Token`.
//! - `GET /services/data/vNN.0/query?q=` and `queryAll` over the SOQL subset of [`soql`]
//!   (parent fields such as `Account.Industry`, `AND`/`OR`/`NOT`, comparisons on ids,
//!   datetimes, dates, numbers and text, `IN`, `LIKE`, `ORDER BY`, `LIMIT`, `OFFSET` ≤ 2,000,
//!   `COUNT()`), `totalSize`, `done`, `nextRecordsUrl`, `records[].attributes`,
//!   `Sforce-Query-Options: batchSize=` (200–2,000); `MALFORMED_QUERY`, `INVALID_FIELD`,
//!   `INVALID_TYPE` bodies. `queryAll` includes deleted and merged records (`IsDeleted`,
//!   `MasterRecordId`).
//! - `PATCH /services/data/vNN.0/composite/sobjects`: ≤ 200 records, answered per record in
//!   request order (`success`, `errors[{statusCode, message, fields}]`), `UNABLE_TO_LOCK_ROW`
//!   injected at a configured rate.
//! - `GET /services/data/vNN.0/sobjects/<Type>/describe`: the fields the integration user can
//!   see (hidden ones are absent, as in a real org).
//! - `POST /services/data/vNN.0/tooling/sobjects/CustomField`: custom fields on any object
//!   (visible at once: field-level security is not modelled).
//! - Bulk API 2.0 query jobs ([`bulk`]): create, poll, CSV results by `Sforce-Locator` and
//!   `maxRecords`, delete.
//! - Limits: the daily allocation with `Sforce-Limit-Info: api-usage=N/M` on every answer and
//!   403 `REQUEST_LIMIT_EXCEEDED` once spent; the concurrent long-running request limit (25
//!   requests over 20 s by default, `ConcurrentPerOrgLongTxn Limit exceeded.`); `GET /limits`.
//!   Faults shared with the HubSpot sandbox ([`leadsync_sandbox::Faults`]: latency, 5xx,
//!   cut-short bodies).
//! - In-process admin for tests: edits, deletes, merges, conversions, new records, hidden
//!   fields, session expiry, counters.
//!
//! # Not yet
//! `/sobjects/<Type>/updated` and `/deleted`, parent-to-child subqueries, Bulk API 2.0
//! ingest jobs (leadsync writes through collections), field-level security per profile (a
//! hidden field is hidden from every client).

pub mod bulk;
pub mod ids;
pub mod server;
pub mod soql;
pub mod world;

pub use server::{Counters, SalesforceConfig, SalesforceSandbox};
