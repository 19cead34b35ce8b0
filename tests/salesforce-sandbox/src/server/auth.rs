//! OAuth (client credentials, JWT bearer), the session every REST call must carry, and the
//! API limits and injected faults that wrap every route.

use super::*;

pub(super) fn issue_token(state: &AppState) -> String {
    let n = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
    let token = format!("00D5g000000SANDBOX!{}", ids::id("00D", n));
    lock(&state.tokens).insert(token.clone());
    token
}

pub(super) async fn require_session(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("OAuth "))
        })
        .map(str::to_owned);
    if token.is_some_and(|t| lock(&state.tokens).contains(&t)) {
        return next.run(request).await;
    }
    let mut response = sf_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    response
}

/// The daily allocation, `Sforce-Limit-Info` on every answer, and the faults.
pub(super) async fn govern(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    state.count(|c| c.requests += 1);
    let used = state.used.fetch_add(1, AtomicOrdering::Relaxed) + 1;
    let max = state.config.daily_requests;
    let info = HeaderValue::from_str(&format!("api-usage={}/{max}", used.min(max)))
        .unwrap_or_else(|_| HeaderValue::from_static("api-usage=0/0"));
    let with_info = |mut r: Response| {
        r.headers_mut().insert("sforce-limit-info", info.clone());
        r
    };
    if used > max {
        return with_info(sf_error(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        ));
    }
    let (limit, after) = state.config.long_running;
    let ticket = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
    {
        let mut in_flight = lock(&state.in_flight);
        let long = in_flight.values().filter(|t| t.elapsed() >= after).count();
        if long >= limit {
            drop(in_flight);
            state.count(|c| c.refused_long_running += 1);
            return with_info(sf_error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentPerOrgLongTxn Limit exceeded.",
            ));
        }
        in_flight.insert(ticket, std::time::Instant::now());
    }
    // Leaves the in-flight set however the request ends (a dropped connection included).
    struct InFlight<'a>(&'a AppState, u64);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            lock(&self.0.in_flight).remove(&self.1);
        }
    }
    let _in_flight = InFlight(&state, ticket);
    let (faults, _) = *lock(&state.faults);
    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    let (server_error, malformed) = {
        let mut rng = lock(&state.rng);
        (
            rng.random_bool(faults.server_error_rate.clamp(0.0, 1.0)),
            rng.random_bool(faults.malformed_rate.clamp(0.0, 1.0)),
        )
    };
    if server_error {
        state.count(|c| c.injected_5xx += 1);
        return with_info(sf_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server temporarily unavailable",
        ));
    }
    let response = next.run(request).await;
    if malformed && response.status().is_success() {
        state.count(|c| c.injected_malformed += 1);
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let cut = bytes.slice(..bytes.len() / 2);
        return with_info(Response::from_parts(parts, Body::from(cut)));
    }
    with_info(response)
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct Assertion {
    pub(super) iss: String,
    pub(super) sub: String,
    pub(super) aud: String,
}

/// A JWT bearer assertion as Salesforce checks it: RS256 signed by the key of the certificate
/// uploaded to the connected app, `iss` its consumer key, `sub` a user who may use the app,
/// `aud` the login URL, `exp` not passed. The error pairs are Salesforce's.
pub(super) fn verify_assertion(
    config: &SalesforceConfig,
    assertion: Option<&str>,
    audiences: &[String],
) -> Result<(), (&'static str, &'static str)> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, errors::ErrorKind};
    let invalid = ("invalid_grant", "invalid assertion");
    let assertion = assertion.ok_or(invalid)?;
    let key = DecodingKey::from_rsa_pem(config.jwt_public_key.as_bytes()).map_err(|_| invalid)?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.validate_aud = false;
    validation.leeway = 0;
    let claims = match decode::<Assertion>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
            return Err(("invalid_grant", "expired authorization code"));
        }
        Err(_) => return Err(invalid),
    };
    if claims.iss != config.client_id {
        return Err(("invalid_client_id", "client identifier invalid"));
    }
    if !audiences
        .iter()
        .any(|a| a.trim_end_matches('/') == claims.aud.trim_end_matches('/'))
    {
        return Err(("invalid_grant", "audience is invalid"));
    }
    if claims.sub != config.jwt_username {
        return Err(("invalid_grant", "user hasn't approved this consumer"));
    }
    Ok(())
}

/// The OAuth 2.0 token endpoint: client credentials (in the form or as HTTP Basic) and the
/// JWT bearer flow.
pub(super) async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    state.count(|c| c.tokens += 1);
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let oauth_error = |code: &str, description: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": code, "error_description": description}),
        )
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(b).ok()
        })
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {
            let (id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
                (Some(id), Some(secret), _) => (id.clone(), secret.clone()),
                (_, _, Some(pair)) => pair,
                _ => return oauth_error("invalid_client", "invalid client credentials"),
            };
            if id != state.config.client_id {
                return oauth_error("invalid_client_id", "client identifier invalid");
            }
            if secret != state.config.client_secret {
                return oauth_error("invalid_client", "invalid client credentials");
            }
        }
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let audiences = [
                "https://login.salesforce.com".to_owned(),
                "https://test.salesforce.com".to_owned(),
                format!("http://{host}"),
            ];
            if let Err((code, description)) = verify_assertion(
                &state.config,
                form.get("assertion").map(String::as_str),
                &audiences,
            ) {
                return oauth_error(code, description);
            }
        }
        _ => return oauth_error("unsupported_grant_type", "grant type not supported"),
    }
    let access = issue_token(&state);
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": access,
            "signature": "c2FuZGJveA==",
            "scope": "api",
            "instance_url": format!("http://{host}"),
            "id": format!("http://{host}/id/00D5g000000SANDBOX/0055g000000INTEGR"),
            "token_type": "Bearer",
            "issued_at": state.now().timestamp_millis().to_string(),
        }),
    )
}
