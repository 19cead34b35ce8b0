//! The store adapters against a real moto server.
#![allow(clippy::unwrap_used)]

use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_s3::Client as S3;
use chrono::{DateTime, NaiveDate, Utc};
use leadsync_domain::ports::{LeadStore, RunReport, SnapshotKey, SnapshotStore, StoreError};
use leadsync_domain::{LeadId, LeadState, Stage, Transition};
use leadsync_store::{DynamoLeadStore, bootstrap};

async fn store() -> (DynamoLeadStore, Dynamo) {
    let moto = leadsync_localstack::shared().unwrap();
    let config = moto.sdk_config().await;
    let client = Dynamo::new(&config);
    let table = leadsync_localstack::unique_name("leads");
    bootstrap::create_table(&client, &table).await.unwrap();
    (
        DynamoLeadStore::new(client.clone(), table, "hubspot"),
        client,
    )
}

fn state(id: u32, stage: Stage) -> LeadState {
    LeadState {
        lead_id: LeadId::new(id.to_string()).unwrap(),
        stage,
        fit: 40,
        engagement: 12,
        total: 52,
        band: "B".into(),
        reasons: vec!["FIT_INDUSTRY_CORE".into(), "ENG_PAGE_VIEWS".into()],
        criteria_version: "v1".into(),
        input_hash: format!("hash-{id}"),
        pushed_hash: None,
        owner_id: Some("9100001".into()),
        updated_at: DateTime::parse_from_rfc3339("2026-11-20T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
        run_id: "run-1".into(),
        stage_since: Some(
            DateTime::parse_from_rfc3339("2026-10-02T08:30:00Z")
                .unwrap()
                .with_timezone(&Utc),
        ),
        rescore_at: (id % 2 == 0).then(|| {
            DateTime::parse_from_rfc3339("2026-11-24T05:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        }),
        // Round-trips too: what was announced is never announced again.
        announced: if id % 3 == 0 {
            vec!["sql:2026.11.1".to_owned()]
        } else {
            Vec::new()
        },
    }
}

#[tokio::test]
async fn states_round_trip_in_batches_over_the_limits() {
    let (store, _) = store().await;
    let states: Vec<LeadState> = (1..=230).map(|i| state(i, Stage::Mql)).collect();
    let outcome = store.record(&states, &[]).await.unwrap();
    assert_eq!(outcome.states_written, 230);
    let mut ids: Vec<LeadId> = states.iter().map(|s| s.lead_id.clone()).collect();
    ids.push(ids[0].clone()); // duplicates are tolerated
    ids.push(LeadId::new("404").unwrap());
    let loaded = store.load_states(&ids).await.unwrap();
    assert_eq!(loaded.len(), 230);
    assert_eq!(loaded[&states[7].lead_id], states[7]);
}

#[tokio::test]
async fn transitions_are_written_once() {
    let (store, _) = store().await;
    let s = state(1, Stage::Sql);
    let t = Transition::between(None, &s).unwrap();
    let first = store
        .record(std::slice::from_ref(&s), std::slice::from_ref(&t))
        .await
        .unwrap();
    assert_eq!((first.transitions_new, first.transitions_existing), (1, 0));
    let again = store.record(&[s], &[t]).await.unwrap();
    assert_eq!((again.transitions_new, again.transitions_existing), (0, 1));
}

#[tokio::test]
async fn transitions_go_in_batches_and_an_existing_fact_never_changes() {
    let (store, client) = store().await;
    let transition = |id: u32, run: &str| {
        let mut s = state(id, Stage::Sql);
        s.run_id = run.to_owned();
        Transition::between(None, &s).unwrap()
    };
    // An earlier run wrote 130 of them (every other lead of the first 260).
    let earlier: Vec<Transition> = (1..=260)
        .step_by(2)
        .map(|i| transition(i, "run-1"))
        .collect();
    let first = store.record(&[], &earlier).await.unwrap();
    assert_eq!(
        (first.transitions_new, first.transitions_existing),
        (130, 0)
    );
    // A later run records all 260 (and one twice): 130 new, 131 already there.
    let mut later: Vec<Transition> = (1..=260).map(|i| transition(i, "run-2")).collect();
    later.push(transition(2, "run-2"));
    let second = store.record(&[], &later).await.unwrap();
    assert_eq!(
        (second.transitions_new, second.transitions_existing),
        (130, 131)
    );
    let fact_run = |id: u32| {
        let client = client.clone();
        let table = store.table().to_owned();
        async move {
            let lead = LeadId::new(id.to_string()).unwrap();
            let item = client
                .get_item()
                .table_name(table)
                .key(
                    "pk",
                    aws_sdk_dynamodb::types::AttributeValue::S(leadsync_store::keys::lead_pk(
                        "hubspot", &lead,
                    )),
                )
                .key(
                    "sk",
                    aws_sdk_dynamodb::types::AttributeValue::S(
                        leadsync_store::keys::transition_sk(Stage::Sql, "v1"),
                    ),
                )
                .send()
                .await
                .unwrap()
                .item
                .unwrap();
            item["run_id"].as_s().unwrap().clone()
        }
    };
    assert_eq!(fact_run(1).await, "run-1", "written first, never changed");
    assert_eq!(fact_run(2).await, "run-2");
    assert_eq!(fact_run(259).await, "run-1");
    assert_eq!(fact_run(260).await, "run-2");
    // Everything there: nothing new, nothing changed.
    let third = store.record(&[], &later).await.unwrap();
    assert_eq!(
        (third.transitions_new, third.transitions_existing),
        (0, 261)
    );
}

#[tokio::test]
async fn pushed_hash_watermark_and_runs() {
    let (store, client) = store().await;
    let mut s = state(5, Stage::Iql);
    s.pushed_hash = Some("ph".into());
    store.record(std::slice::from_ref(&s), &[]).await.unwrap();
    assert_eq!(
        store
            .load_states(std::slice::from_ref(&s.lead_id))
            .await
            .unwrap()[&s.lead_id]
            .pushed_hash
            .as_deref(),
        Some("ph")
    );

    assert_eq!(store.watermark("hubspot#contacts").await.unwrap(), None);
    let at = DateTime::parse_from_rfc3339("2026-11-20T03:00:00.123Z")
        .unwrap()
        .with_timezone(&Utc);
    store.set_watermark("hubspot#contacts", at).await.unwrap();
    assert_eq!(store.watermark("hubspot#contacts").await.unwrap(), Some(at));

    let report = RunReport {
        run_id: "r1".into(),
        pulled: 3,
        ..RunReport::default()
    };
    store.save_run(&report).await.unwrap();
    let item = client
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("RUN#r1".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("SLICE#00000".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["pulled"].as_n().unwrap(), "3");
}

#[tokio::test]
async fn missing_table_is_a_clear_error() {
    let (_, client) = store().await;
    let store = DynamoLeadStore::new(client, "no-such-table", "hubspot");
    let err = store.watermark("x").await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("ResourceNotFound"), "{err}");
}

#[tokio::test]
async fn snapshot_is_gzipped_jsonl() {
    use leadsync_domain::ports::SnapshotLine;
    let (client, bucket, snapshots, criteria) = snapshot_bucket("bucket").await;
    let lead = leadsync_domain::Lead::new(LeadId::new("1").unwrap(), DateTime::<Utc>::UNIX_EPOCH);
    let line = SnapshotLine {
        scorecard: criteria.evaluate(&lead, DateTime::<Utc>::UNIX_EPOCH),
        lead,
    };
    let key = SnapshotKey {
        date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        run_id: "r1".into(),
        slice: 0,
    };
    let object = snapshots
        .put_snapshot(&key, &[line.clone(), line.clone()])
        .await
        .unwrap();
    assert_eq!(object, "snapshots/2026-11-24/r1/00000.jsonl.gz");
    let body = client
        .get_object()
        .bucket(&bucket)
        .key(&object)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip on the wire");
    let lines = snapshots.read_snapshot(&object).await.unwrap();
    assert_eq!(lines, vec![line.clone(), line]);

    // A broken object is reported with its key, not a panic.
    client
        .put_object()
        .bucket(&bucket)
        .key("snapshots/bad.jsonl.gz")
        .body(b"plain".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = snapshots
        .read_snapshot("snapshots/bad.jsonl.gz")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { ref key, .. } if key == "snapshots/bad.jsonl.gz"),
        "{err:?}"
    );
}

#[tokio::test]
async fn only_valid_signed_versions_are_published_and_activated() {
    use leadsync_store::{CriteriaStore, CriteriaStoreError};
    let moto = leadsync_localstack::shared().unwrap();
    let sdk = moto.sdk_config().await;
    let s3 = S3::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let dynamo = Dynamo::new(&sdk);
    let (bucket, table) = (
        leadsync_localstack::unique_name("crit"),
        leadsync_localstack::unique_name("crit"),
    );
    bootstrap::create_bucket(&s3, &bucket).await.unwrap();
    bootstrap::create_table(&dynamo, &table).await.unwrap();
    let registry = CriteriaStore::new(s3, dynamo, &bucket, &table);
    let now = Utc::now();
    let signed = include_str!("../../../infra/criteria/b2b-saas.toml");
    assert_eq!(registry.active().await.unwrap(), None);

    // Unsigned: refused, nothing active.
    let start = signed.find("[approved_by.sales]").unwrap();
    let end = signed.find("[approved_by.marketing]").unwrap();
    let unsigned = format!("{}{}", &signed[..start], &signed[end..]);
    let err = registry
        .publish("unsigned.toml", &unsigned, now)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CriteriaStoreError::Unsigned {
                missing: "sales",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(registry.active().await.unwrap(), None);

    // Signed and valid: stored and active.
    let published = registry
        .publish("b2b-saas.toml", signed, now)
        .await
        .unwrap();
    assert!(published.new);
    assert_eq!(
        published.key,
        "criteria/northwind-lead-criteria/2026.11.1.toml"
    );
    assert_eq!(
        registry.active().await.unwrap(),
        Some((published.key.clone(), signed.to_owned()))
    );
    // Again: idempotent.
    assert!(
        !registry
            .publish("b2b-saas.toml", signed, now)
            .await
            .unwrap()
            .new
    );

    // Same version, other content: refused; the active version stays.
    let edited = signed.replace("points = 20", "points = 25");
    let err = registry
        .publish("edited.toml", &edited, now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CriteriaStoreError::VersionTaken { .. }),
        "{err}"
    );
    // Invalid: refused with located errors; the active version stays.
    let invalid = signed
        .replace("version = \"2026.11.1\"", "version = \"2026.12.0\"")
        .replace("min_fit = 35", "min_fit = 5");
    let err = registry
        .publish("invalid.toml", &invalid, now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid.toml:"), "{err}");
    assert_eq!(registry.active().await.unwrap().unwrap().1, signed);

    // A new valid version becomes active.
    let next = signed.replace("version = \"2026.11.1\"", "version = \"2026.12.0\"");
    registry.publish("next.toml", &next, now).await.unwrap();
    assert_eq!(
        registry.active().await.unwrap().unwrap().0,
        "criteria/northwind-lead-criteria/2026.12.0.toml"
    );
}

/// Issue 19 (privacy): erasing lead 1 on DynamoDB and a versioned bucket. Its state goes, its
/// facts move under the pseudonym (the month still has every fact), a merge into it follows
/// the pseudonym, its snapshot and quarantine lines go with the older object versions that
/// held them, and lead 2 is untouched. An erasure interrupted after choosing its pseudonym is
/// finished with that one; repeating a finished one does nothing.
#[tokio::test]
async fn erasing_a_lead_moves_its_facts_and_removes_its_lines() {
    use leadsync_domain::facts::LeadLink;
    use leadsync_domain::ports::{Rejected, RollupStore, SnapshotLine};
    let (store, dynamo) = store().await;
    let (one, two) = (state(1, Stage::Sql), state(2, Stage::Mql));
    let facts: Vec<Transition> = [&one, &two]
        .iter()
        .filter_map(|s| Transition::between(None, s))
        .collect();
    store
        .record(&[one.clone(), two.clone()], &facts)
        .await
        .unwrap();
    let seen_at = one.updated_at;
    store
        .record_links(&[(
            LeadId::new("3").unwrap(),
            LeadLink::Merged {
                into: one.lead_id.clone(),
                seen_at,
            },
        )])
        .await
        .unwrap();
    let period = facts[0]
        .occurred_at
        .map(leadsync_domain::facts::period_of)
        .unwrap();
    let count = || async { store.visit_facts(&period, |_| {}).await.unwrap() };
    assert_eq!(count().await, 2);

    let (s3, bucket, snapshots, criteria) = snapshot_bucket("erase").await;
    let line = |id: &str| {
        let mut lead =
            leadsync_domain::Lead::new(LeadId::new(id).unwrap(), DateTime::<Utc>::UNIX_EPOCH);
        lead.email = Some(format!("person{id}@example.com"));
        SnapshotLine {
            scorecard: criteria.evaluate(&lead, DateTime::<Utc>::UNIX_EPOCH),
            lead,
        }
    };
    let key = SnapshotKey {
        date: NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
        run_id: "r1".into(),
        slice: 0,
    };
    // Written twice: the bucket keeps the first as an older version.
    snapshots
        .put_snapshot(&key, &[line("1"), line("2")])
        .await
        .unwrap();
    let object = snapshots
        .put_snapshot(&key, &[line("1"), line("2")])
        .await
        .unwrap();
    let rejected = |id: &str| Rejected {
        lead_id: Some(id.into()),
        reason: "field x".into(),
        raw: format!("{{\"id\":\"{id}\"}}"),
    };
    snapshots
        .put_quarantine(&key, &[rejected("1"), rejected("2")])
        .await
        .unwrap();

    // An earlier attempt chose its pseudonym, then stopped.
    dynamo
        .put_item()
        .table_name(store_table(&store))
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("LEAD#hubspot#1".into()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("ERASING".into()),
        )
        .item(
            "pseudonym",
            aws_sdk_dynamodb::types::AttributeValue::S("erased-first".into()),
        )
        .send()
        .await
        .unwrap();
    let id = LeadId::new("1").unwrap();
    let erased = store
        .erase_lead(
            &id,
            &LeadId::new("erased-second").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        erased.pseudonym, "erased-first",
        "the interrupted attempt's pseudonym"
    );
    assert!(erased.state_deleted);
    assert_eq!(
        (erased.facts_anonymised, erased.facts_kept, erased.links),
        (1, 0, 1)
    );
    assert!(
        store
            .load_states(std::slice::from_ref(&id))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .load_states(std::slice::from_ref(&two.lead_id))
            .await
            .unwrap()
            .len(),
        1
    );
    let mut who = Vec::new();
    store
        .visit_facts(&period, |f| who.push(f.lead_id().as_str().to_owned()))
        .await
        .unwrap();
    who.sort();
    assert_eq!(
        who,
        vec!["2", "erased-first"],
        "every fact kept, none under the person"
    );
    let links = store.links().await.unwrap();
    assert!(
        matches!(&links[&LeadId::new("3").unwrap()], LeadLink::Merged { into, .. } if into.as_str() == "erased-first")
    );
    let left = dynamo
        .query()
        .table_name(store_table(&store))
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S("LEAD#hubspot#1".into()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        left.count, 0,
        "nothing left under the person's key, the marker neither"
    );

    let gone = snapshots.erase_lead(&id).await.unwrap();
    assert_eq!(
        (gone.objects_rewritten, gone.lines_removed),
        (2, 2),
        "{gone:?}"
    );
    assert!(
        gone.versions_deleted >= 2,
        "the older versions that held the lines: {gone:?}"
    );
    let kept = snapshots.read_snapshot(&object).await.unwrap();
    assert_eq!(
        kept.iter().map(|l| l.lead.id.as_str()).collect::<Vec<_>>(),
        vec!["2"]
    );
    let versions = s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix(&object)
        .send()
        .await
        .unwrap();
    assert_eq!(
        versions.versions().len(),
        1,
        "only the rewritten version is left"
    );
    let quarantine = snapshots
        .get("quarantine/r1/00000.jsonl", "GetObject")
        .await
        .unwrap();
    let quarantine = String::from_utf8(quarantine).unwrap();
    assert!(
        !quarantine.contains("\"lead_id\":\"1\"") && quarantine.contains("\"lead_id\":\"2\""),
        "{quarantine}"
    );

    // Again: nothing to do.
    let again = store
        .erase_lead(
            &id,
            &LeadId::new("erased-third").unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!((again.state_deleted, again.facts_anonymised), (false, 0));
    assert_eq!(snapshots.erase_lead(&id).await.unwrap().lines_removed, 0);
    assert_eq!(count().await, 2);
}

fn store_table(store: &DynamoLeadStore) -> String {
    store.table().to_owned()
}

/// A fresh (versioned) bucket on moto, its snapshot store, and the example criteria to score
/// lines with.
async fn snapshot_bucket(
    prefix: &str,
) -> (
    S3,
    String,
    leadsync_store::S3SnapshotStore,
    leadsync_domain::Criteria,
) {
    let moto = leadsync_localstack::shared().unwrap();
    let client = S3::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    let bucket = leadsync_localstack::unique_name(prefix);
    bootstrap::create_bucket(&client, &bucket).await.unwrap();
    let snapshots = leadsync_store::S3SnapshotStore::new(client.clone(), &bucket);
    let criteria = leadsync_domain::Criteria::parse(
        "c",
        include_str!("../../../infra/criteria/b2b-saas.toml"),
    )
    .unwrap();
    (client, bucket, snapshots, criteria)
}
