//! What wraps every API route: the bearer token and its scopes, the rate limits and injected
//! faults with HubSpot's headers, the request counter, and the token-info endpoint.

use super::*;

/// `POST /oauth/v2/private-apps/get/access-token-info`: the token (in the body, not a header)
/// → its account and scopes.
pub(super) async fn token_info(
    State(state): State<Arc<AppState>>,
    body: axum::body::Bytes,
) -> Response {
    state.count("POST /oauth/v2/private-apps/get/access-token-info".to_owned());
    let key = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("tokenKey").and_then(Value::as_str).map(str::to_owned));
    if key.as_deref() != Some(state.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "The access token is invalid or was revoked.",
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"userId": 1, "hubId": 1_234_567, "appId": 7_654_321, "scopes": state.scopes}),
    )
}

pub(super) async fn require_token(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = format!("{} {}", req.method(), req.uri().path());
    state.count(endpoint);
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(state.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    if let Some(scope) = required_scope(req.method(), req.uri().path())
        && !state.scopes.contains(&scope)
    {
        let body = json!({
            "status": "error",
            "message": "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
            "correlationId": "00000000-0000-4000-8000-000000000403",
            "errors": [{
                "message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": [scope]},
            }],
            "category": "MISSING_SCOPES",
        });
        return json_response(StatusCode::FORBIDDEN, &body);
    }
    next.run(req).await
}

/// Rate limits, latency and injected faults, after authentication.
pub(super) async fn govern(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let is_search = req.uri().path().ends_with("/search");
    let (verdict, latency, hang_ms, limits, daily_remaining) = {
        let mut limiter = state.limiter();
        let verdict = limiter.admit(is_search, std::time::Instant::now());
        (
            verdict,
            limiter.faults.latency_ms,
            limiter.faults.hang_ms,
            limiter.limits,
            limiter.daily_remaining(),
        )
    };
    if latency > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
    }
    let (mut response, remaining) = match verdict {
        Verdict::RateLimited {
            policy,
            message,
            retry_after,
            remaining,
        } => {
            let body = json!({
                "status": "error",
                "message": message,
                "errorType": "RATE_LIMIT",
                "correlationId": "00000000-0000-4000-8000-000000000429",
                "policyName": policy,
            });
            let mut response = json_response(StatusCode::TOO_MANY_REQUESTS, &body);
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            }
            (response, remaining)
        }
        Verdict::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                error(status, "INTERNAL_ERROR", "internal error (injected)"),
                0,
            )
        }
        Verdict::Pass {
            malformed,
            hang,
            remaining,
        } => {
            if hang {
                tokio::time::sleep(std::time::Duration::from_millis(hang_ms)).await;
            }
            let response = next.run(req).await;
            if malformed && response.status().is_success() {
                let (parts, body) = response.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let cut = bytes.slice(..bytes.len() / 2);
                (
                    Response::from_parts(parts, axum::body::Body::from(cut)),
                    remaining,
                )
            } else {
                (response, remaining)
            }
        }
    };
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-hubspot-ratelimit-max", u64::from(limits.per_window)),
        ("x-hubspot-ratelimit-remaining", u64::from(remaining)),
        (
            "x-hubspot-ratelimit-interval-milliseconds",
            limits.window_ms,
        ),
        (
            "x-hubspot-ratelimit-daily",
            limits.daily.min(i64::MAX as u64),
        ),
        (
            "x-hubspot-ratelimit-daily-remaining",
            daily_remaining.min(i64::MAX as u64),
        ),
    ] {
        headers.insert(name, header::HeaderValue::from(value));
    }
    response
}

pub(super) async fn count_request(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    state.count(format!("{} {}", req.method(), req.uri().path()));
    next.run(req).await
}
