//! The keys of the single table (see ARCHITECTURE.md): one function per item type.

use leadsync_domain::{LeadId, Stage};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// GSI for queries by period (transitions by month).
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// TTL attribute (epoch seconds), used by caches.
pub const TTL: &str = "expires_at";

pub const STATE_SK: &str = "STATE";

pub fn lead_pk(crm: &str, id: &LeadId) -> String {
    format!("LEAD#{crm}#{id}")
}

pub fn transition_sk(stage: Stage, criteria_version: &str) -> String {
    format!("T#{stage}#{criteria_version}")
}

/// Facts (transitions and milestones) of a month are found under `FACTS#<yyyy-mm>` in the GSI.
pub fn facts_period_pk(period: &str) -> String {
    format!("FACTS#{period}")
}

/// Lead states whose stage or band time alone changes in the month of `day` (the
/// `rescore_at` index; sort key `<rescore_at>#<lead id>`).
pub fn due_pk(crm: &str, day: chrono::NaiveDate) -> String {
    format!("DUE#{crm}#{}", day.format("%Y-%m"))
}

/// A milestone fact under its lead: `M#<outcome>#<reference>`.
pub fn milestone_sk(outcome: &str, reference: &str) -> String {
    format!("M#{outcome}#{reference}")
}

/// Merged and deleted leads, one item each (`sk` = the lead id): one Query reads them all.
pub fn links_pk(crm: &str) -> String {
    format!("LINKS#{crm}")
}

/// Every rollup row of a month lives in one partition: one Query reads a period.
pub fn rollup_pk(period: &str) -> String {
    format!("ROLLUP#{period}")
}

/// Closed periods, one item each (`sk` = the period): one Query lists them.
pub const PERIODS_PK: &str = "PERIODS";
/// Incentive plans by criteria version (`sk` = the version).
pub const PLANS_PK: &str = "PLANS";
/// The attribute that marks a rollup row of a closed period; writes are conditional on its absence.
pub const FROZEN: &str = "frozen";

pub fn watermark_pk(source: &str) -> String {
    format!("SOURCE#{source}")
}

pub const WATERMARK_SK: &str = "WATERMARK";

pub fn run_pk(run_id: &str) -> String {
    format!("RUN#{run_id}")
}

pub fn slice_sk(slice: u32) -> String {
    format!("SLICE#{slice:05}")
}

/// The sync lease: one item, one writer at a time.
pub const LEASE_PK: &str = "LOCK#sync";
pub const LEASE_SK: &str = "LOCK";
