//! The pure domain of leadsync: what a lead is, how the shared criteria score it, which stage
//! transitions that produces, and the ports through which the outside world is reached.
//!
//! # Layout
//! - [`lead`]: `Lead`, `Company` data, `Firmographics` with per-field provenance.
//! - [`stage`]: the funnel stages (IQL → MQL → SQL, disqualified).
//! - [`criteria`]: the criteria document both teams sign — parsed, validated, compiled once,
//!   evaluated per lead into a [`criteria::Scorecard`] with the complete list of reasons.
//! - [`transition`]: the stored state of a lead and the append-only stage transitions.
//! - [`facts`]: stage transitions and sales milestones, the append-only source of rollups.
//! - [`incentives`]: the shared incentive plan (in the criteria document).
//! - [`rollup`]: KPI and incentive rollups, statements, corrections, control totals.
//! - [`funnel`]: the funnel reality check (cohorts per step, losses and reasons, sensitivity).
//! - [`ports`]: the traits adapters implement (CRM, firmographic provider, lead store, snapshot
//!   store), each with its contract; [`fakes`] (feature `fakes`) has in-memory versions.
//!
//! # What this crate must not do
//! No I/O, no clock, no environment, no async runtime: `now` and configuration are arguments.
//! The same input and criteria version always give the same output.

pub mod criteria;
pub mod domain_name;
pub mod facts;
pub mod funnel;
pub mod hash;
pub mod incentives;
pub mod lead;
pub mod news;
pub mod ports;
pub mod rfc3339;
pub mod rollup;
pub mod runs;
pub mod sign_off;
pub mod simulate;
pub mod stage;
pub mod transition;

#[cfg(feature = "fakes")]
pub mod fakes;
#[cfg(any(test, feature = "fakes"))]
pub mod hostile;

pub use criteria::{Criteria, CriteriaError, Reason, ReasonOutcome, Score, Scorecard};
pub use lead::{
    Bant, Deal, Engagement, Firmographics, Lead, LeadId, LeadIdError, Provenance, Sourced,
};
pub use stage::Stage;
pub use transition::{LeadState, Transition};
