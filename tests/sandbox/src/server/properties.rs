//! Property definitions and groups: list, create, update (the property bootstrap's API).

use super::*;

/// `{"results": [...]}` of one part of an object type's schema (properties or groups).
pub(super) async fn list_schema<T: serde::Serialize>(
    state: &AppState,
    object: &str,
    part: impl Fn(&Schema) -> Vec<&T>,
) -> Response {
    let Some(t) = ObjectType::parse(object) else {
        return not_found().await;
    };
    let db = state.db();
    let results: Vec<&T> = db.schemas.get(&t).map(part).unwrap_or_default();
    json_response(StatusCode::OK, &json!({ "results": results }))
}

pub(super) async fn list_properties(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
) -> Response {
    if ObjectType::parse(&object).is_none()
        && let Some(defs) = compat::base_properties(&object)
    {
        return json_response(StatusCode::OK, &json!({ "results": defs }));
    }
    list_schema::<PropertyDef>(&state, &object, |s| s.properties.values().collect()).await
}

pub(super) async fn create_property(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let def: PropertyDef = match parse_body(&body) {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    if !TYPES.contains(&def.kind.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("type {:?} is not one of {TYPES:?}", def.kind),
        );
    }
    if def.kind == "enumeration" && def.options.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "enumeration properties need options",
        );
    }
    let mut db = state.db_mut();
    let schema = db.schemas.entry(t).or_default();
    if !schema.groups.contains_key(&def.group_name) {
        return error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("property group {} does not exist", def.group_name),
        );
    }
    if schema.properties.contains_key(&def.name) {
        return error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("Property named '{}' already exists.", def.name),
        );
    }
    schema.properties.insert(def.name.clone(), def.clone());
    json_response(StatusCode::CREATED, &json!(def))
}

/// `PATCH /crm/v3/properties/{object}/{name}`: change a property's label or options.
pub(super) async fn update_property(
    State(state): State<Arc<AppState>>,
    Path((object, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Patch {
        #[serde(default)]
        label: Option<String>,
        #[serde(default)]
        options: Option<Vec<crate::properties::PropertyOption>>,
    }
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let patch: Patch = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    let Some(def) = db
        .schemas
        .get_mut(&t)
        .and_then(|s| s.properties.get_mut(&name))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("Property {name} does not exist"),
        );
    };
    if let Some(label) = patch.label {
        def.label = label;
    }
    if let Some(options) = patch.options {
        def.options = options;
    }
    json_response(StatusCode::OK, &json!(def))
}

pub(super) async fn list_groups(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
) -> Response {
    list_schema::<GroupDef>(&state, &object, |s| s.groups.values().collect()).await
}

pub(super) async fn create_group(
    State(state): State<Arc<AppState>>,
    Path(object): Path<String>,
    body: Bytes,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    let group: GroupDef = match parse_body(&body) {
        Ok(g) => g,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    let schema = db.schemas.entry(t).or_default();
    if schema.groups.contains_key(&group.name) {
        return error(
            StatusCode::CONFLICT,
            "OBJECT_ALREADY_EXISTS",
            format!("Property group named '{}' already exists.", group.name),
        );
    }
    schema.groups.insert(group.name.clone(), group.clone());
    json_response(StatusCode::CREATED, &json!(group))
}
