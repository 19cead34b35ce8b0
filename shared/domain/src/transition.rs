//! What leadsync remembers about a lead between runs, and the stage transitions it records.
//!
//! Transitions are append-only facts with an idempotent key (lead, stage reached, criteria
//! version): recording the same one twice is a no-op, which is what makes re-runs safe.

use crate::criteria::Scorecard;
use crate::lead::LeadId;
use crate::stage::Stage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The current, overwritable state of one lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadState {
    pub lead_id: LeadId,
    pub stage: Stage,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
    /// Codes of the rules that matched.
    pub reasons: Vec<String>,
    pub criteria_version: String,
    /// [`crate::Lead::input_hash`] of the input that produced this state.
    pub input_hash: String,
    /// Hash of the CRM properties last written successfully; `None` until the first push.
    pub pushed_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub run_id: String,
    /// Since when the lead has been at `stage` (by the CRM's clock: see
    /// [`LeadState::from_scorecard`]); `None` in states written before leadsync kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_since: Option<DateTime<Utc>>,
    /// When time alone (engagement decay, activity windows) next changes the lead's stage or
    /// band if nothing else happens; `None`: never. The nightly run re-scores leads due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescore_at: Option<DateTime<Utc>>,
    /// The news already sent about the lead ([`crate::news::LeadEvent::key`]: `sql:<version>`,
    /// `rejected:<version>`): each is sent once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announced: Vec<String>,
}

impl LeadState {
    /// The state a scorecard produces, carrying over what was last pushed.
    ///
    /// `stage_since`: a lead still at its previous stage (under this or a new criteria
    /// version: a restatement) keeps the time it got there; a lead whose data changed, or that
    /// is scored for the first time or under a new definition, got there when its data last
    /// changed (`modified_at`, the CRM's clock); a lead moved by time alone (decay) got there
    /// `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_scorecard(
        lead_id: LeadId,
        owner_id: Option<String>,
        card: &Scorecard,
        input_hash: String,
        modified_at: DateTime<Utc>,
        previous: Option<&LeadState>,
        now: DateTime<Utc>,
        run_id: &str,
    ) -> Self {
        let stage_since = match previous {
            Some(p) if p.stage == card.stage => p.stage_since.unwrap_or(p.updated_at),
            Some(p)
                if p.input_hash == input_hash && p.criteria_version == card.criteria_version =>
            {
                now
            }
            _ => modified_at.min(now),
        };
        Self {
            lead_id,
            stage: card.stage,
            fit: card.fit,
            engagement: card.engagement,
            total: card.total,
            band: card.band.clone(),
            reasons: card.matched_codes().map(str::to_owned).collect(),
            criteria_version: card.criteria_version.clone(),
            input_hash,
            pushed_hash: previous.and_then(|p| p.pushed_hash.clone()),
            owner_id,
            updated_at: now,
            run_id: run_id.to_owned(),
            stage_since: Some(stage_since),
            rescore_at: None,
            announced: previous.map(|p| p.announced.clone()).unwrap_or_default(),
        }
    }

    /// True when the scoring result (not the bookkeeping) equals `other`'s.
    pub fn same_result(&self, other: &LeadState) -> bool {
        self.stage == other.stage
            && self.total == other.total
            && self.fit == other.fit
            && self.engagement == other.engagement
            && self.band == other.band
            && self.reasons == other.reasons
            && self.criteria_version == other.criteria_version
            && self.input_hash == other.input_hash
            && self.owner_id == other.owner_id
            && self.rescore_at == other.rescore_at
            && self.announced == other.announced
    }
}

/// A lead reached a stage under a criteria version. Append-only; the key is
/// (`lead_id`, `to`, `criteria_version`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub lead_id: LeadId,
    pub from: Option<Stage>,
    pub to: Stage,
    pub criteria_version: String,
    pub observed_at: DateTime<Utc>,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// The lead's source (marketing channel) when it was observed: a rollup dimension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The band and matched rule codes of the scoring that produced it.
    #[serde(default)]
    pub band: String,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Why the lead was lost, for `disqualified` and `recycled` (see `Criteria::loss_reasons`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loss_reasons: Vec<String>,
    /// When the lead got to `to` by the CRM's clock (its state's `stage_since`); `None` in
    /// facts recorded before leadsync kept it: then `observed_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<DateTime<Utc>>,
    /// The criteria version changed: this fact restates where the lead stands under the new
    /// definition, it is not a move (`from` is the stage under the old one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restated: bool,
}

impl Transition {
    /// The transition from `previous` to `next`, if the stage or criteria version changed.
    pub fn between(previous: Option<&LeadState>, next: &LeadState) -> Option<Transition> {
        let changed = previous
            .is_none_or(|p| p.stage != next.stage || p.criteria_version != next.criteria_version);
        changed.then(|| Transition {
            lead_id: next.lead_id.clone(),
            from: previous.map(|p| p.stage),
            to: next.stage,
            criteria_version: next.criteria_version.clone(),
            observed_at: next.updated_at,
            run_id: next.run_id.clone(),
            owner_id: next.owner_id.clone(),
            source: None,
            band: next.band.clone(),
            reasons: next.reasons.clone(),
            loss_reasons: Vec::new(),
            occurred_at: next.stage_since,
            restated: previous.is_some_and(|p| p.criteria_version != next.criteria_version),
        })
    }
}

/// The CRM properties to write for a lead, and their hash (compared with `pushed_hash`).
pub fn push_hash(properties: &BTreeMap<String, String>) -> String {
    crate::hash::stable_hash(
        properties
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(stage: Stage, version: &str) -> LeadState {
        LeadState {
            lead_id: LeadId::new("7").unwrap(),
            stage,
            fit: 0,
            engagement: 0,
            total: 0,
            band: "D".into(),
            reasons: vec![],
            criteria_version: version.into(),
            input_hash: "h".into(),
            pushed_hash: None,
            owner_id: None,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            run_id: "r".into(),
            stage_since: None,
            rescore_at: None,
            announced: Vec::new(),
        }
    }

    #[test]
    fn transitions_only_on_change() {
        let mql = state(Stage::Mql, "v1");
        assert_eq!(
            Transition::between(None, &mql).map(|t| (t.from, t.to)),
            Some((None, Stage::Mql))
        );
        assert!(Transition::between(Some(&mql), &mql).is_none());
        let sql = state(Stage::Sql, "v1");
        assert_eq!(
            Transition::between(Some(&mql), &sql).map(|t| (t.from, t.to)),
            Some((Some(Stage::Mql), Stage::Sql))
        );
        let restated = state(Stage::Mql, "v2");
        assert!(
            Transition::between(Some(&mql), &restated).is_some(),
            "a new criteria version restates the stage"
        );
    }

    #[test]
    fn push_hash_depends_on_keys_and_values() {
        let a = BTreeMap::from([("s".to_owned(), "mql".to_owned())]);
        let b = BTreeMap::from([("s".to_owned(), "sql".to_owned())]);
        assert_ne!(push_hash(&a), push_hash(&b));
        assert_eq!(push_hash(&a), push_hash(&a.clone()));
    }
}
