//! The v4 association batch read (contacts ↔ companies, deals), 1,000 inputs at most.

use super::*;

/// The v4 association batch read, contacts → companies (primary, type 1) and contacts → deals
/// (type 4). At most 1,000 inputs; ids without associations come back as errors (207).
pub(super) async fn read_associations(
    State(state): State<Arc<AppState>>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Input {
        id: Value,
    }
    #[derive(serde::Deserialize)]
    struct Inputs {
        inputs: Vec<Input>,
    }
    let started = Utc::now();
    let (Some(from), Some(to)) = (ObjectType::parse(&from), ObjectType::parse(&to)) else {
        return not_found().await;
    };
    if from != ObjectType::Contacts && to != ObjectType::Contacts {
        return not_found().await;
    }
    let req: Inputs = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if req.inputs.len() > 1000 {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Batch size {} exceeds the limit of 1000 inputs",
                req.inputs.len()
            ),
        );
    }
    let db = state.db();
    let (mut results, mut errors) = (vec![], vec![]);
    for input in &req.inputs {
        let id = id_text(&input.id);
        let number = id.parse::<u64>().ok();
        // Deals and companies to their contacts (HubSpot's type ids 3 and 2).
        if from != ObjectType::Contacts {
            let live = number
                .and_then(|n| db.table(from).get(&n))
                .filter(|r| !r.archived);
            let targets: Vec<u64> = match (live, from) {
                (Some(deal), ObjectType::Deals) => db
                    .contact_deals
                    .iter()
                    .filter(|(_, deals)| deals.contains(&deal.id))
                    .map(|(contact, _)| *contact)
                    .collect(),
                (Some(company), _) => db
                    .contacts
                    .values()
                    .filter(|c| {
                        c.properties.get("associatedcompanyid") == Some(&company.id.to_string())
                    })
                    .map(|c| c.id)
                    .collect(),
                (None, _) => vec![],
            };
            let targets: Vec<u64> = targets
                .into_iter()
                .filter(|c| db.contacts.get(c).is_some_and(|r| !r.archived))
                .collect();
            if targets.is_empty() {
                errors.push(json!({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                    "message": format!("No contact is associated with {from:?} {id}."),
                    "context": { "fromObjectId": [id] },
                }));
                continue;
            }
            let type_id = if from == ObjectType::Deals { 3 } else { 2 };
            let to_list: Vec<Value> = targets
                .iter()
                .map(|c| json!({"toObjectId": c, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": Value::Null}]}))
                .collect();
            results.push(json!({ "from": { "id": id }, "to": to_list }));
            continue;
        }
        let contact = number
            .and_then(|n| db.contacts.get(&n))
            .filter(|c| !c.archived);
        let targets: Vec<(u64, u64, &str)> = match (contact, to) {
            (Some(c), ObjectType::Companies) => c
                .properties
                .get("associatedcompanyid")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|company| vec![(company, 1, "Primary")])
                .unwrap_or_default(),
            (Some(c), ObjectType::Deals) => db
                .contact_deals
                .get(&c.id)
                .map(|d| d.iter().map(|id| (*id, 4, "")).collect())
                .unwrap_or_default(),
            _ => vec![],
        };
        if targets.is_empty() {
            errors.push(json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": format!("No {to:?} is associated with contact {id}."),
                "context": { "fromObjectId": [id] },
            }));
            continue;
        }
        let to_list: Vec<Value> = targets
            .iter()
            .map(|(to_id, type_id, label)| json!({
                "toObjectId": to_id,
                "associationTypes": [{ "category": "HUBSPOT_DEFINED", "typeId": type_id, "label": if label.is_empty() { Value::Null } else { json!(label) } }],
            }))
            .collect();
        results.push(json!({ "from": { "id": id }, "to": to_list }));
    }
    batch_body(results, errors, started)
}
