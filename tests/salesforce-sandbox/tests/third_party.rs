//! A third-party client accepts the sandbox: simple-salesforce (PyPI; installed by
//! `scripts/setup-local.sh`) logs in, pages a `query_all`, sees a deleted record through
//! `queryAll` and writes a collection update.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use leadsync_salesforce_sandbox::{SalesforceConfig, SalesforceSandbox};

#[tokio::test]
async fn simple_salesforce_logs_in_queries_all_and_updates_a_collection() {
    let org = SalesforceSandbox::start(SalesforceConfig::new(7, 3_000))
        .await
        .unwrap();
    let unconverted: Vec<_> = org
        .records("Lead")
        .into_iter()
        .filter(|l| !l.flag("IsConverted"))
        .collect();
    let deleted = unconverted[10].id().to_owned();
    assert!(org.delete(&deleted));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/with_simple_salesforce.py"
    );
    let (url, id, secret) = (
        org.base_url(),
        org.client_id().to_owned(),
        org.client_secret().to_owned(),
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args([script, &url, &id, &secret, &deleted])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "simple-salesforce failed (scripts/setup-local.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected = unconverted.len() as u64 - 1;
    assert_eq!(seen["leads"].as_u64(), Some(expected), "{seen}");
    assert_eq!(
        seen["lead_records"].as_u64(),
        Some(expected),
        "every page followed"
    );
    assert!(expected > 2_000, "more than one page");
    assert_eq!(
        seen["contacts"].as_u64(),
        Some(org.records("Contact").len() as u64)
    );
    assert!(seen["account_name"].is_string());
    assert_eq!(seen["deleted_seen"].as_u64(), Some(1));
    assert_eq!(seen["updated"], serde_json::json!([true, true, true]));
    let first = seen["updated_ids"][0].as_str().unwrap();
    assert_eq!(
        org.record(first).unwrap().text("Title"),
        Some("Updated by simple-salesforce")
    );
    assert!(org.counters().tokens >= 1, "it logged in");
}
