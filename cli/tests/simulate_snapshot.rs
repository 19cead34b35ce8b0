//! `leadsync criteria simulate --snapshot s3://…` as a user runs it: a run's snapshot read
//! straight from S3 (every slice, gzipped JSON Lines, the newest run under the prefix) and
//! the credits per team and owner a proposed document would change.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::incentives::Team;
use leadsync_domain::ports::{SnapshotKey, SnapshotLine, SnapshotStore, SnapshotWriter};
use leadsync_domain::{Criteria, Lead, Stage};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;

const EXAMPLE: &str = include_str!("../../infra/criteria/b2b-saas.toml");

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn lead(id: u32) -> Lead {
    let source = ["ORGANIC_SEARCH", "PAID_SOCIAL", "REFERRALS"][id as usize % 3];
    let country = if id % 2 == 0 {
        "United States"
    } else {
        "Mexico"
    };
    serde_json::from_value(serde_json::json!({
        "id": format!("c{id}"),
        "email": format!("p{id}@acme{id}.com"),
        "owner_id": format!("owner-{}", id % 4),
        "source": source,
        "lead_status": if id % 5 == 0 { Some("IN_PROGRESS") } else { None },
        "modified_at": "2026-11-01T00:00:00Z",
        "firmographics": {
            "industry": {"value": "COMPUTER_SOFTWARE", "source": {"provider": "crm"}},
            "employees": {"value": 120, "source": {"provider": "crm"}},
            "country": {"value": country, "source": {"provider": "crm"}}
        },
        "engagement": {"page_views": id % 40, "email_opens": 4, "email_clicks": 3,
            "form_submissions": 2, "last_page_view_at": "2026-11-19T00:00:00Z",
            "last_form_submission_at": "2026-11-18T00:00:00Z"},
        "deals": if id % 7 == 0 {
            serde_json::json!([{"id": format!("d{id}"), "amount_cents": 1_000_000, "closed_won": true, "closed": true, "owner_id": "owner-ae"}])
        } else {
            serde_json::json!([])
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_reads_every_slice_of_the_newest_run_from_s3_and_prints_credit_deltas_per_owner() {
    let now = at("2026-11-20T00:00:00Z");
    let moto = leadsync_localstack::shared().expect("moto");
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let bucket = leadsync_localstack::unique_name("simulate");
    leadsync_store::bootstrap::create_bucket(&s3, &bucket)
        .await
        .unwrap();
    let store = leadsync_store::S3SnapshotStore::new(s3.clone(), bucket.clone());
    let current = Criteria::parse("current.toml", EXAMPLE).unwrap();
    let line = |l: Lead| SnapshotLine {
        scorecard: current.evaluate(&l, now),
        lead: l,
    };
    let key = |run: &str, slice| SnapshotKey {
        date: now.date_naive(),
        run_id: run.to_owned(),
        slice,
    };
    // An older run of the day: ten leads, none of which the newest run has.
    let mut older = store.snapshot_writer(&key("nightly-older", 0));
    older
        .append(&(1000..1010).map(lead).map(line).collect::<Vec<_>>())
        .unwrap();
    older.finish().await.unwrap();
    // S3 dates objects to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // The newest run, fanned out: three slices of 40 leads, and a bad line in the last.
    let leads: Vec<Lead> = (0..120).map(lead).collect();
    for (slice, chunk) in leads.chunks(40).enumerate() {
        let lines: Vec<SnapshotLine> = chunk.iter().cloned().map(line).collect();
        if slice < 2 {
            let mut writer = store.snapshot_writer(&key("nightly-newest", slice as u32));
            writer.append(&lines).unwrap();
            writer.finish().await.unwrap();
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            for l in &lines[..20] {
                writeln!(gz, "{}", serde_json::to_string(l).unwrap()).unwrap();
            }
            writeln!(gz, "{{\"lead\": {{\"id\": 7}}}}").unwrap();
            for l in &lines[20..] {
                writeln!(gz, "{}", serde_json::to_string(l).unwrap()).unwrap();
            }
            let object = format!(
                "snapshots/{}/nightly-newest/00002.jsonl.gz",
                now.date_naive()
            );
            store
                .put(&object, gz.finish().unwrap(), "application/gzip", "test")
                .await
                .unwrap();
        }
    }

    let stricter = EXAMPLE
        .replacen("version = \"2026.11.1\"", "version = \"2026.12.0\"", 1)
        .replacen(
            "[stages.sql]\nmin_fit = 35\nmin_total = 70",
            "[stages.sql]\nmin_fit = 35\nmin_total = 75",
            1,
        );
    let dir = std::env::temp_dir().join(leadsync_localstack::unique_name("simulate"));
    std::fs::create_dir_all(&dir).unwrap();
    let (current_path, proposed_path) = (dir.join("current.toml"), dir.join("proposed.toml"));
    std::fs::write(&current_path, EXAMPLE).unwrap();
    std::fs::write(&proposed_path, &stricter).unwrap();
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_leadsync"))
            .args([
                "criteria",
                "simulate",
                "--current",
                current_path.to_str().unwrap(),
                "--proposed",
                proposed_path.to_str().unwrap(),
                "--snapshot",
                &format!("s3://{bucket}/snapshots/{}/", now.date_naive()),
                "--now",
                "2026-11-20T00:00:00Z",
                "--format",
                format,
            ])
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run("json");
    assert_eq!(code, 1, "a skipped line fails the command: {err}");
    assert!(
        err.contains("2 runs have snapshots") && err.contains("/nightly-newest/"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "s3://{bucket}/snapshots/{}/nightly-newest/00002.jsonl.gz:21: not a lead or snapshot line",
            now.date_naive()
        )),
        "the bad line is named by object and line: {err}"
    );
    let sim: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sim["leads"], 120, "every slice of the newest run, only it");
    assert_eq!(sim["skipped"], 1);

    // Expected, independently: each lead SQL under one bar and not the other moves the plan's
    // 40 USD SQL credit to or from its channel; acceptances and deals are the same under both.
    let proposed = Criteria::parse("proposed.toml", &stricter).unwrap();
    let mut expected: BTreeMap<(String, String), i64> = BTreeMap::new();
    for l in &leads {
        let (was, will) = (current.score(l, now).stage, proposed.score(l, now).stage);
        let change = i64::from(will == Stage::Sql) - i64::from(was == Stage::Sql);
        if change != 0 {
            *expected
                .entry(("marketing".into(), l.source.clone().unwrap()))
                .or_default() += change * 40_00;
        }
    }
    assert!(
        expected.len() >= 2,
        "the bar moves leads of several channels: {expected:?}"
    );
    let credits = sim["credits"].as_array().unwrap();
    let deltas: BTreeMap<(String, String), i64> = credits
        .iter()
        .map(|c| {
            (
                (
                    c["team"].as_str().unwrap().to_owned(),
                    c["owner"].as_str().unwrap().to_owned(),
                ),
                c["proposed_cents"].as_i64().unwrap() - c["current_cents"].as_i64().unwrap(),
            )
        })
        .filter(|(_, d)| *d != 0)
        .collect();
    assert_eq!(deltas, expected);
    // Sales is credited alike: 10 USD per acceptance to the owner, deals to the deal's owner.
    let sales_ae = credits
        .iter()
        .find(|c| c["team"] == Team::Sales.as_str() && c["owner"] == "owner-ae")
        .expect("the deals' owner is credited");
    let won = leads.iter().filter(|l| !l.deals.is_empty()).count() as i64;
    assert_eq!(
        sales_ae["current_cents"].as_i64(),
        Some(won * (50_00 + 1_000_000 * 500 / 10_000)),
        "an opportunity (50 USD) and 5 % of each 10,000 USD deal won: {sales_ae}"
    );

    let (_, table, _) = run("table");
    for (team, owner) in expected.keys() {
        let row = table
            .lines()
            .find(|l| l.contains(team.as_str()) && l.contains(owner.as_str()))
            .unwrap_or_else(|| panic!("a row for {team} {owner}: {table}"));
        let cents = expected[&(team.clone(), owner.clone())];
        assert!(
            row.trim_end()
                .ends_with(&leadsync_pipeline::rollups::money(cents)),
            "{row}"
        );
    }
    assert!(
        table.contains("what each stage's leads went on to do"),
        "{table}"
    );
}

/// `leadsync erase --lead ID` as an operator runs it against the stack's table and bucket:
/// the person's state and snapshot lines go, the answer says so in sentences, and a second
/// run finds nothing more to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_removes_a_person_and_says_what_it_removed() {
    use leadsync_domain::ports::LeadStore;
    let now = at("2026-11-20T00:00:00Z");
    let moto = leadsync_localstack::shared().expect("moto");
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let (table, bucket) = (
        leadsync_localstack::unique_name("erase"),
        leadsync_localstack::unique_name("erase"),
    );
    leadsync_store::bootstrap::create_table(&dynamo, &table)
        .await
        .unwrap();
    leadsync_store::bootstrap::create_bucket(&s3, &bucket)
        .await
        .unwrap();
    let store = leadsync_store::DynamoLeadStore::new(dynamo, &table, "hubspot");
    let snapshots = leadsync_store::S3SnapshotStore::new(s3, bucket.clone());
    let criteria = Criteria::parse("c.toml", EXAMPLE).unwrap();
    let leads: Vec<Lead> = (1..=3).map(lead).collect();
    let states: Vec<leadsync_domain::LeadState> = leads
        .iter()
        .map(|l| {
            leadsync_domain::LeadState::from_scorecard(
                l.id.clone(),
                l.owner_id.clone(),
                &criteria.evaluate(l, now),
                format!("h{}", l.id),
                l.modified_at,
                None,
                now,
                "r1",
            )
        })
        .collect();
    let facts: Vec<leadsync_domain::Transition> = states
        .iter()
        .filter_map(|s| leadsync_domain::Transition::between(None, s))
        .collect();
    store.record(&states, &facts).await.unwrap();
    let lines: Vec<SnapshotLine> = leads
        .iter()
        .map(|l| SnapshotLine {
            scorecard: criteria.evaluate(l, now),
            lead: l.clone(),
        })
        .collect();
    snapshots
        .put_snapshot(
            &SnapshotKey {
                date: now.date_naive(),
                run_id: "r1".into(),
                slice: 0,
            },
            &lines,
        )
        .await
        .unwrap();

    let erase = || {
        Command::new(env!("CARGO_BIN_EXE_leadsync"))
            .args(["erase", "--lead", "c2"])
            .env("TABLE_NAME", &table)
            .env("BUCKET_NAME", &bucket)
            .env("CRM_KIND", "hubspot")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .output()
            .unwrap()
    };
    let out = erase();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Lead c2 erased."), "{text}");
    assert!(
        text.contains("state (scores, stage, what was written to the CRM): deleted"),
        "{text}"
    );
    assert!(
        text.contains("snapshot and quarantine lines: 1 removed from 1 of 1 objects"),
        "{text}"
    );
    assert!(text.contains("kept under the pseudonym erased-"), "{text}");
    assert!(!text.contains("p2@acme2.com"), "never the person's address");
    let ids: Vec<leadsync_domain::LeadId> = leads.iter().map(|l| l.id.clone()).collect();
    let left = store.load_states(&ids).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(!left.contains_key(&ids[1]));
    let snapshot = snapshots
        .read_snapshot("snapshots/2026-11-20/r1/00000.jsonl.gz")
        .await
        .unwrap();
    assert_eq!(
        snapshot
            .iter()
            .map(|l| l.lead.id.as_str())
            .collect::<Vec<_>>(),
        vec!["c1", "c3"]
    );

    let again = erase();
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{text}");
    assert!(
        text.contains("state (scores, stage, what was written to the CRM): none held"),
        "{text}"
    );
    assert!(text.contains("lines: 0 removed"), "{text}");
}
