//! Property definitions and groups per object type, as `/crm/v3/properties` serves them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const TYPES: &[&str] = &[
    "bool",
    "date",
    "datetime",
    "enumeration",
    "number",
    "phone_number",
    "string",
];

/// A property definition (the fields leadsync and common clients use).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDef {
    pub name: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub field_type: String,
    pub group_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub options: Vec<PropertyOption>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyOption {
    pub label: String,
    pub value: String,
    #[serde(default)]
    pub display_order: i64,
    #[serde(default)]
    pub hidden: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupDef {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub display_order: i64,
}

/// The definitions of one object type.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub properties: BTreeMap<String, PropertyDef>,
    pub groups: BTreeMap<String, GroupDef>,
}

impl Schema {
    /// The standard definitions for the names the synthetic data uses.
    pub fn standard(group: &str, names: &[(&str, &str)]) -> Self {
        let mut schema = Schema::default();
        schema.groups.insert(
            group.to_owned(),
            GroupDef {
                name: group.to_owned(),
                label: "Information".into(),
                display_order: 0,
            },
        );
        for (name, kind) in names {
            let field_type = match *kind {
                "number" => "number",
                "datetime" | "date" => "date",
                "enumeration" => "select",
                _ => "text",
            };
            schema.properties.insert(
                (*name).to_owned(),
                PropertyDef {
                    name: (*name).to_owned(),
                    label: (*name).to_owned(),
                    kind: (*kind).to_owned(),
                    field_type: field_type.to_owned(),
                    group_name: group.to_owned(),
                    description: String::new(),
                    options: Vec::new(),
                },
            );
        }
        schema
    }
}

pub const CONTACT_STANDARD: &[(&str, &str)] = &[
    ("hs_merged_object_ids", "enumeration"),
    ("email", "string"),
    ("firstname", "string"),
    ("lastname", "string"),
    ("company", "string"),
    ("website", "string"),
    ("jobtitle", "string"),
    ("lifecyclestage", "enumeration"),
    ("hs_lead_status", "enumeration"),
    ("hubspot_owner_id", "enumeration"),
    ("createdate", "datetime"),
    ("lastmodifieddate", "datetime"),
    ("hs_object_id", "number"),
    ("hs_analytics_source", "enumeration"),
    ("hs_email_open", "number"),
    ("hs_email_click", "number"),
    ("num_conversion_events", "number"),
    ("hs_analytics_num_page_views", "number"),
    ("associatedcompanyid", "number"),
    ("lead_rejection_reason", "enumeration"),
    ("bant_budget", "enumeration"),
    ("bant_authority", "enumeration"),
    ("bant_need", "enumeration"),
    ("bant_timeline", "enumeration"),
    ("hs_analytics_last_visit_timestamp", "datetime"),
    ("hs_email_last_open_date", "datetime"),
    ("hs_email_last_click_date", "datetime"),
    ("recent_conversion_date", "datetime"),
];

pub const DEAL_STANDARD: &[(&str, &str)] = &[
    ("dealname", "string"),
    ("amount", "number"),
    ("dealstage", "enumeration"),
    ("pipeline", "enumeration"),
    ("closedate", "datetime"),
    ("hubspot_owner_id", "enumeration"),
    ("createdate", "datetime"),
    ("hs_lastmodifieddate", "datetime"),
    ("hs_object_id", "number"),
    ("deal_currency_code", "enumeration"),
    ("hs_is_closed_won", "bool"),
    ("hs_is_closed", "bool"),
    ("closed_lost_reason", "string"),
];

pub const COMPANY_STANDARD: &[(&str, &str)] = &[
    ("name", "string"),
    ("domain", "string"),
    ("industry", "enumeration"),
    ("numberofemployees", "number"),
    ("annualrevenue", "number"),
    ("web_technologies", "enumeration"),
    ("country", "string"),
    ("createdate", "datetime"),
    ("hs_lastmodifieddate", "datetime"),
    ("hs_object_id", "number"),
];
