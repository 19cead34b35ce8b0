//! The criteria document both teams sign, and its evaluation.
//!
//! The document is TOML: it is unambiguous (no implicit typing surprises), takes comments, and
//! its parser reports line and column for every syntax and type error. [`Criteria::parse`]
//! checks it completely — every problem at once, each with `file:line:col` — and compiles it
//! into a form [`Criteria::evaluate`] reads without allocation-heavy lookups.
//!
//! Evaluation is a pure function of the lead, the document and nothing else: no clock, no I/O.
//! Every rule in the document yields exactly one [`Reason`] per lead (matched, not matched, or
//! value missing), so a result is always fully explained.
//!
//! This file holds [`Criteria`] and what adapters ask of it (reads, property specs); the rest
//! is one job a file: `document` (the TOML as written), `validate` (reading it with every
//! problem located), `compile` (the compiled rules and the compiler), `evaluate` (scores,
//! stages, when they change), `observe` (what a rule sees of a lead), `explain` (reasons,
//! scorecard, summary), `fields` (`[fields]`: the CRM's own properties), `forward` (stages
//! written to the CRM's lifecycle).

mod fields;
mod forward;

pub use fields::{
    CrmObject, CrmProperty, CrmReads, Described, FieldType, INPUTS, MappedField, PropertyKind,
    PropertySpec,
};
pub use forward::{Forward, ForwardProperties, ForwardWrite, HUBSPOT_LIFECYCLE};

use crate::lead::Lead;
use crate::stage::Stage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

mod compile;
mod document;
mod evaluate;
mod explain;
mod observe;
mod validate;

use compile::*;
use document::*;
use observe::*;
use validate::*;

pub use crate::sign_off::SignOff;
pub use document::{Caps, CrmMapping, SUMMARY_LIMIT, Threshold};
pub use evaluate::{MAX_RULES, Score};
pub use explain::{Reason, ReasonOutcome, Scorecard};
pub use validate::{CriteriaError, CriteriaIssue};

/// A validated, compiled criteria document.
#[derive(Debug, Clone, PartialEq)]
pub struct Criteria {
    pub id: String,
    pub version: String,
    pub effective: String,
    pub sales_sign_off: Option<SignOff>,
    pub marketing_sign_off: Option<SignOff>,
    pub mql: Threshold,
    pub sql: Threshold,
    /// The `[fields]` entries: the properties of their own the rules read, and the inputs moved
    /// to other properties. [`Criteria::crm_reads`] is what the adapter reads for them.
    pub fields: Vec<MappedField>,
    /// The file or object the document was read from (prefixes every location).
    pub source_name: String,
    /// The values the rules name for each input leadsync owns (`budget` → `CONFIRMED`, …):
    /// offered by the picklists the property bootstrap creates.
    input_values: BTreeMap<&'static str, Vec<String>>,
    /// Rules that must match to reach MQL / SQL, as bitmasks over the rules.
    mql_require: u128,
    sql_require: u128,
    /// Sales statuses that make a lead `recycled` (lowercased).
    recycled_statuses: HashSet<String>,
    pub caps: Caps,
    /// Bands, highest `min_total` first.
    bands: Vec<(String, i64)>,
    rules: Vec<(Group, Rule)>,
    pub crm: CrmMapping,
    /// The shared incentive plan, when the document has one.
    pub incentives: Option<crate::incentives::IncentivePlan>,
}

impl Criteria {
    /// Parse, validate and compile a document. `source_name` (usually the file path) prefixes
    /// every error location.
    ///
    /// # Errors
    /// [`CriteriaError`] with every problem found: syntax, unknown keys, wrong types, unknown
    /// fields, rules without a condition or with two, duplicate codes, unreachable or
    /// overlapping stages, bands out of order.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, CriteriaError> {
        let fail = |issues| CriteriaError {
            source_name: source_name.to_owned(),
            issues,
        };
        let (doc, mut found) = read_document(text).map_err(|issue| fail(vec![issue]))?;
        let semantic = compile(doc, text).map(|mut c| {
            c.source_name = source_name.to_owned();
            c
        });
        if found.is_empty() {
            return semantic.map_err(fail);
        }
        let mut issues: Vec<CriteriaIssue> = found
            .drain(..)
            .map(|(offset, message)| {
                let (line, column) = line_col(text, offset);
                CriteriaIssue {
                    line,
                    column,
                    message,
                }
            })
            .collect();
        issues.extend(semantic.err().unwrap_or_default());
        issues.sort_by_key(|i| (i.line, i.column));
        Err(fail(issues))
    }

    /// What a CRM adapter must read for this document beyond its own properties: the
    /// `[fields]` properties of each object and the inputs moved to other properties.
    pub fn crm_reads(&self) -> CrmReads {
        let mut reads = CrmReads::default();
        for f in &self.fields {
            let moved = Some(f.property.clone());
            match f.name.as_str() {
                "budget" => reads.budget = moved,
                "authority" => reads.authority = moved,
                "need" => reads.need = moved,
                "timeline" => reads.timeline = moved,
                "lead_status" => reads.lead_status = moved,
                "rejection_reason" => reads.rejection_reason = moved,
                _ => {
                    let list = match f.object {
                        CrmObject::Contact => &mut reads.contact,
                        CrmObject::Company => &mut reads.company,
                        CrmObject::Deal => &mut reads.deal,
                    };
                    if !list.contains(&f.property) {
                        list.push(f.property.clone());
                    }
                }
            }
        }
        let crm = &self.crm;
        reads.results = [
            &crm.stage,
            &crm.score,
            &crm.fit_score,
            &crm.engagement_score,
            &crm.summary,
            &crm.band,
            &crm.reasons,
            &crm.criteria_version,
        ]
        .into_iter()
        .cloned()
        .collect();
        reads
    }

    /// Check the `[fields]` against the CRM's property definitions: every property must exist
    /// on its object with a type the document can read. `crm` names the CRM in messages.
    ///
    /// # Errors
    /// [`CriteriaError`] with one issue per missing or mistyped property, each at its entry's
    /// line and naming the field, the object and the property.
    pub fn check_properties(&self, described: &Described, crm: &str) -> Result<(), CriteriaError> {
        let issues = fields::check(&self.fields, described, crm);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(CriteriaError {
                source_name: self.source_name.clone(),
                issues,
            })
        }
    }

    /// The objects whose property definitions [`Criteria::check_properties`] needs.
    pub fn objects_read(&self) -> Vec<CrmObject> {
        let mut objects: Vec<CrmObject> = self.fields.iter().map(|f| f.object).collect();
        objects.sort();
        objects.dedup();
        objects
    }

    /// The CRM properties the results are written to, with their kinds and allowed values,
    /// then the inputs sales records that leadsync owns under their default names (created
    /// when the CRM lacks them, never written: [`PropertySpec::read_only`]).
    pub fn crm_property_specs(&self) -> Vec<PropertySpec> {
        let spec = |name: &str, label: &str, kind, options: Vec<String>| PropertySpec {
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            options,
            read_only: false,
        };
        let moved = |input: &str| self.fields.iter().any(|f| f.name == input);
        let owned = OWNED_INPUTS.iter().filter(|(input, ..)| !moved(input)).map(
            |(input, property, label, defaults)| {
                let mut options: Vec<String> = defaults.iter().map(|v| (*v).to_owned()).collect();
                for v in self.input_values.get(input).into_iter().flatten() {
                    let v = v.trim().to_uppercase();
                    if !v.is_empty() && !options.contains(&v) {
                        options.push(v);
                    }
                }
                PropertySpec {
                    read_only: true,
                    ..spec(property, label, PropertyKind::Enumeration, options)
                }
            },
        );
        let mut specs = vec![
            spec(
                &self.crm.stage,
                "leadsync stage",
                PropertyKind::Enumeration,
                Stage::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
            ),
            spec(
                &self.crm.score,
                "leadsync score",
                PropertyKind::Number,
                vec![],
            ),
            spec(
                &self.crm.band,
                "leadsync band",
                PropertyKind::Enumeration,
                self.bands.iter().map(|(name, _)| name.clone()).collect(),
            ),
            spec(
                &self.crm.reasons,
                "leadsync reason codes",
                PropertyKind::Text,
                vec![],
            ),
            spec(
                &self.crm.criteria_version,
                "leadsync criteria version",
                PropertyKind::Text,
                vec![],
            ),
            spec(
                &self.crm.fit_score,
                "leadsync fit score",
                PropertyKind::Number,
                vec![],
            ),
            spec(
                &self.crm.engagement_score,
                "leadsync engagement score",
                PropertyKind::Number,
                vec![],
            ),
            spec(
                &self.crm.summary,
                "leadsync: why",
                PropertyKind::LongText,
                vec![],
            ),
        ];
        specs.extend(owned);
        specs
    }

    /// Why a lead was lost at this scoring: the disqualifier codes that matched
    /// (`Disqualified`), or `STATUS:<sales status>` (`Recycled`); empty otherwise.
    pub fn loss_reasons(&self, card: &Scorecard, lead_status: Option<&str>) -> Vec<String> {
        match card.stage {
            Stage::Disqualified => card
                .reasons
                .iter()
                .zip(&self.rules)
                .filter(|(r, (group, _))| {
                    *group == Group::Disqualify && r.outcome == ReasonOutcome::Matched
                })
                .map(|(r, _)| r.code.clone())
                .collect(),
            Stage::Recycled => vec![format!(
                "STATUS:{}",
                lead_status.unwrap_or("").trim().to_uppercase()
            )],
            _ => Vec::new(),
        }
    }

    /// True when both sales and marketing have signed: only then may a version be published.
    pub fn is_signed(&self) -> bool {
        self.sales_sign_off.is_some() && self.marketing_sign_off.is_some()
    }
}

#[cfg(test)]
mod tests;
