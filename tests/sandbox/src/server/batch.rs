//! The batch endpoints (`batch/read`, `batch/update`, `batch/upsert`): 100 inputs at most, a
//! 207 with per-row errors when some rows fail.

use super::*;

#[derive(Debug, serde::Deserialize)]
pub(super) struct BatchInput {
    pub(super) id: Value,
    #[serde(default, rename = "idProperty")]
    pub(super) id_property: Option<String>,
    #[serde(default)]
    pub(super) properties: BTreeMap<String, Value>,
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct BatchRequest {
    pub(super) inputs: Vec<BatchInput>,
    #[serde(default)]
    pub(super) properties: Vec<String>,
}

pub(super) const MAX_BATCH: usize = 100;

pub(super) fn batch_body(
    results: Vec<Value>,
    errors: Vec<Value>,
    started: chrono::DateTime<Utc>,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(Utc::now()),
    });
    if !errors.is_empty() {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
    }
    json_response(status, &body)
}

pub(super) fn row_error(category: &str, message: String, id: &str) -> Value {
    json!({ "status": "error", "category": category, "message": message, "context": { "ids": [id] } })
}

pub(super) fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The object type and body of a batch call, or the 404/400 HubSpot answers instead.
#[allow(clippy::result_large_err)] // the error is the response itself
pub(super) fn batch_request(
    object: &str,
    body: &Bytes,
) -> Result<(ObjectType, BatchRequest), Response> {
    let t = ObjectType::parse(object).ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "Resource not found",
        )
    })?;
    let req: BatchRequest = parse_body(body)?;
    if req.inputs.len() > MAX_BATCH {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "Batch size {} exceeds the limit of {MAX_BATCH} inputs",
                req.inputs.len()
            ),
        ));
    }
    Ok((t, req))
}

pub(super) async fn batch_read(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let started = Utc::now();
    let (t, req) = match batch_request(&object, &body) {
        Ok(parsed) => parsed,
        Err(resp) => return resp,
    };
    let db = state.db();
    let requested = defined(&db, t, &req.properties);
    let (mut results, mut errors) = (vec![], vec![]);
    for input in &req.inputs {
        let id = id_text(&input.id);
        match id.parse::<u64>().ok().and_then(|n| db.table(t).get(&n)).filter(|r| !r.archived) {
            Some(record) => results.push(render(record, t, &requested)),
            None => errors.push(row_error("OBJECT_NOT_FOUND", format!("Could not get some {object} objects, they may be deleted or not exist. Check that ids are valid."), &id)),
        }
    }
    batch_body(results, errors, started)
}

/// Writing a property that does not exist fails the whole batch, as HubSpot does.
pub(super) fn unknown_properties(db: &Db, t: ObjectType, req: &BatchRequest) -> Option<Response> {
    let schema = db.schemas.get(&t).map(|sc| &sc.properties);
    let unknown: Vec<String> = req
        .inputs
        .iter()
        .flat_map(|i| i.properties.keys())
        .filter(|name| schema.is_some_and(|props| !props.contains_key(*name)))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unknown.is_empty() {
        let details: Vec<String> = unknown
            .iter()
            .map(|n| format!("{{\"isValid\":false,\"message\":\"Property \\\"{n}\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"{n}\"}}"))
            .collect();
        return Some(error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Property values were not valid: [{}]", details.join(",")),
        ));
    }
    None
}

/// Upsert by a unique property (`email` on contacts): update the record that has the value,
/// or create one with it. Results say which were `new`.
pub(super) async fn batch_upsert(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let started = Utc::now();
    let (t, req) = match batch_request(&object, &body) {
        Ok(parsed) => parsed,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    if let Some(refusal) = unknown_properties(&db, t, &req) {
        return refusal;
    }
    let unique = match t {
        ObjectType::Contacts => "email",
        ObjectType::Companies => "domain",
        ObjectType::Deals => "hs_object_id",
    };
    let mut results = vec![];
    let now = Utc::now();
    for input in &req.inputs {
        let id_property = input.id_property.as_deref().unwrap_or("hs_object_id");
        if id_property != unique && id_property != "hs_object_id" {
            return error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                format!("idProperty {id_property} does not have hasUniqueValue"),
            );
        }
        let key = id_text(&input.id);
        let table = db.table_mut(t);
        let found = table
            .values()
            .find(|r| {
                !r.archived
                    && r.properties
                        .get(id_property)
                        .is_some_and(|v| v.eq_ignore_ascii_case(&key))
            })
            .map(|r| r.id);
        let (id, is_new) = match found {
            Some(id) => (id, false),
            None => {
                let id = table.keys().next_back().map_or(1, |last| last + 1);
                let mut record = Record {
                    id,
                    properties: BTreeMap::new(),
                    created_at: now,
                    updated_at: now,
                    archived: false,
                };
                record
                    .properties
                    .insert("hs_object_id".into(), id.to_string());
                record.properties.insert("createdate".into(), iso(now));
                record
                    .properties
                    .insert(id_property.to_owned(), key.clone());
                table.insert(id, record);
                (id, true)
            }
        };
        let Some(record) = table.get_mut(&id) else {
            continue;
        };
        for (name, value) in &input.properties {
            let text = match value {
                Value::String(v) => v.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            record.properties.insert(name.clone(), text);
        }
        record.touch(now, t.modified_property());
        let names: Vec<String> = input.properties.keys().cloned().collect();
        let mut rendered = render(record, t, &names);
        rendered["new"] = json!(is_new);
        results.push(rendered);
    }
    batch_body(results, vec![], started)
}

pub(super) async fn batch_update(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let started = Utc::now();
    let (t, req) = match batch_request(&object, &body) {
        Ok(parsed) => parsed,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    if let Some(refusal) = unknown_properties(&db, t, &req) {
        return refusal;
    }
    let (mut results, mut errors) = (vec![], vec![]);
    let now = Utc::now();
    for input in &req.inputs {
        let id = id_text(&input.id);
        let Some(record) = id
            .parse::<u64>()
            .ok()
            .and_then(|n| db.table_mut(t).get_mut(&n))
            .filter(|r| !r.archived)
        else {
            errors.push(row_error(
                "OBJECT_NOT_FOUND",
                format!("Object {id} not found"),
                &id,
            ));
            continue;
        };
        let mut values = BTreeMap::new();
        let mut bad = None;
        for (name, value) in &input.properties {
            match value {
                Value::String(s) => values.insert(name.clone(), s.clone()),
                Value::Number(n) => values.insert(name.clone(), n.to_string()),
                Value::Bool(b) => values.insert(name.clone(), b.to_string()),
                Value::Null => values.insert(name.clone(), String::new()),
                _ => {
                    bad = Some(name.clone());
                    None
                }
            };
        }
        if let Some(name) = bad {
            errors.push(row_error(
                "VALIDATION_ERROR",
                format!("Property values were not valid: {name} must be a scalar"),
                &id,
            ));
            continue;
        }
        record.properties.extend(values);
        record.touch(now, t.modified_property());
        let names: Vec<String> = input.properties.keys().cloned().collect();
        results.push(render(record, t, &names));
    }
    batch_body(results, errors, started)
}
