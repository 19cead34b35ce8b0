//! The ports: what the use cases need from the outside world, as traits with contracts.
//!
//! Only domain types cross a port. Adapters (`leadsync-hubspot`, `leadsync-store`,
//! `leadsync-enrich`) implement them for real services; [`crate::fakes`] implements them in
//! memory. Every error type says which of its variants are worth retrying.
//!
//! leadsync is at-least-once end to end: any call here may be repeated after a crash, so every
//! write a port offers is idempotent.
//!
//! A file per port, all re-exported here: `crm`, `enrich` (provider, cache), `store` (lead
//! store and the store error), `snapshots`, `rollups`, `events`, `runs` (run store, slice
//! queue).

use crate::criteria::{CrmObject, CrmProperty, CrmReads, Scorecard};
pub use crate::criteria::{PropertyKind, PropertySpec};
use crate::lead::{Firmographics, Lead, LeadId};
use crate::news::LeadEvent;
pub use crate::runs::RunReport;
use crate::runs::{
    Census, Lease, PullScope, RunPlan, RunProgress, ScopeKey, SliceResult, SliceSpec,
};
use crate::transition::{LeadState, Transition};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;

mod crm;
mod enrich;
mod events;
mod rollups;
mod runs;
mod snapshots;
mod store;

pub use crm::*;
pub use enrich::*;
pub use events::*;
pub use rollups::*;
pub use runs::*;
pub use snapshots::*;
pub use store::*;
