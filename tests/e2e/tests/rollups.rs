//! Rollups in DynamoDB (moto) through the nightly-sync handler and the HubSpot sandbox:
//! re-runs give byte-identical rows, a period is read in one Query, a close freezes rows with
//! conditional writes, a back-dated re-score posts corrections forward, and the export's
//! control totals and checksum hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use leadsync_app::{Config, Deps};
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::RowBody;
use leadsync_pipeline::rollups;
use leadsync_sandbox::{Sandbox, SandboxConfig};
use leadsync_store::rollups::ROW_QUERY_PAGES;
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
    // The counter is the process's: another test of this binary reading rows at the same
    // moment adds its pages, never removes ours — so the fewest pages of a few reads is ours.
    let mut pages = u64::MAX;
    let mut rows = Vec::new();
    for _ in 0..5 {
        let before = ROW_QUERY_PAGES.load(Ordering::Relaxed);
        rows = store.rows("2026-11").await.unwrap();
        pages = pages.min(ROW_QUERY_PAGES.load(Ordering::Relaxed) - before);
        if pages == 1 {
            break;
        }
    }
    assert_eq!(pages, 1);
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
    let api = leadsync_app::rollups_api::Api {
        store: leadsync_store::DynamoLeadStore::new(dynamo.clone(), table.clone(), "hubspot"),
        exports: leadsync_store::S3SnapshotStore::new(s3.clone(), bucket.clone()),
        access: leadsync_app::rollups_api::Access::Write,
    };
    // The read-only URL answers reads and refuses writes.
    let read_only = leadsync_app::rollups_api::Api {
        store: leadsync_store::DynamoLeadStore::new(dynamo.clone(), table.clone(), "hubspot"),
        exports: leadsync_store::S3SnapshotStore::new(s3.clone(), bucket.clone()),
        access: leadsync_app::rollups_api::Access::Read,
    };
    for (method, path, want) in [
        ("POST", "/periods/2026-11/close", 403),
        ("POST", "/periods/2026-11/export", 403),
        ("GET", "/periods/2026-11/incentives", 200),
        ("GET", "/periods/2026-11/dashboard", 200),
    ] {
        let request =
            serde_json::json!({"rawPath": path, "requestContext": {"http": {"method": method}}});
        let answer = leadsync_app::rollups_api::handle(
            event(request),
            &read_only,
            at("2026-12-01T09:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(
            answer["statusCode"].as_u64(),
            Some(want),
            "{method} {path}: {answer}"
        );
    }
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
            let answer =
                leadsync_app::rollups_api::handle(event(request), api, at("2026-12-01T09:00:00Z"))
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
    // Statements: every credited line, adding up to the incentive rows.
    let (status, body) = call("GET", "/periods/2026-11/statements").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["total_credits_cents"].as_i64(),
        Some(totals.credits_cents)
    );
    assert!(body["lines"].as_array().is_some_and(|l| !l.is_empty()));
    let (status, body) = call("GET", "/periods/2026-11/funnel").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["basis"], "cohort");
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(6));
    let (status, body) = call("POST", "/periods/2026-11/export").await;
    assert_eq!(
        (status, body["sha256"].as_str()),
        (200, Some(export.sha256.as_str()))
    );
    // The Parquet files, read back by an independent reader (pyarrow), reconcile with the
    // CSV's control totals; money is exact decimal cents, times are UTC timestamps.
    let files = body["files"].as_array().unwrap().clone();
    let key_of = |suffix: &str| {
        files
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_owned())
            .find(|k| k.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} in {files:?}"))
    };
    let out = std::env::temp_dir().join(leadsync_localstack::unique_name("parquet"));
    std::fs::create_dir_all(&out).unwrap();
    for name in [
        "incentives-2026.11.1.parquet",
        "statements-2026.11.1.parquet",
        "kpis-2026.11.1.parquet",
        "incentives-2026.11.1.csv",
    ] {
        std::fs::write(out.join(name), get(key_of(name)).await).unwrap();
    }
    assert_eq!(
        get("athena/incentives/period=2026-11/2026.11.1.parquet".to_owned()).await,
        std::fs::read(out.join("incentives-2026.11.1.parquet")).unwrap(),
        "the Glue table's copy"
    );
    let script = r#"
import json, sys, pyarrow.parquet as pq, decimal
d = sys.argv[1]
inc = pq.read_table(f"{d}/incentives-2026.11.1.parquet")
st = pq.read_table(f"{d}/statements-2026.11.1.parquet")
kp = pq.read_table(f"{d}/kpis-2026.11.1.parquet")
assert str(inc.schema.field("credits").type) == "decimal128(18, 2)", inc.schema
assert str(st.schema.field("occurred_at").type).startswith("timestamp[ms, tz="), st.schema
rows = [r for r in inc.to_pylist() if r["kind"] == "row"]
corr = [r for r in inc.to_pylist() if r["kind"] == "correction"]
cents = lambda v: int((v * 100).to_integral_value())
# The template's statements_reconcile, run on the files: each owner's lines add up to its row.
lines = {}
for l in st.to_pylist():
    k = (l["criteria_version"], l["team"], l["owner"])
    lines[k] = lines.get(k, 0) + cents(l["credit"])
owed = {(r["criteria_version"], r["team"], r["owner"]): cents(r["credits"]) for r in rows}
unreconciled = [k for k in set(lines) | set(owed) if lines.get(k, 0) != owed.get(k, 0)]
print(json.dumps({
  "rows": len(rows),
  "credits": sum(cents(r["credits"]) for r in rows),
  "corrections": sum(cents(r["credits"]) for r in corr),
  "won": sum(r["won"] for r in rows),
  "sql": sum(r["sql"] for r in rows),
  "statement_credits": sum(cents(r["credit"]) for r in st.to_pylist()),
  "kpis": kp.num_rows,
  "owners": len(owed),
  "unreconciled": [list(k) for k in unreconciled],
}))
"#;
    let py = std::process::Command::new("python3")
        .args(["-c", script, out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    let csv_text = std::fs::read_to_string(out.join("incentives-2026.11.1.csv")).unwrap();
    let total: Vec<&str> = csv_text.lines().last().unwrap().split(',').collect();
    let money_cents = |s: &str| -> i64 {
        let (units, frac) = s.split_once('.').unwrap();
        units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
    };
    assert_eq!(total[2], "TOTAL");
    assert_eq!(read["credits"].as_i64(), Some(money_cents(total[5])));
    assert_eq!(read["sql"].as_i64(), Some(total[6].parse().unwrap()));
    assert_eq!(read["won"].as_i64(), Some(total[10].parse().unwrap()));
    assert_eq!(read["rows"].as_u64(), Some(totals.rows));
    assert_eq!(
        read["statement_credits"].as_i64(),
        Some(totals.credits_cents)
    );
    assert!(read["kpis"].as_u64().is_some_and(|n| n > 10));
    assert!(read["owners"].as_u64().is_some_and(|n| n >= 2), "{read}");
    assert_eq!(read["unreconciled"], serde_json::json!([]), "{read}");
    std::fs::remove_dir_all(&out).ok();
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
        corrections.iter().any(|c| c.row.starts_with("KPI#month#")),
        "the new definition restates November's KPIs: {corrections:#?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Credits per (team, owner) of `period` computed here, independently of leadsync's rollup
/// code, from the raw fact items in DynamoDB and the merge/delete links: what the incentive
/// rows must equal. The plan's figures are those of `infra/criteria/b2b-saas.toml`.
async fn credits_from_raw_facts(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    period: &str,
    version: &str,
) -> std::collections::BTreeMap<(String, String), i64> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};
    let plan = include_str!("../../../infra/criteria/b2b-saas.toml");
    for line in [
        "[incentives.credits.sql]\nmarketing = 40\nsales = 0",
        "[incentives.credits.sales_accepted]\nmarketing = 25\nsales = 10",
        "[incentives.credits.opportunity]\nmarketing = 50\nsales = 50",
        "[incentives.credits.won]\nmarketing_bps = 100\nsales_bps = 500",
        "EUR = 1.08",
    ] {
        assert!(plan.contains(line), "the plan changed: {line}");
    }
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = dynamo
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    let text = |item: &std::collections::HashMap<String, AttributeValue>, k: &str| {
        item.get(k).and_then(|v| v.as_s().ok()).cloned()
    };
    // Merged → winner, deleted → gone.
    let mut links: BTreeMap<String, Value> = BTreeMap::new();
    for item in &items {
        if text(item, "pk").is_some_and(|pk| pk == "LINKS#hubspot") {
            links.insert(
                text(item, "sk").unwrap(),
                serde_json::from_str(&text(item, "body").unwrap()).unwrap(),
            );
        }
    }
    let counted = |lead: &str| -> Option<String> {
        let mut id = lead.to_owned();
        for _ in 0..16 {
            match links.get(&id) {
                None => return Some(id),
                Some(l) if l["kind"] == "merged" => id = l["into"].as_str().unwrap().to_owned(),
                Some(_) => return None,
            }
        }
        Some(id)
    };
    let mut credits: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // deal → (lead → (source, owner, amount, currency))
    let mut deals: BTreeMap<(String, String), BTreeMap<String, Value>> = BTreeMap::new();
    // A merged pair's facts count once; where both have one, the winner's own counts.
    let mut facts: Vec<(bool, String, String, Value)> = Vec::new();
    for item in &items {
        let Some(fact) = text(item, "fact") else {
            continue;
        };
        let f: Value = serde_json::from_str(&fact).unwrap();
        let when = f["occurred_at"]
            .as_str()
            .or(f["observed_at"].as_str())
            .unwrap();
        if &when[..7] != period {
            continue;
        }
        let original = f["lead_id"].as_str().unwrap().to_owned();
        let Some(lead) = counted(&original) else {
            continue;
        };
        facts.push((lead != original, original, lead, f));
    }
    facts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, _, lead, f) in facts {
        let source = f["source"].as_str().unwrap_or("(unknown)").to_owned();
        let owner = f["owner_id"].as_str().unwrap_or("(unassigned)").to_owned();
        let mut credit = |team: &str, who: &str, cents: i64| {
            *credits
                .entry((team.to_owned(), who.to_owned()))
                .or_default() += cents;
        };
        match f["fact"].as_str().unwrap() {
            "stage"
                if f["to"] == "sql"
                    && f["criteria_version"] == version
                    && seen.insert(format!("{lead}|sql")) =>
            {
                credit("marketing", &source, 4_000);
                credit("sales", &owner, 0);
            }
            "milestone"
                if f["outcome"] == "sales_accepted" && seen.insert(format!("{lead}|accepted")) =>
            {
                credit("marketing", &source, 2_500);
                credit("sales", &owner, 1_000);
            }
            "milestone" if f["outcome"] == "opportunity" || f["outcome"] == "won" => {
                deals
                    .entry((
                        f["outcome"].as_str().unwrap().to_owned(),
                        f["reference"].as_str().unwrap().to_owned(),
                    ))
                    .or_default()
                    .entry(lead)
                    .or_insert(f.clone());
            }
            _ => {}
        }
    }
    for ((outcome, _), contacts) in deals {
        let first = contacts.values().next().unwrap();
        let owner = first["owner_id"]
            .as_str()
            .unwrap_or("(unassigned)")
            .to_owned();
        let amount = first["amount_cents"].as_i64().unwrap_or(0);
        let amount = match first["currency"].as_str() {
            Some("EUR") => amount * 1_080_000 / 1_000_000,
            _ => amount,
        };
        let (sales, marketing) = if outcome == "won" {
            (amount * 500 / 10_000, amount * 100 / 10_000)
        } else {
            (5_000, 5_000)
        };
        *credits.entry(("sales".into(), owner)).or_default() += sales;
        let n = contacts.len() as i64;
        for (i, f) in contacts.values().enumerate() {
            let share = marketing / n + i64::from((i as i64) < marketing % n);
            let source = f["source"].as_str().unwrap_or("(unknown)").to_owned();
            *credits.entry(("marketing".into(), source)).or_default() += share;
        }
    }
    credits
}

#[tokio::test]
async fn incentive_rows_reconcile_with_the_raw_facts_through_merges_and_deletes() {
    let common::Aws {
        sdk,
        dynamo,
        table,
        bucket,
        ..
    } = common::aws("reconcile").await;
    let now = at("2026-11-20T03:00:00Z");
    let sandbox =
        Sandbox::start(SandboxConfig::new(7, 1200).anchored_at(at("2026-11-20T00:00:00Z")))
            .await
            .unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", table.clone()),
        ("BUCKET_NAME", bucket.clone()),
        ("CRM_BASE_URL", sandbox.base_url()),
        ("CRM_TOKEN", sandbox.token().to_owned()),
    ]);
    let deps = Deps::new(Config::from_lookup(|k| vars.get(k).cloned()).unwrap(), &sdk)
        .await
        .unwrap();
    common::nightly_at(event(serde_json::json!({})), &deps, now)
        .await
        .unwrap();
    let store = &deps.store;
    let reconcile = |period: &'static str| {
        let (dynamo, table) = (dynamo.clone(), table.clone());
        async move {
            let rows = store.rows(period).await.unwrap();
            let version = leadsync_domain::rollup::reporting_version(&rows).unwrap();
            let (incentives, totals) = leadsync_domain::rollup::incentive_rows(&rows, &version);
            let rows: std::collections::BTreeMap<(String, String), i64> = incentives
                .iter()
                .map(|i| {
                    (
                        (i.team.as_str().to_owned(), i.owner.clone()),
                        i.credits_cents,
                    )
                })
                .collect();
            let expected = credits_from_raw_facts(&dynamo, &table, period, &version).await;
            assert_eq!(rows, expected, "{period}: rows against the raw facts");
            assert_eq!(totals.credits_cents, expected.values().sum::<i64>());
            assert!(
                totals.outcomes.get("won").is_some_and(|w| *w > 0),
                "{period} has wins"
            );
            (version, rows)
        }
    };
    let (october_version, _) = reconcile("2026-10").await;
    reconcile("2026-11").await;

    // October closes; then a contact with October credits is deleted, and two contacts with
    // November credits turn out to be one person and are merged.
    rollups::close(store, "2026-10", "finance", at("2026-11-20T09:00:00Z"))
        .await
        .unwrap();
    let frozen = store.rows("2026-10").await.unwrap();
    let october = rollups::statements(store, "2026-10", &october_version)
        .await
        .unwrap();
    let deleted = october
        .iter()
        .find(|l| l.team == leadsync_domain::incentives::Team::Sales && l.deal_id.is_none())
        .unwrap()
        .leads[0]
        .clone();
    let november_version =
        leadsync_domain::rollup::reporting_version(&store.rows("2026-11").await.unwrap()).unwrap();
    let november = rollups::statements(store, "2026-11", &november_version)
        .await
        .unwrap();
    let mut accepted: Vec<&String> = november
        .iter()
        .filter(|l| {
            l.outcome == leadsync_domain::incentives::Outcome::SalesAccepted
                && l.team == leadsync_domain::incentives::Team::Sales
        })
        .map(|l| &l.leads[0])
        .filter(|l| **l != deleted)
        .collect();
    accepted.dedup();
    let (winner, loser) = (accepted[0].clone(), accepted[1].clone());
    assert!(sandbox.archive_contact(deleted.parse().unwrap()));
    assert!(sandbox.merge_contacts(winner.parse().unwrap(), loser.parse().unwrap()));

    let night = common::nightly_at(
        event(serde_json::json!({})),
        &deps,
        at("2026-11-21T03:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(
        (night.merged, night.deleted),
        (1, 2),
        "the loser is archived too: {night:?}"
    );
    assert_eq!(
        store.rows("2026-10").await.unwrap(),
        frozen,
        "closed October never changes"
    );
    let (_, november_rows) = reconcile("2026-11").await;
    // The merged pair's acceptance counts once: one sales accepted line for the winner, none
    // for the loser; the deleted contact is on nobody's statement.
    let november = rollups::statements(store, "2026-11", &november_version)
        .await
        .unwrap();
    let lines_of = |lead: &str| {
        november
            .iter()
            .filter(|l| l.leads.iter().any(|x| x == lead))
            .count()
    };
    assert_eq!(lines_of(&loser), 0);
    assert_eq!(
        november
            .iter()
            .filter(|l| l.leads == [winner.clone()]
                && l.outcome == leadsync_domain::incentives::Outcome::SalesAccepted)
            .count(),
        2,
        "one acceptance: a sales line and a marketing line"
    );
    let october_now = rollups::statements(store, "2026-10", &october_version)
        .await
        .unwrap();
    assert!(october_now.iter().all(|l| !l.leads.contains(&deleted)));
    // The deleted contact's October credits come back as a correction in November.
    let corrections =
        leadsync_domain::rollup::correction_rows(&store.rows("2026-11").await.unwrap());
    let october_delta: i64 = corrections
        .iter()
        .filter(|c| c.closed_period == "2026-10")
        .map(|c| c.delta_credits_cents)
        .sum();
    let lost: i64 = october
        .iter()
        .filter(|l| l.leads.contains(&deleted) && l.leads.len() == 1)
        .map(|l| l.credit_cents)
        .sum();
    assert!(lost > 0);
    assert!(
        october_delta <= -lost,
        "{october_delta} vs the deleted contact's {lost}"
    );
    let _ = november_rows;
}

/// `data-figure` id → (raw value, text shown) of every figure on a page.
fn figures(dom: &str) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find("data-figure=\"") {
        rest = &rest[at + "data-figure=\"".len()..];
        let id_end = rest.find('"').unwrap();
        let id = rest[..id_end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let v = rest.find("data-value=\"").unwrap() + "data-value=\"".len();
        let v_end = v + rest[v..].find('"').unwrap();
        let value: i64 = rest[v..v_end].parse().unwrap();
        let text_start = v_end + rest[v_end..].find('>').unwrap() + 1;
        let text_end = text_start + rest[text_start..].find('<').unwrap();
        out.push((id, value, rest[text_start..text_end].to_owned()));
        rest = &rest[text_end..];
    }
    out
}

/// Debian's Chromium, headless, on a page: its DOM after load, what it logged, a screenshot.
fn chromium(page: &std::path::Path, screenshot: &std::path::Path, width: u32) -> (String, String) {
    let profile = std::env::temp_dir().join(leadsync_localstack::unique_name("chromium"));
    let args = |extra: Vec<String>| {
        let mut a = vec![
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        a.extend(extra);
        a.push(format!("file://{}", page.display()));
        a
    };
    let dom = std::process::Command::new("chromium")
        .args(args(vec!["--dump-dom".into()]))
        .output()
        .expect("chromium (scripts/setup-local.sh installs Debian's package)");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = std::process::Command::new("chromium")
        .args(args(vec![
            format!("--screenshot={}", screenshot.display()),
            format!("--window-size={width},2600"),
            "--hide-scrollbars".into(),
        ]))
        .output()
        .unwrap();
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    std::fs::remove_dir_all(&profile).ok();
    (
        String::from_utf8(dom.stdout).unwrap(),
        String::from_utf8_lossy(&dom.stderr).into_owned() + &String::from_utf8_lossy(&shot.stderr),
    )
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser_shows_every_figure_as_its_rows_say() {
    let common::Aws {
        sdk,
        dynamo: _,
        s3,
        table,
        bucket,
    } = common::aws("dashboard").await;
    let now = at("2026-11-20T03:00:00Z");
    let sandbox =
        Sandbox::start(SandboxConfig::new(7, 800).anchored_at(at("2026-11-20T00:00:00Z")))
            .await
            .unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", table.clone()),
        ("BUCKET_NAME", bucket.clone()),
        ("CRM_BASE_URL", sandbox.base_url()),
        ("CRM_TOKEN", sandbox.token().to_owned()),
    ]);
    let deps = Deps::new(Config::from_lookup(|k| vars.get(k).cloned()).unwrap(), &sdk)
        .await
        .unwrap();
    let report = common::nightly_at(event(serde_json::json!({})), &deps, now)
        .await
        .unwrap();
    // The run published the pages of the months it recomputed.
    let key = "dashboards/2026-10/index.html".to_owned();
    assert!(report.dashboards.contains(&key), "{:?}", report.dashboards);
    let html = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(html.content_type(), Some("text/html; charset=utf-8"));
    let html = html.body.collect().await.unwrap().into_bytes().to_vec();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("index.html");
    std::fs::write(&page, &html).unwrap();
    let page = page.canonicalize().unwrap();
    let (dom, log) = chromium(&page, &dir.join("dashboard.png"), 1280);
    let (_, phone_log) = chromium(&page, &dir.join("dashboard-phone.png"), 390);
    for line in log.lines().chain(phone_log.lines()) {
        assert!(
            !(line.contains("CONSOLE")
                || line.contains("Uncaught")
                || line.contains("Failed to load")),
            "console error: {line}"
        );
    }
    assert!(dir.join("dashboard.png").metadata().unwrap().len() > 10_000);

    // Every figure the browser rendered equals its row in DynamoDB (or the funnel and
    // statements computed from its facts), and reads as people write it.
    let store = &deps.store;
    let rows = store.rows("2026-10").await.unwrap();
    let version = leadsync_domain::rollup::reporting_version(&rows).unwrap();
    let (incentives, totals) = leadsync_domain::rollup::incentive_rows(&rows, &version);
    let mut expected: HashMap<String, i64> = HashMap::new();
    for i in &incentives {
        let id = format!("inc:{}:{}", i.team.as_str(), i.owner);
        expected.insert(format!("{id}:credits"), i.credits_cents);
        expected.insert(format!("{id}:facts"), i.facts as i64);
        for o in ["sql", "sales_accepted", "opportunity", "won"] {
            expected.insert(format!("{id}:{o}"), i.outcomes.get(o).copied().unwrap_or(0));
        }
    }
    expected.insert("inc:total:credits".into(), totals.credits_cents);
    expected.insert("total:credits".into(), totals.credits_cents);
    expected.insert("inc:total:facts".into(), totals.facts as i64);
    for o in ["sql", "sales_accepted", "opportunity", "won"] {
        expected.insert(
            format!("inc:total:{o}"),
            totals.outcomes.get(o).copied().unwrap_or(0),
        );
    }
    let mut days: HashMap<String, i64> = HashMap::new();
    for row in &rows {
        if let Ok(RowBody::Kpi(k)) = row.parse()
            && k.criteria_version == version
            && k.dimension == "all"
        {
            if k.grain == "month" {
                expected.insert(format!("kpi:{}", k.metric), k.value);
                expected.insert(format!("kpi:{}:base", k.metric), k.base);
            } else {
                *days.entry(format!("trend:{}:total", k.metric)).or_default() += k.value;
            }
        }
    }
    expected.extend(days);
    let funnel = rollups::funnel_report(store, "2026-10", &version, now, 30, 1.0)
        .await
        .unwrap();
    for s in &funnel.steps {
        let id = |w: &str| format!("funnel:{}:{w}", s.step);
        expected.insert(id("entered"), s.entered);
        expected.insert(id("advanced"), s.advanced);
        expected.insert(id("lost"), s.lost_total);
        expected.insert(id("still"), s.still_in_stage);
        expected.insert(id("stalled"), s.stalled);
        for k in leadsync_domain::funnel::LOSS_KINDS {
            expected.insert(id(k), s.lost.get(k).copied().unwrap_or(0));
        }
        if let Some(g) = s.revenue_gain_cents {
            expected.insert(id("gain"), g);
        }
    }
    for l in rollups::statements(store, "2026-10", &version)
        .await
        .unwrap()
    {
        *expected
            .entry(format!("statement:{}:{}:total", l.team.as_str(), l.owner))
            .or_default() += l.credit_cents;
    }
    let shown = figures(&dom);
    assert!(shown.len() > 100, "{} figures", shown.len());
    for (id, value, text) in &shown {
        let want = expected
            .get(id)
            .unwrap_or_else(|| panic!("figure {id} is not a row's"));
        assert_eq!(value, want, "figure {id}");
        let digits: String = text
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        assert_eq!(
            digits.parse::<i64>().unwrap(),
            *want,
            "figure {id} reads {text:?}"
        );
    }
    assert!(dom.contains(&format!(
        "<strong id=\"criteria-version\">{version}</strong>"
    )));
    assert!(dom.contains("Dana Ruiz, VP Sales"), "the sign-off is shown");
}
