//! News both teams want at once: a lead reached SQL, or sales rejected it — what leadsync
//! publishes on an event bus (EventBridge) for a team to route to Slack, e-mail or a CRM task
//! with its own rules.
//!
//! Pure: which leads are news, and what an event says (ids, owner, stage, scores, the reasons
//! a rep reads — never an email address). Each is sent once per lead per criteria version:
//! the lead's state keeps the keys of what was sent.

use crate::criteria::Scorecard;
use crate::lead::{Lead, LeadId};
use crate::stage::Stage;
use crate::transition::LeadState;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadEventKind {
    /// The lead reached SQL.
    Sql,
    /// Sales recorded why it rejected the lead.
    Rejected,
}

impl LeadEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadEventKind::Sql => "sql",
            LeadEventKind::Rejected => "rejected",
        }
    }

    /// The event's `detail-type` on the bus.
    pub fn detail_type(self) -> &'static str {
        match self {
            LeadEventKind::Sql => "leadsync.lead.sql",
            LeadEventKind::Rejected => "leadsync.lead.rejected",
        }
    }
}

/// The most reason lines an event carries (the summary's first).
pub const EVENT_REASONS: usize = 5;

/// First-seen leads are news only when the CRM changed them this recently: a first sync of a
/// portal announces this week's SQLs, not its history.
pub const FIRST_SEEN_NEWS_WINDOW: Duration = Duration::hours(48);

/// One piece of news about a lead (an event's `detail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadEvent {
    pub kind: LeadEventKind,
    pub lead_id: LeadId,
    /// `hubspot`, `salesforce`.
    pub crm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub stage: Stage,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
    pub criteria_version: String,
    /// The top lines of the lead's summary: why, in words, with points and values.
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    pub run_id: String,
    pub at: DateTime<Utc>,
}

impl LeadEvent {
    /// What [`LeadState::announced`] keeps once it is sent: `<kind>:<criteria version>`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.criteria_version)
    }
}

/// The news one scoring makes: the lead reached SQL, or sales recorded a rejection reason —
/// each unless already sent under this criteria version. News is fresh: a lead seen for the
/// first time only if the CRM changed it within [`FIRST_SEEN_NEWS_WINDOW`]; a lead already SQL
/// only if it got there within it (news the bus refused is sent by the next run); a rejection
/// only if the record changed within it. A bus switched on later does not announce history.
pub fn news(
    lead: &Lead,
    card: &Scorecard,
    previous: Option<&LeadState>,
    crm: &str,
    now: DateTime<Utc>,
    run_id: &str,
) -> Vec<LeadEvent> {
    if previous.is_none() && lead.modified_at < now - FIRST_SEEN_NEWS_WINDOW {
        return Vec::new();
    }
    let sent = |kind: LeadEventKind| {
        let key = format!("{}:{}", kind.as_str(), card.criteria_version);
        previous.is_some_and(|p| p.announced.contains(&key))
    };
    let fresh = |at: DateTime<Utc>| at >= now - FIRST_SEEN_NEWS_WINDOW;
    let rejected = lead
        .rejection_reason
        .as_deref()
        .is_some_and(|r| !r.trim().is_empty())
        && fresh(lead.modified_at);
    let newly_sql = |p: &LeadState| p.stage != Stage::Sql || p.stage_since.is_some_and(fresh);
    let mut kinds = Vec::new();
    if card.stage == Stage::Sql && previous.is_none_or(newly_sql) && !sent(LeadEventKind::Sql) {
        kinds.push(LeadEventKind::Sql);
    }
    if rejected && !sent(LeadEventKind::Rejected) {
        kinds.push(LeadEventKind::Rejected);
    }
    if kinds.is_empty() {
        return Vec::new();
    }
    let reasons: Vec<String> = card
        .summary()
        .lines()
        .take(EVENT_REASONS)
        .map(str::to_owned)
        .collect();
    kinds
        .into_iter()
        .map(|kind| LeadEvent {
            kind,
            lead_id: lead.id.clone(),
            crm: crm.to_owned(),
            owner_id: lead.owner_id.clone(),
            stage: card.stage,
            fit: card.fit,
            engagement: card.engagement,
            total: card.total,
            band: card.band.clone(),
            criteria_version: card.criteria_version.clone(),
            reasons: reasons.clone(),
            lead_status: lead.lead_status.clone(),
            rejection_reason: lead.rejection_reason.clone(),
            run_id: run_id.to_owned(),
            at: now,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::criteria::Criteria;

    const DOC: &str = include_str!("../../../infra/criteria/b2b-saas.toml");

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn sql_lead() -> Lead {
        let mut lead = Lead::new(LeadId::new("9").unwrap(), now() - Duration::hours(3));
        lead.email = Some("ana@acme.com".into());
        lead.owner_id = Some("77".into());
        let crm = crate::lead::Provenance::crm();
        lead.firmographics.industry =
            Some(crate::lead::Sourced::new("INTERNET".into(), crm.clone()));
        lead.firmographics.employees = Some(crate::lead::Sourced::new(300, crm.clone()));
        lead.firmographics.annual_revenue =
            Some(crate::lead::Sourced::new(50_000_000, crm.clone()));
        lead.firmographics.country = Some(crate::lead::Sourced::new("Germany".into(), crm));
        lead.engagement.form_submissions = 3;
        lead.engagement.last_form_submission_at = Some(now());
        lead.engagement.email_clicks = 5;
        lead.engagement.last_email_click_at = Some(now());
        lead
    }

    fn state(lead: &Lead, card: &Scorecard, previous: Option<&LeadState>) -> LeadState {
        LeadState::from_scorecard(
            lead.id.clone(),
            lead.owner_id.clone(),
            card,
            lead.input_hash(),
            lead.modified_at,
            previous,
            now(),
            "r",
        )
    }

    #[test]
    fn reaching_sql_is_news_once_per_version_and_never_names_the_address() {
        let c = Criteria::parse("c", DOC).unwrap();
        let lead = sql_lead();
        let card = c.evaluate(&lead, now());
        assert_eq!(card.stage, Stage::Sql);
        let events = news(&lead, &card, None, "hubspot", now(), "r1");
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.kind, e.owner_id.as_deref()),
            (LeadEventKind::Sql, Some("77"))
        );
        assert_eq!(e.key(), format!("sql:{}", c.version));
        assert!(!e.reasons.is_empty() && e.reasons.len() <= EVENT_REASONS);
        assert!(!serde_json::to_string(e).unwrap().contains("ana@"));

        // Sent: the state keeps it, and the next scoring says nothing again.
        let mut sent = state(&lead, &card, None);
        sent.announced.push(e.key());
        assert!(news(&lead, &card, Some(&sent), "hubspot", now(), "r2").is_empty());
        // Down to MQL and back under the same version: still once.
        let mut mql = sent.clone();
        mql.stage = Stage::Mql;
        assert!(news(&lead, &card, Some(&mql), "hubspot", now(), "r3").is_empty());
        // Not sent (the bus refused it): the next run tries again.
        let mut unsent = mql.clone();
        unsent.announced.clear();
        assert_eq!(
            news(&lead, &card, Some(&unsent), "hubspot", now(), "r3").len(),
            1
        );
        // SQL for a month and never announced (the bus was switched on since): history.
        let mut long_sql = unsent.clone();
        long_sql.stage = Stage::Sql;
        long_sql.stage_since = Some(now() - Duration::days(30));
        assert!(news(&lead, &card, Some(&long_sql), "hubspot", now(), "r3").is_empty());
        // An old record seen for the first time is history, not news.
        let mut old = lead.clone();
        old.modified_at = now() - Duration::days(30);
        assert!(news(&old, &c.evaluate(&old, now()), None, "hubspot", now(), "r1").is_empty());
    }

    #[test]
    fn a_rejection_is_news_once() {
        let c = Criteria::parse("c", DOC).unwrap();
        let mut lead = sql_lead();
        lead.lead_status = Some("UNQUALIFIED".into());
        lead.rejection_reason = Some("NO_BUDGET".into());
        let card = c.evaluate(&lead, now());
        // SQL for weeks (announced then, under an earlier version): sales now says no.
        let mut before = state(&lead, &card, None);
        before.stage = Stage::Sql;
        before.stage_since = Some(now() - Duration::days(20));
        let events = news(&lead, &card, Some(&before), "hubspot", now(), "r1");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, LeadEventKind::Rejected);
        assert_eq!(events[0].rejection_reason.as_deref(), Some("NO_BUDGET"));
        before.announced.push(events[0].key());
        assert!(news(&lead, &card, Some(&before), "hubspot", now(), "r2").is_empty());
    }
}
