//! Facts: the append-only record rollups are computed from — stage transitions, and the sales
//! milestones the shared incentive plan credits (accepted, rejected, opportunity, won).
//!
//! Every fact has an idempotent key (`key()`): recording one twice is a no-op, so the first
//! observation wins and re-runs add nothing. Rollups are a pure function of the facts.

use crate::incentives::{IncentivePlan, Outcome};
use crate::lead::{Lead, LeadId};
use crate::transition::{LeadState, Transition};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A sales milestone of a lead, observed by a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MilestoneFact {
    pub lead_id: LeadId,
    /// `SalesAccepted`, `SalesRejected`, `Opportunity` or `Won` (never `Sql`, a stage fact).
    pub outcome: Outcome,
    /// What makes it unique for the lead: the deal id for deals, `status` for sales verdicts.
    pub reference: String,
    pub observed_at: DateTime<Utc>,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Deal amount in cents (`Won`, `Opportunity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    /// The rejection reason sales gave (`SalesRejected`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Criteria version, band and matched rule codes of the lead when observed.
    pub criteria_version: String,
    #[serde(default)]
    pub band: String,
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// One fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    Stage(Transition),
    Milestone(MilestoneFact),
}

impl Fact {
    /// The idempotent key, unique across all facts: `<lead>|T#<stage>#<version>` or
    /// `<lead>|M#<outcome>#<reference>`.
    pub fn key(&self) -> String {
        match self {
            Fact::Stage(t) => format!("{}|T#{}#{}", t.lead_id, t.to, t.criteria_version),
            Fact::Milestone(m) => format!("{}|M#{}#{}", m.lead_id, m.outcome, m.reference),
        }
    }

    pub fn lead_id(&self) -> &LeadId {
        match self {
            Fact::Stage(t) => &t.lead_id,
            Fact::Milestone(m) => &m.lead_id,
        }
    }

    pub fn observed_at(&self) -> DateTime<Utc> {
        match self {
            Fact::Stage(t) => t.observed_at,
            Fact::Milestone(m) => m.observed_at,
        }
    }

    /// The month the fact belongs to, `YYYY-MM`.
    pub fn period(&self) -> String {
        period_of(self.observed_at())
    }

    pub fn criteria_version(&self) -> &str {
        match self {
            Fact::Stage(t) => &t.criteria_version,
            Fact::Milestone(m) => &m.criteria_version,
        }
    }

    pub fn owner_id(&self) -> Option<&str> {
        match self {
            Fact::Stage(t) => t.owner_id.as_deref(),
            Fact::Milestone(m) => m.owner_id.as_deref(),
        }
    }

    pub fn source(&self) -> Option<&str> {
        match self {
            Fact::Stage(t) => t.source.as_deref(),
            Fact::Milestone(m) => m.source.as_deref(),
        }
    }

    pub fn band(&self) -> &str {
        match self {
            Fact::Stage(t) => &t.band,
            Fact::Milestone(m) => &m.band,
        }
    }

    /// The funnel step this fact records: a stage (`mql`, …) or a milestone (`won`, …).
    pub fn step(&self) -> &'static str {
        match self {
            Fact::Stage(t) => t.to.as_str(),
            Fact::Milestone(m) => m.outcome.as_str(),
        }
    }
}

/// `YYYY-MM` of an instant.
pub fn period_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m").to_string()
}

/// Is `period` a month written `YYYY-MM`?
pub fn is_period(period: &str) -> bool {
    chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").is_ok()
        && period.len() == 7
}

/// The month before `period` (`2026-01` → `2025-12`); `None` if `period` is not `YYYY-MM`.
pub fn previous_period(period: &str) -> Option<String> {
    let first = chrono::NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").ok()?;
    let last_of_previous = first.pred_opt()?;
    Some(last_of_previous.format("%Y-%m").to_string())
}

/// The milestones a lead shows now, under the plan: a sales verdict (its status is an accepted
/// or rejected one), one opportunity per deal, one win per closed-won deal. Recording them is
/// idempotent, so the first run that sees a milestone dates it.
pub fn milestones_of(
    lead: &Lead,
    state: &LeadState,
    plan: &IncentivePlan,
    now: DateTime<Utc>,
    run_id: &str,
) -> Vec<MilestoneFact> {
    let fact = |outcome, reference: String, amount_cents, reason| MilestoneFact {
        lead_id: lead.id.clone(),
        outcome,
        reference,
        observed_at: now,
        run_id: run_id.to_owned(),
        owner_id: lead.owner_id.clone(),
        source: lead.source.clone(),
        amount_cents,
        reason,
        criteria_version: state.criteria_version.clone(),
        band: state.band.clone(),
        reasons: state.reasons.clone(),
    };
    let mut out = Vec::new();
    if let Some(status) = lead.lead_status.as_deref() {
        if plan.accepts(status) {
            out.push(fact(Outcome::SalesAccepted, "status".into(), None, None));
        } else if plan.rejects(status) {
            let reason = lead
                .rejection_reason
                .as_deref()
                .map(|r| r.trim().to_uppercase())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "UNSPECIFIED".to_owned());
            out.push(fact(
                Outcome::SalesRejected,
                "status".into(),
                None,
                Some(reason),
            ));
        }
    }
    for deal in &lead.deals {
        out.push(fact(
            Outcome::Opportunity,
            deal.id.clone(),
            deal.amount_cents,
            None,
        ));
        if deal.is_closed_won() {
            out.push(fact(Outcome::Won, deal.id.clone(), deal.amount_cents, None));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(previous_period("2026-01").as_deref(), Some("2025-12"));
        assert_eq!(previous_period("2026-11").as_deref(), Some("2026-10"));
        assert!(previous_period("2026-13").is_none());
        assert!(is_period("2026-11") && !is_period("2026-1") && !is_period("nov"));
    }
}
