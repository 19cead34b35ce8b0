//! The seeded world as a Salesforce org holds it: the same people, companies and deals the
//! HubSpot sandbox serves for the same seed ([`leadsync_sandbox::data`]), laid out as
//! Salesforce objects.
//!
//! - A company is an `Account` (`Name`, `Website`, `Industry`, `NumberOfEmployees`,
//!   `AnnualRevenue`, `BillingCountry`).
//! - A person with a deal was converted: a `Contact` under the company's account, and the
//!   converted `Lead` they came from (`IsConverted`, `ConvertedContactId`, …; the adapter never
//!   reads converted leads as people). Everyone else is an unconverted `Lead` carrying the
//!   company's firmographics on the lead itself (`Company`, `Industry`, …), as Salesforce does.
//! - A deal is an `Opportunity` (`Amount`, `CurrencyIsoCode`, `StageName`, `IsWon`,
//!   `IsClosed`, `CloseDate`) with an `OpportunityContactRole` per contact.
//! - Sales' status uses the org's Lead Status picklist, whose API values this org set to the
//!   HubSpot sandbox's (`IN_PROGRESS`, `UNQUALIFIED`, …); contacts carry it in the custom
//!   `Lead_Status__c` field, as orgs that report on contacts do. Engagement, BANT and the
//!   rejection reason are custom fields (`Page_Views__c`, `BANT_Budget__c`,
//!   `Rejection_Reason__c`, …) — Salesforce has no standard ones.
//! - Owners are `User`s (`005…`).

use crate::ids;
use chrono::{DateTime, Utc};
use leadsync_sandbox::data::{DataSpec, Record, generate, generate_deals};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// One record: its object type and its fields (JSON values, Salesforce's types).
#[derive(Debug, Clone, PartialEq)]
pub struct SObject {
    pub kind: &'static str,
    pub fields: BTreeMap<String, Value>,
}

impl SObject {
    pub fn id(&self) -> &str {
        self.fields.get("Id").and_then(Value::as_str).unwrap_or("")
    }

    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(Value::as_str)
    }

    pub fn flag(&self, field: &str) -> bool {
        self.fields
            .get(field)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }
}

/// Salesforce's datetime format in JSON answers.
pub fn sf_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// A field of an object's describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    pub name: &'static str,
    /// Salesforce's field type (`id`, `string`, `email`, `double`, `int`, `datetime`, …).
    pub kind: &'static str,
    pub updateable: bool,
}

const fn f(name: &'static str, kind: &'static str, updateable: bool) -> FieldDef {
    FieldDef {
        name,
        kind,
        updateable,
    }
}

/// The fields both people objects share.
const PERSON: &[FieldDef] = &[
    f("Id", "id", false),
    f("FirstName", "string", true),
    f("LastName", "string", true),
    f("Email", "email", true),
    f("Title", "string", true),
    f("OwnerId", "reference", true),
    f("LeadSource", "picklist", true),
    f("Lifecycle_Stage__c", "picklist", true),
    f("Rejection_Reason__c", "picklist", true),
    f("BANT_Budget__c", "picklist", true),
    f("BANT_Authority__c", "picklist", true),
    f("BANT_Need__c", "picklist", true),
    f("BANT_Timeline__c", "picklist", true),
    f("Page_Views__c", "double", true),
    f("Email_Opens__c", "double", true),
    f("Email_Clicks__c", "double", true),
    f("Form_Submissions__c", "double", true),
    f("Last_Page_View__c", "datetime", true),
    f("Last_Email_Open__c", "datetime", true),
    f("Last_Email_Click__c", "datetime", true),
    f("Last_Form_Submission__c", "datetime", true),
    f("IsDeleted", "boolean", false),
    f("MasterRecordId", "reference", false),
    f("CreatedDate", "datetime", false),
    f("LastModifiedDate", "datetime", false),
    f("SystemModstamp", "datetime", false),
];

const LEAD_ONLY: &[FieldDef] = &[
    f("Company", "string", true),
    f("Industry", "picklist", true),
    f("NumberOfEmployees", "int", true),
    f("AnnualRevenue", "currency", true),
    f("Country", "string", true),
    f("Website", "url", true),
    f("Status", "picklist", true),
    f("IsConverted", "boolean", false),
    f("ConvertedContactId", "reference", false),
    f("ConvertedAccountId", "reference", false),
    f("ConvertedOpportunityId", "reference", false),
    f("ConvertedDate", "date", false),
];

const CONTACT_ONLY: &[FieldDef] = &[
    f("AccountId", "reference", true),
    f("Lead_Status__c", "picklist", true),
];

const ACCOUNT: &[FieldDef] = &[
    f("Id", "id", false),
    f("Name", "string", true),
    f("Website", "url", true),
    f("Industry", "picklist", true),
    f("NumberOfEmployees", "int", true),
    f("AnnualRevenue", "currency", true),
    f("BillingCountry", "string", true),
    f("Web_Technologies__c", "multipicklist", true),
    f("IsDeleted", "boolean", false),
    f("CreatedDate", "datetime", false),
    f("LastModifiedDate", "datetime", false),
    f("SystemModstamp", "datetime", false),
];

const OPPORTUNITY: &[FieldDef] = &[
    f("Id", "id", false),
    f("Name", "string", true),
    f("AccountId", "reference", true),
    f("OwnerId", "reference", true),
    f("StageName", "picklist", true),
    f("Amount", "currency", true),
    f("CurrencyIsoCode", "picklist", true),
    f("IsWon", "boolean", false),
    f("IsClosed", "boolean", false),
    f("CloseDate", "date", true),
    f("Loss_Reason__c", "picklist", true),
    f("Pipeline__c", "picklist", true),
    f("IsDeleted", "boolean", false),
    f("CreatedDate", "datetime", false),
    f("LastModifiedDate", "datetime", false),
    f("SystemModstamp", "datetime", false),
];

const CONTACT_ROLE: &[FieldDef] = &[
    f("Id", "id", false),
    f("OpportunityId", "reference", false),
    f("ContactId", "reference", true),
    f("IsPrimary", "boolean", true),
    f("Role", "picklist", true),
    f("IsDeleted", "boolean", false),
    f("CreatedDate", "datetime", false),
    f("LastModifiedDate", "datetime", false),
    f("SystemModstamp", "datetime", false),
];

const USER: &[FieldDef] = &[
    f("Id", "id", false),
    f("Name", "string", true),
    f("Username", "string", true),
    f("IsActive", "boolean", true),
];

/// The objects the org has, with their key prefixes.
pub const OBJECTS: &[(&str, &str)] = &[
    ("Account", "001"),
    ("Contact", "003"),
    ("User", "005"),
    ("Opportunity", "006"),
    ("OpportunityContactRole", "00K"),
    ("Lead", "00Q"),
];

/// The fields of an object (its describe), custom fields included, as the integration user
/// sees them (`hidden` names fields its profile cannot read).
pub fn fields(kind: &str) -> Vec<FieldDef> {
    match kind {
        "Lead" => PERSON.iter().chain(LEAD_ONLY).copied().collect(),
        "Contact" => PERSON.iter().chain(CONTACT_ONLY).copied().collect(),
        "Account" => ACCOUNT.to_vec(),
        "Opportunity" => OPPORTUNITY.to_vec(),
        "OpportunityContactRole" => CONTACT_ROLE.to_vec(),
        "User" => USER.to_vec(),
        _ => Vec::new(),
    }
}

/// The canonical object name (`lead` → `Lead`).
pub fn object(name: &str) -> Option<&'static str> {
    OBJECTS
        .iter()
        .find(|(o, _)| o.eq_ignore_ascii_case(name))
        .map(|(o, _)| *o)
}

pub fn prefix(kind: &str) -> &'static str {
    OBJECTS
        .iter()
        .find(|(o, _)| *o == kind)
        .map_or("000", |(_, p)| *p)
}

/// The relationship a parent path names (`Account` → `AccountId` on Contact, pointing at an
/// Account) on `kind`.
pub fn relationship(kind: &str, name: &str) -> Option<(&'static str, &'static str)> {
    let all: &[(&str, &str, &str, &str)] = &[
        ("Contact", "Account", "AccountId", "Account"),
        ("Contact", "Owner", "OwnerId", "User"),
        ("Lead", "Owner", "OwnerId", "User"),
        ("Opportunity", "Account", "AccountId", "Account"),
        ("Opportunity", "Owner", "OwnerId", "User"),
        (
            "OpportunityContactRole",
            "Opportunity",
            "OpportunityId",
            "Opportunity",
        ),
        ("OpportunityContactRole", "Contact", "ContactId", "Contact"),
    ];
    all.iter()
        .find(|(k, rel, _, _)| *k == kind && rel.eq_ignore_ascii_case(name))
        .map(|(_, _, field, target)| (*field, *target))
}

/// The HubSpot sandbox's contact properties → the fields people carry here.
const PERSON_MAP: &[(&str, &str)] = &[
    ("firstname", "FirstName"),
    ("lastname", "LastName"),
    ("email", "Email"),
    ("jobtitle", "Title"),
    ("hs_analytics_source", "LeadSource"),
    ("lifecyclestage", "Lifecycle_Stage__c"),
    ("lead_rejection_reason", "Rejection_Reason__c"),
    ("bant_budget", "BANT_Budget__c"),
    ("bant_authority", "BANT_Authority__c"),
    ("bant_need", "BANT_Need__c"),
    ("bant_timeline", "BANT_Timeline__c"),
];

const COUNTS: &[(&str, &str)] = &[
    ("hs_analytics_num_page_views", "Page_Views__c"),
    ("hs_email_open", "Email_Opens__c"),
    ("hs_email_click", "Email_Clicks__c"),
    ("num_conversion_events", "Form_Submissions__c"),
];

const TIMES: &[(&str, &str)] = &[
    ("hs_analytics_last_visit_timestamp", "Last_Page_View__c"),
    ("hs_email_last_open_date", "Last_Email_Open__c"),
    ("hs_email_last_click_date", "Last_Email_Click__c"),
    ("recent_conversion_date", "Last_Form_Submission__c"),
];

fn time_of(text: Option<&String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn number(text: Option<&String>) -> Value {
    text.and_then(|t| t.parse::<f64>().ok())
        .map_or(Value::Null, |n| json!(n))
}

/// The owner number (HubSpot owner id) → its User id.
pub fn user_id(owner: &str) -> String {
    ids::id("005", owner.parse::<u64>().unwrap_or(0) % 1_000_000)
}

/// The org for a seed: every record by Id. People with a deal were converted; of the others,
/// about `contact_share` (0–1, by a roll on their number) were converted too — an org where
/// sales converts on acceptance has many contacts without opportunities.
pub fn build(spec: DataSpec, contact_share: f64) -> BTreeMap<String, SObject> {
    let (companies, contacts) = generate(spec);
    let (deals, contact_deals) = generate_deals(spec, &contacts, &companies);
    let mut out = BTreeMap::new();
    let mut put = |o: SObject| {
        out.insert(o.id().to_owned(), o);
    };
    let blank = |kind: &'static str| SObject {
        kind,
        fields: fields(kind)
            .iter()
            .map(|d| {
                let v = if d.kind == "boolean" {
                    json!(false)
                } else {
                    Value::Null
                };
                (d.name.to_owned(), v)
            })
            .collect(),
    };
    let stamp = |o: &mut SObject, created: DateTime<Utc>, modified: DateTime<Utc>| {
        o.fields
            .insert("CreatedDate".into(), json!(sf_time(created)));
        o.fields
            .insert("LastModifiedDate".into(), json!(sf_time(modified)));
        o.fields
            .insert("SystemModstamp".into(), json!(sf_time(modified)));
    };
    // Users: the owners.
    let mut owners: Vec<String> = contacts
        .iter()
        .chain(&deals)
        .filter_map(|r| r.properties.get("hubspot_owner_id").cloned())
        .collect();
    owners.sort();
    owners.dedup();
    for owner in &owners {
        let mut u = blank("User");
        u.fields.insert("Id".into(), json!(user_id(owner)));
        u.fields
            .insert("Name".into(), json!(format!("Rep {owner}")));
        u.fields.insert(
            "Username".into(),
            json!(format!("rep{owner}@sandbox.example")),
        );
        u.fields.insert("IsActive".into(), json!(true));
        put(u);
    }
    let account_of = |c: &Record| ids::id("001", c.id);
    let by_company: BTreeMap<u64, &Record> = companies.iter().map(|c| (c.id, c)).collect();
    for c in &companies {
        let mut a = blank("Account");
        a.fields.insert("Id".into(), json!(account_of(c)));
        let p = &c.properties;
        a.fields.insert("Name".into(), json!(p.get("name")));
        a.fields.insert("Website".into(), json!(p.get("domain")));
        a.fields.insert("Industry".into(), json!(p.get("industry")));
        a.fields.insert(
            "NumberOfEmployees".into(),
            number(p.get("numberofemployees")),
        );
        a.fields
            .insert("AnnualRevenue".into(), number(p.get("annualrevenue")));
        a.fields
            .insert("BillingCountry".into(), json!(p.get("country")));
        a.fields.insert(
            "Web_Technologies__c".into(),
            json!(p.get("web_technologies")),
        );
        stamp(&mut a, c.created_at, c.updated_at);
        put(a);
    }
    let person = |kind: &'static str, id: String, r: &Record| {
        let mut o = blank(kind);
        o.fields.insert("Id".into(), json!(id));
        let p = &r.properties;
        for (from, to) in PERSON_MAP {
            if let Some(v) = p.get(*from) {
                o.fields.insert((*to).into(), json!(v));
            }
        }
        if o.fields.get("LastName").is_none_or(Value::is_null) {
            // LastName is required on both objects.
            o.fields.insert("LastName".into(), json!("[not provided]"));
        }
        for (from, to) in COUNTS {
            o.fields.insert((*to).into(), number(p.get(*from)));
        }
        for (from, to) in TIMES {
            if let Some(t) = time_of(p.get(*from)) {
                o.fields.insert((*to).into(), json!(sf_time(t)));
            }
        }
        if let Some(owner) = p.get("hubspot_owner_id") {
            o.fields.insert("OwnerId".into(), json!(user_id(owner)));
        }
        stamp(&mut o, r.created_at, r.updated_at);
        o
    };
    let with_deals: std::collections::BTreeSet<u64> = contact_deals
        .iter()
        .filter(|(_, d)| !d.is_empty())
        .map(|(c, _)| *c)
        .collect();
    for r in &contacts {
        let company = r
            .properties
            .get("associatedcompanyid")
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| by_company.get(&id).copied());
        let status = r.properties.get("hs_lead_status");
        let lead_id = ids::id("00Q", r.id);
        let mut lead = person("Lead", lead_id, r);
        lead.fields
            .insert("Status".into(), json!(status.map_or("NEW", String::as_str)));
        match company {
            Some(c) => {
                let p = &c.properties;
                lead.fields.insert("Company".into(), json!(p.get("name")));
                lead.fields.insert("Website".into(), json!(p.get("domain")));
                lead.fields
                    .insert("Industry".into(), json!(p.get("industry")));
                lead.fields.insert(
                    "NumberOfEmployees".into(),
                    number(p.get("numberofemployees")),
                );
                lead.fields
                    .insert("AnnualRevenue".into(), number(p.get("annualrevenue")));
                lead.fields
                    .insert("Country".into(), json!(p.get("country")));
            }
            None => {
                let name = r
                    .properties
                    .get("company")
                    .map_or("[not provided]", String::as_str);
                lead.fields.insert("Company".into(), json!(name));
            }
        }
        let rolled = (r.id.wrapping_mul(2_654_435_761) % 1_000) as f64 / 1_000.0;
        if with_deals.contains(&r.id) || rolled < contact_share {
            // Converted: the contact is the person from now on.
            let contact_id = ids::id("003", r.id);
            let mut contact = person("Contact", contact_id.clone(), r);
            contact
                .fields
                .insert("Lead_Status__c".into(), json!(status));
            if let Some(c) = company {
                contact
                    .fields
                    .insert("AccountId".into(), json!(account_of(c)));
                lead.fields
                    .insert("ConvertedAccountId".into(), json!(account_of(c)));
            }
            lead.fields.insert("IsConverted".into(), json!(true));
            lead.fields
                .insert("ConvertedContactId".into(), json!(contact_id));
            lead.fields.insert(
                "ConvertedDate".into(),
                json!(r.created_at.date_naive().to_string()),
            );
            put(contact);
        }
        put(lead);
    }
    let mut role = 0u64;
    let deal_contacts: BTreeMap<u64, Vec<u64>> =
        contact_deals
            .iter()
            .fold(BTreeMap::new(), |mut acc, (contact, deals)| {
                for d in deals {
                    acc.entry(*d).or_insert_with(Vec::new).push(*contact);
                }
                acc
            });
    for d in &deals {
        let p = &d.properties;
        let mut o = blank("Opportunity");
        let id = ids::id("006", d.id);
        o.fields.insert("Id".into(), json!(id));
        o.fields.insert("Name".into(), json!(p.get("dealname")));
        o.fields.insert("Amount".into(), number(p.get("amount")));
        o.fields.insert(
            "CurrencyIsoCode".into(),
            json!(p.get("deal_currency_code").map_or("USD", String::as_str)),
        );
        let closed = p.get("hs_is_closed").is_some_and(|v| v == "true");
        let won = p.get("hs_is_closed_won").is_some_and(|v| v == "true");
        o.fields.insert("IsClosed".into(), json!(closed));
        o.fields.insert("IsWon".into(), json!(won));
        let stage = match (closed, won) {
            (true, true) => "Closed Won".to_owned(),
            (true, false) => "Closed Lost".to_owned(),
            _ => p
                .get("dealstage")
                .cloned()
                .unwrap_or_else(|| "Prospecting".into()),
        };
        o.fields.insert("StageName".into(), json!(stage));
        o.fields
            .insert("Pipeline__c".into(), json!(p.get("pipeline")));
        o.fields
            .insert("Loss_Reason__c".into(), json!(p.get("closed_lost_reason")));
        if let Some(close) = time_of(p.get("closedate")) {
            o.fields
                .insert("CloseDate".into(), json!(close.date_naive().to_string()));
        }
        if let Some(owner) = p.get("hubspot_owner_id") {
            o.fields.insert("OwnerId".into(), json!(user_id(owner)));
        }
        stamp(&mut o, d.created_at, d.updated_at);
        for (i, contact) in deal_contacts.get(&d.id).into_iter().flatten().enumerate() {
            role += 1;
            let mut r = blank("OpportunityContactRole");
            r.fields.insert("Id".into(), json!(ids::id("00K", role)));
            r.fields.insert("OpportunityId".into(), json!(id));
            r.fields
                .insert("ContactId".into(), json!(ids::id("003", *contact)));
            r.fields.insert("IsPrimary".into(), json!(i == 0));
            r.fields.insert("Role".into(), json!("Decision Maker"));
            stamp(&mut r, d.created_at, d.created_at);
            put(r);
        }
        put(o);
    }
    out
}
