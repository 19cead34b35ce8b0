//! Facts: the append-only record rollups are computed from — stage transitions, and the sales
//! milestones the shared incentive plan credits (accepted, rejected, opportunity, won).
//!
//! Every fact has an idempotent key (`key()`): recording one twice is a no-op, so the first
//! observation wins and re-runs add nothing. Rollups are a pure function of the facts.
//!
//! Two times per fact: `observed_at`, when leadsync recorded it, and `occurred_at`, when it
//! happened by the CRM's own clock — a deal's create and close dates, the contact's
//! `lastmodifieddate` in the pull that first shows a sales verdict (HubSpot's search carries no
//! status-change time; the last modification is the latest the change can have been), and for
//! a stage the time its inputs last changed. A fact belongs to the month it *occurred* in, so the
//! first deployment spreads the CRM's history over the months it happened in instead of
//! crediting all of it to the month of the first run.

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
    /// When it happened by the CRM's clock (see the module docs); `None` in facts recorded
    /// before leadsync kept it: then `observed_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    pub run_id: String,
    /// Who sales credits: the deal's owner for deal outcomes (the contact's when the deal has
    /// none), the contact's owner for sales verdicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Deal amount in cents of `currency` (`Won`, `Opportunity`, `Lost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    /// The deal's currency (ISO 4217); `None`: the plan's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The rejection reason sales gave (`SalesRejected`), or why a deal was lost (`Lost`).
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

    /// When the fact happened by the CRM's clock (`observed_at` for facts without it).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Fact::Stage(t) => t.occurred_at.unwrap_or(t.observed_at),
            Fact::Milestone(m) => m.occurred_at.unwrap_or(m.observed_at),
        }
    }

    /// The month the fact belongs to, `YYYY-MM`: the month it occurred in.
    pub fn period(&self) -> String {
        period_of(self.occurred_at())
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

    /// The same fact with `pseudonym` in place of the lead's id: what is kept of a person
    /// erased on request (GDPR Art. 17) so the periods' counts and credits stay whole while
    /// nothing links them back to the person. The key changes with the id.
    #[must_use]
    pub fn anonymised(&self, pseudonym: &LeadId) -> Fact {
        let mut fact = self.clone();
        match &mut fact {
            Fact::Stage(t) => t.lead_id = pseudonym.clone(),
            Fact::Milestone(m) => m.lead_id = pseudonym.clone(),
        }
        fact
    }

    /// The funnel step this fact records: a stage (`mql`, …) or a milestone (`won`, …).
    pub fn step(&self) -> &'static str {
        match self {
            Fact::Stage(t) => t.to.as_str(),
            Fact::Milestone(m) => m.outcome.as_str(),
        }
    }
}

/// What happened to a contact the CRM no longer has as itself: merged into another (whose
/// facts it joins, each counted once), or deleted (its facts stop counting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LeadLink {
    /// Merged into `into` (the winner carries this id in `hs_merged_object_ids`).
    Merged {
        into: LeadId,
        seen_at: DateTime<Utc>,
    },
    /// Deleted (archived) in the CRM at `at`.
    Deleted { at: DateTime<Utc> },
}

/// Every linked lead: merged-away and deleted contacts, by id.
pub type LeadLinks = std::collections::BTreeMap<LeadId, LeadLink>;

/// Who a lead's facts count for now: the winner it was merged into (following chains), or
/// `None` when it was deleted. A merge wins over a deletion: a merged-away contact is archived
/// in the CRM too, and its history lives on in the winner.
pub fn counted_as<'a>(links: &'a LeadLinks, lead: &'a LeadId) -> Option<&'a LeadId> {
    let mut current = lead;
    for _ in 0..16 {
        match links.get(current) {
            None => return Some(current),
            Some(LeadLink::Merged { into, .. }) => current = into,
            Some(LeadLink::Deleted { .. }) => return None,
        }
    }
    Some(current)
}

/// A fact as it counts now: re-keyed to the lead it was merged into, or `None` when its lead
/// was deleted. Facts of other leads come back unchanged.
pub fn as_counted(links: &LeadLinks, fact: &Fact) -> Option<Fact> {
    if links.is_empty() {
        return Some(fact.clone());
    }
    let into = counted_as(links, fact.lead_id())?.clone();
    let mut f = fact.clone();
    match &mut f {
        Fact::Stage(t) => t.lead_id = into,
        Fact::Milestone(m) => m.lead_id = into,
    }
    Some(f)
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
/// or rejected one), one opportunity per deal, one win per deal the CRM flags closed-won, one
/// loss per deal it flags closed and not won. Recording them is idempotent, so the first run
/// that sees a milestone records it — dated by the CRM (see the module docs), never later
/// than `now`.
pub fn milestones_of(
    lead: &Lead,
    state: &LeadState,
    plan: &IncentivePlan,
    now: DateTime<Utc>,
    run_id: &str,
) -> Vec<MilestoneFact> {
    let seen = lead.modified_at.min(now);
    let fact = |outcome, reference: String, occurred: DateTime<Utc>, owner: Option<&String>| {
        MilestoneFact {
            lead_id: lead.id.clone(),
            outcome,
            reference,
            observed_at: now,
            occurred_at: Some(occurred.min(now)),
            run_id: run_id.to_owned(),
            owner_id: owner.or(lead.owner_id.as_ref()).cloned(),
            source: lead.source.clone(),
            amount_cents: None,
            currency: None,
            reason: None,
            criteria_version: state.criteria_version.clone(),
            band: state.band.clone(),
            reasons: state.reasons.clone(),
        }
    };
    let upper_or_unspecified = |text: Option<&str>| {
        text.map(|r| r.trim().to_uppercase().replace(' ', "_"))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "UNSPECIFIED".to_owned())
    };
    let mut out = Vec::new();
    if let Some(status) = lead.lead_status.as_deref() {
        if plan.accepts(status) {
            out.push(fact(Outcome::SalesAccepted, "status".into(), seen, None));
        } else if plan.rejects(status) {
            let mut f = fact(Outcome::SalesRejected, "status".into(), seen, None);
            f.reason = Some(upper_or_unspecified(lead.rejection_reason.as_deref()));
            out.push(f);
        }
    }
    for deal in &lead.deals {
        let owner = deal.owner_id.as_ref();
        let with_amount = |mut f: MilestoneFact| {
            f.amount_cents = deal.amount_cents;
            f.currency.clone_from(&deal.currency);
            f
        };
        let opened = deal.created_at.unwrap_or(seen);
        out.push(with_amount(fact(
            Outcome::Opportunity,
            deal.id.clone(),
            opened,
            owner,
        )));
        let closed = deal.close_date.unwrap_or(seen).max(opened);
        if deal.is_closed_won() {
            out.push(with_amount(fact(
                Outcome::Won,
                deal.id.clone(),
                closed,
                owner,
            )));
        } else if deal.is_closed_lost() {
            let mut f = with_amount(fact(Outcome::Lost, deal.id.clone(), closed, owner));
            f.reason = Some(upper_or_unspecified(deal.lost_reason.as_deref()));
            out.push(f);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead::Deal;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn plan() -> IncentivePlan {
        let doc: crate::incentives::IncentivesDoc =
            toml::from_str("accepted_statuses = [\"IN_PROGRESS\"]\n[credits.won]\nsales_bps = 500")
                .unwrap();
        IncentivePlan::from_doc(doc).unwrap()
    }

    fn state(lead: &Lead) -> LeadState {
        LeadState {
            lead_id: lead.id.clone(),
            stage: crate::Stage::Sql,
            fit: 40,
            engagement: 40,
            total: 80,
            band: "A".into(),
            reasons: vec!["FIT".into()],
            criteria_version: "v1".into(),
            input_hash: "h".into(),
            pushed_hash: None,
            owner_id: lead.owner_id.clone(),
            updated_at: at("2026-12-02T03:00:00Z"),
            run_id: "first".into(),
            stage_since: None,
            rescore_at: None,
            announced: Vec::new(),
        }
    }

    #[test]
    fn milestones_are_dated_by_the_crm_won_by_its_flag_and_owned_by_the_deal_owner() {
        // The first deployment, on December 2nd, of a lead whose deal on a custom pipeline
        // (numeric stage ids) opened in September and closed won in October, in EUR, owned by
        // another rep than the contact's.
        let mut lead = Lead::new(LeadId::new("7").unwrap(), at("2026-11-19T12:00:00Z"));
        lead.owner_id = Some("contact-owner".into());
        lead.lead_status = Some("IN_PROGRESS".into());
        lead.deals.push(Deal {
            id: "d1".into(),
            stage: Some("81234507".into()),
            pipeline: Some("81234500".into()),
            amount_cents: Some(1_000_000),
            currency: Some("EUR".into()),
            closed_won: Some(true),
            closed: Some(true),
            created_at: Some(at("2026-09-03T10:00:00Z")),
            close_date: Some(at("2026-10-10T10:00:00Z")),
            owner_id: Some("deal-owner".into()),
            ..Deal::default()
        });
        let now = at("2026-12-02T03:00:00Z");
        let facts = milestones_of(&lead, &state(&lead), &plan(), now, "first");
        let of = |o: Outcome| {
            facts
                .iter()
                .find(|m| m.outcome == o)
                .unwrap_or_else(|| panic!("{o}"))
        };
        let won = of(Outcome::Won);
        assert_eq!(
            Fact::Milestone(won.clone()).period(),
            "2026-10",
            "when it closed"
        );
        assert_eq!(won.owner_id.as_deref(), Some("deal-owner"));
        assert_eq!(won.currency.as_deref(), Some("EUR"));
        assert_eq!(
            Fact::Milestone(of(Outcome::Opportunity).clone()).period(),
            "2026-09"
        );
        let accepted = of(Outcome::SalesAccepted);
        assert_eq!(accepted.occurred_at, Some(lead.modified_at));
        assert_eq!(accepted.owner_id.as_deref(), Some("contact-owner"));
        assert!(facts.iter().all(|m| m.observed_at == now));
        // Closed and not won: a loss with its reason, never a win.
        lead.deals[0].closed_won = Some(false);
        lead.deals[0].lost_reason = Some("Chose a competitor".into());
        let facts = milestones_of(&lead, &state(&lead), &plan(), now, "first");
        assert!(facts.iter().all(|m| m.outcome != Outcome::Won));
        let lost = facts.iter().find(|m| m.outcome == Outcome::Lost).unwrap();
        assert_eq!(lost.reason.as_deref(), Some("CHOSE_A_COMPETITOR"));
    }

    #[test]
    fn a_restated_stage_keeps_the_time_the_lead_got_there() {
        use crate::criteria::Scorecard;
        let lead = Lead::new(LeadId::new("7").unwrap(), at("2026-10-05T12:00:00Z"));
        let mut v1 = state(&lead);
        v1.stage_since = Some(at("2026-10-05T12:00:00Z"));
        let card = Scorecard {
            stage: crate::Stage::Sql,
            fit: 40,
            engagement: 40,
            total: 80,
            band: "A".into(),
            criteria_version: "v2".into(),
            reasons: vec![],
        };
        let now = at("2026-12-05T10:00:00Z");
        let v2 = LeadState::from_scorecard(
            lead.id.clone(),
            None,
            &card,
            "h".into(),
            lead.modified_at,
            Some(&v1),
            now,
            "rescore",
        );
        let t = Transition::between(Some(&v1), &v2).expect("a new version restates");
        assert!(t.restated);
        assert_eq!(
            Fact::Stage(t).period(),
            "2026-10",
            "not the month of the re-score"
        );
    }

    #[test]
    fn periods() {
        assert_eq!(previous_period("2026-01").as_deref(), Some("2025-12"));
        assert_eq!(previous_period("2026-11").as_deref(), Some("2026-10"));
        assert!(previous_period("2026-13").is_none());
        assert!(is_period("2026-11") && !is_period("2026-1") && !is_period("nov"));
    }
}
