//! The document's `[fields]`: where a field's value lives in the CRM — any contact, company or
//! deal property, with its type — and the check of that mapping against the CRM's own property
//! definitions (what `criteria publish` and every run's start do).
//!
//! The built-in fields (industry, employees, …) keep their own sources: the CRM's standard
//! properties, then enrichment. Six of them are *inputs* sales records — `budget`, `authority`,
//! `need`, `timeline`, `lead_status`, `rejection_reason` — and these a document may point at
//! properties of its own; left alone they read the adapter's defaults (HubSpot: `bant_budget`,
//! …, `hs_lead_status`, `lead_rejection_reason`), which leadsync creates when it owns them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The CRM record a property belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmObject {
    /// The person (HubSpot contact; Salesforce Lead or Contact).
    Contact,
    /// The person's company (HubSpot company; Salesforce Account).
    Company,
    /// The person's deals (HubSpot deal; Salesforce Opportunity): a rule reads the most
    /// recently created deal that has a value.
    Deal,
}

impl CrmObject {
    pub const ALL: [CrmObject; 3] = [CrmObject::Contact, CrmObject::Company, CrmObject::Deal];

    pub fn as_str(self) -> &'static str {
        match self {
            CrmObject::Contact => "contact",
            CrmObject::Company => "company",
            CrmObject::Deal => "deal",
        }
    }

    /// The key of a property's value in [`crate::Lead::properties`] (`contact.plan`,
    /// `company.tier`); deals keep theirs by bare name in [`crate::Deal::properties`].
    pub fn key(self, property: &str) -> String {
        format!("{}.{property}", self.as_str())
    }
}

/// The type of a field's values, as the document declares it and the CRM defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    /// One of a fixed list (HubSpot enumeration/select/radio; Salesforce picklist).
    Enumeration,
    /// Several of a fixed list, `;`-separated (HubSpot checkbox; Salesforce multipicklist).
    MultiSelect,
    Number,
    /// A date or date-time.
    Date,
    Boolean,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Enumeration => "enumeration",
            FieldType::MultiSelect => "multi_select",
            FieldType::Number => "number",
            FieldType::Date => "date",
            FieldType::Boolean => "boolean",
        }
    }

    /// A CRM property of type `actual` can be read as `self`: the same type, or any
    /// single-valued text-like property read as text.
    pub fn reads(self, actual: FieldType) -> bool {
        self == actual || (self == FieldType::Text && actual == FieldType::Enumeration)
    }
}

/// One `[fields]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FieldDoc {
    pub object: CrmObject,
    pub property: String,
    #[serde(rename = "type")]
    pub kind: FieldType,
}

/// The inputs sales records that a document may map to properties of its own.
pub const INPUTS: [&str; 6] = [
    "budget",
    "authority",
    "need",
    "timeline",
    "lead_status",
    "rejection_reason",
];

/// A field of the document read from a named CRM property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    /// The document's name for it (`plan_tier`, or an input's: `budget`).
    pub name: String,
    pub object: CrmObject,
    pub property: String,
    pub kind: FieldType,
    /// Where a contact or company value is kept in [`crate::Lead::properties`]
    /// ([`CrmObject::key`]); a deal's property name.
    pub key: String,
    /// Where the entry stands in the document.
    pub line: usize,
    pub column: usize,
}

/// What an adapter must read beyond its own properties for a document: the mapped
/// properties of each object, and the inputs moved to properties of the document's choosing
/// (`None`: the adapter's default).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmReads {
    pub contact: Vec<String>,
    pub company: Vec<String>,
    pub deal: Vec<String>,
    pub budget: Option<String>,
    pub authority: Option<String>,
    pub need: Option<String>,
    pub timeline: Option<String>,
    pub lead_status: Option<String>,
    pub rejection_reason: Option<String>,
    /// The contact properties leadsync itself writes (`[crm]`), read back into
    /// [`crate::Lead::crm_shows`] so a value the CRM already shows is not written again — the
    /// re-run of a night cut short between its push and its states. Never a scoring input; an
    /// adapter that cannot read them back leaves them out and pushes by the stored hash alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<String>,
}

impl CrmReads {
    /// No scoring input beyond the adapter's defaults (leadsync's own [`Self::results`] aside).
    pub fn is_default(&self) -> bool {
        CrmReads {
            results: Vec::new(),
            ..self.clone()
        } == CrmReads::default()
    }

    /// The properties of `object` to read.
    pub fn of(&self, object: CrmObject) -> &[String] {
        match object {
            CrmObject::Contact => &self.contact,
            CrmObject::Company => &self.company,
            CrmObject::Deal => &self.deal,
        }
    }
}

/// A property as the CRM defines it (HubSpot's properties API, Salesforce's describe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmProperty {
    pub name: String,
    /// `None`: a type leadsync does not read (phone number, reference, …).
    pub kind: Option<FieldType>,
    /// The CRM's own name of the type, for messages (`enumeration/select`, `picklist`).
    pub crm_type: String,
}

/// The CRM's property definitions of the objects a document reads, by object and name.
pub type Described = BTreeMap<CrmObject, Vec<CrmProperty>>;

/// The problems of `fields` against the CRM's definitions: each names the field, the object and
/// the property, at the entry's line.
pub(super) fn check(
    fields: &[MappedField],
    described: &Described,
    crm: &str,
) -> Vec<super::CriteriaIssue> {
    let mut issues = Vec::new();
    for f in fields {
        let Some(defs) = described.get(&f.object) else {
            issues.push(super::CriteriaIssue {
                line: f.line,
                column: f.column,
                message: format!(
                    "fields.{}: the {} properties of {crm} could not be listed",
                    f.name,
                    f.object.as_str()
                ),
            });
            continue;
        };
        let found = defs.iter().find(|p| p.name == f.property).or_else(|| {
            // Salesforce API names are case-insensitive.
            defs.iter()
                .find(|p| p.name.eq_ignore_ascii_case(&f.property))
        });
        let message = match found {
            None => Some(format!(
                "fields.{}: {crm} has no {} property `{}`",
                f.name,
                f.object.as_str(),
                f.property
            )),
            Some(p) if !p.kind.is_some_and(|k| f.kind.reads(k)) => Some(format!(
                "fields.{}: the {} property `{}` is {} in {crm} ({}), the document says {}",
                f.name,
                f.object.as_str(),
                f.property,
                p.kind
                    .map_or("of a type leadsync does not read", FieldType::as_str),
                p.crm_type,
                f.kind.as_str()
            )),
            Some(_) => None,
        };
        if let Some(message) = message {
            issues.push(super::CriteriaIssue {
                line: f.line,
                column: f.column,
                message,
            });
        }
    }
    issues
}

/// The kind of a CRM property leadsync writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyKind {
    Text,
    /// Text of many lines (HubSpot's textarea, Salesforce's Long Text Area).
    LongText,
    Number,
    /// A fixed list of values (`options`).
    Enumeration,
}

/// A CRM property leadsync needs to exist before it writes results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertySpec {
    pub name: String,
    pub label: String,
    pub kind: PropertyKind,
    pub options: Vec<String>,
    /// An input leadsync reads and never writes (BANT, the rejection reason): created when the
    /// CRM lacks it, left exactly as it is when it exists (its options are the account's).
    #[serde(default)]
    pub read_only: bool,
}
