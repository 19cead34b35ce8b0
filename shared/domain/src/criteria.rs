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

mod fields;
mod forward;

pub use fields::{CrmObject, CrmProperty, CrmReads, Described, FieldType, INPUTS, MappedField};
pub use forward::{Forward, ForwardProperties, ForwardWrite, HUBSPOT_LIFECYCLE};

use crate::lead::Lead;
use crate::stage::Stage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

// ---------------------------------------------------------------------------------------------
// The document as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    id: String,
    version: String,
    effective: String,
    #[serde(default)]
    approved_by: Option<toml::Spanned<ApprovedBy>>,
    stages: Stages,
    #[serde(default)]
    caps: Caps,
    bands: Vec<toml::Spanned<BandDoc>>,
    #[serde(default)]
    fit: Vec<toml::Spanned<RuleDoc>>,
    #[serde(default)]
    engagement: Vec<toml::Spanned<RuleDoc>>,
    #[serde(default)]
    disqualify: Vec<toml::Spanned<RuleDoc>>,
    #[serde(default)]
    crm: CrmMapping,
    #[serde(skip)]
    incentives: Option<(crate::incentives::IncentivesDoc, usize)>,
    /// `[fields]`: each entry's name, where its key stands, and what it says.
    #[serde(skip)]
    fields: Vec<(String, usize, fields::FieldDoc)>,
    /// Where the keys of `[crm.forward]` stand (`lifecycle_stage.sql`, …; `""`: the table).
    #[serde(skip)]
    forward_at: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovedBy {
    sales: Option<SignOff>,
    marketing: Option<SignOff>,
}

/// Who signed the document for one team, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOff {
    pub name: String,
    pub date: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stages {
    mql: toml::Spanned<Threshold>,
    sql: toml::Spanned<Threshold>,
    /// Rule codes that must match for a lead to reach the stage (e.g. BANT confirmations).
    mql_require: Vec<String>,
    sql_require: Vec<String>,
    /// Sales statuses (`hs_lead_status`) that send a lead back to marketing.
    recycled: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecycledDoc {
    lead_status: Vec<String>,
}

/// A stage as written: its bar and the rules it requires.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageDoc {
    min_fit: i64,
    min_total: i64,
    #[serde(default)]
    require: Vec<String>,
}

/// The bar a lead must pass to reach a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub min_fit: i64,
    pub min_total: i64,
}

/// Upper bounds on each score group and the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            fit: 100,
            engagement: 100,
            total: 100,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BandDoc {
    name: String,
    min_total: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    code: String,
    label: String,
    field: String,
    #[serde(default)]
    any_of: Option<Vec<String>>,
    /// Text fields: matched when the value contains any of these (case-insensitive).
    #[serde(default)]
    contains: Option<Vec<String>>,
    /// Date fields: matched when the date is more than this many days before now.
    #[serde(default)]
    older_than_days: Option<u32>,
    /// Date fields: matched when the date is now or within this many days ahead (a renewal, a
    /// contract end).
    #[serde(default)]
    due_within_days: Option<u32>,
    /// Boolean fields: matched when the value is this.
    #[serde(default)]
    is: Option<bool>,
    #[serde(default)]
    none_of: Option<Vec<String>>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
    #[serde(default)]
    missing: Option<bool>,
    #[serde(default)]
    points: Option<i64>,
    #[serde(default)]
    points_each: Option<i64>,
    #[serde(default)]
    cap: Option<i64>,
    /// Engagement counts: count the rule only if the channel was active within this many days.
    /// Date fields: matched when the date lies within this many days before now.
    #[serde(default)]
    within_days: Option<u32>,
    /// Engagement only: halve the rule's points every this many days since the last activity.
    #[serde(default)]
    half_life_days: Option<f64>,
}

/// Where the CRM keeps leadsync's results: one property per result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmMapping {
    pub stage: String,
    pub score: String,
    pub band: String,
    pub reasons: String,
    pub criteria_version: String,
    /// The fit and engagement scores apart (Pardot's grade and score).
    pub fit_score: String,
    pub engagement_score: String,
    /// Why, in words a rep reads: the disqualifiers, the rules that scored with their points
    /// and the values seen, the data that was missing ([`Scorecard::summary`]).
    pub summary: String,
    /// `[crm.forward]`: the CRM's own lifecycle stage and sales status moved forward, never
    /// back (nothing by default).
    #[serde(skip_serializing_if = "Forward::is_empty")]
    pub forward: Forward,
}

impl Default for CrmMapping {
    fn default() -> Self {
        Self {
            stage: "leadsync_stage".into(),
            score: "leadsync_score".into(),
            band: "leadsync_band".into(),
            reasons: "leadsync_reasons".into(),
            criteria_version: "leadsync_criteria_version".into(),
            fit_score: "leadsync_fit_score".into(),
            engagement_score: "leadsync_engagement_score".into(),
            summary: "leadsync_summary".into(),
            forward: Forward::default(),
        }
    }
}

/// The inputs sales records whose default properties leadsync owns (creates when missing):
/// input, default property, label, the picklist's values.
const OWNED_INPUTS: &[(&str, &str, &str, &[&str])] = &[
    (
        "budget",
        "bant_budget",
        "BANT: budget",
        &["CONFIRMED", "UNKNOWN", "NONE"],
    ),
    (
        "authority",
        "bant_authority",
        "BANT: authority",
        &["DECISION_MAKER", "INFLUENCER", "NONE"],
    ),
    ("need", "bant_need", "BANT: need", &["CONFIRMED", "UNCLEAR"]),
    (
        "timeline",
        "bant_timeline",
        "BANT: timeline",
        &["THIS_QUARTER", "THIS_YEAR", "NONE"],
    ),
    (
        "rejection_reason",
        "lead_rejection_reason",
        "Why sales rejected the lead",
        &[
            "NO_BUDGET",
            "NOT_DECISION_MAKER",
            "BAD_FIT",
            "NO_RESPONSE",
            "CHOSE_COMPETITOR",
            "TIMING",
        ],
    ),
];

/// The longest [`Scorecard::summary`] (characters): inside a HubSpot textarea (65,536) and the
/// Long Text Area leadsync creates in Salesforce.
pub const SUMMARY_LIMIT: usize = 2_000;

/// A lead attribute a rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Industry,
    Employees,
    AnnualRevenue,
    Country,
    Email,
    EmailDomain,
    JobTitle,
    Source,
    PageViews,
    EmailOpens,
    EmailClicks,
    FormSubmissions,
    CompanyType,
    /// A list: `any_of` matches when any entry is in the set, `none_of` when none is.
    Technologies,
    /// BANT, as sales records it on the contact.
    Budget,
    Authority,
    Need,
    Timeline,
    /// Sales' status of the lead and why it rejected it.
    LeadStatus,
    RejectionReason,
    /// When each channel last saw activity, and the latest of them.
    LastPageView,
    LastEmailOpen,
    LastEmailClick,
    LastFormSubmission,
    LastActivity,
    /// A `[fields]` entry: index into [`Criteria::fields`].
    Mapped(u16),
}

/// The built-in fields by name.
const BUILT_IN: &[(&str, Field)] = &[
    ("industry", Field::Industry),
    ("employees", Field::Employees),
    ("annual_revenue", Field::AnnualRevenue),
    ("country", Field::Country),
    ("email", Field::Email),
    ("email_domain", Field::EmailDomain),
    ("job_title", Field::JobTitle),
    ("source", Field::Source),
    ("page_views", Field::PageViews),
    ("email_opens", Field::EmailOpens),
    ("email_clicks", Field::EmailClicks),
    ("form_submissions", Field::FormSubmissions),
    ("company_type", Field::CompanyType),
    ("technologies", Field::Technologies),
    ("budget", Field::Budget),
    ("authority", Field::Authority),
    ("need", Field::Need),
    ("timeline", Field::Timeline),
    ("lead_status", Field::LeadStatus),
    ("rejection_reason", Field::RejectionReason),
    ("last_page_view", Field::LastPageView),
    ("last_email_open", Field::LastEmailOpen),
    ("last_email_click", Field::LastEmailClick),
    ("last_form_submission", Field::LastFormSubmission),
    ("last_activity", Field::LastActivity),
];

impl Field {
    /// The type of the field's values.
    fn kind(self, mapped: &[MappedField]) -> FieldType {
        match self {
            Field::Employees
            | Field::AnnualRevenue
            | Field::PageViews
            | Field::EmailOpens
            | Field::EmailClicks
            | Field::FormSubmissions => FieldType::Number,
            Field::Technologies => FieldType::MultiSelect,
            Field::LastPageView
            | Field::LastEmailOpen
            | Field::LastEmailClick
            | Field::LastFormSubmission
            | Field::LastActivity => FieldType::Date,
            Field::Mapped(i) => mapped
                .get(usize::from(i))
                .map_or(FieldType::Text, |f| f.kind),
            _ => FieldType::Text,
        }
    }

    /// An engagement counter (what `within_days` and `half_life_days` window and decay).
    fn is_counter(self) -> bool {
        matches!(
            self,
            Field::PageViews | Field::EmailOpens | Field::EmailClicks | Field::FormSubmissions
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the document piece by piece, so that every problem is reported at once.

/// The top-level keys a document may have.
const TOP_KEYS: &[&str] = &[
    "id",
    "fields",
    "version",
    "effective",
    "approved_by",
    "stages",
    "caps",
    "bands",
    "fit",
    "engagement",
    "disqualify",
    "crm",
    "incentives",
];

/// The array-of-tables sections, each entry with its span.
#[derive(Debug, Deserialize)]
struct Lists {
    #[serde(default)]
    bands: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    fit: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    engagement: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    disqualify: Vec<toml::Spanned<toml::Value>>,
}

/// Where in `text[span]` a key named in an error message stands; the span's start otherwise.
fn locate(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let key = message.split('`').nth(1).filter(|k| !k.is_empty());
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    key.and_then(|k| text.get(start..end)?.find(k).map(|at| start + at))
        .unwrap_or(start)
}

/// Where `key = …` stands in the table whose header is at `from`: the first line after it that
/// assigns the key, before the next header; `from` when there is none.
fn key_in_table(text: &str, from: usize, key: &str) -> usize {
    let mut offset = from.min(text.len());
    let mut lines = text[offset..].split_inclusive('\n');
    // The header line itself.
    if let Some(first) = lines.next() {
        offset += first.len();
    }
    for line in lines {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return offset + (line.len() - trimmed.len());
        }
        offset += line.len();
    }
    from
}

/// One step of the path to a piece of the document: a key, or an entry of an array.
#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The document's value at `path`, with the spans of everything inside it.
fn find<'d, 'i>(
    root: &'d toml::de::DeTable<'i>,
    path: &[Step<'_>],
) -> Option<&'d toml::Spanned<toml::de::DeValue<'i>>> {
    let (first, rest) = path.split_first()?;
    let Step::Key(key) = first else {
        return None;
    };
    let mut at = root
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == *key)
        .map(|(_, v)| v)?;
    for step in rest {
        at = match step {
            Step::Key(key) => at
                .get_ref()
                .as_table()?
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == *key)
                .map(|(_, v)| v)?,
            Step::Index(i) => at.get_ref().as_array()?.get(*i)?,
        };
    }
    Some(at)
}

struct Reader<'t> {
    text: &'t str,
    /// The document as parsed, spans kept down to every key and value.
    spanned: toml::de::DeTable<'t>,
    issues: Vec<(usize, String)>,
}

impl Reader<'_> {
    /// Deserialize one piece; on failure record the problem where it stands — the offending
    /// key or value itself, read again from the spanned document at `path` — and give `None`.
    fn piece<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        path: &[Step<'_>],
        value: &toml::Value,
        span: std::ops::Range<usize>,
    ) -> Option<T> {
        match value.clone().try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.message().to_owned();
                let precise = find(&self.spanned, path).and_then(|v| {
                    T::deserialize(toml::de::ValueDeserializer::from(v.clone()))
                        .err()
                        .and_then(|e| e.span())
                });
                let at = precise.map_or_else(|| locate(self.text, span, &message), |s| s.start);
                self.issues.push((at, format!("{what}: {message}")));
                None
            }
        }
    }
}

/// Read the document: syntax errors stop here (one issue); every other problem — unknown keys,
/// wrong types, then the semantic checks of `compile` — is collected and reported together.
fn read_document(text: &str) -> Result<(Document, Vec<(usize, String)>), CriteriaIssue> {
    let syntax = |e: toml::de::Error| {
        let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
        CriteriaIssue {
            line,
            column,
            message: e.message().to_owned(),
        }
    };
    let top: BTreeMap<String, toml::Spanned<toml::Value>> = toml::from_str(text).map_err(syntax)?;
    let lists: Lists = toml::from_str(text).map_err(syntax)?;
    let mut r = Reader {
        text,
        spanned: toml::de::DeTable::parse(text).map_err(syntax)?.into_inner(),
        issues: Vec::new(),
    };
    for (key, value) in &top {
        if !TOP_KEYS.contains(&key.as_str()) {
            let at = r
                .spanned
                .keys()
                .find(|k| k.get_ref().as_ref() == key.as_str())
                .map_or_else(
                    || locate(text, 0..text.len(), &format!("`{key}`")).min(value.span().start),
                    |k| k.span().start,
                );
            r.issues.push((
                at,
                format!(
                    "unknown key `{key}`, expected one of {}",
                    TOP_KEYS.join(", ")
                ),
            ));
        }
    }
    let required =
        |r: &mut Reader<'_>, key: &str| -> Option<(toml::Value, std::ops::Range<usize>)> {
            match top.get(key) {
                Some(v) => Some((v.get_ref().clone(), v.span())),
                None => {
                    r.issues.push((0, format!("missing key `{key}`")));
                    None
                }
            }
        };
    let text_field = |r: &mut Reader<'_>, key: &str, placeholder: &str| -> String {
        required(r, key)
            .and_then(|(v, span)| r.piece::<String>(key, &[Step::Key(key)], &v, span))
            .unwrap_or_else(|| placeholder.to_owned())
    };
    let id = text_field(&mut r, "id", "?");
    let version = text_field(&mut r, "version", "?");
    let effective = text_field(&mut r, "effective", "2000-01-01");
    let optional = |key: &str| top.get(key).map(|v| (v.get_ref().clone(), v.span()));
    let approved_by = optional("approved_by").and_then(|(v, span)| {
        r.piece::<ApprovedBy>("approved_by", &[Step::Key("approved_by")], &v, span.clone())
            .map(|a| toml::Spanned::new(span, a))
    });
    let caps = optional("caps")
        .and_then(|(v, span)| r.piece::<Caps>("caps", &[Step::Key("caps")], &v, span))
        .unwrap_or_default();
    let crm = optional("crm")
        .and_then(|(v, span)| r.piece::<CrmMapping>("crm", &[Step::Key("crm")], &v, span))
        .unwrap_or_default();
    let mut forward_at = BTreeMap::new();
    if let Some(table) = find(&r.spanned, &[Step::Key("crm"), Step::Key("forward")]) {
        forward_at.insert(String::new(), table.span().start);
        for (key, value) in table.get_ref().as_table().into_iter().flatten() {
            forward_at.insert(key.get_ref().to_string(), key.span().start);
            for (inner, _) in value.get_ref().as_table().into_iter().flatten() {
                forward_at.insert(
                    format!("{}.{}", key.get_ref(), inner.get_ref()),
                    inner.span().start,
                );
            }
        }
    }
    let incentives = optional("incentives").and_then(|(v, span)| {
        r.piece::<crate::incentives::IncentivesDoc>(
            "incentives",
            &[Step::Key("incentives")],
            &v,
            span.clone(),
        )
        .map(|doc| (doc, span.start))
    });

    let mut mapped = Vec::new();
    if let Some((value, span)) = optional("fields") {
        match value {
            toml::Value::Table(table) => {
                for (name, entry) in &table {
                    let at = find(&r.spanned, &[Step::Key("fields")])
                        .and_then(|v| v.get_ref().as_table())
                        .and_then(|t| t.keys().find(|k| k.get_ref().as_ref() == name.as_str()))
                        .map_or(span.start, |k| k.span().start);
                    if let Some(doc) = r.piece::<fields::FieldDoc>(
                        &format!("fields.{name}"),
                        &[Step::Key("fields"), Step::Key(name)],
                        entry,
                        span.clone(),
                    ) {
                        mapped.push((name.clone(), at, doc));
                    }
                }
            }
            _ => r.issues.push((
                span.start,
                "fields: must be a table ([fields], one entry per field: name = { object = \"contact\", property = \"…\", type = \"text\" })".to_owned(),
            )),
        }
    }

    // Stages: each threshold on its own, with a neutral placeholder when unreadable (so no
    // follow-on error is reported about it).
    let placeholder = (
        Threshold {
            min_fit: 0,
            min_total: 0,
        },
        Threshold {
            min_fit: 0,
            min_total: 1,
        },
    );
    let stages = match top.get("stages") {
        None => {
            r.issues.push((
                0,
                "missing key `stages` (with [stages.mql] and [stages.sql])".to_owned(),
            ));
            None
        }
        Some(spanned) => match spanned.get_ref() {
            toml::Value::Table(table) => {
                for key in table
                    .keys()
                    .filter(|k| !["mql", "sql", "recycled"].contains(&k.as_str()))
                {
                    let at = find(&r.spanned, &[Step::Key("stages")])
                        .and_then(|v| v.get_ref().as_table())
                        .and_then(|t| t.keys().find(|k| k.get_ref().as_ref() == key.as_str()))
                        .map_or_else(
                            || locate(text, spanned.span(), &format!("`{key}`")),
                            |k| k.span().start,
                        );
                    r.issues.push((
                        at,
                        format!("stages: unknown stage `{key}`, expected mql and sql"),
                    ));
                }
                let mut threshold =
                    |name: &str| -> Option<(toml::Spanned<Threshold>, Vec<String>)> {
                        let at = locate(text, 0..text.len(), &format!("`stages.{name}`"));
                        let span = at..text.len();
                        match table.get(name) {
                            None => {
                                r.issues.push((
                                    spanned.span().start,
                                    format!("stages: missing `{name}`"),
                                ));
                                None
                            }
                            Some(v) => r
                                .piece::<StageDoc>(
                                    &format!("stages.{name}"),
                                    &[Step::Key("stages"), Step::Key(name)],
                                    v,
                                    span.clone(),
                                )
                                .map(|d| {
                                    (
                                        toml::Spanned::new(
                                            span,
                                            Threshold {
                                                min_fit: d.min_fit,
                                                min_total: d.min_total,
                                            },
                                        ),
                                        d.require,
                                    )
                                }),
                        }
                    };
                match (threshold("mql"), threshold("sql")) {
                    (Some((mql, mql_require)), Some((sql, sql_require))) => {
                        let at = locate(text, 0..text.len(), "`stages.recycled`");
                        let recycled = table
                            .get("recycled")
                            .and_then(|v| {
                                r.piece::<RecycledDoc>(
                                    "stages.recycled",
                                    &[Step::Key("stages"), Step::Key("recycled")],
                                    v,
                                    at..text.len(),
                                )
                            })
                            .map(|d| d.lead_status)
                            .unwrap_or_default();
                        Some(Stages {
                            mql,
                            sql,
                            mql_require,
                            sql_require,
                            recycled,
                        })
                    }
                    _ => None,
                }
            }
            _ => {
                r.issues.push((
                    spanned.span().start,
                    "stages: must be a table ([stages.mql], [stages.sql])".to_owned(),
                ));
                None
            }
        },
    };
    let stages = stages.unwrap_or_else(|| Stages {
        mql: toml::Spanned::new(0..0, placeholder.0),
        sql: toml::Spanned::new(0..0, placeholder.1),
        mql_require: Vec::new(),
        sql_require: Vec::new(),
        recycled: Vec::new(),
    });
    let entries = |r: &mut Reader<'_>,
                   what: &str,
                   key: &str,
                   list: &[toml::Spanned<toml::Value>]|
     -> Vec<toml::Spanned<RuleDoc>> {
        list.iter()
            .enumerate()
            .filter_map(|(i, e)| {
                r.piece::<RuleDoc>(
                    what,
                    &[Step::Key(key), Step::Index(i)],
                    e.get_ref(),
                    e.span(),
                )
                .map(|rule| toml::Spanned::new(e.span(), rule))
            })
            .collect()
    };
    let fit = entries(&mut r, "fit rule", "fit", &lists.fit);
    let engagement = entries(&mut r, "engagement rule", "engagement", &lists.engagement);
    let disqualify = entries(&mut r, "disqualifier", "disqualify", &lists.disqualify);
    let mut bands: Vec<toml::Spanned<BandDoc>> = lists
        .bands
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            r.piece::<BandDoc>(
                "band",
                &[Step::Key("bands"), Step::Index(i)],
                e.get_ref(),
                e.span(),
            )
            .map(|b| toml::Spanned::new(e.span(), b))
        })
        .collect();
    if bands.is_empty() && !lists.bands.is_empty() {
        // Every band was unreadable (already reported): a placeholder avoids a second error.
        bands.push(toml::Spanned::new(
            0..0,
            BandDoc {
                name: "?".into(),
                min_total: 0,
            },
        ));
    }
    let doc = Document {
        id,
        version,
        effective,
        approved_by,
        stages,
        caps,
        bands,
        fit,
        engagement,
        disqualify,
        crm,
        incentives,
        fields: mapped,
        forward_at,
    };
    Ok((doc, r.issues))
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// One problem in a criteria document, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriteriaIssue {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A criteria document that cannot be used: every problem found, each with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CriteriaError {
    pub source_name: String,
    pub issues: Vec<CriteriaIssue>,
}

impl fmt::Display for CriteriaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.source_name, issue.line, issue.column, issue.message
            )?;
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

// ---------------------------------------------------------------------------------------------
// The compiled form.

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    AnyOf(HashSet<String>),
    NoneOf(HashSet<String>),
    /// Lowercased needles: the value contains one of them.
    Contains(Vec<String>),
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
    Missing,
    PointsEach {
        each: i64,
        cap: Option<i64>,
    },
    Is(bool),
    /// The date lies at most this many days before now (and not after it).
    Within(u32),
    /// The date lies more than this many days before now.
    OlderThan(u32),
    /// The date lies now or at most this many days ahead.
    DueWithin(u32),
}

impl Condition {
    /// The instants after `date` at which a date condition on it changes its verdict.
    fn flips(&self, date: DateTime<Utc>) -> [Option<DateTime<Utc>>; 2] {
        let days = |d: u32| chrono::Duration::days(i64::from(d));
        match *self {
            Condition::Within(d) => [Some(date), date.checked_add_signed(days(d))],
            Condition::OlderThan(d) => [date.checked_add_signed(days(d)), None],
            Condition::DueWithin(d) => [date.checked_sub_signed(days(d)), Some(date)],
            _ => [None, None],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    code: String,
    label: String,
    field: Field,
    condition: Condition,
    points: i64,
    recency: Option<Recency>,
}

/// Time window and decay of an engagement rule, measured from the channel's last activity.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Recency {
    within_days: Option<u32>,
    half_life_days: Option<f64>,
}

impl Field {
    /// The last-activity time of a count field, for windows and decay.
    fn last_activity(self, lead: &Lead) -> Option<Option<DateTime<Utc>>> {
        let e = &lead.engagement;
        match self {
            Field::PageViews => Some(e.last_page_view_at),
            Field::EmailOpens => Some(e.last_email_open_at),
            Field::EmailClicks => Some(e.last_email_click_at),
            Field::FormSubmissions => Some(e.last_form_submission_at),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Fit,
    Engagement,
    Disqualify,
}

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

/// How one rule came out for one lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonOutcome {
    Matched,
    NotMatched,
    Missing,
}

/// One rule's verdict on one lead: what was seen, where it came from, what it earned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub label: String,
    pub outcome: ReasonOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub points: i64,
    /// Provenance of a firmographic value (`crm`, a provider name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The rule is a disqualifier (matched: the lead is out, whatever it scores).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disqualifier: bool,
}

/// The result of evaluating one lead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scorecard {
    pub stage: Stage,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    pub band: String,
    pub criteria_version: String,
    /// One entry per rule of the document, in document order (disqualifiers, fit, engagement).
    pub reasons: Vec<Reason>,
}

impl Scorecard {
    /// Codes of the rules that matched, in document order.
    pub fn matched_codes(&self) -> impl Iterator<Item = &str> {
        self.reasons
            .iter()
            .filter(|r| r.outcome == ReasonOutcome::Matched)
            .map(|r| r.code.as_str())
    }

    /// Why, in words a rep reads, one line each, most telling first: the disqualifiers that
    /// matched, the scoring rules that matched by the size of their points (with the value
    /// seen: `+20 Core industry … [INTERNET]`, `-10 …`), then the rules that could not be
    /// judged for want of data (`Unknown: …`: not enriched, BANT not recorded), at most
    /// [`SUMMARY_LIMIT`] characters (whole lines; the rest counted in a last line). A lead no
    /// rule said anything about gets one line saying so.
    pub fn summary(&self) -> String {
        let seen = |r: &Reason| {
            r.value
                .as_deref()
                .map(|v| format!(" [{v}]"))
                .unwrap_or_default()
        };
        let mut disqualified = Vec::new();
        let mut scored: Vec<&Reason> = Vec::new();
        let mut unknown = Vec::new();
        for r in &self.reasons {
            match r.outcome {
                ReasonOutcome::Matched if r.disqualifier => {
                    disqualified.push(format!("Disqualified: {}{}", r.label, seen(r)));
                }
                ReasonOutcome::Matched => scored.push(r),
                ReasonOutcome::Missing if !r.disqualifier => {
                    unknown.push(format!("Unknown: {} (no data)", r.label));
                }
                ReasonOutcome::Missing | ReasonOutcome::NotMatched => {}
            }
        }
        scored.sort_by_key(|r| std::cmp::Reverse(r.points.abs()));
        let lines: Vec<String> = disqualified
            .into_iter()
            .chain(
                scored
                    .iter()
                    .map(|r| format!("{:+} {}{}", r.points, r.label, seen(r))),
            )
            .chain(unknown)
            .collect();
        if lines.is_empty() {
            // Said in words too: an empty field reads as "never scored".
            return format!(
                "No rule of criteria {} matched: score {}",
                self.criteria_version, self.total
            );
        }
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let more = lines.len() - i;
            let tail = format!("… and {more} more");
            let needed = out.chars().count() + line.chars().count() + 1;
            if needed + tail.chars().count() + 1 > SUMMARY_LIMIT && more > 1
                || needed > SUMMARY_LIMIT
            {
                out.push_str(&tail);
                return out;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.trim_end().to_owned()
    }

    /// The CRM properties this result maps to, under the document's mapping.
    pub fn crm_properties(&self, mapping: &CrmMapping) -> BTreeMap<String, String> {
        let reasons: Vec<&str> = self.matched_codes().collect();
        BTreeMap::from([
            (mapping.stage.clone(), self.stage.as_str().to_owned()),
            (mapping.score.clone(), self.total.to_string()),
            (mapping.fit_score.clone(), self.fit.to_string()),
            (
                mapping.engagement_score.clone(),
                self.engagement.to_string(),
            ),
            (mapping.summary.clone(), self.summary()),
            (mapping.band.clone(), self.band.clone()),
            (mapping.reasons.clone(), reasons.join(";")),
            (
                mapping.criteria_version.clone(),
                self.criteria_version.clone(),
            ),
        ])
    }
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
    /// when the CRM lacks them, never written: [`crate::ports::PropertySpec::read_only`]).
    pub fn crm_property_specs(&self) -> Vec<crate::ports::PropertySpec> {
        use crate::ports::{PropertyKind, PropertySpec};
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

    /// True when both sales and marketing have signed: only then may a version be published.
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

    pub fn is_signed(&self) -> bool {
        self.sales_sign_off.is_some() && self.marketing_sign_off.is_some()
    }

    /// Stage, scores, band and which rules matched, as of `now` — without the explanation, and
    /// without allocating. What simulation and bulk scoring use; [`Criteria::evaluate`] gives
    /// the same numbers plus the reasons.
    pub fn score(&self, lead: &Lead, now: DateTime<Utc>) -> Score {
        self.judge_all(lead, now, |_, _| {})
    }

    /// Judge every rule for one lead, hand each verdict to `each`, and total them up. The one
    /// place the scoring arithmetic lives: `score` and `evaluate` differ only in `each`.
    fn judge_all<'a>(
        &'a self,
        lead: &'a Lead,
        now: DateTime<Utc>,
        mut each: impl FnMut(&Rule, &Judged<'a>),
    ) -> Score {
        let domain = lead.email_domain_raw();
        let (mut fit, mut engagement, mut disqualified, mut matched) = (0i64, 0i64, false, 0u128);
        for (index, (group, rule)) in self.rules.iter().enumerate() {
            let judged = rule.judge(lead, domain, now, &self.fields);
            if judged.outcome == ReasonOutcome::Matched {
                matched |= 1 << index;
            }
            match (group, judged.outcome) {
                (Group::Disqualify, ReasonOutcome::Matched) => disqualified = true,
                (Group::Fit, _) => fit += judged.points,
                (Group::Engagement, _) => engagement += judged.points,
                (Group::Disqualify, _) => {}
            }
            each(rule, &judged);
        }
        self.finish(
            fit,
            engagement,
            disqualified,
            self.is_recycled(lead),
            matched,
        )
    }

    /// Sales sent the lead back (its status is one the agreement lists under recycled).
    fn is_recycled(&self, lead: &Lead) -> bool {
        !self.recycled_statuses.is_empty()
            && lead
                .lead_status
                .as_deref()
                .is_some_and(|s| contains_folded(&self.recycled_statuses, s.trim()))
    }

    fn finish(
        &self,
        fit: i64,
        engagement: i64,
        disqualified: bool,
        recycled: bool,
        matched: u128,
    ) -> Score {
        let fit = fit.clamp(0, self.caps.fit);
        let engagement = engagement.clamp(0, self.caps.engagement);
        let total = (fit + engagement).min(self.caps.total);
        let stage = if disqualified {
            Stage::Disqualified
        } else if recycled {
            Stage::Recycled
        } else if fit >= self.sql.min_fit
            && total >= self.sql.min_total
            && matched & self.sql_require == self.sql_require
        {
            Stage::Sql
        } else if fit >= self.mql.min_fit
            && total >= self.mql.min_total
            && matched & self.mql_require == self.mql_require
        {
            Stage::Mql
        } else {
            Stage::Iql
        };
        let band = self
            .bands
            .iter()
            .position(|(_, min)| total >= *min)
            .unwrap_or(self.bands.len().saturating_sub(1));
        Score {
            stage,
            fit,
            engagement,
            total,
            band: band as u8,
            matched,
        }
    }

    /// The name of a band index of a [`Score`].
    pub fn band_name(&self, band: u8) -> &str {
        self.bands
            .get(usize::from(band))
            .map_or("", |(name, _)| name.as_str())
    }

    /// The index of a band by name (for comparing with a [`Score`]).
    pub fn band_index(&self, name: &str) -> u8 {
        self.bands
            .iter()
            .position(|(n, _)| n == name)
            .map_or(0, |i| u8::try_from(i).unwrap_or(u8::MAX))
    }

    /// The codes of the rules a [`Score`] says matched, in document order.
    pub fn matched_codes(&self, score: &Score) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .enumerate()
            .filter(move |(i, _)| score.matched & (1 << i) != 0)
            .map(|(_, (_, r))| r.code.as_str())
    }

    /// When time alone next changes the lead's stage or band — engagement decaying, an
    /// activity window closing — if nothing else about it changes: the first whole hour (UTC)
    /// at which it has changed, within 400 days; `None` when it never does.
    ///
    /// A score only falls as time passes (decay and windows take points away, never add
    /// them), so the first changed hour is found by bisection: ~14 scorings per lead. The
    /// answer is the same whatever `now` is before the change, so storing it writes nothing new
    /// on the nights in between.
    pub fn next_change(&self, lead: &Lead, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let dated = |r: &Rule| {
            matches!(
                r.condition,
                Condition::Within(_) | Condition::OlderThan(_) | Condition::DueWithin(_)
            )
        };
        if !self
            .rules
            .iter()
            .any(|(_, r)| r.recency.is_some() || dated(r))
        {
            return None;
        }
        // Date conditions change their verdict at known instants; between them (and before
        // the first) only windows and decay change anything, and those only take points away.
        let first_flip = self
            .rules
            .iter()
            .filter(|(_, r)| dated(r))
            .filter_map(|(_, r)| {
                let date = observe(lead, r.field, None, &self.fields).date?;
                r.condition
                    .flips(date)
                    .into_iter()
                    .flatten()
                    .filter(|t| *t >= now)
                    .min()
            })
            .min();
        let at = |hour: i64| DateTime::from_timestamp(hour.checked_mul(3600)?, 0);
        let key = |when: DateTime<Utc>| {
            let s = self.score(lead, when);
            (s.stage, s.band)
        };
        let base = key(now);
        let mut lo = now.timestamp().div_euclid(3600) + 1;
        let horizon = lo + 24 * 400;
        // The first whole hour after the first flip: re-scored then, whatever it changes.
        let flip_hour = first_flip.map(|t| t.timestamp().div_euclid(3600) + 1);
        let mut hi = flip_hour.map_or(horizon, |h| h.clamp(lo, horizon));
        if key(at(hi)?) == base {
            return flip_hour.filter(|h| *h <= horizon).and_then(|_| at(hi));
        }
        if key(at(lo)?) != base {
            return at(lo);
        }
        // Invariant: the score at `lo` is the base one, at `hi` it has changed.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if key(at(mid)?) == base {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        at(hi)
    }

    /// Score one lead as of `now` (time windows and decay are measured to it), with one reason
    /// per rule. Pure and deterministic: the same lead, document and `now` always give the
    /// same scorecard.
    pub fn evaluate(&self, lead: &Lead, now: DateTime<Utc>) -> Scorecard {
        let mut reasons = Vec::with_capacity(self.rules.len());
        let score = self.judge_all(lead, now, |rule, judged| reasons.push(judged.reason(rule)));
        if let Some(why) = &lead.not_enriched {
            reasons.push(Reason {
                code: "NOT_ENRICHED".to_owned(),
                label: "Scored without provider firmographics".to_owned(),
                outcome: ReasonOutcome::Missing,
                value: Some(why.clone()),
                points: 0,
                source: None,
                disqualifier: false,
            });
        }
        for (reason, (group, _)) in reasons.iter_mut().zip(&self.rules) {
            reason.disqualifier = *group == Group::Disqualify;
        }
        Scorecard {
            stage: score.stage,
            fit: score.fit,
            engagement: score.engagement,
            total: score.total,
            band: self.band_name(score.band).to_owned(),
            criteria_version: self.version.clone(),
            reasons,
        }
    }
}

/// The numbers of an evaluation without its explanation (see [`Criteria::score`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub stage: Stage,
    pub fit: i64,
    pub engagement: i64,
    pub total: i64,
    /// Index into the document's bands (highest first); see [`Criteria::band_name`].
    pub band: u8,
    /// Bit `i` set when rule `i` (document order: disqualifiers, fit, engagement) matched.
    pub matched: u128,
}

/// The most rules a document may have (a [`Score`] keeps one bit per rule).
pub const MAX_RULES: usize = 128;

/// A field's value for one lead, borrowed: in the slot of its type, and where it came from.
#[derive(Clone, Copy)]
struct Seen<'a> {
    text: Option<&'a str>,
    number: Option<f64>,
    /// The entries of a list field.
    list: Option<&'a [String]>,
    /// A multi-select property's value as the CRM gives it (`a;b;c`).
    joined: Option<&'a str>,
    date: Option<DateTime<Utc>>,
    flag: Option<bool>,
    /// A mapped property's value that does not read as its declared type, and that type.
    unreadable: Option<(&'a str, FieldType)>,
    source: Option<&'a str>,
}

const NOTHING: Seen<'static> = Seen {
    text: None,
    number: None,
    list: None,
    joined: None,
    date: None,
    flag: None,
    unreadable: None,
    source: None,
};

impl Seen<'_> {
    /// The lead has a value for the field (readable or not).
    fn present(&self) -> bool {
        self.text.is_some()
            || self.number.is_some()
            || self.list.is_some()
            || self.joined.is_some()
            || self.date.is_some()
            || self.flag.is_some()
            || self.unreadable.is_some()
    }
}

/// A date property's value: RFC 3339, epoch milliseconds (HubSpot), or a plain date.
pub(crate) fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            text.parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A number as a reason shows it: whole numbers without a decimal point.
fn show_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// A mapped property's text value for one lead: its own or its company's property, or the
/// most recently created deal that has a value.
fn mapped_value<'a>(lead: &'a Lead, field: &MappedField) -> Option<&'a str> {
    let present = |v: &'a String| Some(v.as_str()).filter(|v| !v.trim().is_empty());
    match field.object {
        CrmObject::Contact | CrmObject::Company => present(lead.properties.get(&field.key)?),
        CrmObject::Deal => lead
            .deals
            .iter()
            .filter_map(|d| {
                Some((
                    d.created_at,
                    &d.id,
                    present(d.properties.get(&field.property)?)?,
                ))
            })
            .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
            .map(|(_, _, v)| v),
    }
}

fn observe<'a>(
    lead: &'a Lead,
    field: Field,
    email_domain: Option<&'a str>,
    mapped: &'a [MappedField],
) -> Seen<'a> {
    fn text(value: Option<&str>) -> Seen<'_> {
        Seen {
            text: value.map(str::trim).filter(|v| !v.is_empty()),
            ..NOTHING
        }
    }
    fn count(n: u32) -> Seen<'static> {
        Seen {
            number: Some(f64::from(n)),
            ..NOTHING
        }
    }
    fn date(at: Option<DateTime<Utc>>) -> Seen<'static> {
        Seen {
            date: at,
            ..NOTHING
        }
    }
    let firmo = &lead.firmographics;
    match field {
        Field::Industry => firmo.industry.as_ref().map_or(NOTHING, |s| Seen {
            source: Some(&s.source.provider),
            ..text(Some(&s.value))
        }),
        Field::Country => firmo.country.as_ref().map_or(NOTHING, |s| Seen {
            source: Some(&s.source.provider),
            ..text(Some(&s.value))
        }),
        Field::Employees => firmo.employees.as_ref().map_or(NOTHING, |s| Seen {
            number: Some(s.value as f64),
            source: Some(&s.source.provider),
            ..NOTHING
        }),
        Field::AnnualRevenue => firmo.annual_revenue.as_ref().map_or(NOTHING, |s| Seen {
            number: Some(s.value as f64),
            source: Some(&s.source.provider),
            ..NOTHING
        }),
        // The address itself is never copied into a reason: reasons are written to the CRM,
        // snapshots and logs. Only whether it is present.
        Field::Email => text(
            lead.email
                .as_deref()
                .filter(|e| !e.trim().is_empty())
                .map(|_| "present"),
        ),
        Field::EmailDomain => text(email_domain),
        Field::JobTitle => text(lead.job_title.as_deref()),
        Field::Source => text(lead.source.as_deref()),
        Field::PageViews => count(lead.engagement.page_views),
        Field::EmailOpens => count(lead.engagement.email_opens),
        Field::EmailClicks => count(lead.engagement.email_clicks),
        Field::FormSubmissions => count(lead.engagement.form_submissions),
        Field::CompanyType => firmo.company_type.as_ref().map_or(NOTHING, |s| Seen {
            source: Some(&s.source.provider),
            ..text(Some(&s.value))
        }),
        Field::Technologies => firmo
            .technologies
            .as_ref()
            .filter(|s| !s.value.is_empty())
            .map_or(NOTHING, |s| Seen {
                list: Some(&s.value),
                source: Some(&s.source.provider),
                ..NOTHING
            }),
        Field::Budget => text(lead.bant.budget.as_deref()),
        Field::Authority => text(lead.bant.authority.as_deref()),
        Field::Need => text(lead.bant.need.as_deref()),
        Field::Timeline => text(lead.bant.timeline.as_deref()),
        Field::LeadStatus => text(lead.lead_status.as_deref()),
        Field::RejectionReason => text(lead.rejection_reason.as_deref()),
        Field::LastPageView => date(lead.engagement.last_page_view_at),
        Field::LastEmailOpen => date(lead.engagement.last_email_open_at),
        Field::LastEmailClick => date(lead.engagement.last_email_click_at),
        Field::LastFormSubmission => date(lead.engagement.last_form_submission_at),
        Field::LastActivity => date(lead.engagement.last_activity_at()),
        Field::Mapped(i) => {
            let Some(def) = mapped.get(usize::from(i)) else {
                return NOTHING;
            };
            let Some(raw) = mapped_value(lead, def) else {
                return NOTHING;
            };
            let unreadable = Seen {
                unreadable: Some((raw, def.kind)),
                ..NOTHING
            };
            match def.kind {
                FieldType::Text | FieldType::Enumeration => text(Some(raw)),
                FieldType::MultiSelect => Seen {
                    joined: Some(raw),
                    ..NOTHING
                },
                FieldType::Number => raw
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
                    .map_or(unreadable, |n| Seen {
                        number: Some(n),
                        ..NOTHING
                    }),
                FieldType::Date => parse_date(raw).map_or(unreadable, |d| date(Some(d))),
                FieldType::Boolean => parse_flag(raw).map_or(unreadable, |b| Seen {
                    flag: Some(b),
                    ..NOTHING
                }),
            }
        }
    }
}

/// Case-insensitive membership without allocating for short ASCII values.
fn contains_folded(set: &HashSet<String>, value: &str) -> bool {
    let mut buffer = [0u8; 128];
    if value.is_ascii() && value.len() <= buffer.len() {
        let folded = &mut buffer[..value.len()];
        folded.copy_from_slice(value.as_bytes());
        folded.make_ascii_lowercase();
        // ASCII in, ASCII out: always UTF-8.
        std::str::from_utf8(folded).is_ok_and(|v| set.contains(v))
    } else {
        set.contains(&value.to_lowercase())
    }
}

/// One rule's verdict on one lead, before it is written out as a [`Reason`].
struct Judged<'a> {
    outcome: ReasonOutcome,
    points: i64,
    seen: Seen<'a>,
    field: Field,
    /// Days since the channel's last activity, for rules with a window or decay.
    age_days: Option<f64>,
    /// The rule needs an activity date the lead does not have.
    no_date: bool,
    now: DateTime<Utc>,
}

impl Judged<'_> {
    fn reason(&self, rule: &Rule) -> Reason {
        let seen = &self.seen;
        let base = if let Some(t) = seen.text {
            Some(if self.field == Field::EmailDomain {
                t.trim_end_matches('.').to_lowercase()
            } else {
                t.to_owned()
            })
        } else if let Some(n) = seen.number {
            Some(show_number(n))
        } else if let Some(list) = seen.list {
            Some(list.join(";"))
        } else if let Some(joined) = seen.joined {
            Some(joined.trim().to_owned())
        } else if let Some(date) = seen.date {
            // A date, not "N days ago": the text is written to the CRM and must stay true
            // (and unchanged, so the next run writes nothing) as the days pass.
            Some(date.format("%Y-%m-%d").to_string())
        } else if let Some(flag) = seen.flag {
            Some(flag.to_string())
        } else {
            seen.unreadable
                .map(|(raw, kind)| format!("{} (not a {})", raw.trim(), kind.as_str()))
        };
        let value = match (base, self.age_days, self.no_date) {
            (Some(v), _, true) => Some(format!("{v} (no activity date)")),
            (Some(v), Some(age), false) => {
                let last = self.now - chrono::Duration::milliseconds((age * 86_400_000.0) as i64);
                Some(format!("{v}, last {}", last.format("%Y-%m-%d")))
            }
            (v, _, _) => v,
        };
        Reason {
            code: rule.code.clone(),
            label: rule.label.clone(),
            outcome: self.outcome,
            value,
            points: self.points,
            source: self.seen.source.map(str::to_owned),
            disqualifier: false,
        }
    }
}

impl Rule {
    fn judge<'a>(
        &self,
        lead: &'a Lead,
        email_domain: Option<&'a str>,
        now: DateTime<Utc>,
        mapped: &'a [MappedField],
    ) -> Judged<'a> {
        let seen = observe(lead, self.field, email_domain, mapped);
        let (outcome, points) = self.apply(&seen, now);
        let mut judged = Judged {
            outcome,
            points,
            seen,
            field: self.field,
            age_days: None,
            no_date: false,
            now,
        };
        if let (Some(recency), ReasonOutcome::Matched) = (self.recency, outcome) {
            match self.field.last_activity(lead).flatten() {
                None => {
                    judged.no_date = true;
                    (judged.outcome, judged.points) = (ReasonOutcome::Missing, 0);
                }
                Some(last) => {
                    // Activity dated after `now` counts as today.
                    let age = ((now - last).num_seconds().max(0) as f64) / 86_400.0;
                    judged.age_days = Some(age);
                    (judged.outcome, judged.points) = recency.adjust(age, points);
                }
            }
        }
        judged
    }

    fn apply(&self, seen: &Seen<'_>, now: DateTime<Utc>) -> (ReasonOutcome, i64) {
        use ReasonOutcome::{Matched, Missing, NotMatched};
        let hit = |matched: bool| {
            if matched {
                (Matched, self.points)
            } else {
                (NotMatched, 0)
            }
        };
        let any_entry = |pred: &dyn Fn(&str) -> bool| -> Option<bool> {
            if let Some(v) = seen.text {
                Some(pred(v))
            } else if let Some(list) = seen.list {
                Some(list.iter().any(|v| pred(v.trim())))
            } else {
                seen.joined.map(|raw| {
                    raw.split(';')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .any(pred)
                })
            }
        };
        let dated = |test: &dyn Fn(i64) -> bool| match seen.date {
            None => (Missing, 0),
            // Seconds from the date to now: positive in the past.
            Some(date) => hit(test((now - date).num_seconds())),
        };
        const DAY: i64 = 86_400;
        match &self.condition {
            Condition::Missing => hit(!seen.present()),
            Condition::AnyOf(set) => {
                any_entry(&|v| contains_folded(set, v)).map_or((Missing, 0), hit)
            }
            Condition::NoneOf(set) => {
                any_entry(&|v| contains_folded(set, v)).map_or((Missing, 0), |any| hit(!any))
            }
            Condition::Contains(needles) => any_entry(&|v| {
                let v = v.to_lowercase();
                needles.iter().any(|n| v.contains(n.as_str()))
            })
            .map_or((Missing, 0), hit),
            Condition::Range { min, max } => match seen.number {
                None => (Missing, 0),
                Some(n) => hit(min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
            },
            Condition::PointsEach { each, cap } => match seen.number {
                None => (Missing, 0),
                Some(n) if n < 1.0 => (NotMatched, 0),
                Some(n) => {
                    let raw = (n.floor() as i64).saturating_mul(*each);
                    (Matched, cap.map_or(raw, |c| raw.min(c)))
                }
            },
            Condition::Is(want) => match seen.flag {
                None => (Missing, 0),
                Some(b) => hit(b == *want),
            },
            Condition::Within(days) => dated(&|age| age >= 0 && age <= i64::from(*days) * DAY),
            Condition::OlderThan(days) => dated(&|age| age > i64::from(*days) * DAY),
            Condition::DueWithin(days) => dated(&|age| age <= 0 && -age <= i64::from(*days) * DAY),
        }
    }
}

impl Recency {
    /// The window and the decay applied to a matched rule's points.
    fn adjust(self, age_days: f64, points: i64) -> (ReasonOutcome, i64) {
        if self.within_days.is_some_and(|w| age_days > f64::from(w)) {
            return (ReasonOutcome::NotMatched, 0);
        }
        let points = match self.half_life_days {
            Some(half_life) => (points as f64 * 0.5f64.powf(age_days / half_life)).round() as i64,
            None => points,
        };
        (ReasonOutcome::Matched, points)
    }
}

fn compile(doc: Document, text: &str) -> Result<Criteria, Vec<CriteriaIssue>> {
    let mut issues = Vec::new();
    let mut issue_at = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        issues.push(CriteriaIssue {
            line,
            column,
            message,
        });
    };

    for (name, value) in [("id", &doc.id), ("version", &doc.version)] {
        if value.trim().is_empty() {
            issue_at(0, format!("`{name}` must not be empty"));
        }
    }
    if chrono::NaiveDate::parse_from_str(&doc.effective, "%Y-%m-%d").is_err() {
        issue_at(
            0,
            format!("`effective` {:?} is not a date (YYYY-MM-DD)", doc.effective),
        );
    }
    let (sales_sign_off, marketing_sign_off) = match &doc.approved_by {
        Some(approved) => {
            let at = approved.span().start;
            let inner = approved.get_ref();
            for (team, sign) in [("sales", &inner.sales), ("marketing", &inner.marketing)] {
                if let Some(sign) = sign {
                    if sign.name.trim().is_empty() {
                        issue_at(at, format!("approved_by.{team}.name must not be empty"));
                    }
                    if chrono::NaiveDate::parse_from_str(&sign.date, "%Y-%m-%d").is_err() {
                        issue_at(
                            at,
                            format!(
                                "approved_by.{team}.date {:?} is not a date (YYYY-MM-DD)",
                                sign.date
                            ),
                        );
                    }
                }
            }
            (inner.sales.clone(), inner.marketing.clone())
        }
        None => (None, None),
    };

    let caps = doc.caps;
    if caps.fit < 0 || caps.engagement < 0 || caps.total < 0 {
        issue_at(0, "caps must not be negative".to_owned());
    }
    let (mql, sql) = (*doc.stages.mql.get_ref(), *doc.stages.sql.get_ref());
    for (name, threshold, at) in [
        ("mql", mql, doc.stages.mql.span().start),
        ("sql", sql, doc.stages.sql.span().start),
    ] {
        if threshold.min_fit > caps.fit || threshold.min_total > caps.total {
            issue_at(
                at,
                format!(
                    "stage {name} is unreachable: min_fit {} / min_total {} exceed the caps fit {} / total {}",
                    threshold.min_fit, threshold.min_total, caps.fit, caps.total
                ),
            );
        }
        if threshold.min_total < 0 || threshold.min_fit < 0 {
            issue_at(at, format!("stage {name}: thresholds must not be negative"));
        }
    }
    if sql.min_fit < mql.min_fit || sql.min_total < mql.min_total || sql == mql {
        issue_at(
            doc.stages.sql.span().start,
            format!(
                "stage sql (min_fit {}, min_total {}) overlaps mql (min_fit {}, min_total {}): sql must ask for at least as much as mql on both, and more on one",
                sql.min_fit, sql.min_total, mql.min_fit, mql.min_total
            ),
        );
    }

    let mut bands = Vec::new();
    let mut band_names = HashSet::new();
    for band in &doc.bands {
        let b = band.get_ref();
        if !band_names.insert(b.name.clone()) {
            issue_at(
                band.span().start,
                format!("band {:?} is defined twice", b.name),
            );
        }
        if let Some((prev_name, prev_min)) = bands.last() {
            if b.min_total >= *prev_min {
                issue_at(
                    band.span().start,
                    format!(
                        "band {:?} (min_total {}) must come after bands with a higher min_total; {prev_name:?} has {prev_min}",
                        b.name, b.min_total
                    ),
                );
            }
        }
        bands.push((b.name.clone(), b.min_total));
    }
    if bands.is_empty() {
        issue_at(
            0,
            "at least one band is required (e.g. [[bands]] name = \"D\", min_total = 0)".to_owned(),
        );
    }

    // `[fields]`: names of their own, or inputs moved to other contact properties.
    let mut mapped: Vec<MappedField> = Vec::new();
    for (name, at, f) in &doc.fields {
        let (line, column) = line_col(text, *at);
        let built_in = BUILT_IN.iter().any(|(n, _)| n == name);
        let input = INPUTS.contains(&name.as_str());
        let problem = if name.is_empty()
            || !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            Some(format!(
                "fields.{name}: a field name is lower_snake_case (a-z, 0-9, _), starting with a letter"
            ))
        } else if built_in && !input {
            Some(format!(
                "fields.{name}: `{name}` is built in (read from the CRM's standard properties, then enrichment); give the field a name of your own to read another property. Of the built-in fields only the inputs sales records may be moved: {}",
                INPUTS.join(", ")
            ))
        } else if input && f.object != CrmObject::Contact {
            Some(format!(
                "fields.{name}: `{name}` is recorded on the contact; object must be \"contact\", not {:?}",
                f.object.as_str()
            ))
        } else if input && !matches!(f.kind, FieldType::Text | FieldType::Enumeration) {
            Some(format!(
                "fields.{name}: `{name}` is read as text; type must be \"text\" or \"enumeration\", not {:?}",
                f.kind.as_str()
            ))
        } else if f.property.trim().is_empty() || f.property.contains(char::is_whitespace) {
            Some(format!(
                "fields.{name}: property {:?} is not a property name",
                f.property
            ))
        } else {
            None
        };
        match problem {
            Some(message) => issue_at(*at, message),
            None => mapped.push(MappedField {
                name: name.clone(),
                object: f.object,
                property: f.property.clone(),
                kind: f.kind,
                key: match f.object {
                    CrmObject::Deal => f.property.clone(),
                    object => object.key(&f.property),
                },
                line,
                column,
            }),
        }
    }
    if mapped.len() > usize::from(u16::MAX) {
        issue_at(0, "too many [fields] entries".to_owned());
    }
    let resolve = |name: &str| -> Option<Field> {
        // A mapped input keeps its built-in meaning: the adapter reads it from the new property.
        match mapped
            .iter()
            .position(|f| f.name == name && !INPUTS.contains(&name))
        {
            Some(i) => u16::try_from(i).ok().map(Field::Mapped),
            None => BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, f)| *f),
        }
    };
    let mut input_values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();

    let mut rules = Vec::new();
    let mut codes = HashSet::new();
    for (group, list) in [
        (Group::Disqualify, &doc.disqualify),
        (Group::Fit, &doc.fit),
        (Group::Engagement, &doc.engagement),
    ] {
        for spanned in list {
            let at = spanned.span().start;
            let r = spanned.get_ref();
            if !codes.insert(r.code.clone()) {
                issue_at(
                    at,
                    format!(
                        "rule code {:?} is used twice: codes must be unique and stable",
                        r.code
                    ),
                );
            }
            if r.code.is_empty()
                || !r
                    .code
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                issue_at(
                    at,
                    format!(
                        "rule code {:?} must be UPPER_SNAKE_CASE (A-Z, 0-9, _)",
                        r.code
                    ),
                );
            }
            let Some(field) = resolve(&r.field) else {
                let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                issue_at(
                    key_in_table(text, at, "field"),
                    format!(
                        "rule {}: unknown field `{}`: not built in ({}) and not under [fields]",
                        r.code,
                        r.field,
                        names.join(", ")
                    ),
                );
                continue;
            };
            if let Some(input) = INPUTS.iter().find(|i| **i == r.field) {
                let values = input_values.entry(input).or_default();
                for v in r.any_of.iter().chain(&r.none_of).flatten() {
                    if !values.contains(v) {
                        values.push(v.clone());
                    }
                }
            }
            match compile_rule(group, r, field, &mapped) {
                Ok(rule) => rules.push((group, rule)),
                Err(message) => issue_at(at, format!("rule {}: {message}", r.code)),
            }
        }
    }

    let mut require = |stage: &str, codes: &[String], at: usize| -> u128 {
        let mut mask = 0u128;
        for code in codes {
            match rules
                .iter()
                .position(|(_, r): &(Group, Rule)| &r.code == code)
            {
                Some(i) if i < MAX_RULES => mask |= 1 << i,
                Some(_) => {}
                None => issue_at(
                    at,
                    format!(
                        "stage {stage} requires rule {code:?}, which the document does not define"
                    ),
                ),
            }
        }
        mask
    };
    let mql_require = require("mql", &doc.stages.mql_require, doc.stages.mql.span().start);
    let sql_require = require("sql", &doc.stages.sql_require, doc.stages.sql.span().start);
    let incentives = match doc.incentives {
        None => None,
        Some((plan, at)) => match crate::incentives::IncentivePlan::from_doc(plan) {
            Ok(plan) => Some(plan),
            Err(problems) => {
                for problem in problems {
                    issue_at(at, problem);
                }
                None
            }
        },
    };
    {
        let mut verdicts: Vec<&str> = doc.stages.recycled.iter().map(String::as_str).collect();
        if let Some(plan) = &incentives {
            verdicts.extend(plan.accepted_statuses.iter().map(String::as_str));
            verdicts.extend(plan.rejected_statuses.iter().map(String::as_str));
        }
        for (path, message) in doc.crm.forward.problems(&verdicts) {
            let at = doc
                .forward_at
                .get(&path)
                .or_else(|| doc.forward_at.get(""))
                .copied()
                .unwrap_or(0);
            issue_at(at, message);
        }
    }
    if rules.len() > MAX_RULES {
        issue_at(
            0,
            format!(
                "the document has {} rules; at most {MAX_RULES} are supported",
                rules.len()
            ),
        );
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Criteria {
        fields: mapped,
        source_name: String::new(),
        input_values,
        id: doc.id,
        version: doc.version,
        effective: doc.effective,
        sales_sign_off,
        marketing_sign_off,
        mql,
        sql,
        mql_require,
        sql_require,
        recycled_statuses: doc
            .stages
            .recycled
            .iter()
            .map(|s| s.trim().to_lowercase())
            .collect(),
        caps,
        bands,
        rules,
        crm: doc.crm,
        incentives,
    })
}

fn compile_rule(
    group: Group,
    r: &RuleDoc,
    field: Field,
    mapped: &[MappedField],
) -> Result<Rule, String> {
    let kind = field.kind(mapped);
    let name = r.field.as_str();
    let is_date = kind == FieldType::Date;
    let kinds = [
        r.any_of.is_some(),
        r.none_of.is_some(),
        r.contains.is_some(),
        r.min.is_some() || r.max.is_some(),
        r.missing.is_some(),
        r.points_each.is_some(),
        r.is.is_some(),
        is_date && r.within_days.is_some(),
        r.older_than_days.is_some(),
        r.due_within_days.is_some(),
    ]
    .into_iter()
    .filter(|k| *k)
    .count();
    if kinds != 1 {
        return Err(format!(
            "needs exactly one condition (any_of, none_of, contains, min/max, points_each, is, within_days/older_than_days/due_within_days on a date, missing = true); found {kinds}"
        ));
    }
    let text_like = matches!(
        kind,
        FieldType::Text | FieldType::Enumeration | FieldType::MultiSelect
    );
    let instead = match kind {
        FieldType::Number => "use min/max or points_each",
        FieldType::Date => "use within_days, older_than_days or due_within_days",
        FieldType::Boolean => "use is = true or is = false",
        _ => "use any_of, none_of or contains",
    };
    let wrong = |what: &str, needs: &str| {
        format!(
            "{what} needs {needs}; {name} is {} ({instead})",
            match kind {
                FieldType::Number => "a number".to_owned(),
                FieldType::Text => "text".to_owned(),
                other => format!("a {}", other.as_str()),
            }
        )
    };
    let lower = |list: &Vec<String>| {
        list.iter()
            .map(|s| s.trim().to_lowercase())
            .collect::<HashSet<_>>()
    };
    let condition = if let Some(list) = &r.any_of {
        if !text_like {
            return Err(wrong("any_of", "a text field"));
        }
        Condition::AnyOf(lower(list))
    } else if let Some(list) = &r.none_of {
        if !text_like {
            return Err(wrong("none_of", "a text field"));
        }
        Condition::NoneOf(lower(list))
    } else if let Some(list) = &r.contains {
        if !text_like {
            return Err(wrong("contains", "a text field"));
        }
        let needles: Vec<String> = list
            .iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if needles.is_empty() {
            return Err("contains needs at least one non-empty text".to_owned());
        }
        Condition::Contains(needles)
    } else if r.min.is_some() || r.max.is_some() {
        if kind != FieldType::Number {
            return Err(if text_like {
                format!("min/max need a numeric field; {name} is text (use any_of)")
            } else {
                wrong("min/max", "a numeric field")
            });
        }
        if let (Some(min), Some(max)) = (r.min, r.max) {
            if min > max {
                return Err(format!("min ({min}) is greater than max ({max})"));
            }
        }
        if r.min.is_some_and(|v| !v.is_finite()) || r.max.is_some_and(|v| !v.is_finite()) {
            return Err("min and max must be finite numbers".to_owned());
        }
        Condition::Range {
            min: r.min,
            max: r.max,
        }
    } else if r.missing == Some(true) {
        Condition::Missing
    } else if let Some(each) = r.points_each {
        if kind != FieldType::Number {
            return Err(format!(
                "points_each needs a numeric field; {name} is {}",
                if text_like { "text" } else { kind.as_str() }
            ));
        }
        if r.points.is_some() {
            return Err("points_each and points exclude each other".to_owned());
        }
        if r.cap.is_some_and(|c| c < 0) {
            return Err("cap must not be negative".to_owned());
        }
        Condition::PointsEach { each, cap: r.cap }
    } else if let Some(want) = r.is {
        if kind != FieldType::Boolean {
            return Err(wrong("is", "a boolean field"));
        }
        Condition::Is(want)
    } else if let (true, Some(days)) = (is_date, r.within_days) {
        if days == 0 {
            return Err("within_days must be at least 1".to_owned());
        }
        Condition::Within(days)
    } else if let Some(days) = r.older_than_days {
        if !is_date {
            return Err(wrong("older_than_days", "a date field"));
        }
        Condition::OlderThan(days)
    } else if let Some(days) = r.due_within_days {
        if !is_date {
            return Err(wrong("due_within_days", "a date field"));
        }
        Condition::DueWithin(days)
    } else {
        return Err(
            "missing = false is not a condition; remove it or set missing = true".to_owned(),
        );
    };
    let window = if is_date { None } else { r.within_days };
    let recency = match (window, r.half_life_days) {
        (None, None) => None,
        (within_days, half_life_days) => {
            if group != Group::Engagement || !field.is_counter() {
                return Err("within_days and half_life_days apply to engagement rules on page_views, email_opens, email_clicks or form_submissions (and within_days, as the condition, to date fields)".to_owned());
            }
            if within_days == Some(0) {
                return Err("within_days must be at least 1".to_owned());
            }
            if half_life_days.is_some_and(|h| !(h.is_finite() && h > 0.0)) {
                return Err("half_life_days must be a positive number of days".to_owned());
            }
            Some(Recency {
                within_days,
                half_life_days,
            })
        }
    };
    if r.cap.is_some() && !matches!(condition, Condition::PointsEach { .. }) {
        return Err("cap only applies to points_each rules".to_owned());
    }
    let points = match (group, &condition) {
        (_, Condition::PointsEach { .. }) => 0,
        (Group::Disqualify, _) => {
            if r.points.is_some() {
                return Err("disqualifiers carry no points".to_owned());
            }
            0
        }
        (_, _) => r.points.ok_or("needs `points`")?,
    };
    if group == Group::Disqualify && matches!(condition, Condition::PointsEach { .. }) {
        return Err("a disqualifier cannot use points_each".to_owned());
    }
    Ok(Rule {
        code: r.code.clone(),
        label: r.label.clone(),
        field,
        condition,
        points,
        recency,
    })
}

#[cfg(test)]
mod tests;
