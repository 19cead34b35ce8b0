//! sObject describe, the composite collections update (200 records a call) and the Tooling
//! API's custom field creation.

use super::*;

pub(super) async fn describe(
    State(state): State<Arc<AppState>>,
    UrlPath((version, object)): UrlPath<(String, String)>,
) -> Response {
    state.count(|c| c.describes += 1);
    let Some(kind) = world::object(&object).filter(|_| version_ok(&version)) else {
        return sf_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
    };
    let org = state.org();
    let fields: Vec<Value> = org
        .schema
        .get(kind)
        .into_iter()
        .flatten()
        .filter(|f| !org.hidden.contains(&(kind.to_owned(), f.name.clone())))
        .map(|f| {
            json!({
                "name": f.name,
                "label": f.name.trim_end_matches("__c").replace('_', " "),
                "type": f.kind,
                "updateable": f.updateable,
                "createable": f.updateable,
                "custom": f.custom,
                "nillable": f.name != "Id" && f.name != "LastName",
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "name": kind,
            "keyPrefix": world::prefix(kind),
            "queryable": true,
            "updateable": true,
            "fields": fields,
        }),
    )
}

pub(super) fn type_fits(kind: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(_) => !matches!(kind, "double" | "int" | "currency" | "percent" | "boolean"),
        Value::Number(_) => matches!(kind, "double" | "int" | "currency" | "percent"),
        Value::Bool(_) => kind == "boolean",
        _ => false,
    }
}

/// `PATCH /composite/sobjects`: up to 200 records, each answered in request order.
pub(super) async fn collection_update(
    State(state): State<Arc<AppState>>,
    UrlPath(version): UrlPath<String>,
    body: String,
) -> Response {
    if !version_ok(&version) {
        return not_found().await;
    }
    state.count(|c| c.collection_updates += 1);
    let Ok(parsed) = serde_json::from_str::<Value>(&body) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Unexpected character in the request body",
        );
    };
    let Some(records) = parsed.get("records").and_then(Value::as_array) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "records: the collection is required",
        );
    };
    if records.len() > COLLECTION_LIMIT {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        );
    }
    let lock_rate = lock(&state.faults).1;
    let now = state.now();
    let mut answers = Vec::with_capacity(records.len());
    let mut org = state.org_mut();
    for record in records {
        let id = record.get("id").and_then(Value::as_str).map(str::to_owned);
        let kind = record.pointer("/attributes/type").and_then(Value::as_str);
        let fail = |code: &str, message: String, fields: Vec<String>| json!({"id": id, "success": false, "errors": [{"statusCode": code, "message": message, "fields": fields}]});
        let Some(id_text) = id.clone() else {
            answers.push(fail(
                "MISSING_ARGUMENT",
                "Id not specified in an update call".into(),
                vec![],
            ));
            continue;
        };
        let Some(kind) = kind.and_then(world::object) else {
            answers.push(fail(
                "INVALID_TYPE",
                "sObject type is required in attributes.type".into(),
                vec![],
            ));
            continue;
        };
        match org.records.get(&id_text) {
            None => {
                answers.push(fail(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id".into(),
                    vec![],
                ));
                continue;
            }
            Some(r) if r.kind != kind => {
                answers.push(fail(
                    "INVALID_CROSS_REFERENCE_KEY",
                    format!("invalid cross reference id: {id_text} is not a {kind}"),
                    vec![],
                ));
                continue;
            }
            Some(r) if r.flag("IsDeleted") => {
                answers.push(fail(
                    "ENTITY_IS_DELETED",
                    "entity is deleted".into(),
                    vec![],
                ));
                continue;
            }
            Some(_) => {}
        }
        if lock(&state.rng).random_bool(lock_rate.clamp(0.0, 1.0)) {
            state.count(|c| c.injected_lock += 1);
            answers.push(fail(
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record or 1 records".into(),
                vec![],
            ));
            continue;
        }
        let mut changes = Vec::new();
        let mut error = None;
        for (name, value) in record.as_object().into_iter().flatten() {
            if name == "attributes" || name == "id" {
                continue;
            }
            let field = org
                .schema
                .get(kind)
                .and_then(|fs| fs.iter().find(|f| f.name.eq_ignore_ascii_case(name)))
                .filter(|f| !org.hidden.contains(&(kind.to_owned(), f.name.clone())))
                .cloned();
            match field {
                None => {
                    error = Some(fail(
                        "INVALID_FIELD",
                        format!("No such column '{name}' on sobject of type {kind}"),
                        vec![name.clone()],
                    ));
                    break;
                }
                Some(f) if !f.updateable => {
                    error = Some(fail(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        format!(
                            "Unable to create/update fields: {}. Please check the security \
                             settings of this field and verify that it is read/write for your \
                             profile or permission set.",
                            f.name
                        ),
                        vec![f.name.clone()],
                    ));
                    break;
                }
                Some(f) if !type_fits(&f.kind, value) => {
                    error = Some(fail(
                        "INVALID_TYPE_ON_FIELD_IN_RECORD",
                        format!("{}: value not of required type: {value}", f.name),
                        vec![f.name.clone()],
                    ));
                    break;
                }
                Some(f) => changes.push((f.name, value.clone())),
            }
        }
        if let Some(e) = error {
            answers.push(e);
            continue;
        }
        if let Some(r) = org.records.get_mut(&id_text) {
            for (k, v) in changes {
                r.fields.insert(k, v);
            }
            touch(r, now);
        }
        state.count(|c| c.records_updated += 1);
        answers.push(json!({"id": id_text, "success": true, "errors": []}));
    }
    json_response(StatusCode::OK, &Value::Array(answers))
}

/// Tooling API: a custom field on Lead or Contact (`FullName: "Lead.Leadsync_Score__c"`,
/// `Metadata: {type, label, …}`). The sandbox makes it visible to the integration user at
/// once (a real org needs field-level security granted too).
pub(super) async fn create_field(State(state): State<Arc<AppState>>, body: String) -> Response {
    state.count(|c| c.tooling += 1);
    let Ok(parsed) = serde_json::from_str::<Value>(&body) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Unexpected character in the request body",
        );
    };
    let full = parsed.get("FullName").and_then(Value::as_str).unwrap_or("");
    let Some((object, name)) = full.split_once('.') else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "FIELD_INTEGRITY_EXCEPTION",
            "FullName must be Object.Field__c",
        );
    };
    let Some(kind) = world::object(object) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("no such object {object}"),
        );
    };
    if !name.ends_with("__c") {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "FIELD_INTEGRITY_EXCEPTION",
            "custom field names end in __c",
        );
    }
    let sf_type = match parsed.pointer("/Metadata/type").and_then(Value::as_str) {
        Some("Number") => "double",
        Some("Text") | Some("LongTextArea") => "string",
        Some("DateTime") => "datetime",
        Some("Checkbox") => "boolean",
        Some(other) => {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "FIELD_INTEGRITY_EXCEPTION",
                format!("field type {other} is not supported by the sandbox"),
            );
        }
        None => {
            return sf_error(
                StatusCode::BAD_REQUEST,
                "REQUIRED_FIELD_MISSING",
                "Metadata.type is required",
            );
        }
    };
    let mut org = state.org_mut();
    let fields = org.schema.entry(kind).or_default();
    if fields.iter().any(|f| f.name.eq_ignore_ascii_case(name)) {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "DUPLICATE_DEVELOPER_NAME",
            format!("There is already a field named {name} on {kind}."),
        );
    }
    fields.push(Field {
        name: name.to_owned(),
        kind: sf_type.to_owned(),
        updateable: true,
        custom: true,
    });
    for r in org.records.values_mut().filter(|r| r.kind == kind) {
        r.fields.insert(name.to_owned(), Value::Null);
    }
    let n = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
    json_response(
        StatusCode::CREATED,
        &json!({"id": ids::id("00N", n), "success": true, "errors": [], "warnings": []}),
    )
}
