//! The function URLs' side of the rescore function: a re-score request (`AWS_IAM`) or a
//! signed HubSpot webhook, read as the payload 2.0 request it is (`ApiGatewayV2httpRequest`,
//! the shape function URLs share with API Gateway's HTTP APIs, as `lambda_http` reads them) and
//! answered with the typed response. Never an invocation error: every outcome is a status.

use super::{RescoreError, RescoreRequest, Webhook};
use crate::{Deps, RunOutcome, chain};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, header};
use leadsync_domain::LeadId;
use leadsync_domain::ports::SliceQueue;
use leadsync_domain::runs::DeferredErase;
use leadsync_pipeline::RescoreTarget;
use serde_json::{Value, json};

/// A JSON answer; a 503 says when to come back.
pub(super) fn http(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == 503 {
        response
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    }
    response.body = Some(Body::Text(body.to_string()));
    response
}

fn outcome_http(outcome: &RunOutcome) -> ApiGatewayV2httpResponse {
    let status = match outcome {
        RunOutcome::Finished { .. } => 200,
        RunOutcome::Queued { .. } => 202,
        RunOutcome::Busy { .. } => 503,
    };
    http(
        status,
        &serde_json::to_value(outcome).unwrap_or(Value::Null),
    )
}

/// Answer one function-URL request.
pub(super) async fn function_url(
    request: &ApiGatewayV2httpRequest,
    deps: &Deps,
    webhook: Option<&Webhook>,
    run_id: &str,
    now: DateTime<Utc>,
    wall: impl Fn() -> DateTime<Utc>,
) -> ApiGatewayV2httpResponse {
    let method = request.request_context.http.method.as_str();
    if method != "POST" {
        return http(405, &json!({"error": "POST a rescore request"}));
    }
    let body = match (&request.body, request.is_base64_encoded) {
        (Some(b), true) => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(b) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => return http(400, &json!({"error": "the body is not valid base64"})),
            }
        }
        (Some(b), false) => b.clone(),
        (None, _) => String::new(),
    };
    let target = match webhook {
        Some(hook) => {
            let header = |name: &str| request.headers.get(name).and_then(|v| v.to_str().ok());
            let query = request.raw_query_string.as_deref().unwrap_or("");
            let uri = format!(
                "https://{}{}{}{}",
                header("host").unwrap_or_default(),
                request.raw_path.as_deref().unwrap_or("/"),
                if query.is_empty() { "" } else { "?" },
                query,
            );
            if let Err(e) = super::webhook::verify(
                &hook.secret,
                method,
                &uri,
                &body,
                header("x-hubspot-signature-v3"),
                header("x-hubspot-request-timestamp"),
                wall().timestamp_millis(),
            ) {
                tracing::warn!(reason = %e, "Webhook refused.");
                return http(401, &json!({"error": e.to_string()}));
            }
            let own: Vec<String> = deps
                .criteria()
                .crm_property_specs()
                .into_iter()
                .map(|p| p.name)
                .collect();
            match super::webhook::contacts_of(&body, &own) {
                Ok(super::webhook::Asked {
                    rescore: ids,
                    erase,
                    skipped,
                }) => {
                    tracing::info!(
                        contacts = ids.len(),
                        erasures = erase.len(),
                        skipped,
                        "Webhook verified."
                    );
                    let erasing = erase.len();
                    if let Err(e) = erase_asked(deps, erase, now, &wall).await {
                        let message = chain(&e);
                        tracing::error!(error = %message, "The webhook's erasure failed; HubSpot retries.");
                        return http(500, &json!({"error": message}));
                    }
                    if ids.is_empty() {
                        let status = if erasing > 0 {
                            "erasing"
                        } else {
                            "nothing_to_do"
                        };
                        return http(
                            200,
                            &json!({"status": status, "erasures": erasing, "skipped": skipped}),
                        );
                    }
                    if deps.queue.is_configured() {
                        // HubSpot waits 5 s for an answer: acknowledge now, the slice worker
                        // re-scores (after the run holding the lease, if one does).
                        let contacts = ids.len();
                        return match super::defer(
                            deps,
                            run_id,
                            RescoreTarget::Leads(ids),
                            "a HubSpot webhook".into(),
                            wall(),
                            std::time::Duration::ZERO,
                        )
                        .await
                        {
                            Ok(()) => http(
                                200,
                                &json!({"status": "queued", "run_id": run_id, "contacts": contacts, "erasures": erasing, "skipped": skipped}),
                            ),
                            Err(e) => {
                                let message = chain(&e);
                                tracing::error!(error = %message, "Queueing the webhook's re-score failed; HubSpot retries.");
                                http(500, &json!({"error": message}))
                            }
                        };
                    }
                    RescoreTarget::Leads(ids)
                }
                Err(e) => return http(400, &json!({"error": format!("webhook body: {e}")})),
            }
        }
        None => {
            let request = match serde_json::from_str(if body.is_empty() { "{}" } else { &body })
                .and_then(RescoreRequest::read)
            {
                Ok(r) => r,
                Err(e) => return http(400, &json!({"error": format!("body: {e}")})),
            };
            match request.target() {
                Ok(t) => t,
                Err(e) => return http(400, &json!({"error": e})),
            }
        }
    };
    match super::rescore(deps, run_id, target, now, wall).await {
        Ok(outcome) => outcome_http(&outcome),
        Err(e) => {
            let message = chain(&e);
            tracing::error!(error = %message, "Re-score failed.");
            http(500, &json!({"error": message}))
        }
    }
}

/// Erase the people a webhook's `contact.privacyDeletion` events name: queued for the slice
/// worker (HubSpot waits 5 s; the worker erases under the lease), or here and now without a
/// queue.
async fn erase_asked(
    deps: &Deps,
    ids: Vec<LeadId>,
    now: DateTime<Utc>,
    wall: &impl Fn() -> DateTime<Utc>,
) -> Result<(), RescoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    if deps.queue.is_configured() {
        let asked = DeferredErase {
            lead_ids: ids,
            requested_at: wall(),
            attempts: 0,
        };
        return deps
            .queue
            .defer_erase(&asked, std::time::Duration::ZERO)
            .await
            .map_err(RescoreError::Queue);
    }
    for id in &ids {
        leadsync_pipeline::erase::erase(
            &deps.store,
            &deps.snapshots,
            id,
            &crate::pseudonym(),
            now,
            chrono::Duration::minutes(15),
        )
        .await
        .map_err(RescoreError::Erase)?;
    }
    Ok(())
}
