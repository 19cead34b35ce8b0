//! Objects: rendering a record as HubSpot does, search (with its cached matches), merge and
//! archive.

use super::*;

/// The contact properties a bare portal lacks ([`SandboxConfig::inputs_defined`]).
pub(super) const INPUT_PROPERTIES: &[&str] = &[
    "bant_budget",
    "bant_authority",
    "bant_need",
    "bant_timeline",
    "lead_rejection_reason",
];

/// The requested properties the object type defines: HubSpot leaves the others out of its
/// answers without a word (a misspelt property reads as never set).
pub(super) fn defined(db: &Db, t: ObjectType, requested: &[String]) -> Vec<String> {
    let schema = db.schemas.get(&t);
    requested
        .iter()
        .filter(|name| schema.is_some_and(|s| s.properties.contains_key(*name)))
        .cloned()
        .collect()
}

pub(super) fn render(record: &Record, t: ObjectType, requested: &[String]) -> Value {
    let mut props = serde_json::Map::new();
    for name in t.default_properties() {
        props.insert(
            (*name).to_owned(),
            record
                .properties
                .get(*name)
                .map_or(Value::Null, |v| Value::String(v.clone())),
        );
    }
    for name in requested {
        props.insert(
            name.clone(),
            record
                .properties
                .get(name)
                .map_or(Value::Null, |v| Value::String(v.clone())),
        );
    }
    let mut rendered = json!({
        "id": record.id.to_string(),
        "properties": props,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "archived": record.archived,
    });
    if record.archived {
        // Archiving is the record's last change.
        rendered["archivedAt"] = json!(iso(record.updated_at));
    }
    rendered
}

#[allow(clippy::result_large_err)]
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Invalid input JSON: {e}"),
        )
    })
}

pub(super) async fn search_objects(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    if body.len() > MAX_BODY_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("Request body exceeds {MAX_BODY_CHARS} characters"),
        );
    }
    let mut req: SearchRequest = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    // Some clients send one AND group as a top-level `filters` list.
    if req.filter_groups.is_empty() && !req.filters.is_empty() {
        req.filter_groups.push(search::FilterGroup {
            filters: std::mem::take(&mut req.filters),
        });
    }
    let params = match search::validate(&req) {
        Ok(p) => p,
        Err(invalid) => return error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", invalid.0),
    };
    let lag_ms = state.limiter().faults.index_lag_ms;
    let db = state.db();
    let table = db.table(t);
    let requested = defined(&db, t, &req.properties);
    let render_page = |page: search::Page<'_>| {
        let results: Vec<Value> = page
            .results
            .iter()
            .map(|r| render(r, t, &requested))
            .collect();
        let mut body = json!({ "total": page.total, "results": results });
        if let Some(next) = page.next_after {
            body["paging"] = json!({ "next": { "after": next.to_string(), "link": null } });
        }
        json_response(StatusCode::OK, &body)
    };
    if lag_ms > 0 {
        // The search index lags behind writes: recently modified records are not visible yet.
        let indexed_before = Utc::now() - chrono::Duration::milliseconds(lag_ms as i64);
        let hits = search::matching(
            table.values().filter(|r| r.updated_at <= indexed_before),
            &req,
            &params,
            false,
        );
        return render_page(search::page(&hits, &params));
    }
    let floor = search::floor_walk(&req, &params);
    let ids = cached_matches(&state, t, table, &req, &params, floor.is_some());
    // A walk by id: the page starts at the floor of the kept matches.
    let start = floor.map_or(0, |f| ids.partition_point(|id| *id < f));
    let visible = &ids[start..];
    let chosen: Vec<&Record> = visible
        .iter()
        .skip(params.after)
        .take(params.limit)
        .filter_map(|id| table.get(id))
        .collect();
    let end = params.after + chosen.len();
    render_page(search::Page {
        total: visible.len(),
        results: chosen,
        next_after: (end < visible.len()).then_some(end),
    })
}

/// The ids `req` matches in `table`, in order — from the cache when the data has not changed
/// since they were found.
pub(super) fn cached_matches(
    state: &AppState,
    t: ObjectType,
    table: &BTreeMap<u64, Record>,
    req: &SearchRequest,
    params: &search::Params,
    walk: bool,
) -> Arc<Vec<u64>> {
    let key = search::matches_key(req, params, walk);
    // Read under the caller's read lock on the data: no write can happen meanwhile.
    let generation = state.generation.load(std::sync::atomic::Ordering::Acquire);
    let lock = || {
        state
            .matches_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(hit) = lock()
        .iter()
        .find(|c| c.object == t && c.generation == generation && c.key == key)
    {
        return Arc::clone(&hit.ids);
    }
    // A record stamped in the future is not visible yet; such matches change with the clock
    // and are not kept.
    let now = Utc::now();
    let mut hidden = false;
    let ids: Arc<Vec<u64>> = Arc::new(
        search::matching(
            table.values().filter(|r| {
                let visible = r.updated_at <= now;
                hidden |= !visible;
                visible
            }),
            req,
            params,
            walk,
        )
        .iter()
        .map(|r| r.id)
        .collect(),
    );
    if !hidden {
        let mut cache = lock();
        cache.retain(|c| c.generation == generation);
        if cache.len() >= MATCHES_CACHED {
            cache.remove(0);
        }
        cache.push(CachedMatches {
            object: t,
            key,
            generation,
            ids: Arc::clone(&ids),
        });
    }
    ids
}

/// Change a contact as a user would, while a sync runs: body `{"property": "value", …}`.
/// Merge two live contacts (see [`Sandbox::merge_contacts`]).
pub(super) fn merge(db: &mut Db, primary: u64, merged: u64, at: chrono::DateTime<Utc>) -> bool {
    let live = |db: &Db, id| db.contacts.get(&id).is_some_and(|r| !r.archived);
    if primary == merged || !live(db, primary) || !live(db, merged) {
        return false;
    }
    let mut absorbed = vec![merged.to_string()];
    if let Some(record) = db.contacts.get_mut(&merged) {
        if let Some(ids) = record.properties.get("hs_merged_object_ids") {
            absorbed.extend(ids.split(';').filter(|i| !i.is_empty()).map(str::to_owned));
        }
        record.archived = true;
        record.touch(at, ObjectType::Contacts.modified_property());
    }
    let moved = db.contact_deals.remove(&merged).unwrap_or_default();
    let deals = db.contact_deals.entry(primary).or_default();
    for d in moved {
        if !deals.contains(&d) {
            deals.push(d);
        }
    }
    if let Some(record) = db.contacts.get_mut(&primary) {
        let ids = record
            .properties
            .entry("hs_merged_object_ids".to_owned())
            .or_default();
        for id in absorbed {
            if !ids.split(';').any(|i| i == id) {
                if !ids.is_empty() {
                    ids.push(';');
                }
                ids.push_str(&id);
            }
        }
        record.touch(at, ObjectType::Contacts.modified_property());
    }
    true
}

/// `POST /crm/v3/objects/contacts/merge` with `primaryObjectId` and `objectIdToMerge`: the
/// primary, merged, as HubSpot answers.
pub(super) async fn merge_objects(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Merge {
        primary_object_id: Value,
        object_id_to_merge: Value,
    }
    if ObjectType::parse(&object) != Some(ObjectType::Contacts) {
        return not_found().await;
    }
    let req: Merge = match parse_body(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (Ok(primary), Ok(merged)) = (
        id_text(&req.primary_object_id).parse::<u64>(),
        id_text(&req.object_id_to_merge).parse::<u64>(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "primaryObjectId and objectIdToMerge must be contact ids",
        );
    };
    let mut db = state.db_mut();
    if !merge(&mut db, primary, merged, Utc::now()) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!(
                "cannot merge contact {merged} into {primary}: both must exist, differ and be live"
            ),
        );
    }
    let record = db.contacts[&primary].clone();
    drop(db);
    json_response(
        StatusCode::OK,
        &render(
            &record,
            ObjectType::Contacts,
            &["hs_merged_object_ids".to_owned()],
        ),
    )
}

/// `DELETE /crm/v3/objects/{type}/{id}`: archive the record (204), as HubSpot does.
pub(super) async fn archive_object(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, String)>,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let mut db = state.db_mut();
    let Some(record) = id
        .parse::<u64>()
        .ok()
        .and_then(|id| db.table_mut(t).get_mut(&id))
        .filter(|r| !r.archived)
    else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("{object} {id} not found"),
        );
    };
    record.archived = true;
    record.touch(Utc::now(), t.modified_property());
    StatusCode::NO_CONTENT.into_response()
}
