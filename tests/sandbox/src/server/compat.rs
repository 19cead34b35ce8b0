//! Endpoints that third-party HubSpot clients call (the Singer, Meltano and Airbyte taps) and
//! leadsync itself does not: the object list (`GET /crm/v3/objects/{type}`), the custom-object
//! schemas, and the legacy v2 property list. Same auth, limits and data as the rest of the
//! sandbox; unknown query parameters (and any body on a GET) are ignored, as HubSpot does.

use super::{AppState, ObjectType, json_response, not_found, render};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// HubSpot's largest page for the list endpoint.
const MAX_LIST_LIMIT: usize = 100;

/// `%XX` and `+` decoded.
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query's pairs in order; repeated keys kept.
fn pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Every value of `key`, comma-joined or repeated.
fn list(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| {
            v.split(',')
                .map(str::trim)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `GET /crm/v3/objects/{type}`: a page of objects in id order, `after` the last id seen.
pub(super) async fn list_objects(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let pairs = pairs(raw.as_deref().unwrap_or(""));
    let limit = first(&pairs, "limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(1, MAX_LIST_LIMIT);
    let after = first(&pairs, "after")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let archived = first(&pairs, "archived") == Some("true");
    let properties = list(&pairs, "properties");
    let associations = list(&pairs, "associations");
    let db = state.db();
    let mut page: Vec<&crate::data::Record> = db
        .table(t)
        .range(after.saturating_add(1)..)
        .map(|(_, r)| r)
        .filter(|r| r.archived == archived)
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    page.truncate(limit);
    let results: Vec<Value> = page
        .iter()
        .map(|record| {
            let mut rendered = render(record, t, &properties);
            if t == ObjectType::Contacts && !associations.is_empty() {
                let mut linked = serde_json::Map::new();
                for kind in &associations {
                    let ids: Vec<String> = match kind.as_str() {
                        "companies" | "company" => record
                            .properties
                            .get("associatedcompanyid")
                            .filter(|v| !v.is_empty())
                            .map(|v| vec![v.clone()])
                            .unwrap_or_default(),
                        "deals" | "deal" => db
                            .contact_deals
                            .get(&record.id)
                            .map(|ds| ds.iter().map(u64::to_string).collect())
                            .unwrap_or_default(),
                        _ => Vec::new(),
                    };
                    if !ids.is_empty() {
                        let singular = kind.trim_end_matches('s').replace("companie", "company");
                        linked.insert(
                            kind.clone(),
                            json!({"results": ids.iter().map(|id| json!({"id": id, "type": format!("contact_to_{singular}")})).collect::<Vec<_>>()}),
                        );
                    }
                }
                if !linked.is_empty() {
                    rendered["associations"] = Value::Object(linked);
                }
            }
            rendered
        })
        .collect();
    let mut body = json!({ "results": results });
    if more {
        if let Some(last) = page.last() {
            body["paging"] = json!({"next": {
                "after": last.id.to_string(),
                "link": format!("/crm/v3/objects/{object}?after={}", last.id),
            }});
        }
    }
    json_response(StatusCode::OK, &body)
}

/// `GET /crm/v3/schemas`: custom object schemas — the sandbox has none.
pub(super) async fn schemas() -> Response {
    json_response(StatusCode::OK, &json!({ "results": [] }))
}

/// HubSpot's other standard object types. The sandbox holds no records of these, but clients
/// that discover every type (Meltano's tap asks for calls, emails, tickets, …) get their property
/// list: the base properties every HubSpot object has.
const EMPTY_STANDARD_TYPES: &[&str] = &[
    "calls",
    "communications",
    "emails",
    "feedback_submissions",
    "goal_targets",
    "invoices",
    "leads",
    "line_items",
    "meetings",
    "notes",
    "orders",
    "postal_mail",
    "products",
    "quotes",
    "tasks",
    "tickets",
    "deal_splits",
    "carts",
    "discounts",
    "fees",
    "taxes",
    "commerce_payments",
    "subscriptions",
    "users",
];

/// The base property definitions of a standard type the sandbox holds no records of, or `None`
/// for a name that is not a HubSpot object type.
pub(super) fn base_properties(object: &str) -> Option<Vec<Value>> {
    if !EMPTY_STANDARD_TYPES.contains(&object) {
        return None;
    }
    let def = |name: &str, label: &str, kind: &str, field: &str| {
        json!({
            "name": name,
            "label": label,
            "type": kind,
            "fieldType": field,
            "groupName": format!("{}information", object.trim_end_matches('s')),
            "description": "",
            "options": [],
        })
    };
    Some(vec![
        def("hs_object_id", "Record ID", "number", "number"),
        def("hs_createdate", "Create date", "datetime", "date"),
        def(
            "hs_lastmodifieddate",
            "Last modified date",
            "datetime",
            "date",
        ),
    ])
}

/// `GET /properties/v2/{type}/properties`: the legacy property list, a bare JSON array.
pub(super) async fn legacy_properties(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return match base_properties(&object) {
            Some(defs) => json_response(StatusCode::OK, &Value::Array(defs)),
            None => not_found().await,
        };
    };
    let db = state.db();
    let defs: Vec<Value> = db
        .schemas
        .get(&t)
        .map(|s| {
            s.properties
                .values()
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect()
        })
        .unwrap_or_default();
    json_response(StatusCode::OK, &Value::Array(defs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded_and_lists_split() {
        let p = pairs("limit=5&properties=email,firstname&properties=lastname&x=%2Fa+b&flag");
        assert_eq!(first(&p, "limit"), Some("5"));
        assert_eq!(
            list(&p, "properties"),
            vec!["email", "firstname", "lastname"]
        );
        assert_eq!(first(&p, "x"), Some("/a b"));
        assert_eq!(first(&p, "flag"), Some(""));
        assert_eq!(decode("100%"), "100%");
    }
}
