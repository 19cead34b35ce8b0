//! The real rollups-api binary through a Lambda Runtime API, against moto: `lambda_http` reads a
//! function URL's payload 2.0 event as AWS sends it (IAM-signed), the axum router answers, and
//! the answer goes back in the function-URL response shape: the caller's IAM ARN closes a
//! period, a second close is a 409, errors are JSON with the status they name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use leadsync_localstack::runtime_api::{FunctionProcess, RuntimeApi};
use std::time::Duration;

const FINANCE: &str = "arn:aws:iam::123456789012:user/finance";

/// A function-URL request as AWS documents it (payload 2.0, `AuthType: AWS_IAM`).
fn request(method: &str, path: &str, query: &str) -> serde_json::Value {
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "abcdefg.lambda-url.us-east-1.on.aws",
            "x-amz-date": "20261201T090000Z",
            "user-agent": "aws-cli/2",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefg",
            "authorizer": {"iam": {
                "accessKey": "AKIAEXAMPLE",
                "accountId": "123456789012",
                "callerId": "AIDAEXAMPLE",
                "userArn": FINANCE,
                "userId": "AIDAEXAMPLE",
            }},
            "domainName": "abcdefg.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefg",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "aws-cli/2",
            },
            "requestId": "c0ffee00-0000-4000-8000-000000000000",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Dec/2026:09:00:00 +0000",
            "timeEpoch": 1_796_115_600_000_i64,
        },
        "isBase64Encoded": false,
    })
}

fn body(answer: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(answer["body"].as_str().expect("a text body")).expect("a JSON body")
}

#[tokio::test]
async fn the_binary_answers_function_url_requests_through_the_runtime_api() {
    let moto = leadsync_localstack::shared().expect("moto");
    let sdk = moto.sdk_config().await;
    let table = leadsync_localstack::unique_name("ra");
    leadsync_store::bootstrap::create_stores(&sdk, &table, &table)
        .await
        .unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let _process = FunctionProcess::spawn(
        env!("CARGO_BIN_EXE_rollups-api"),
        &api,
        &moto.endpoint(),
        &[
            ("TABLE_NAME", table.clone()),
            ("BUCKET_NAME", table.clone()),
            ("ROLLUPS_API_ACCESS", "write".to_owned()),
        ],
    )
    .unwrap();
    api.first_poll(Duration::from_secs(30)).await.unwrap();
    let call = |method: &'static str, path: &'static str, query: &'static str| {
        let api = &api;
        async move {
            api.invoke(&request(method, path, query), Duration::from_secs(60))
                .await
                .expect("an HTTP answer, never an invocation error")
        }
    };

    // Nothing reported yet: 404, said in JSON; a version asked by name has no rows (200).
    let answer = call("GET", "/periods/2026-11/incentives", "version=2026.11.1").await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(body(&answer)["criteria_version"], "2026.11.1");
    assert_eq!(body(&answer)["incentives"], serde_json::json!([]));
    let answer = call("GET", "/periods/2026-11/incentives", "").await;
    assert_eq!(answer["statusCode"], 404, "{answer}");
    assert_eq!(answer["headers"]["content-type"], "application/json");
    assert!(
        body(&answer)["error"]
            .as_str()
            .is_some_and(|e| e.contains("2026-11")),
        "{answer}"
    );

    // Closed by the IAM principal that signed the request; a second close is refused.
    let answer = call("POST", "/periods/2026-10/close", "").await;
    assert_eq!(answer["statusCode"], 200, "{answer}");
    assert_eq!(body(&answer)["closed_by"], FINANCE, "{answer}");
    assert_eq!(body(&answer)["rows"], 0);
    let answer = call("POST", "/periods/2026-10/close", "").await;
    assert_eq!(answer["statusCode"], 409, "{answer}");
    assert!(body(&answer)["error"].as_str().unwrap().contains(FINANCE));

    // A bad period, a bad query value, an unknown route.
    let answer = call("GET", "/periods/nov/kpis", "").await;
    assert_eq!(answer["statusCode"], 400, "{answer}");
    let answer = call("GET", "/periods/2026-10/funnel", "points=many&version=v").await;
    assert_eq!(answer["statusCode"], 400, "{answer}");
    assert!(body(&answer)["error"].as_str().unwrap().contains("points"));
    let answer = call("GET", "/reports", "").await;
    assert_eq!(answer["statusCode"], 404, "{answer}");
    assert_eq!(
        body(&answer)["error"],
        "no route for GET /reports",
        "{answer}"
    );
}
