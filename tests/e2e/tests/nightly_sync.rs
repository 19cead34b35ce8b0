//! The nightly-sync handler end to end: HubSpot sandbox + moto (DynamoDB, S3).
//!
//! Expectations are computed from the sandbox's raw records with the criteria directly — not
//! through the CRM adapter — so a skipped or broken stage (pull, company data, scoring,
//! recording, snapshot, push) makes a comparison fail.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use leadsync_app::{Config, Deps};
use leadsync_domain::ports::LeadStore;
use leadsync_domain::{
    Criteria, Engagement, Firmographics, Lead, LeadId, Provenance, Sourced, Stage,
};
use leadsync_sandbox::{Record, Sandbox, SandboxConfig};
use std::collections::{BTreeMap, HashMap};

struct Env {
    sandbox: Sandbox,
    deps: Deps,
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
}

async fn env(contacts: u64) -> Env {
    let common::Aws {
        sdk,
        dynamo,
        table,
        bucket,
        ..
    } = common::aws("e2e").await;
    let sandbox = Sandbox::start(SandboxConfig::new(7, contacts))
        .await
        .unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", table.clone()),
        ("BUCKET_NAME", bucket.clone()),
        ("CRM_BASE_URL", sandbox.base_url()),
        ("CRM_TOKEN", sandbox.token().to_owned()),
        ("CRM_PAGE_SIZE", "100".to_owned()),
    ]);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let deps = Deps::new(config, &sdk).await.unwrap();
    Env {
        sandbox,
        deps,
        dynamo,
        table,
    }
}

fn event() -> LambdaEvent<serde_json::Value> {
    LambdaEvent::new(serde_json::json!({}), Context::default())
}

/// The lead as the sandbox holds it, built here without the CRM adapter.
fn expected_lead(contact: &Record, companies: &HashMap<u64, &Record>) -> Lead {
    let p = &contact.properties;
    let num = |k: &str| p.get(k).map_or(0, |v| v.parse::<u32>().unwrap());
    let at = |k: &str| {
        p.get(k)
            .map(|v| DateTime::parse_from_rfc3339(v).unwrap().with_timezone(&Utc))
    };
    let mut lead = Lead::new(
        LeadId::new(contact.id.to_string()).unwrap(),
        contact.updated_at,
    );
    lead.email = p.get("email").cloned();
    lead.job_title = p.get("jobtitle").cloned();
    lead.owner_id = p.get("hubspot_owner_id").cloned();
    lead.lead_status = p.get("hs_lead_status").cloned();
    lead.engagement = Engagement {
        page_views: num("hs_analytics_num_page_views"),
        email_opens: num("hs_email_open"),
        email_clicks: num("hs_email_click"),
        form_submissions: num("num_conversion_events"),
        last_page_view_at: at("hs_analytics_last_visit_timestamp"),
        last_email_open_at: at("hs_email_last_open_date"),
        last_email_click_at: at("hs_email_last_click_date"),
        last_form_submission_at: at("recent_conversion_date"),
    };
    if let Some(company) = p
        .get("associatedcompanyid")
        .and_then(|id| companies.get(&id.parse::<u64>().unwrap()))
    {
        let c = &company.properties;
        lead.firmographics = Firmographics {
            industry: c
                .get("industry")
                .map(|v| Sourced::new(v.clone(), Provenance::crm())),
            employees: c
                .get("numberofemployees")
                .map(|v| Sourced::new(v.parse().unwrap(), Provenance::crm())),
            annual_revenue: c
                .get("annualrevenue")
                .map(|v| Sourced::new(v.parse().unwrap(), Provenance::crm())),
            country: c
                .get("country")
                .map(|v| Sourced::new(v.clone(), Provenance::crm())),
            company_type: None,
            technologies: c.get("web_technologies").map(|v| {
                Sourced::new(
                    v.split(';').map(|t| t.trim().to_lowercase()).collect(),
                    Provenance::crm(),
                )
            }),
        };
    }
    lead
}

async fn scan_states(env: &Env) -> (BTreeMap<String, HashMap<String, AttributeValue>>, usize) {
    let items: Vec<HashMap<String, AttributeValue>> = env
        .dynamo
        .scan()
        .table_name(&env.table)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let mut states = BTreeMap::new();
    let mut transitions = 0;
    for item in items {
        let pk = item["pk"].as_s().unwrap().clone();
        let sk = item["sk"].as_s().unwrap().clone();
        if sk == "STATE" {
            states.insert(pk.trim_start_matches("LEAD#hubspot#").to_owned(), item);
        } else if sk.starts_with("T#") {
            transitions += 1;
        }
    }
    (states, transitions)
}

#[tokio::test]
async fn nightly_sync_scores_records_snapshots_and_pushes_every_lead() {
    let env = env(500).await;
    let now = Utc::now();
    let pulled_max_modified: DateTime<Utc> = env
        .sandbox
        .contacts()
        .iter()
        .map(|c| c.updated_at)
        .max()
        .unwrap();
    let report = common::nightly_at(event(), &env.deps, now).await.unwrap();

    // Counts add up, every stage present in this data.
    assert_eq!(
        (report.pulled, report.scored, report.quarantined),
        (500, 500, 0)
    );
    assert_eq!(report.stages.values().sum::<u64>(), 500);
    for stage in Stage::ALL {
        assert!(
            report.stages.get(stage.as_str()).copied().unwrap_or(0) > 0,
            "no {stage} in {:?}",
            report.stages
        );
    }
    // One census to plan the run (a 1-result search), then 5 pages of 100.
    assert_eq!(
        env.sandbox.request_counts()["POST /crm/v3/objects/contacts/search"],
        6
    );

    // What the criteria say about each contact, computed independently.
    let criteria = Criteria::parse("bundled", leadsync_app::deps::BUNDLED_CRITERIA).unwrap();
    let companies_owned = env.sandbox.companies();
    let companies: HashMap<u64, &Record> = companies_owned.iter().map(|c| (c.id, c)).collect();
    let contacts = env.sandbox.contacts();
    let expected: BTreeMap<String, _> = contacts
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                criteria.evaluate(&expected_lead(c, &companies), now),
            )
        })
        .collect();
    let with_firmographics = contacts
        .iter()
        .filter(|c| !expected_lead(c, &companies).firmographics.is_empty())
        .count();
    assert!(
        with_firmographics > 300,
        "the data exercises company fit ({with_firmographics})"
    );

    // DynamoDB: one state per lead agreeing with the scoring, one transition per lead.
    let (states, transitions) = scan_states(&env).await;
    assert_eq!(states.len(), 500);
    assert_eq!(transitions, 500);
    for (id, card) in &expected {
        let item = &states[id];
        assert_eq!(
            item["stage"].as_s().unwrap(),
            card.stage.as_str(),
            "lead {id}"
        );
        assert_eq!(
            item["total"].as_n().unwrap(),
            &card.total.to_string(),
            "lead {id}"
        );
        assert!(
            item.contains_key("pushed_hash"),
            "lead {id} recorded as pushed"
        );
    }

    // S3: the snapshot has every lead with the same scorecard.
    let key = report.snapshot_key.clone().unwrap();
    assert!(key.starts_with(&format!("snapshots/{}/", now.date_naive())));
    let lines = env.deps.snapshots.read_snapshot(&key).await.unwrap();
    assert_eq!(lines.len(), 500);
    for line in &lines {
        assert_eq!(
            &line.scorecard,
            &expected[line.lead.id.as_str()],
            "snapshot of lead {}",
            line.lead.id
        );
    }

    // The CRM: the properties written agree with the scoring.
    assert_eq!(report.pushed, 500);
    assert_eq!(report.crm_push_requests, 5);
    for contact in env.sandbox.contacts() {
        let card = &expected[&contact.id.to_string()];
        for (name, value) in card.crm_properties(&criteria.crm) {
            assert_eq!(
                contact.properties.get(&name),
                Some(&value),
                "contact {} property {name}",
                contact.id
            );
        }
    }

    // The run record and the watermark.
    let run = env
        .dynamo
        .get_item()
        .table_name(&env.table)
        .key("pk", AttributeValue::S(format!("RUN#{}", report.run_id)))
        .key("sk", AttributeValue::S("SLICE#00000".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(run["pulled"].as_n().unwrap(), "500");
    assert_eq!(
        report.watermark_after,
        Some(pulled_max_modified),
        "the newest record pulled, not our own writes"
    );
}

#[tokio::test]
async fn second_run_changes_nothing_and_picks_up_an_edit() {
    let env = env(300).await;
    let first = common::nightly_at(event(), &env.deps, Utc::now())
        .await
        .unwrap();
    assert_eq!(first.pushed, 300);
    let (states_before, _) = scan_states(&env).await;
    let updates_before = env.sandbox.request_counts()["POST /crm/v3/objects/contacts/batch/update"];

    // Our own pushes modified every contact, so the next run pulls them all again — and must
    // write nothing, to the CRM or the table.
    let second = common::nightly_at(event(), &env.deps, Utc::now())
        .await
        .unwrap();
    assert_eq!(second.pulled, 300);
    assert_eq!(
        (second.pushed, second.states_written, second.transitions_new),
        (0, 0, 0)
    );
    assert_eq!(
        env.sandbox.request_counts()["POST /crm/v3/objects/contacts/batch/update"],
        updates_before
    );
    let (states_after, _) = scan_states(&env).await;
    let strip = |m: &BTreeMap<String, HashMap<String, AttributeValue>>| {
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v["stage"].clone(),
                    v["total"].clone(),
                    v["run_id"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&states_before), strip(&states_after));

    // A sales rep edits one contact: only it is re-scored and pushed.
    let target = env
        .sandbox
        .contacts()
        .into_iter()
        .find(|c| {
            c.properties
                .get("email")
                .is_some_and(|e| !e.contains("gmail"))
        })
        .unwrap();
    let target_id = LeadId::new(target.id.to_string()).unwrap();
    let before = env
        .deps
        .store
        .load_states(std::slice::from_ref(&target_id))
        .await
        .unwrap()[&target_id]
        .clone();
    env.sandbox.edit_contact(
        target.id,
        &[("num_conversion_events", "9"), ("hs_email_click", "9")],
    );
    // Let the edit's timestamp fall behind the index lag by running "later".
    let later = Utc::now() + chrono::Duration::minutes(5);
    let third = common::nightly_at(event(), &env.deps, later).await.unwrap();
    let after = env
        .deps
        .store
        .load_states(std::slice::from_ref(&target_id))
        .await
        .unwrap()[&target_id]
        .clone();
    assert_ne!(
        before.input_hash, after.input_hash,
        "the edit was pulled and re-scored"
    );
    assert!(third.pulled >= 1);
    // The edited contact is pushed. A lead re-read in the lookback window may move too, only
    // because its engagement points decayed with time (half-life) — a real change — so the
    // bound is the leads pulled, and every push is a changed state.
    assert!(
        third.pushed >= 1 && third.pushed <= third.pulled,
        "{third:?}"
    );
    assert_eq!(third.states_written, third.pushed);
}

#[tokio::test]
async fn a_quiet_mql_drops_to_iql_in_the_crm_on_the_night_its_decay_crosses_the_bar() {
    let env = env(300).await;
    let criteria = Criteria::parse("bundled", leadsync_app::deps::BUNDLED_CRITERIA).unwrap();
    let first_night = DateTime::parse_from_rfc3339("2026-11-02T03:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    common::nightly_at(event(), &env.deps, first_night)
        .await
        .unwrap();
    // An MQL whose engagement decays below the MQL bar (not just a band) if nothing happens.
    let companies = env.sandbox.companies();
    let companies: HashMap<u64, &Record> = companies.iter().map(|c| (c.id, c)).collect();
    let (states, _) = scan_states(&env).await;
    let (contact, due) = env
        .sandbox
        .contacts()
        .into_iter()
        .filter_map(|c| {
            let state = &states[&c.id.to_string()];
            let due = state.get("rescore_at")?.as_s().ok()?;
            let due = DateTime::parse_from_rfc3339(due).ok()?.with_timezone(&Utc);
            let lead = expected_lead(&c, &companies);
            (state["stage"].as_s().ok()? == "mql" && criteria.score(&lead, due).stage == Stage::Iql)
                .then_some((c, due))
        })
        .min_by_key(|(c, due)| (*due, c.id))
        .expect("a quiet MQL that decays to IQL");
    assert!(due > first_night);
    let id = contact.id;
    let pushed_stage = |env: &Env| {
        env.sandbox
            .contact(id)
            .and_then(|c| c.properties.get("leadsync_stage").cloned())
    };
    assert_eq!(pushed_stage(&env).as_deref(), Some("mql"));

    // The night before it is due: nothing moves for it.
    let searches = |env: &Env| env.sandbox.request_counts()["POST /crm/v3/objects/contacts/search"];
    let eve = due - chrono::Duration::hours(2);
    let before_eve = searches(&env);
    let quiet = common::nightly_at(event(), &env.deps, eve).await.unwrap();
    assert_eq!(pushed_stage(&env).as_deref(), Some("mql"));
    // What a night costs without its due leads: the census and the incremental pages.
    let base = searches(&env) - before_eve - quiet.rescored_due.div_ceil(100);
    // The night it is due: re-scored though the CRM never changed it, pushed as IQL.
    let before = searches(&env);
    let night = common::nightly_at(event(), &env.deps, due + chrono::Duration::minutes(30))
        .await
        .unwrap();
    assert!(night.rescored_due >= 1, "{night:?}");
    assert_eq!(pushed_stage(&env).as_deref(), Some("iql"));
    // No more requests than the due leads need: one search per 100 of them.
    assert_eq!(
        searches(&env) - before,
        base + night.rescored_due.div_ceil(100),
        "{} due leads",
        night.rescored_due
    );
    let state = env
        .deps
        .store
        .load_states(&[LeadId::new(id.to_string()).unwrap()])
        .await
        .unwrap();
    let state = state.values().next().unwrap();
    assert_eq!(state.stage, Stage::Iql);
    assert!(
        state.rescore_at.is_none_or(|next| next > due),
        "no longer due"
    );
}

#[tokio::test]
async fn a_cold_start_scores_with_the_published_criteria() {
    let env = env(50).await;
    assert_eq!(
        env.deps.criteria().version,
        "2026.11.1",
        "nothing published yet: the bundled agreement"
    );
    let moto = leadsync_localstack::shared().unwrap();
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let registry = leadsync_store::CriteriaStore::new(
        s3,
        env.dynamo.clone(),
        env.deps.config.bucket.clone(),
        env.table.clone(),
    );
    let published = registry
        .publish(
            "enterprise-saas.toml",
            include_str!("../../../infra/criteria/enterprise-saas.toml"),
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(published.version, "2026.12.0");

    let cold = Deps::new(env.deps.config.clone(), &sdk).await.unwrap();
    assert_eq!(cold.criteria().id, "contoso-enterprise-criteria");
    let report = common::nightly_at(event(), &cold, Utc::now())
        .await
        .unwrap();
    assert_eq!(report.criteria_version, "2026.12.0");
    assert_eq!(report.scored, 50);
}

#[tokio::test]
async fn a_dataset_in_s3_fills_what_the_crm_lacks() {
    let env = env(200).await;
    let moto = leadsync_localstack::shared().unwrap();
    let sdk = moto.sdk_config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    // Every sandbox company, with full data, one bad row.
    let mut csv = String::from("name,domain,industry,employee_count,country,revenue\n");
    for company in env.sandbox.companies() {
        let domain = &company.properties["domain"];
        csv.push_str(&format!(
            "{0},{domain},computer software,250,germany,40000000\n",
            company.id
        ));
    }
    csv.push_str("broken,,retail,1,france,1\n");
    s3.put_object()
        .bucket(&env.deps.config.bucket)
        .key("datasets/companies.csv")
        .body(csv.into_bytes().into())
        .send()
        .await
        .unwrap();
    let mut config = env.deps.config.clone();
    config.dataset_key = Some("datasets/companies.csv".into());
    let deps = Deps::new(config, &sdk).await.unwrap();
    assert_eq!(deps.providers.len(), 1);

    let report = common::nightly_at(event(), &deps, Utc::now())
        .await
        .unwrap();
    assert_eq!(report.scored, 200);
    assert!(report.enriched_fields > 0, "{report:?}");
    assert!(
        report.enrich_calls > 0 && report.enrich_matches > 0,
        "{report:?}"
    );
    let lines = deps
        .snapshots
        .read_snapshot(report.snapshot_key.as_deref().unwrap())
        .await
        .unwrap();
    let from_dataset = lines
        .iter()
        .flat_map(|l| {
            [
                l.lead
                    .firmographics
                    .industry
                    .as_ref()
                    .map(|s| &s.source.provider),
                l.lead
                    .firmographics
                    .country
                    .as_ref()
                    .map(|s| &s.source.provider),
            ]
        })
        .flatten()
        .filter(|p| p.as_ref() == "dataset:datasets/companies.csv")
        .count();
    assert!(
        from_dataset > 0,
        "some values came from the dataset, with its provenance"
    );
}
