//! A lead as leadsync sees it: the contact, the company data it brings, its engagement.
//!
//! Only what scoring, rollups and the CRM write-back need is kept. Vendor JSON never reaches
//! this module: adapters map it into these types (and quarantine what they cannot map).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The CRM's id of a contact. Non-empty, printable, without `#` (the key separator in the store).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct LeadId(String);

/// Written as its text (`into = "String"` would copy the id into a new string first).
impl Serialize for LeadId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Why a text is not a valid [`LeadId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeadIdError {
    #[error("lead id is empty")]
    Empty,
    #[error("lead id {0:?} contains '#' or a control character")]
    BadCharacter(String),
    #[error("lead id is longer than 64 characters")]
    TooLong,
}

impl LeadId {
    pub fn new(raw: impl Into<String>) -> Result<Self, LeadIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(LeadIdError::Empty);
        }
        if raw.len() > 64 {
            return Err(LeadIdError::TooLong);
        }
        if raw
            .chars()
            .any(|c| c == '#' || c.is_control() || c.is_whitespace())
        {
            return Err(LeadIdError::BadCharacter(raw));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LeadId {
    type Error = LeadIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<LeadId> for String {
    fn from(value: LeadId) -> Self {
        value.0
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a firmographic value came from: shown in the reasons so both teams can judge it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `crm` for the CRM's own company record, otherwise the provider's name. Borrowed when
    /// static: every CRM-sourced value of every lead says `crm`, and would otherwise own a copy.
    pub provider: Cow<'static, str>,
    /// The provider's match confidence (1–10) where it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub likelihood: Option<u8>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::rfc3339::option"
    )]
    pub fetched_at: Option<DateTime<Utc>>,
}

impl Provenance {
    pub fn crm() -> Self {
        Self {
            provider: Cow::Borrowed("crm"),
            likelihood: None,
            fetched_at: None,
        }
    }
}

/// A value with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Provenance,
}

impl<T> Sourced<T> {
    pub fn new(value: T, source: Provenance) -> Self {
        Self { value, source }
    }
}

/// What we know about the company a lead works for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmographics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub industry: Option<Sourced<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employees: Option<Sourced<u64>>,
    /// Annual revenue in whole US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual_revenue: Option<Sourced<u64>>,
    /// ISO 3166 alpha-2 code or the country name as the source gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Sourced<String>>,
    /// Public, private, nonprofit, government… as a provider classifies the company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_type: Option<Sourced<String>>,
    /// Technologies the company uses (e.g. HubSpot's `web_technologies`), lowercase names.
    /// Shared, not copied: every lead of a company carries its list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technologies: Option<Sourced<Arc<[String]>>>,
}

impl Firmographics {
    /// True when no field is known.
    pub fn is_empty(&self) -> bool {
        self.industry.is_none()
            && self.employees.is_none()
            && self.annual_revenue.is_none()
            && self.country.is_none()
            && self.company_type.is_none()
            && self.technologies.is_none()
    }

    /// Fill the fields this one lacks from `other`; fields already known are kept (the earlier
    /// source in the waterfall wins). Returns how many fields were filled.
    pub fn fill_from(&mut self, other: &Firmographics) -> usize {
        fn fill<T: Clone>(slot: &mut Option<T>, from: &Option<T>) -> usize {
            if slot.is_none() && from.is_some() {
                slot.clone_from(from);
                1
            } else {
                0
            }
        }
        fill(&mut self.industry, &other.industry)
            + fill(&mut self.employees, &other.employees)
            + fill(&mut self.annual_revenue, &other.annual_revenue)
            + fill(&mut self.country, &other.country)
            + fill(&mut self.company_type, &other.company_type)
            + fill(&mut self.technologies, &other.technologies)
    }
}

/// Engagement counters as the CRM reports them (lifetime totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Engagement {
    pub page_views: u32,
    pub email_opens: u32,
    pub email_clicks: u32,
    pub form_submissions: u32,
    /// When each channel last saw activity: what time windows and decay are measured from.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::rfc3339::option"
    )]
    pub last_page_view_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::rfc3339::option"
    )]
    pub last_email_open_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::rfc3339::option"
    )]
    pub last_email_click_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::rfc3339::option"
    )]
    pub last_form_submission_at: Option<DateTime<Utc>>,
}

impl Engagement {
    /// The latest activity on any channel.
    pub fn last_activity_at(&self) -> Option<DateTime<Utc>> {
        [
            self.last_page_view_at,
            self.last_email_open_at,
            self.last_email_click_at,
            self.last_form_submission_at,
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

/// Budget, authority, need and timeline as sales recorded them (free text or the values of the
/// account's picklists, e.g. `CONFIRMED`, `DECISION_MAKER`, `THIS_QUARTER`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<String>,
}

impl Bant {
    pub fn is_empty(&self) -> bool {
        self.budget.is_none()
            && self.authority.is_none()
            && self.need.is_none()
            && self.timeline.is_none()
    }
}

/// A deal the lead is associated with in the CRM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The CRM's stage id (`closedwon`, `closedlost`, or a custom pipeline's numeric id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// Amount in cents (whole currency units × 100) of [`Deal::currency`], exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    /// ISO 4217 code of the amount (HubSpot's `deal_currency_code`); `None`: the account's
    /// company currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The CRM's own flags (HubSpot `hs_is_closed_won`, `hs_is_closed`): they hold for every
    /// pipeline, where stage ids do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_won: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::rfc3339::option"
    )]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::rfc3339::option"
    )]
    pub close_date: Option<DateTime<Utc>>,
    /// Why a lost deal was lost (HubSpot `closed_lost_reason`, free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// The deal properties the criteria document maps (`[fields]`), by property name, as the
    /// CRM gave them (text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

impl Deal {
    /// Won by the CRM's flag; only a record without the flag falls back to HubSpot's default
    /// pipeline stage id.
    pub fn is_closed_won(&self) -> bool {
        self.closed_won
            .unwrap_or_else(|| self.stage.as_deref() == Some("closedwon"))
    }

    /// Closed and not won (the CRM's flags; the default pipeline's stage id without them).
    pub fn is_closed_lost(&self) -> bool {
        !self.is_closed_won()
            && self
                .closed
                .unwrap_or_else(|| self.stage.as_deref() == Some("closedlost"))
    }
}

/// One contact pulled from the CRM, with its company's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lead {
    pub id: LeadId,
    /// Kept for the disqualifier rules and the CRM; never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    /// Original source as the CRM records it (e.g. `ORGANIC_SEARCH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_stage: Option<String>,
    /// Sales' verdict on the lead (`hs_lead_status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_status: Option<String>,
    /// Why sales rejected the lead, when it did (the CRM property `lead_rejection_reason`):
    /// the feedback rollups count rejections by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default)]
    pub engagement: Engagement,
    #[serde(default)]
    pub firmographics: Firmographics,
    /// Why the lead was scored without provider data it needed (e.g. the run's credit budget
    /// was spent); shown as a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_enriched: Option<String>,
    /// BANT qualification recorded by sales.
    #[serde(default, skip_serializing_if = "Bant::is_empty")]
    pub bant: Bant,
    /// Deals associated with the contact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deals: Vec<Deal>,
    /// Contacts merged into this one (HubSpot `hs_merged_object_ids`): their facts count as
    /// this lead's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_ids: Vec<LeadId>,
    /// The contact and company properties the criteria document maps (`[fields]`), keyed
    /// `contact.<name>` / `company.<name>`, as the CRM gave them (text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// leadsync's own result properties as the CRM showed them when the lead was pulled
    /// ([`crate::criteria::CrmReads::results`]): a push the CRM already shows is not sent again.
    /// Not an input (never hashed, never in a snapshot).
    #[serde(skip)]
    pub crm_shows: BTreeMap<String, String>,
    /// When the CRM last changed the record; drives the watermark, not the score.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub modified_at: DateTime<Utc>,
}

impl Lead {
    /// A lead with only an id and a modification time; the rest empty.
    pub fn new(id: LeadId, modified_at: DateTime<Utc>) -> Self {
        Self {
            id,
            email: None,
            job_title: None,
            owner_id: None,
            source: None,
            lifecycle_stage: None,
            lead_status: None,
            rejection_reason: None,
            company_id: None,
            company_name: None,
            engagement: Engagement::default(),
            firmographics: Firmographics::default(),
            not_enriched: None,
            bant: Bant::default(),
            deals: Vec::new(),
            merged_ids: Vec::new(),
            properties: BTreeMap::new(),
            crm_shows: BTreeMap::new(),
            modified_at,
        }
    }

    /// Whether the CRM already shows every one of `properties` as given (compared as text,
    /// exactly; an unset property shows `""`): writing them would change nothing. Always false
    /// when the adapter read none back.
    pub fn crm_already_shows(&self, properties: &BTreeMap<String, String>) -> bool {
        !self.crm_shows.is_empty()
            && properties
                .iter()
                .all(|(name, value)| self.crm_shows.get(name).map_or("", String::as_str) == value)
    }

    /// The lowercased domain of the email address, if there is a well-formed one.
    ///
    /// Registrable-domain (public-suffix) normalisation belongs to enrichment; this is the
    /// plain part after the `@`, which is what the disqualifier rules compare against.
    pub fn email_domain(&self) -> Option<String> {
        let email = self.email.as_deref()?.trim();
        let (local, domain) = email.rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() || !domain.contains('.') {
            return None;
        }
        Some(domain.trim_end_matches('.').to_ascii_lowercase())
    }

    /// The part of the email address after the `@`, trimmed, as written (not lowercased):
    /// what rules compare case-insensitively without allocating.
    pub fn email_domain_raw(&self) -> Option<&str> {
        let email = self.email.as_deref()?.trim();
        let (local, domain) = email.rsplit_once('@')?;
        let domain = domain.trim_end_matches('.');
        (!local.is_empty() && !domain.is_empty() && domain.contains('.')).then_some(domain)
    }

    /// A hash of everything scoring reads (not `modified_at`): equal hashes mean equal scores
    /// under one criteria version.
    pub fn input_hash(&self) -> String {
        let mut scoring_view = self.clone();
        scoring_view.modified_at = DateTime::<Utc>::UNIX_EPOCH;
        // When a provider was asked is not an input: the same answer fetched again (a cache
        // entry renewed, a run repeated after a storm) must not count as a changed lead.
        let f = &mut scoring_view.firmographics;
        for source in [
            f.industry.as_mut().map(|s| &mut s.source),
            f.employees.as_mut().map(|s| &mut s.source),
            f.annual_revenue.as_mut().map(|s| &mut s.source),
            f.country.as_mut().map(|s| &mut s.source),
            f.company_type.as_mut().map(|s| &mut s.source),
            f.technologies.as_mut().map(|s| &mut s.source),
        ]
        .into_iter()
        .flatten()
        {
            source.fetched_at = None;
        }
        // Serialising plain structs of strings and numbers cannot fail; fall back to Debug so a
        // hash is always produced.
        let json =
            serde_json::to_string(&scoring_view).unwrap_or_else(|_| format!("{scoring_view:?}"));
        crate::hash::stable_hash([json.as_str()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(email: Option<&str>) -> Lead {
        let mut lead = Lead::new(LeadId::new("1").unwrap(), DateTime::<Utc>::UNIX_EPOCH);
        lead.email = email.map(str::to_owned);
        lead
    }

    /// Found by the storms bench: a lead whose firmographics came from the cache on a second
    /// night (fetched earlier) hashed differently from the same answer fetched that night.
    #[test]
    fn when_a_provider_was_asked_is_not_an_input() {
        let source = |at: i64| Provenance {
            provider: "pdl".into(),
            likelihood: Some(8),
            fetched_at: DateTime::from_timestamp(at, 0),
        };
        let mut a = lead(Some("a@b.c"));
        a.firmographics.employees = Some(Sourced::new(120, source(1_700_000_000)));
        let mut b = a.clone();
        b.firmographics.employees = Some(Sourced::new(120, source(1_700_086_400)));
        assert_eq!(a.input_hash(), b.input_hash());
        b.firmographics.employees = Some(Sourced::new(121, source(1_700_086_400)));
        assert_ne!(a.input_hash(), b.input_hash(), "the value is an input");
    }

    #[test]
    fn lead_ids_are_validated() {
        assert!(LeadId::new("123").is_ok());
        assert_eq!(LeadId::new(""), Err(LeadIdError::Empty));
        assert!(matches!(
            LeadId::new("1#2"),
            Err(LeadIdError::BadCharacter(_))
        ));
        assert!(matches!(
            LeadId::new("1 2"),
            Err(LeadIdError::BadCharacter(_))
        ));
        assert_eq!(LeadId::new("9".repeat(65)), Err(LeadIdError::TooLong));
    }

    #[test]
    fn email_domain_table() {
        let cases = [
            (Some("ana@Acme.COM"), Some("acme.com")),
            (Some(" ana@mail.acme.co.uk "), Some("mail.acme.co.uk")),
            (Some("a@b@acme.io"), Some("acme.io")),
            (Some("ana@localhost"), None),
            (Some("@acme.com"), None),
            (Some("ana@"), None),
            (Some("not an email"), None),
            (None, None),
        ];
        for (email, want) in cases {
            assert_eq!(
                lead(email).email_domain().as_deref(),
                want,
                "email {email:?}"
            );
        }
    }

    #[test]
    fn input_hash_ignores_modified_at_only() {
        let a = lead(Some("a@acme.com"));
        let mut b = a.clone();
        b.modified_at = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(3);
        assert_eq!(a.input_hash(), b.input_hash());
        b.engagement.page_views += 1;
        assert_ne!(a.input_hash(), b.input_hash());
    }

    #[test]
    fn fill_from_keeps_earlier_source() {
        let crm = Provenance::crm();
        let other = Provenance {
            provider: "pdl".into(),
            likelihood: Some(8),
            fetched_at: None,
        };
        let mut mine = Firmographics {
            industry: Some(Sourced::new("Software".into(), crm.clone())),
            ..Firmographics::default()
        };
        let theirs = Firmographics {
            industry: Some(Sourced::new("Retail".into(), other.clone())),
            employees: Some(Sourced::new(120, other)),
            ..Firmographics::default()
        };
        assert_eq!(mine.fill_from(&theirs), 1);
        assert_eq!(
            mine.industry.as_ref().map(|s| s.value.as_str()),
            Some("Software")
        );
        assert_eq!(mine.employees.as_ref().map(|s| s.value), Some(120));
    }
}
