//! HubSpot JSON → domain types.

use chrono::{DateTime, Utc};
use leadsync_domain::criteria::{CrmObject, CrmReads};
use leadsync_domain::ports::Rejected;
use leadsync_domain::{Engagement, Firmographics, Lead, LeadId, Provenance, Sourced};
use std::collections::HashMap;

/// The contact property where sales records why it rejected a lead (a custom property of the
/// account: HubSpot has no standard one).
pub const REJECTION_REASON: &str = "lead_rejection_reason";

/// HubSpot's last-activity timestamps per channel (time windows and decay start from them).
pub const LAST_PAGE_VIEW: &str = "hs_analytics_last_visit_timestamp";
pub const LAST_EMAIL_OPEN: &str = "hs_email_last_open_date";
pub const LAST_EMAIL_CLICK: &str = "hs_email_last_click_date";
pub const LAST_FORM_SUBMISSION: &str = "recent_conversion_date";

/// The contact properties where sales records BANT (custom properties of the account).
pub const BANT: [&str; 4] = [
    "bant_budget",
    "bant_authority",
    "bant_need",
    "bant_timeline",
];

/// Contact properties leadsync reads.
pub const CONTACT_PROPERTIES: &[&str] = &[
    "email",
    "jobtitle",
    "hubspot_owner_id",
    "hs_analytics_source",
    "lifecyclestage",
    "hs_lead_status",
    REJECTION_REASON,
    BANT[0],
    BANT[1],
    BANT[2],
    BANT[3],
    "associatedcompanyid",
    "company",
    "hs_analytics_num_page_views",
    "hs_email_open",
    "hs_email_click",
    "num_conversion_events",
    LAST_PAGE_VIEW,
    LAST_EMAIL_OPEN,
    LAST_EMAIL_CLICK,
    LAST_FORM_SUBMISSION,
    MERGED_IDS,
    "lastmodifieddate",
];

/// The ids of the contacts merged into this one, `;`-separated (HubSpot sets it on the
/// winner of a merge).
pub const MERGED_IDS: &str = "hs_merged_object_ids";

/// Deal properties leadsync reads.
pub const DEAL_PROPERTIES: &[&str] = &[
    "dealname",
    "dealstage",
    "amount",
    "closedate",
    "createdate",
    "hubspot_owner_id",
    "pipeline",
    "deal_currency_code",
    "hs_is_closed_won",
    "hs_is_closed",
    "closed_lost_reason",
];

/// Company properties leadsync reads.
pub const COMPANY_PROPERTIES: &[&str] = &[
    "web_technologies",
    "name",
    "domain",
    "industry",
    "numberofemployees",
    "annualrevenue",
    "country",
];

pub use crate::object::HubSpotObject;

/// A whole number from a HubSpot number property (`"12"`, `"12.0"`, `12`).
fn whole_number(object: &HubSpotObject, name: &str) -> Result<Option<u64>, String> {
    let Some(text) = object.text(name) else {
        return Ok(None);
    };
    if let Ok(n) = text.parse::<u64>() {
        return Ok(Some(n));
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(Some(f.round() as u64)),
        _ => Err(format!(
            "field {name}: {text:?} is not a non-negative number"
        )),
    }
}

/// An optional timestamp property; present but unreadable is an error naming the field.
fn time(object: &HubSpotObject, name: &str) -> Result<Option<DateTime<Utc>>, String> {
    match object.text(name) {
        None => Ok(None),
        Some(text) => parse_time(text)
            .map(Some)
            .ok_or_else(|| format!("field {name}: {text:?} is not a date")),
    }
}

fn count(object: &HubSpotObject, name: &str) -> Result<u32, String> {
    Ok(whole_number(object, name)?.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            text.parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
        })
}

/// The raw record as text, for quarantine.
pub fn raw(object: &HubSpotObject) -> String {
    let value = serde_json::json!({ "id": object.id, "properties": object.properties, "updatedAt": object.updated_at });
    value.to_string()
}

/// Map a contact; companies by id supply the firmographics.
///
/// # Errors
/// [`Rejected`] naming the field that could not be read.
pub fn contact_to_lead(
    object: &HubSpotObject,
    companies: &HashMap<String, HubSpotObject>,
    reads: &CrmReads,
) -> Result<Lead, Rejected> {
    map_contact(object, |id| companies.get(id), reads)
}

/// [`contact_to_lead`] with the companies behind a lookup (the client's are shared `Arc`s,
/// not copied per page).
pub fn map_contact<'c>(
    object: &HubSpotObject,
    company: impl Fn(&str) -> Option<&'c HubSpotObject>,
    reads: &CrmReads,
) -> Result<Lead, Rejected> {
    let mut lead = contact_lead(object, reads)?;
    if let Some(company) = lead.company_id.as_ref().and_then(|id| company(id.as_str())) {
        add_company(&mut lead, &CompanyFacts::read(company, reads));
    }
    Ok(lead)
}

/// [`map_contact`] without the company: everything the contact record itself says. The pull
/// maps each contact as soon as its search answer is read (its properties are still in the
/// cache then), and adds the company once that is read ([`add_company`]).
///
/// # Errors
/// [`Rejected`] as [`map_contact`].
pub fn contact_lead(object: &HubSpotObject, reads: &CrmReads) -> Result<Lead, Rejected> {
    let reject = |lead_id: Option<String>, reason: String| Rejected {
        lead_id,
        reason,
        raw: raw(object),
    };
    let id_text = object.id();
    let id = LeadId::new(id_text).map_err(|e| reject(None, format!("field id: {e}")))?;
    let modified = object
        .text("lastmodifieddate")
        .or(object.updated_at.as_deref())
        .ok_or_else(|| {
            reject(
                Some(id_text.to_owned()),
                "field lastmodifieddate: missing".into(),
            )
        })?;
    let modified_at = parse_time(modified).ok_or_else(|| {
        reject(
            Some(id_text.to_owned()),
            format!("field lastmodifieddate: {modified:?} is not an ISO-8601 date"),
        )
    })?;
    let engagement = (|| {
        Ok::<_, String>(Engagement {
            page_views: count(object, "hs_analytics_num_page_views")?,
            email_opens: count(object, "hs_email_open")?,
            email_clicks: count(object, "hs_email_click")?,
            form_submissions: count(object, "num_conversion_events")?,
            last_page_view_at: time(object, LAST_PAGE_VIEW)?,
            last_email_open_at: time(object, LAST_EMAIL_OPEN)?,
            last_email_click_at: time(object, LAST_EMAIL_CLICK)?,
            last_form_submission_at: time(object, LAST_FORM_SUBMISSION)?,
        })
    })()
    .map_err(|reason| reject(Some(id_text.to_owned()), reason))?;

    let mut lead = Lead::new(id, modified_at);
    lead.email = object.owned("email");
    lead.job_title = object.owned("jobtitle");
    lead.owner_id = object.owned("hubspot_owner_id");
    lead.source = object.owned("hs_analytics_source");
    lead.lifecycle_stage = object.owned("lifecyclestage");
    // Inputs from where the criteria document moved them, else the defaults.
    let input =
        |moved: &Option<String>, default: &str| object.owned(moved.as_deref().unwrap_or(default));
    lead.lead_status = input(&reads.lead_status, "hs_lead_status");
    lead.rejection_reason = input(&reads.rejection_reason, REJECTION_REASON);
    lead.bant = leadsync_domain::Bant {
        budget: input(&reads.budget, BANT[0]),
        authority: input(&reads.authority, BANT[1]),
        need: input(&reads.need, BANT[2]),
        timeline: input(&reads.timeline, BANT[3]),
    };
    for name in &reads.contact {
        if let Some(value) = object.owned(name) {
            lead.properties.insert(CrmObject::Contact.key(name), value);
        }
    }
    // As sent, untrimmed: compared exactly with what a push would write.
    for name in &reads.results {
        if let Some(value) = object.properties.get(name) {
            lead.crm_shows.insert(name.clone(), value.to_owned());
        }
    }
    lead.company_id = object.owned("associatedcompanyid");
    lead.company_name = object.owned("company");
    lead.engagement = engagement;
    // Unreadable merged ids are left out, never a reason to quarantine the winner.
    lead.merged_ids = object
        .text(MERGED_IDS)
        .map(|ids| {
            ids.split(';')
                .map(str::trim)
                .filter(|id| !id.is_empty() && *id != id_text)
                .filter_map(|id| LeadId::new(id).ok())
                .collect()
        })
        .unwrap_or_default();
    Ok(lead)
}

/// What a company record gives the leads of its contacts: its name, firmographics and the
/// company properties the criteria document reads. Read once per company (the pull caches it),
/// not once per contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompanyFacts {
    name: Option<String>,
    firmographics: Firmographics,
    /// Keyed as on the lead (`company.<name>`).
    properties: Vec<(String, String)>,
}

impl CompanyFacts {
    pub fn read(company: &HubSpotObject, reads: &CrmReads) -> Self {
        Self {
            name: company.owned("name"),
            firmographics: company_firmographics(company),
            properties: reads
                .company
                .iter()
                .filter_map(|name| Some((CrmObject::Company.key(name), company.owned(name)?)))
                .collect(),
        }
    }
}

/// What the lead's company adds ([`CompanyFacts`]); the contact's own company name stays when
/// the company record has none.
pub fn add_company(lead: &mut Lead, company: &CompanyFacts) {
    lead.company_name = company.name.clone().or(lead.company_name.take());
    lead.firmographics = company.firmographics.clone();
    for (key, value) in &company.properties {
        lead.properties.insert(key.clone(), value.clone());
    }
}

/// An amount as exact cents: `"12500"`, `"12500.5"`, `"12500.55"`; anything else is unknown.
pub fn cents(text: &str) -> Option<i64> {
    let text = text.trim();
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac = format!("{frac:0<2}");
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(frac.parse::<i64>().ok()?)
}

/// A HubSpot bool property (`"true"`/`"false"`, any case).
fn flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A deal record, with the `extra` properties the criteria document maps. Unreadable values
/// are left unknown: a deal never quarantines its contact.
pub fn deal(object: &HubSpotObject, extra: &[String]) -> leadsync_domain::Deal {
    leadsync_domain::Deal {
        id: object.id.clone(),
        name: object.owned("dealname"),
        stage: object.owned("dealstage"),
        pipeline: object.owned("pipeline"),
        amount_cents: object.text("amount").and_then(cents),
        currency: object
            .text("deal_currency_code")
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| c.len() == 3),
        // HubSpot's calculated flags hold for custom pipelines, whose stage ids are numbers.
        closed_won: object.text("hs_is_closed_won").and_then(flag),
        closed: object.text("hs_is_closed").and_then(flag),
        created_at: object.text("createdate").and_then(parse_time),
        close_date: object.text("closedate").and_then(parse_time),
        lost_reason: object.owned("closed_lost_reason"),
        owner_id: object.owned("hubspot_owner_id"),
        properties: extra
            .iter()
            .filter_map(|name| Some((name.clone(), object.owned(name)?)))
            .collect(),
    }
}

/// Firmographics from the CRM's own company record. Unreadable numbers are left unknown (the
/// company record is not the lead: it must not quarantine the lead).
pub fn company_firmographics(company: &HubSpotObject) -> Firmographics {
    let crm = Provenance::crm();
    Firmographics {
        industry: company
            .owned("industry")
            .map(|v| Sourced::new(v, crm.clone())),
        employees: whole_number(company, "numberofemployees")
            .ok()
            .flatten()
            .map(|v| Sourced::new(v, crm.clone())),
        annual_revenue: whole_number(company, "annualrevenue")
            .ok()
            .flatten()
            .map(|v| Sourced::new(v, crm.clone())),
        country: company
            .owned("country")
            .map(|v| Sourced::new(v, crm.clone())),
        // HubSpot has no company-type classification of this kind; enrichment supplies it.
        company_type: None,
        // `web_technologies` is a multi-select: values joined with ';'.
        technologies: company.text("web_technologies").map(|v| {
            let list = v
                .split(';')
                .map(|t| t.trim().to_lowercase())
                .filter(|t| !t.is_empty())
                .collect();
            Sourced::new(list, crm.clone())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn object(v: Value) -> HubSpotObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn maps_a_contact_with_its_company() {
        let contact = object(
            json!({"id":"101","properties":{"email":"a@acme.com","lastmodifieddate":"2026-10-01T10:00:00.000Z","hs_lead_status":"UNQUALIFIED","lead_rejection_reason":"NO_BUDGET",
            "hs_analytics_num_page_views":"12","num_conversion_events":"1.0","associatedcompanyid":"7","hubspot_owner_id":"9"}}),
        );
        let company = object(
            json!({"id":"7","properties":{"name":"Acme","industry":"INTERNET","numberofemployees":"250","annualrevenue":"","country":"Germany"}}),
        );
        let lead = contact_to_lead(
            &contact,
            &HashMap::from([("7".to_owned(), company)]),
            &CrmReads::default(),
        )
        .unwrap();
        assert_eq!(lead.id.as_str(), "101");
        assert_eq!(lead.engagement.page_views, 12);
        assert_eq!(
            (
                lead.lead_status.as_deref(),
                lead.rejection_reason.as_deref()
            ),
            (Some("UNQUALIFIED"), Some("NO_BUDGET"))
        );
        assert_eq!(lead.engagement.form_submissions, 1);
        assert_eq!(lead.company_name.as_deref(), Some("Acme"));
        assert_eq!(
            lead.firmographics.employees.as_ref().map(|s| s.value),
            Some(250)
        );
        assert_eq!(lead.firmographics.annual_revenue, None);
        assert_eq!(
            lead.firmographics
                .industry
                .as_ref()
                .map(|s| s.source.provider.as_ref()),
            Some("crm")
        );
    }

    #[test]
    fn amounts_are_exact_cents() {
        for (text, want) in [
            ("12500", Some(1_250_000)),
            ("12500.5", Some(1_250_050)),
            ("0.07", Some(7)),
            (" 3.10 ", Some(310)),
            ("1.234", None),
            ("-5", None),
            ("1e3", None),
            ("", None),
            (".5", None),
        ] {
            assert_eq!(cents(text), want, "{text:?}");
        }
    }

    #[test]
    fn rejects_with_field_and_id() {
        let bad_date = object(json!({"id":"5","properties":{"lastmodifieddate":"yesterday"}}));
        let r = contact_to_lead(&bad_date, &HashMap::new(), &CrmReads::default()).unwrap_err();
        assert_eq!(r.lead_id.as_deref(), Some("5"));
        assert!(r.reason.contains("lastmodifieddate"), "{}", r.reason);

        let bad_count = object(
            json!({"id":"6","properties":{"lastmodifieddate":"2026-10-01T10:00:00Z","hs_email_click":"-3"}}),
        );
        let r = contact_to_lead(&bad_count, &HashMap::new(), &CrmReads::default()).unwrap_err();
        assert!(r.reason.contains("hs_email_click"), "{}", r.reason);

        let bad_id = object(json!({"id":"","properties":{}}));
        assert!(
            contact_to_lead(&bad_id, &HashMap::new(), &CrmReads::default())
                .unwrap_err()
                .reason
                .contains("field id")
        );
    }
}
