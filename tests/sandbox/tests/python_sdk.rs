//! HubSpot's official Python SDK (`hubspot-api-client`, installed by scripts/setup-local.sh)
//! searches with paging, batch-reads and batch-updates against the sandbox.
#![allow(clippy::unwrap_used)]

use leadsync_sandbox::{Sandbox, SandboxConfig};

#[tokio::test]
async fn official_python_sdk_works_against_the_sandbox() {
    let sandbox = Sandbox::start(SandboxConfig::new(5, 250)).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/hubspot_sdk_check.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &sandbox.base_url(), sandbox.token(), "250"])
        .output()
        .await
        .expect("python3 must be installed");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK check failed (is hubspot-api-client installed? run scripts/setup-local.sh):\n{stderr}"
    );
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["total"], 250);
    assert_eq!(seen["pages"], 3);
    assert_eq!(
        (seen["ids"].as_u64(), seen["unique"].as_u64()),
        (Some(250), Some(250))
    );
    assert_eq!(seen["read"], 50);
    assert_eq!(seen["updated"], 10);
    let updated = sandbox
        .contacts()
        .iter()
        .filter(|c| {
            c.properties
                .get("jobtitle")
                .is_some_and(|t| t == "Updated by SDK")
        })
        .count();
    assert_eq!(updated, 10, "the SDK's writes reached the sandbox");
}
