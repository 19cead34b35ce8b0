//! The real nightly-sync binary through a Lambda Runtime API (the test harness's), against the
//! HubSpot sandbox and moto: it starts, polls, runs a night, answers; a bad event comes back as
//! a typed error. Also how long the cold start (process start → first poll) took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use leadsync_localstack::runtime_api::{FunctionProcess, RuntimeApi};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use std::time::Duration;

#[tokio::test]
async fn the_binary_runs_a_night_through_the_runtime_api() {
    let moto = leadsync_localstack::shared().expect("moto");
    let sdk = moto.sdk_config().await;
    let table = leadsync_localstack::unique_name("rt");
    leadsync_store::bootstrap::create_stores(&sdk, &table, &table)
        .await
        .unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new(5, 300)).await.unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let process = FunctionProcess::spawn(
        env!("CARGO_BIN_EXE_nightly-sync"),
        &api,
        &moto.endpoint(),
        &[
            ("TABLE_NAME", table.clone()),
            ("BUCKET_NAME", table.clone()),
            ("CRM_BASE_URL", sandbox.base_url()),
            ("CRM_TOKEN", sandbox.token().to_owned()),
        ],
    )
    .unwrap();
    let polled = api.first_poll(Duration::from_secs(30)).await.unwrap();
    eprintln!(
        "cold start (debug build, to first poll): {} ms",
        polled.duration_since(process.spawned_at).as_millis()
    );

    let answer = api
        .invoke(&serde_json::json!({}), Duration::from_secs(120))
        .await
        .expect("the night succeeds");
    assert_eq!(answer["status"], "finished", "{answer}");
    assert_eq!(answer["report"]["pulled"], 300, "{answer}");
    assert_eq!(answer["report"]["scored"], 300);

    // The same warm process takes the next invocation; a malformed event is a typed error.
    let error = api
        .invoke(
            &serde_json::json!({"sincee": "yesterday"}),
            Duration::from_secs(30),
        )
        .await
        .expect_err("an unknown field is refused");
    assert_eq!(error["errorType"], "BadEvent", "{error}");
    assert!(error["errorMessage"].as_str().unwrap().contains("sincee"));
}
