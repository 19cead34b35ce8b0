//! What the org says about itself: API versions, limits, and the sandbox's request counters.

use super::*;

pub(super) async fn admin_counters(State(state): State<Arc<AppState>>) -> Response {
    json_response(StatusCode::OK, &json!(*lock(&state.counters)))
}

pub(super) async fn versions() -> Response {
    let list: Vec<Value> = (MIN_VERSION..=MAX_VERSION)
        .map(|v| json!({"version": format!("{v}.0"), "label": format!("v{v}"), "url": format!("/services/data/v{v}.0")}))
        .collect();
    json_response(StatusCode::OK, &Value::Array(list))
}

pub(super) async fn limits(State(state): State<Arc<AppState>>) -> Response {
    let max = state.config.daily_requests;
    let used = state.used.load(AtomicOrdering::Relaxed).min(max);
    json_response(
        StatusCode::OK,
        &json!({
            "DailyApiRequests": {"Max": max, "Remaining": max - used},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        }),
    )
}
