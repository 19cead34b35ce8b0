//! The criteria document as written: the TOML shape serde reads (`Document` and its tables),
//! the public settings it carries (sign-offs, thresholds, caps, the CRM mapping) and the
//! inputs leadsync owns.

use super::*;

// ---------------------------------------------------------------------------------------------
// The document as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Document {
    pub(super) id: String,
    pub(super) version: String,
    pub(super) effective: String,
    #[serde(default)]
    pub(super) approved_by: Option<toml::Spanned<ApprovedBy>>,
    pub(super) stages: Stages,
    #[serde(default)]
    pub(super) caps: Caps,
    pub(super) bands: Vec<toml::Spanned<BandDoc>>,
    #[serde(default)]
    pub(super) fit: Vec<toml::Spanned<RuleDoc>>,
    #[serde(default)]
    pub(super) engagement: Vec<toml::Spanned<RuleDoc>>,
    #[serde(default)]
    pub(super) disqualify: Vec<toml::Spanned<RuleDoc>>,
    #[serde(default)]
    pub(super) crm: CrmMapping,
    #[serde(skip)]
    pub(super) incentives: Option<(crate::incentives::IncentivesDoc, usize)>,
    /// `[fields]`: each entry's name, where its key stands, and what it says.
    #[serde(skip)]
    pub(super) fields: Vec<(String, usize, fields::FieldDoc)>,
    /// Where the keys of `[crm.forward]` stand (`lifecycle_stage.sql`, …; `""`: the table).
    #[serde(skip)]
    pub(super) forward_at: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovedBy {
    pub(super) sales: Option<SignOff>,
    pub(super) marketing: Option<SignOff>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Stages {
    pub(super) mql: toml::Spanned<Threshold>,
    pub(super) sql: toml::Spanned<Threshold>,
    /// Rule codes that must match for a lead to reach the stage (e.g. BANT confirmations).
    pub(super) mql_require: Vec<String>,
    pub(super) sql_require: Vec<String>,
    /// Sales statuses (`hs_lead_status`) that send a lead back to marketing.
    pub(super) recycled: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecycledDoc {
    pub(super) lead_status: Vec<String>,
}

/// A stage as written: its bar and the rules it requires.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StageDoc {
    pub(super) min_fit: i64,
    pub(super) min_total: i64,
    #[serde(default)]
    pub(super) require: Vec<String>,
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
pub(super) struct BandDoc {
    pub(super) name: String,
    pub(super) min_total: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleDoc {
    pub(super) code: String,
    pub(super) label: String,
    pub(super) field: String,
    #[serde(default)]
    pub(super) any_of: Option<Vec<String>>,
    /// Text fields: matched when the value contains any of these (case-insensitive).
    #[serde(default)]
    pub(super) contains: Option<Vec<String>>,
    /// Date fields: matched when the date is more than this many days before now.
    #[serde(default)]
    pub(super) older_than_days: Option<u32>,
    /// Date fields: matched when the date is now or within this many days ahead (a renewal, a
    /// contract end).
    #[serde(default)]
    pub(super) due_within_days: Option<u32>,
    /// Boolean fields: matched when the value is this.
    #[serde(default)]
    pub(super) is: Option<bool>,
    #[serde(default)]
    pub(super) none_of: Option<Vec<String>>,
    #[serde(default)]
    pub(super) min: Option<f64>,
    #[serde(default)]
    pub(super) max: Option<f64>,
    #[serde(default)]
    pub(super) missing: Option<bool>,
    #[serde(default)]
    pub(super) points: Option<i64>,
    #[serde(default)]
    pub(super) points_each: Option<i64>,
    #[serde(default)]
    pub(super) cap: Option<i64>,
    /// Engagement counts: count the rule only if the channel was active within this many days.
    /// Date fields: matched when the date lies within this many days before now.
    #[serde(default)]
    pub(super) within_days: Option<u32>,
    /// Engagement only: halve the rule's points every this many days since the last activity.
    #[serde(default)]
    pub(super) half_life_days: Option<f64>,
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
pub(super) const OWNED_INPUTS: &[(&str, &str, &str, &[&str])] = &[
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
pub(super) enum Field {
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
pub(super) const BUILT_IN: &[(&str, Field)] = &[
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
    pub(super) fn kind(self, mapped: &[MappedField]) -> FieldType {
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
    pub(super) fn is_counter(self) -> bool {
        matches!(
            self,
            Field::PageViews | Field::EmailOpens | Field::EmailClicks | Field::FormSubmissions
        )
    }
}
