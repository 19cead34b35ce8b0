//! `[crm.forward]`: the CRM's own lifecycle stage and sales status, moved forward as leadsync's
//! stage rises — never back — when the document says so.
//!
//! ```toml
//! [crm.forward]
//! # HubSpot's lifecycle stage for each leadsync stage; a contact already further along (or at
//! # a value not in `lifecycle_order`, e.g. a custom stage) is left alone.
//! lifecycle_stage = { mql = "marketingqualifiedlead", sql = "salesqualifiedlead" }
//! # lifecycle_order = [...]            # the CRM's values in order (default: HubSpot's)
//! # The sales status to set while sales has set none (or only one of these, of a lower stage).
//! lead_status = { sql = "OPEN" }
//! ```
//!
//! Moving is a write like leadsync's own properties and rides in the same batch update; what
//! leadsync means the CRM to show is part of the pushed hash, so a contact already at (or
//! past) its target costs no write, and a contact sales moved on is never moved back.

use super::{Criteria, Stage};
use crate::lead::Lead;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// HubSpot's standard lifecycle stages, in order.
pub const HUBSPOT_LIFECYCLE: [&str; 7] = [
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
];

/// `[crm.forward]` as written (validated by [`Forward::problems`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Forward {
    /// leadsync stage (`iql`, `mql`, `sql`) → the CRM's lifecycle value.
    pub lifecycle_stage: BTreeMap<String, String>,
    /// The CRM's lifecycle values, earliest first.
    pub lifecycle_order: Vec<String>,
    /// leadsync stage → the sales status to set while sales has set none.
    pub lead_status: BTreeMap<String, String>,
}

impl Default for Forward {
    fn default() -> Self {
        Self {
            lifecycle_stage: BTreeMap::new(),
            lifecycle_order: HUBSPOT_LIFECYCLE.map(str::to_owned).to_vec(),
            lead_status: BTreeMap::new(),
        }
    }
}

/// Where a CRM keeps its own lifecycle stage and sales status (HubSpot: `lifecyclestage`,
/// `hs_lead_status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardProperties {
    pub lifecycle_stage: String,
    pub lead_status: String,
}

/// One property leadsync means the CRM to show for a lead, and whether it must be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardWrite {
    pub property: String,
    pub value: String,
    /// False when the CRM already shows it, or something further along that leadsync leaves.
    pub needed: bool,
}

const LADDER: [Stage; 3] = [Stage::Iql, Stage::Mql, Stage::Sql];

fn ladder(stage: &str) -> Option<Stage> {
    LADDER.into_iter().find(|s| s.as_str() == stage)
}

fn same(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

impl Forward {
    pub fn is_empty(&self) -> bool {
        self.lifecycle_stage.is_empty() && self.lead_status.is_empty()
    }

    /// Every problem, as (the key it is about — `lifecycle_stage.sql` —, message): keys that are not ladder stages,
    /// lifecycle values not in the order or out of it, sales statuses that are verdicts.
    pub(super) fn problems(&self, verdicts: &[&str]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for value in &self.lifecycle_order {
            if !seen.insert(value.trim().to_lowercase()) {
                out.push((
                    "lifecycle_order".to_owned(),
                    format!("crm.forward.lifecycle_order: {value:?} is listed twice"),
                ));
            }
        }
        let position = |v: &str| self.lifecycle_order.iter().position(|o| same(o, v));
        let mut last: Option<(Stage, usize)> = None;
        for stage in LADDER {
            let Some(value) = self.lifecycle_stage.get(stage.as_str()) else {
                continue;
            };
            match position(value) {
                None => out.push((
                    format!("lifecycle_stage.{stage}"),
                    format!(
                        "crm.forward.lifecycle_stage.{stage} = {value:?}: not one of lifecycle_order ({})",
                        self.lifecycle_order.join(", ")
                    ),
                )),
                Some(at) => {
                    if let Some((lower, before)) = last
                        && at <= before
                    {
                        out.push((
                            format!("lifecycle_stage.{stage}"),
                            format!(
                                "crm.forward.lifecycle_stage.{stage} = {value:?} is not after {lower}'s {:?} in lifecycle_order: moving forward would move it back",
                                self.lifecycle_order[before]
                            ),
                        ));
                    }
                    last = Some((stage, at));
                }
            }
        }
        let mut statuses = std::collections::BTreeSet::new();
        for (table, map) in [
            ("lifecycle_stage", &self.lifecycle_stage),
            ("lead_status", &self.lead_status),
        ] {
            for (stage, value) in map {
                if ladder(stage).is_none() {
                    out.push((
                        format!("{table}.{stage}"),
                        format!(
                            "crm.forward.{table}.{stage}: only iql, mql and sql move the CRM forward (a disqualified or recycled lead is never moved)"
                        ),
                    ));
                }
                if value.trim().is_empty() {
                    out.push((
                        format!("{table}.{stage}"),
                        format!("crm.forward.{table}.{stage} must not be empty"),
                    ));
                }
            }
        }
        for (stage, value) in &self.lead_status {
            if verdicts.iter().any(|v| same(v, value)) {
                out.push((
                    format!("lead_status.{stage}"),
                    format!(
                        "crm.forward.lead_status.{stage} = {value:?} is a sales verdict of this document (accepted, rejected or recycled): leadsync would record a verdict sales never gave"
                    ),
                ));
            }
            if !statuses.insert(value.trim().to_uppercase()) {
                out.push((
                    format!("lead_status.{stage}"),
                    format!("crm.forward.lead_status.{stage} = {value:?} is another stage's too"),
                ));
            }
        }
        out
    }
}

impl Criteria {
    /// What the document moves forward in the CRM for a lead leadsync puts at `stage`: each
    /// property with its target and whether it must be written (see the module docs).
    /// `properties`: where the CRM keeps the two (the adapter's, or the document's mapping of
    /// the `lead_status` input).
    pub fn forward_writes(
        &self,
        lead: &Lead,
        stage: Stage,
        properties: &ForwardProperties,
    ) -> Vec<ForwardWrite> {
        let forward = &self.crm.forward;
        let mut out = Vec::new();
        let Some(level) = LADDER.iter().position(|s| *s == stage) else {
            return out;
        };
        // The highest mapped stage at or below the lead's.
        let target = |map: &BTreeMap<String, String>| {
            LADDER[..=level]
                .iter()
                .rev()
                .find_map(|s| map.get(s.as_str()).map(|v| (*s, v.clone())))
        };
        if let Some((_, value)) = target(&forward.lifecycle_stage) {
            let position = |v: &str| forward.lifecycle_order.iter().position(|o| same(o, v));
            let needed = match lead.lifecycle_stage.as_deref().map(str::trim) {
                None | Some("") => true,
                // A value outside the order (a custom stage, `other`) is never touched.
                Some(now) => {
                    matches!((position(now), position(&value)), (Some(a), Some(b)) if a < b)
                }
            };
            out.push(ForwardWrite {
                property: properties.lifecycle_stage.clone(),
                value,
                needed,
            });
        }
        if let Some((at, value)) = target(&forward.lead_status) {
            let needed = match lead.lead_status.as_deref().map(str::trim) {
                None | Some("") => true,
                // Only a status leadsync set for a lower stage is moved on.
                Some(now) => {
                    !same(now, &value)
                        && LADDER
                            .iter()
                            .take_while(|s| **s != at)
                            .filter_map(|s| forward.lead_status.get(s.as_str()))
                            .any(|v| same(v, now))
                }
            };
            out.push(ForwardWrite {
                property: properties.lead_status.clone(),
                value,
                needed,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../../infra/criteria/b2b-saas.toml");

    fn with(forward: &str) -> Result<Criteria, crate::CriteriaError> {
        let text = EXAMPLE.replacen(
            "[incentives]\n",
            &format!("[crm.forward]\n{forward}\n\n[incentives]\n"),
            1,
        );
        Criteria::parse("forward.toml", &text)
    }

    fn lead(lifecycle: Option<&str>, status: Option<&str>) -> Lead {
        serde_json::from_value(serde_json::json!({
            "id": "1", "modified_at": "2026-11-01T00:00:00Z",
            "lifecycle_stage": lifecycle, "lead_status": status,
        }))
        .unwrap()
    }

    fn writes(c: &Criteria, l: &Lead, stage: Stage) -> Vec<(String, String, bool)> {
        let properties = ForwardProperties {
            lifecycle_stage: "lifecyclestage".into(),
            lead_status: "hs_lead_status".into(),
        };
        c.forward_writes(l, stage, &properties)
            .into_iter()
            .map(|w| (w.property, w.value, w.needed))
            .collect()
    }

    #[test]
    fn lifecycle_moves_forward_never_back_and_never_off_the_ladder() {
        let c = with(
            "lifecycle_stage = { mql = \"marketingqualifiedlead\", sql = \"salesqualifiedlead\" }",
        )
        .unwrap();
        let lc = |v: &str, needed| vec![("lifecyclestage".to_owned(), v.to_owned(), needed)];
        assert_eq!(
            writes(&c, &lead(Some("lead"), None), Stage::Sql),
            lc("salesqualifiedlead", true)
        );
        assert_eq!(
            writes(&c, &lead(None, None), Stage::Mql),
            lc("marketingqualifiedlead", true)
        );
        // Already there, or further along: the target is kept (it is hashed), nothing written.
        assert_eq!(
            writes(&c, &lead(Some("salesqualifiedlead"), None), Stage::Mql),
            lc("marketingqualifiedlead", false)
        );
        assert_eq!(
            writes(&c, &lead(Some("customer"), None), Stage::Sql),
            lc("salesqualifiedlead", false)
        );
        assert_eq!(
            writes(&c, &lead(Some("MarketingQualifiedLead"), None), Stage::Mql),
            lc("marketingqualifiedlead", false),
            "HubSpot's values compare case-blind"
        );
        // A custom stage or `other`: its place is unknown, so it is never moved.
        assert_eq!(
            writes(&c, &lead(Some("other"), None), Stage::Sql),
            lc("salesqualifiedlead", false)
        );
        // No mapping at or below the stage: nothing.
        assert!(writes(&c, &lead(Some("lead"), None), Stage::Iql).is_empty());
        assert!(writes(&c, &lead(Some("lead"), None), Stage::Disqualified).is_empty());
    }

    #[test]
    fn the_sales_status_is_set_only_while_sales_has_set_none() {
        let c = with("lead_status = { mql = \"NEW\", sql = \"OPEN\" }").unwrap();
        let st = |v: &str, needed| vec![("hs_lead_status".to_owned(), v.to_owned(), needed)];
        assert_eq!(writes(&c, &lead(None, None), Stage::Sql), st("OPEN", true));
        assert_eq!(
            writes(&c, &lead(None, Some(" ")), Stage::Mql),
            st("NEW", true)
        );
        assert_eq!(
            writes(&c, &lead(None, Some("new")), Stage::Sql),
            st("OPEN", true),
            "a status leadsync set for a lower stage moves on"
        );
        assert_eq!(
            writes(&c, &lead(None, Some("OPEN")), Stage::Mql),
            st("NEW", false),
            "never back"
        );
        assert_eq!(
            writes(&c, &lead(None, Some("IN_PROGRESS")), Stage::Sql),
            st("OPEN", false),
            "sales' own status is never overwritten"
        );
    }

    #[test]
    fn mistakes_are_located_at_their_own_key() {
        let err = with(concat!(
            "lifecycle_stage = { mql = \"salesqualifiedlead\", sql = \"marketingqualifiedlead\", recycled = \"lead\" }\n",
            "lead_status = { sql = \"IN_PROGRESS\" }\n",
            "lifecycle_oder = []",
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lifecycle_oder"), "{text}");
        // Unknown keys stop the semantic checks; without it, every value problem is shown.
        let err = with(concat!(
            "lifecycle_stage = { mql = \"salesqualifiedlead\", sql = \"marketingqualifiedlead\", recycled = \"lead\" }\n",
            "lead_status = { sql = \"IN_PROGRESS\" }",
        ))
        .unwrap_err();
        let line = EXAMPLE[..EXAMPLE.find("[incentives]\n").unwrap()]
            .lines()
            .count()
            + 2;
        let at = |needle: &str| {
            err.issues
                .iter()
                .find(|i| i.message.contains(needle))
                .map(|i| (i.line, i.column))
                .unwrap_or_else(|| panic!("{needle}: {err}"))
        };
        let first = "lifecycle_stage = { mql = \"salesqualifiedlead\", sql = \"";
        assert_eq!(
            at("lifecycle_stage.sql"),
            (line, first.find("sql =").unwrap() + 1),
            "{err}"
        );
        assert_eq!(
            at("lifecycle_stage.recycled"),
            (line, first.len() + "marketingqualifiedlead\", ".len() + 1),
            "{err}"
        );
        assert_eq!(
            at("sales verdict"),
            (line + 1, "lead_status = { ".len() + 1)
        );
        assert!(
            with("lifecycle_stage = { sql = \"sql\" }")
                .unwrap_err()
                .to_string()
                .contains("not one of lifecycle_order")
        );
    }
}
