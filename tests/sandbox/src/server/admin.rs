//! The sandbox's own endpoints (`/__sandbox/…`: counters, limits, faults, edits) and the
//! enrichment provider's company endpoint.

use super::*;

pub(super) async fn admin_requests(State(state): State<Arc<AppState>>) -> Response {
    let counts = state
        .requests
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    json_response(StatusCode::OK, &json!(counts))
}

pub(super) async fn admin_edit_contact(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let properties: BTreeMap<String, String> = match parse_body(&body) {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    let mut db = state.db_mut();
    let Some(record) = db.contacts.get_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("contact {id} not found"),
        );
    };
    record.properties.extend(properties);
    record.touch(Utc::now(), ObjectType::Contacts.modified_property());
    json_response(StatusCode::OK, &json!(record))
}

/// `GET /v5/company/enrich?website=…` (PDL shape): the company whose domain matches.
pub(super) async fn enrich_company(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(crate::enrich::API_KEY) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"status": 401, "error": {"type": "authentication_error", "message": "Invalid API key"}}),
        );
    }
    let admitted = state
        .plan
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .admit(std::time::Instant::now());
    if !admitted {
        return json_response(
            StatusCode::TOO_MANY_REQUESTS,
            &crate::enrich::rate_limited(),
        );
    }
    let Some(website) = query.get("website").map(|w| w.trim().to_lowercase()) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"status": 400, "error": {"type": "invalid_request_error", "message": "one of website, name, profile or ticker is required"}}),
        );
    };
    let db = state.db();
    match db.companies.values().find(|c| {
        c.properties
            .get("domain")
            .is_some_and(|d| d.eq_ignore_ascii_case(&website))
    }) {
        Some(company) => {
            state
                .credits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            json_response(StatusCode::OK, &crate::enrich::company_answer(company))
        }
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"status": 404, "error": {"type": "not_found", "message": "No records were found matching your request"}}),
        ),
    }
}

pub(super) async fn admin_credits(State(state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"credits": state.credits.load(std::sync::atomic::Ordering::Relaxed)}),
    )
}

pub(super) async fn admin_limits(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.limiter().stats;
    json_response(StatusCode::OK, &json!(stats))
}

pub(super) async fn admin_set_faults(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => {
            state.limiter().faults = faults;
            json_response(StatusCode::OK, &json!(faults))
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            format!("faults: {e}"),
        ),
    }
}

pub(super) async fn admin_object(
    State(state): State<Arc<AppState>>,
    Path((object, id)): Path<(String, u64)>,
    _headers: HeaderMap,
) -> Response {
    let Some(t) = ObjectType::parse(&object) else {
        return not_found().await;
    };
    match state.db().table(t).get(&id) {
        Some(record) => json_response(StatusCode::OK, &json!(record)),
        None => error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            format!("{object} {id} not found"),
        ),
    }
}
