//! Salesforce records → domain types, and the fields leadsync reads.
//!
//! People are unconverted `Lead`s and `Contact`s. Engagement, BANT, the rejection reason and
//! the lifecycle stage live in custom fields (Salesforce has no standard ones; Account
//! Engagement syncs its own into fields like these); sales' status is the Lead Status
//! picklist on leads and `Lead_Status__c` on contacts.

use chrono::{DateTime, NaiveDate, Utc};
use leadsync_domain::ports::Rejected;
use leadsync_domain::{Bant, Deal, Engagement, Firmographics, Lead, LeadId, Provenance, Sourced};
use serde_json::Value;

/// Fields both people objects are read with.
pub const PERSON_FIELDS: &[&str] = &[
    "Id",
    "Email",
    "Title",
    "OwnerId",
    "LeadSource",
    "Lifecycle_Stage__c",
    "Rejection_Reason__c",
    "BANT_Budget__c",
    "BANT_Authority__c",
    "BANT_Need__c",
    "BANT_Timeline__c",
    "Page_Views__c",
    "Email_Opens__c",
    "Email_Clicks__c",
    "Form_Submissions__c",
    "Last_Page_View__c",
    "Last_Email_Open__c",
    "Last_Email_Click__c",
    "Last_Form_Submission__c",
    "SystemModstamp",
];

/// Lead-only fields: the status and the firmographics a lead carries itself.
pub const LEAD_FIELDS: &[&str] = &[
    "Status",
    "Company",
    "Industry",
    "NumberOfEmployees",
    "AnnualRevenue",
    "Country",
];

/// Contact-only fields: the status and the account's firmographics.
pub const CONTACT_FIELDS: &[&str] = &[
    "Lead_Status__c",
    "AccountId",
    "Account.Name",
    "Account.Industry",
    "Account.NumberOfEmployees",
    "Account.AnnualRevenue",
    "Account.BillingCountry",
    "Account.Web_Technologies__c",
];

/// Opportunity fields, read through each contact role.
pub const OPPORTUNITY_FIELDS: &[&str] = &[
    "Id",
    "Name",
    "StageName",
    "Amount",
    "CurrencyIsoCode",
    "IsWon",
    "IsClosed",
    "CloseDate",
    "CreatedDate",
    "OwnerId",
    "Loss_Reason__c",
    "Pipeline__c",
];

/// Fields an org may lack without anything being wrong (single-currency orgs have no
/// `CurrencyIsoCode`; amounts are then in the org's currency).
pub const OPTIONAL_FIELDS: &[(&str, &str)] = &[("Opportunity", "CurrencyIsoCode")];

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|d| d.with_timezone(&Utc))
        .ok()
}

/// A SOQL datetime literal.
pub fn literal(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn text(record: &Value, field: &str) -> Option<String> {
    let v = match field.split_once('.') {
        Some((parent, f)) => record.get(parent)?.get(f)?,
        None => record.get(field)?,
    };
    v.as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A non-negative whole number from a number field (Salesforce sends doubles: `12.0`).
fn whole(record: &Value, field: &str) -> Result<Option<u64>, String> {
    let v = match field.split_once('.') {
        Some((parent, f)) => record.get(parent).and_then(|p| p.get(f)),
        None => record.get(field),
    };
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f.round() as u64)),
            _ => Err(format!("field {field}: {n} is not a non-negative number")),
        },
        Some(other) => Err(format!("field {field}: {other} is not a number")),
    }
}

fn time(record: &Value, field: &str) -> Result<Option<DateTime<Utc>>, String> {
    match text(record, field) {
        None => Ok(None),
        Some(t) => parse_time(&t)
            .map(Some)
            .ok_or_else(|| format!("field {field}: {t:?} is not a datetime")),
    }
}

fn count(record: &Value, field: &str) -> Result<u32, String> {
    Ok(whole(record, field)?.map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)))
}

/// Map a Lead or Contact record (the object is in `attributes.type`).
///
/// # Errors
/// [`Rejected`] naming the field and the record's Id.
pub fn person(record: &Value) -> Result<Lead, Rejected> {
    let reject = |lead_id: Option<String>, reason: String| Rejected {
        lead_id,
        reason,
        raw: record.to_string(),
    };
    let id_text = text(record, "Id").ok_or_else(|| reject(None, "field Id: missing".into()))?;
    let id = LeadId::new(&id_text).map_err(|e| reject(None, format!("field Id: {e}")))?;
    let is_contact = record.pointer("/attributes/type").and_then(Value::as_str) == Some("Contact");
    let modified_at = time(record, "SystemModstamp")
        .and_then(|t| t.ok_or_else(|| "field SystemModstamp: missing".to_owned()))
        .map_err(|r| reject(Some(id_text.clone()), r))?;
    let engagement = (|| {
        Ok::<_, String>(Engagement {
            page_views: count(record, "Page_Views__c")?,
            email_opens: count(record, "Email_Opens__c")?,
            email_clicks: count(record, "Email_Clicks__c")?,
            form_submissions: count(record, "Form_Submissions__c")?,
            last_page_view_at: time(record, "Last_Page_View__c")?,
            last_email_open_at: time(record, "Last_Email_Open__c")?,
            last_email_click_at: time(record, "Last_Email_Click__c")?,
            last_form_submission_at: time(record, "Last_Form_Submission__c")?,
        })
    })()
    .map_err(|r| reject(Some(id_text.clone()), r))?;
    let mut lead = Lead::new(id, modified_at);
    lead.email = text(record, "Email");
    lead.job_title = text(record, "Title");
    lead.owner_id = text(record, "OwnerId");
    lead.source = text(record, "LeadSource");
    lead.lifecycle_stage = text(record, "Lifecycle_Stage__c");
    lead.rejection_reason = text(record, "Rejection_Reason__c");
    lead.bant = Bant {
        budget: text(record, "BANT_Budget__c"),
        authority: text(record, "BANT_Authority__c"),
        need: text(record, "BANT_Need__c"),
        timeline: text(record, "BANT_Timeline__c"),
    };
    lead.engagement = engagement;
    let crm = Provenance::crm();
    let sourced_text = |f: &str| text(record, f).map(|v| Sourced::new(v, crm.clone()));
    let sourced_whole = |f: &str| {
        whole(record, f)
            .ok()
            .flatten()
            .map(|v| Sourced::new(v, crm.clone()))
    };
    if is_contact {
        lead.lead_status = text(record, "Lead_Status__c");
        lead.company_id = text(record, "AccountId");
        lead.company_name = text(record, "Account.Name");
        lead.firmographics = Firmographics {
            industry: sourced_text("Account.Industry"),
            employees: sourced_whole("Account.NumberOfEmployees"),
            annual_revenue: sourced_whole("Account.AnnualRevenue"),
            country: sourced_text("Account.BillingCountry"),
            company_type: None,
            technologies: text(record, "Account.Web_Technologies__c").map(|v| {
                let list = v
                    .split(';')
                    .map(|t| t.trim().to_lowercase())
                    .filter(|t| !t.is_empty())
                    .collect();
                Sourced::new(list, crm.clone())
            }),
        };
    } else {
        lead.lead_status = text(record, "Status");
        // Web-to-lead fills Company with "[not provided]" when the form had none.
        lead.company_name = text(record, "Company").filter(|c| c != "[not provided]");
        lead.firmographics = Firmographics {
            industry: sourced_text("Industry"),
            employees: sourced_whole("NumberOfEmployees"),
            annual_revenue: sourced_whole("AnnualRevenue"),
            country: sourced_text("Country"),
            company_type: None,
            technologies: None,
        };
    }
    Ok(lead)
}

/// Exact cents of a JSON amount (`12500`, `12500.5`); anything else unknown.
fn cents(v: &Value) -> Option<i64> {
    let n = v.as_f64()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let cents = (n * 100.0).round();
    // Only amounts with at most two decimals are exact.
    ((cents / 100.0 - n).abs() < 1e-6 && cents < 9.0e15).then_some(cents as i64)
}

/// An Opportunity (as a contact role's `Opportunity`). Unreadable values are unknown: a deal
/// never quarantines its contact.
pub fn opportunity(o: &Value) -> Option<Deal> {
    let id = text(o, "Id")?;
    let flag = |f: &str| o.get(f).and_then(Value::as_bool);
    let date = |f: &str| {
        text(o, f).and_then(|t| {
            parse_time(&t).or_else(|| {
                NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc())
            })
        })
    };
    Some(Deal {
        id,
        name: text(o, "Name"),
        stage: text(o, "StageName"),
        pipeline: text(o, "Pipeline__c"),
        amount_cents: o.get("Amount").and_then(cents),
        currency: text(o, "CurrencyIsoCode")
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| c.len() == 3),
        closed_won: flag("IsWon"),
        closed: flag("IsClosed"),
        created_at: date("CreatedDate"),
        close_date: date("CloseDate"),
        lost_reason: text(o, "Loss_Reason__c"),
        owner_id: text(o, "OwnerId"),
        properties: std::collections::BTreeMap::new(),
    })
}

/// The custom field a result property is written to: `leadsync_score` → `Leadsync_Score__c`
/// (a name already ending in `__c` is kept).
pub fn field_for(property: &str) -> String {
    if property.ends_with("__c") {
        return property.to_owned();
    }
    let words: Vec<String> = property
        .split(['_', '-', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    format!("{}__c", words.join("_"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_contact_takes_its_account_firmographics_and_a_lead_its_own() {
        let contact = json!({"attributes": {"type": "Contact"}, "Id": "0035g0000000001AAA",
            "Email": "a@acme.com", "Lead_Status__c": "IN_PROGRESS", "Page_Views__c": 12.0,
            "SystemModstamp": "2026-10-01T10:00:00.000+0000", "AccountId": "0015g0000000001AAA",
            "Account": {"attributes": {"type": "Account"}, "Name": "Acme", "Industry": "Software",
                "NumberOfEmployees": 250, "AnnualRevenue": null, "BillingCountry": "Germany",
                "Web_Technologies__c": "HubSpot;Stripe"}});
        let lead = person(&contact).unwrap();
        assert_eq!(lead.lead_status.as_deref(), Some("IN_PROGRESS"));
        assert_eq!(lead.engagement.page_views, 12);
        assert_eq!(lead.company_name.as_deref(), Some("Acme"));
        assert_eq!(
            lead.firmographics.employees.as_ref().map(|s| s.value),
            Some(250)
        );
        assert_eq!(lead.firmographics.annual_revenue, None);
        assert_eq!(
            lead.firmographics
                .technologies
                .as_ref()
                .map(|s| s.value.to_vec()),
            Some(vec!["hubspot".to_owned(), "stripe".to_owned()])
        );
        let unconverted = json!({"attributes": {"type": "Lead"}, "Id": "00Q5g0000000001AAA",
            "Status": "UNQUALIFIED", "Company": "[not provided]", "Industry": "Retail",
            "SystemModstamp": "2026-10-01T10:00:00.000+0000"});
        let lead = person(&unconverted).unwrap();
        assert_eq!(lead.lead_status.as_deref(), Some("UNQUALIFIED"));
        assert_eq!(lead.company_name, None);
        assert_eq!(
            lead.firmographics.industry.map(|s| s.value),
            Some("Retail".to_owned())
        );
    }

    #[test]
    fn bad_values_are_rejected_with_field_and_id() {
        let r = person(
            &json!({"attributes": {"type": "Lead"}, "Id": "00Q5g0000000001AAA",
            "SystemModstamp": "2026-10-01T10:00:00.000+0000", "Email_Clicks__c": -3}),
        )
        .unwrap_err();
        assert_eq!(r.lead_id.as_deref(), Some("00Q5g0000000001AAA"));
        assert!(r.reason.contains("Email_Clicks__c"), "{}", r.reason);
        let r = person(&json!({"attributes": {"type": "Lead"}, "Id": "00Q5g0000000001AAA"}))
            .unwrap_err();
        assert!(r.reason.contains("SystemModstamp"), "{}", r.reason);
    }

    #[test]
    fn opportunities_keep_exact_cents_flags_and_dates() {
        let d = opportunity(&json!({"Id": "0065g0000000001AAA", "Amount": 12500.55,
            "CurrencyIsoCode": "eur", "IsWon": true, "IsClosed": true, "CloseDate": "2026-11-03",
            "StageName": "Closed Won", "OwnerId": "0055g0000000003AAA"}))
        .unwrap();
        assert_eq!(d.amount_cents, Some(1_250_055));
        assert_eq!(d.currency.as_deref(), Some("EUR"));
        assert_eq!(d.closed_won, Some(true));
        assert_eq!(
            d.close_date.unwrap().to_rfc3339(),
            "2026-11-03T00:00:00+00:00"
        );
        assert_eq!(opportunity(&json!({"Amount": 1.0})), None);
    }

    #[test]
    fn result_properties_become_custom_fields() {
        assert_eq!(field_for("leadsync_score"), "Leadsync_Score__c");
        assert_eq!(
            field_for("leadsync_criteria_version"),
            "Leadsync_Criteria_Version__c"
        );
        assert_eq!(field_for("Lead_Grade__c"), "Lead_Grade__c");
    }
}
