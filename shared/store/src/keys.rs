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

/// Transitions of a month are found under `TRANSITIONS#<yyyy-mm>` in the GSI.
pub fn transition_period_pk(period: &str) -> String {
    format!("TRANSITIONS#{period}")
}

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
