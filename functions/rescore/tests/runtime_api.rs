//! The real rescore binary through a Lambda Runtime API, against the HubSpot sandbox and moto:
//! an EventBridge event re-scores the contacts it names; a HubSpot webhook (function URL,
//! payload 2.0) is refused without a valid v3 signature and re-scores its contact with one; a
//! criteria upload whose S3 key needs percent-decoding is found and published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use leadsync_localstack::runtime_api::{FunctionProcess, RuntimeApi};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use secrecy::SecretString;
use std::time::Duration;

const APP_SECRET: &str = "test-app-secret";

fn webhook_request(body: &str, signature: &str, timestamp: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {
            "host": "hooks.lambda-url.us-east-1.on.aws",
            "content-type": "application/json",
            "x-hubspot-signature-v3": signature,
            "x-hubspot-request-timestamp": timestamp,
        },
        "requestContext": {"http": {"method": "POST", "path": "/"}},
        "body": body,
        "isBase64Encoded": false,
    })
}

#[tokio::test]
async fn eventbridge_and_signed_webhooks_rescore_through_the_runtime_api() {
    let moto = leadsync_localstack::shared().expect("moto");
    let sdk = moto.sdk_config().await;
    let table = leadsync_localstack::unique_name("rs");
    let (_, s3) = leadsync_store::bootstrap::create_stores(&sdk, &table, &table)
        .await
        .unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new(5, 50)).await.unwrap();
    let ids: Vec<u64> = sandbox.contacts().iter().map(|c| c.id).collect();
    let api = RuntimeApi::start().await.unwrap();
    let _process = FunctionProcess::spawn(
        env!("CARGO_BIN_EXE_rescore"),
        &api,
        &moto.endpoint(),
        &[
            ("TABLE_NAME", table.clone()),
            ("BUCKET_NAME", table.clone()),
            ("CRM_BASE_URL", sandbox.base_url()),
            ("CRM_TOKEN", sandbox.token().to_owned()),
            ("HUBSPOT_APP_SECRET", APP_SECRET.to_owned()),
        ],
    )
    .unwrap();
    api.first_poll(Duration::from_secs(30)).await.unwrap();

    let answer = api
        .invoke(
            &serde_json::json!({
                "source": "leadsync",
                "detail-type": "leadsync.rescore",
                "detail": {"lead_ids": [ids[0].to_string(), ids[1].to_string()]},
            }),
            Duration::from_secs(60),
        )
        .await
        .expect("the re-score succeeds");
    assert_eq!(answer["status"], "finished", "{answer}");
    assert_eq!(
        answer["report"]["pulled"], 2,
        "exactly the named contacts: {answer}"
    );

    // A webhook with a wrong signature: 401, nothing runs.
    let body = format!(
        r#"[{{"objectId":{},"subscriptionType":"contact.propertyChange","propertyName":"jobtitle"}}]"#,
        ids[2]
    );
    let now_ms = chrono::Utc::now().timestamp_millis().to_string();
    let refused = api
        .invoke(
            &webhook_request(&body, "bm90IGEgc2lnbmF0dXJl", &now_ms),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(refused["statusCode"], 401, "{refused}");

    // Signed as HubSpot signs: 200 and the one contact re-scored.
    let signature = rescore::webhook::sign(
        &SecretString::from(APP_SECRET),
        "POST",
        "https://hooks.lambda-url.us-east-1.on.aws/",
        &body,
        &now_ms,
    );
    let accepted = api
        .invoke(
            &webhook_request(&body, &signature, &now_ms),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(accepted["statusCode"], 200, "{accepted}");
    let outcome: serde_json::Value =
        serde_json::from_str(accepted["body"].as_str().unwrap()).unwrap();
    assert_eq!(outcome["report"]["pulled"], 1, "{outcome}");

    // A criteria upload whose key holds a space, a '+', a '=' and UTF-8: S3's notification
    // carries it form-encoded, and the function must find the very object that was put.
    let key = "criteria/q4 plan+v=2 démo.toml";
    s3.put_object()
        .bucket(&table)
        .key(key)
        .body(
            include_str!("../../../infra/criteria/b2b-saas.toml")
                .as_bytes()
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let uploaded = api
        .invoke(
            // As S3 sends it (its documented record shape).
            &serde_json::json!({"Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-12-01T09:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
                "requestParameters": {"sourceIPAddress": "203.0.113.7"},
                "responseElements": {
                    "x-amz-request-id": "C3D13FE58DE4C810",
                    "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "criteria-upload",
                    "bucket": {
                        "name": table,
                        "ownerIdentity": {"principalId": "A3NL1KOZZKEXAMPLE"},
                        "arn": format!("arn:aws:s3:::{table}")
                    },
                    "object": {
                        "key": "criteria/q4+plan%2Bv%3D2+d%C3%A9mo.toml",
                        "size": 812,
                        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                        "sequencer": "0055AED6DCD90281E5"
                    }
                },
            }]}),
            Duration::from_secs(60),
        )
        .await
        .expect("the upload is read");
    assert_eq!(uploaded[0]["key"], key, "{uploaded}");
    assert_eq!(uploaded[0]["status"], "published", "{uploaded}");
}
