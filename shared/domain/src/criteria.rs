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
    field: Field,
    #[serde(default)]
    any_of: Option<Vec<String>>,
    #[serde(default)]
    none_of: Option<Vec<String>>,
    #[serde(default)]
    min: Option<u64>,
    #[serde(default)]
    max: Option<u64>,
    #[serde(default)]
    missing: Option<bool>,
    #[serde(default)]
    points: Option<i64>,
    #[serde(default)]
    points_each: Option<i64>,
    #[serde(default)]
    cap: Option<i64>,
    /// Engagement only: count the rule only if the channel was active within this many days.
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
        }
    }
}

/// The longest [`Scorecard::summary`] (characters): inside a HubSpot textarea (65,536) and the
/// Long Text Area leadsync creates in Salesforce.
pub const SUMMARY_LIMIT: usize = 2_000;

/// A lead attribute a rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
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
}

impl Field {
    fn is_numeric(self) -> bool {
        matches!(
            self,
            Field::Employees
                | Field::AnnualRevenue
                | Field::PageViews
                | Field::EmailOpens
                | Field::EmailClicks
                | Field::FormSubmissions
        )
    }

    fn name(self) -> &'static str {
        match self {
            Field::Industry => "industry",
            Field::Employees => "employees",
            Field::AnnualRevenue => "annual_revenue",
            Field::Country => "country",
            Field::Email => "email",
            Field::EmailDomain => "email_domain",
            Field::JobTitle => "job_title",
            Field::Source => "source",
            Field::PageViews => "page_views",
            Field::EmailOpens => "email_opens",
            Field::EmailClicks => "email_clicks",
            Field::FormSubmissions => "form_submissions",
            Field::CompanyType => "company_type",
            Field::Technologies => "technologies",
            Field::Budget => "budget",
            Field::Authority => "authority",
            Field::Need => "need",
            Field::Timeline => "timeline",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the document piece by piece, so that every problem is reported at once.

/// The top-level keys a document may have.
const TOP_KEYS: &[&str] = &[
    "id",
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
    let incentives = optional("incentives").and_then(|(v, span)| {
        r.piece::<crate::incentives::IncentivesDoc>(
            "incentives",
            &[Step::Key("incentives")],
            &v,
            span.clone(),
        )
        .map(|doc| (doc, span.start))
    });

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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    AnyOf(HashSet<String>),
    NoneOf(HashSet<String>),
    Range { min: Option<u64>, max: Option<u64> },
    Missing,
    PointsEach { each: i64, cap: Option<i64> },
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
    /// [`SUMMARY_LIMIT`] characters (whole lines; the rest counted in a last line).
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
        let semantic = compile(doc, text);
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

    /// The CRM properties the results are written to, with their kinds and allowed values.
    pub fn crm_property_specs(&self) -> Vec<crate::ports::PropertySpec> {
        use crate::ports::{PropertyKind, PropertySpec};
        let spec = |name: &str, label: &str, kind, options: Vec<String>| PropertySpec {
            name: name.to_owned(),
            label: label.to_owned(),
            kind,
            options,
        };
        vec![
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
        ]
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
        &self,
        lead: &'a Lead,
        now: DateTime<Utc>,
        mut each: impl FnMut(&Rule, &Judged<'a>),
    ) -> Score {
        let domain = lead.email_domain_raw();
        let (mut fit, mut engagement, mut disqualified, mut matched) = (0i64, 0i64, false, 0u128);
        for (index, (group, rule)) in self.rules.iter().enumerate() {
            let judged = rule.judge(lead, domain, now);
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
        if !self.rules.iter().any(|(_, r)| r.recency.is_some()) {
            return None;
        }
        let at = |hour: i64| DateTime::from_timestamp(hour.checked_mul(3600)?, 0);
        let key = |when: DateTime<Utc>| {
            let s = self.score(lead, when);
            (s.stage, s.band)
        };
        let base = key(now);
        let mut lo = now.timestamp().div_euclid(3600) + 1;
        let mut hi = lo + 24 * 400;
        if key(at(hi)?) == base {
            return None;
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

/// A field's value for one lead, borrowed: text (trimmed), number, and where it came from.
#[derive(Clone, Copy)]
struct Seen<'a> {
    text: Option<&'a str>,
    number: Option<u64>,
    /// The entries of a list field.
    list: Option<&'a [String]>,
    source: Option<&'a str>,
}

const NOTHING: Seen<'static> = Seen {
    text: None,
    number: None,
    list: None,
    source: None,
};

fn observe<'a>(lead: &'a Lead, field: Field, email_domain: Option<&'a str>) -> Seen<'a> {
    fn text(value: Option<&str>) -> Seen<'_> {
        Seen {
            text: value.map(str::trim).filter(|v| !v.is_empty()),
            number: None,
            list: None,
            source: None,
        }
    }
    fn count(n: u32) -> Seen<'static> {
        Seen {
            text: None,
            number: Some(u64::from(n)),
            list: None,
            source: None,
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
            text: None,
            number: Some(s.value),
            list: None,
            source: Some(&s.source.provider),
        }),
        Field::AnnualRevenue => firmo.annual_revenue.as_ref().map_or(NOTHING, |s| Seen {
            text: None,
            number: Some(s.value),
            list: None,
            source: Some(&s.source.provider),
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
                text: None,
                number: None,
                list: Some(&s.value),
                source: Some(&s.source.provider),
            }),
        Field::Budget => text(lead.bant.budget.as_deref()),
        Field::Authority => text(lead.bant.authority.as_deref()),
        Field::Need => text(lead.bant.need.as_deref()),
        Field::Timeline => text(lead.bant.timeline.as_deref()),
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
}

impl Judged<'_> {
    fn reason(&self, rule: &Rule) -> Reason {
        let base = match (self.seen.text, self.seen.number) {
            (Some(t), _) if self.field == Field::EmailDomain => {
                Some(t.trim_end_matches('.').to_lowercase())
            }
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(n)) => Some(n.to_string()),
            (None, None) => self.seen.list.map(|l| l.join(";")),
        };
        let value = match (base, self.age_days, self.no_date) {
            (Some(v), _, true) => Some(format!("{v} (no activity date)")),
            (Some(v), Some(age), false) => Some(format!("{v}, last {:.0} days ago", age.floor())),
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
    ) -> Judged<'a> {
        let seen = observe(lead, self.field, email_domain);
        let (outcome, points) = self.apply(&seen);
        let mut judged = Judged {
            outcome,
            points,
            seen,
            field: self.field,
            age_days: None,
            no_date: false,
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

    fn apply(&self, seen: &Seen<'_>) -> (ReasonOutcome, i64) {
        use ReasonOutcome::{Matched, Missing, NotMatched};
        let hit = |matched: bool| {
            if matched {
                (Matched, self.points)
            } else {
                (NotMatched, 0)
            }
        };
        match &self.condition {
            Condition::Missing => {
                hit(seen.text.is_none() && seen.number.is_none() && seen.list.is_none())
            }
            Condition::AnyOf(set) => match (seen.text, seen.list) {
                (Some(v), _) => hit(contains_folded(set, v)),
                (None, Some(list)) => hit(list.iter().any(|v| contains_folded(set, v.trim()))),
                (None, None) => (Missing, 0),
            },
            Condition::NoneOf(set) => match (seen.text, seen.list) {
                (Some(v), _) => hit(!contains_folded(set, v)),
                (None, Some(list)) => hit(!list.iter().any(|v| contains_folded(set, v.trim()))),
                (None, None) => (Missing, 0),
            },
            Condition::Range { min, max } => match seen.number {
                None => (Missing, 0),
                Some(n) => hit(min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)),
            },
            Condition::PointsEach { each, cap } => match seen.number {
                None => (Missing, 0),
                Some(0) => (NotMatched, 0),
                Some(n) => {
                    let raw = i64::try_from(n).unwrap_or(i64::MAX).saturating_mul(*each);
                    (Matched, cap.map_or(raw, |c| raw.min(c)))
                }
            },
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
            match compile_rule(group, r) {
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

fn compile_rule(group: Group, r: &RuleDoc) -> Result<Rule, String> {
    let field = r.field;
    let kinds = [
        r.any_of.is_some(),
        r.none_of.is_some(),
        r.min.is_some() || r.max.is_some(),
        r.missing.is_some(),
        r.points_each.is_some(),
    ]
    .into_iter()
    .filter(|k| *k)
    .count();
    if kinds != 1 {
        return Err(format!(
            "needs exactly one condition (any_of, none_of, min/max, missing = true, points_each); found {kinds}"
        ));
    }
    let lower = |list: &Vec<String>| {
        list.iter()
            .map(|s| s.trim().to_lowercase())
            .collect::<HashSet<_>>()
    };
    let condition = if let Some(list) = &r.any_of {
        if field.is_numeric() {
            return Err(format!(
                "any_of needs a text field; {} is a number (use min/max)",
                field.name()
            ));
        }
        Condition::AnyOf(lower(list))
    } else if let Some(list) = &r.none_of {
        if field.is_numeric() {
            return Err(format!(
                "none_of needs a text field; {} is a number (use min/max)",
                field.name()
            ));
        }
        Condition::NoneOf(lower(list))
    } else if r.min.is_some() || r.max.is_some() {
        if !field.is_numeric() {
            return Err(format!(
                "min/max need a numeric field; {} is text (use any_of)",
                field.name()
            ));
        }
        if let (Some(min), Some(max)) = (r.min, r.max) {
            if min > max {
                return Err(format!("min ({min}) is greater than max ({max})"));
            }
        }
        Condition::Range {
            min: r.min,
            max: r.max,
        }
    } else if r.missing == Some(true) {
        Condition::Missing
    } else if let Some(each) = r.points_each {
        if !field.is_numeric() {
            return Err(format!(
                "points_each needs a numeric field; {} is text",
                field.name()
            ));
        }
        if r.points.is_some() {
            return Err("points_each and points exclude each other".to_owned());
        }
        if r.cap.is_some_and(|c| c < 0) {
            return Err("cap must not be negative".to_owned());
        }
        Condition::PointsEach { each, cap: r.cap }
    } else {
        return Err(
            "missing = false is not a condition; remove it or set missing = true".to_owned(),
        );
    };
    let recency = match (r.within_days, r.half_life_days) {
        (None, None) => None,
        (within_days, half_life_days) => {
            if group != Group::Engagement
                || !field.is_numeric()
                || matches!(field, Field::Employees | Field::AnnualRevenue)
            {
                return Err("within_days and half_life_days apply to engagement rules on page_views, email_opens, email_clicks or form_submissions".to_owned());
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
