//! Rollups in DynamoDB (moto) through the nightly-sync handler and the HubSpot sandbox:
//! re-runs give byte-identical rows, a period is read in one Query, a close freezes rows with
//! conditional writes, a back-dated re-score posts corrections forward, and the export's
//! control totals and checksum hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::RowBody;
use leadsync_pipeline::rollups;
use leadsync_sandbox::{Sandbox, SandboxConfig};
use leadsync_store::rollups::ROW_QUERY_PAGES;
use nightly_sync::{Config, Deps};
use std::collections::HashMap;
use std::sync::atomic::Ordering;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn event(payload: serde_json::Value) -> LambdaEvent<serde_json::Value> {
    LambdaEvent::new(payload, Context::default())
}

#[tokio::test]
async fn rollups_in_dynamodb_are_reproducible_frozen_at_close_and_corrected_forward() {
    let common::Aws {
        sdk,
        dynamo,
        s3,
        table,
        bucket,
    } = common::aws("rollups").await;
    let sandbox = Sandbox::start(SandboxConfig::new(11, 600)).await.unwrap();
    let dir = std::env::temp_dir().join(leadsync_localstack::unique_name("criteria"));
    std::fs::create_dir_all(&dir).unwrap();
    let v1 = include_str!("../../../infra/criteria/b2b-saas.toml");
    // A definition change: a lower MQL bar, under a new version.
    let v2 = v1
        .replace("version = \"2026.11.1\"", "version = \"2026.11.2\"")
        .replace(
            "min_fit = 20\nmin_total = 45",
            "min_fit = 10\nmin_total = 25",
        );
    assert_ne!(v1, v2);
    let deps = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        let vars: HashMap<&str, String> = HashMap::from([
            ("TABLE_NAME", table.clone()),
            ("BUCKET_NAME", bucket.clone()),
            ("CRM_BASE_URL", sandbox.base_url()),
            ("CRM_TOKEN", sandbox.token().to_owned()),
            ("CRITERIA_FILE", path.display().to_string()),
        ]);
        let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
        let sdk = sdk.clone();
        async move { Deps::new(config, &sdk).await.unwrap() }
    };
    let first = deps("v1.toml", v1).await;
    let november = at("2026-11-20T03:00:00Z");
    common::nightly_at(event(serde_json::json!({})), &first, november)
        .await
        .unwrap();
    let store = &first.store;

    // One Query (one page at this size) reads the whole period.
    let before = ROW_QUERY_PAGES.load(Ordering::Relaxed);
    let rows = store.rows("2026-11").await.unwrap();
    assert_eq!(ROW_QUERY_PAGES.load(Ordering::Relaxed) - before, 1);
    assert!(rows.iter().any(|r| r.sk.starts_with("INC#2026.11.1#")));
    assert!(
        rows.iter()
            .any(|r| r.sk.starts_with("KPI#2026.11.1#month#reached#"))
    );

    // A re-run (a full re-read, so every lead is pulled and scored again) writes nothing and
    // the rows stay byte-identical.
    let again = common::nightly_at(
        event(serde_json::json!({"since": "1970-01-01T00:00:00Z"})),
        &first,
        november,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            again.transitions_new,
            again.milestones_new,
            again.rollup_rows_written
        ),
        (0, 0, 0)
    );
    assert_eq!(store.rows("2026-11").await.unwrap(), rows);

    // Export: control totals equal the rows; the .sha256 beside it matches the bytes.
    let export = rollups::export("2026-11", "2026.11.1", "USD", &rows).unwrap();
    let key = first
        .snapshots
        .put_export(
            "2026-11",
            "incentives-2026.11.1.csv",
            export.csv.clone(),
            &export.sha256,
        )
        .await
        .unwrap();
    let get = |key: String| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move {
            s3.get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
                .to_vec()
        }
    };
    let stored = get(key.clone()).await;
    assert_eq!(stored, export.csv);
    let sum = String::from_utf8(get(format!("{key}.sha256")).await).unwrap();
    assert_eq!(sum.split_whitespace().next(), Some(export.sha256.as_str()));
    let (incentives, totals) = leadsync_domain::rollup::incentive_rows(&rows, "2026.11.1");
    assert_eq!(
        totals.credits_cents,
        incentives.iter().map(|i| i.credits_cents).sum::<i64>()
    );

    // Finance's API (function URL payload 2.0): incentives, KPIs, export, close.
    let api = rollups_api::Api {
        store: leadsync_store::DynamoLeadStore::new(dynamo.clone(), table.clone(), "hubspot"),
        exports: leadsync_store::S3SnapshotStore::new(s3.clone(), bucket.clone()),
    };
    let call = |method: &str, path: &str| {
        let request = serde_json::json!({
            "rawPath": path,
            "requestContext": {
                "http": {"method": method},
                "authorizer": {"iam": {"userArn": "arn:aws:iam::123456789012:user/finance"}}
            }
        });
        let api = &api;
        async move {
            let answer = rollups_api::handle(event(request), api, at("2026-12-01T09:00:00Z"))
                .await
                .unwrap();
            let status = answer["statusCode"].as_u64().unwrap();
            let body: serde_json::Value =
                serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            (status, body)
        }
    };
    let (status, body) = call("GET", "/periods/2026-11/incentives").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["control_totals"]["credits_cents"].as_i64(),
        Some(totals.credits_cents)
    );
    let (status, body) = call("GET", "/periods/2026-11/kpis").await;
    assert_eq!(status, 200);
    assert!(body["kpis"].as_array().is_some_and(|k| !k.is_empty()));
    let (status, body) = call("POST", "/periods/2026-11/export").await;
    assert_eq!(
        (status, body["sha256"].as_str()),
        (200, Some(export.sha256.as_str()))
    );
    assert_eq!(call("GET", "/periods/nov/kpis").await.0, 400);
    assert_eq!(call("DELETE", "/periods/2026-11/kpis").await.0, 404);

    // Close November through the API: rows frozen, a second close refused (409).
    let (status, body) = call("POST", "/periods/2026-11/close").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"].as_u64(), Some(rows.len() as u64));
    assert_eq!(body["closed_by"], "arn:aws:iam::123456789012:user/finance");
    assert_eq!(call("POST", "/periods/2026-11/close").await.0, 409);
    assert!(
        store.replace_rows("2026-11", &[]).await.is_err(),
        "a closed period's rows cannot be replaced"
    );

    // A back-dated re-score under the new definition lands in closed November: November's
    // rows stay, December gets the corrections.
    let second = deps("v2.toml", &v2).await;
    let rescore = common::nightly_at(
        event(serde_json::json!({"since": "1970-01-01T00:00:00Z"})),
        &second,
        at("2026-11-30T12:00:00Z"),
    )
    .await
    .unwrap();
    assert!(
        rescore.transitions_new > 0,
        "the new version restates every lead"
    );
    assert!(rescore.rollup_corrections > 0);
    assert_eq!(
        store.rows("2026-11").await.unwrap(),
        rows,
        "closed rows untouched"
    );
    let december = store.rows("2026-12").await.unwrap();
    let corrections: Vec<_> = december
        .iter()
        .filter_map(|r| match r.parse().unwrap() {
            RowBody::Correction(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(corrections.len() as u64, rescore.rollup_corrections);
    assert!(corrections.iter().all(|c| c.closed_period == "2026-11"));
    assert!(
        corrections
            .iter()
            .any(|c| c.row.starts_with("KPI#month#")),
        "the new definition restates November's KPIs: {corrections:#?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
