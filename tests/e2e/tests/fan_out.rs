//! Fan-out end to end: nightly-sync plans a run over the HubSpot sandbox, sends its slices to
//! an SQS queue (moto), sync-slice runs them (through the local event-source stand-in, two at
//! a time); the rollups equal an inline run's over the same data. Overlapping runs are turned
//! away by the lease; the rescore function answers busy, then re-scores; a HubSpot webhook is
//! verified before anything runs. A criteria version published and a webhook that arrive while
//! a run holds the lease wait on the queue and are applied after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use leadsync_app::{Config, Deps, RunOutcome};
use leadsync_domain::facts::period_of;
use leadsync_domain::ports::{LeadStore, RollupStore, RunStore};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use std::collections::HashMap;

struct Env {
    sandbox: Sandbox,
    deps: Deps,
    sqs: aws_sdk_sqs::Client,
    queue_url: Option<String>,
}

/// A sandbox with `contacts` and a fresh table; with `queue`, runs above `inline_max` fan out.
async fn env(contacts: u64, queue: bool, inline_max: u64, slice: u64) -> Env {
    env_with(contacts, queue, inline_max, slice, &[]).await
}

/// [`env`] with more configuration.
async fn env_with(
    contacts: u64,
    queue: bool,
    inline_max: u64,
    slice: u64,
    extra: &[(&'static str, &str)],
) -> Env {
    let aws = common::aws("fan").await;
    let sqs = aws_sdk_sqs::Client::new(&aws.sdk);
    let sandbox = Sandbox::start(SandboxConfig::new(11, contacts))
        .await
        .unwrap();
    let mut vars: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", aws.table.clone()),
        ("BUCKET_NAME", aws.bucket.clone()),
        ("CRM_BASE_URL", sandbox.base_url()),
        ("CRM_TOKEN", sandbox.token().to_owned()),
        ("CRM_RATE_TIER", "pro".to_owned()),
        ("INLINE_MAX_CONTACTS", inline_max.to_string()),
        ("SLICE_CONTACTS", slice.to_string()),
        ("SLICE_CONCURRENCY", "2".to_owned()),
        ("RESCORE_WAIT_SECONDS", "0".to_owned()),
    ]);
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let queue_url = if queue {
        let url = leadsync_store::bootstrap::create_queue(&sqs, &aws.table)
            .await
            .unwrap();
        vars.insert("SLICE_QUEUE_URL", url.clone());
        Some(url)
    } else {
        None
    };
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let deps = Deps::new(config, &aws.sdk).await.unwrap();
    Env {
        sandbox,
        deps,
        sqs,
        queue_url,
    }
}

fn event(request_id: &str, payload: serde_json::Value) -> LambdaEvent<serde_json::Value> {
    let mut context = Context::default();
    context.request_id = request_id.to_owned();
    LambdaEvent::new(payload, context)
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T03:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

async fn drain(env: &Env) -> leadsync_app::slice::local::PumpStats {
    leadsync_app::slice::local::pump(
        &env.sqs,
        env.queue_url.as_deref().unwrap(),
        &env.deps,
        2,
        3,
        Utc::now,
        || {},
    )
    .await
    .unwrap()
}

/// The scheduled night "night-1" through nightly-sync's handler.
async fn night_1(env: &Env) -> RunOutcome {
    leadsync_app::nightly::handle_at(
        event("night-1", serde_json::json!({})),
        &env.deps,
        now(),
        Utc::now,
    )
    .await
    .unwrap()
}

/// A HubSpot webhook request signed with `secret`, through the rescore function.
async fn webhook(env: &Env, request_id: &str, secret: &str, body: &str) -> serde_json::Value {
    let ts = Utc::now().timestamp_millis().to_string();
    let secret = secrecy::SecretString::from(secret);
    let signature = leadsync_app::rescore::webhook::sign(
        &secret,
        "POST",
        "https://hooks.lambda-url.us-east-1.on.aws/",
        body,
        &ts,
    );
    leadsync_app::rescore::handle_at(
        event(
            request_id,
            serde_json::json!({
                "version": "2.0",
                "rawPath": "/",
                "rawQueryString": "",
                "headers": {
                    "host": "hooks.lambda-url.us-east-1.on.aws",
                    "content-type": "application/json",
                    "x-hubspot-signature-v3": signature,
                    "x-hubspot-request-timestamp": ts,
                },
                "requestContext": {"http": {"method": "POST", "path": "/"}},
                "body": body,
                "isBase64Encoded": false,
            }),
        ),
        &env.deps,
        Some(&leadsync_app::rescore::Webhook { secret }),
        now(),
        Utc::now,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fanned_out_run_over_20000_leads_through_sqs_ends_like_an_inline_run() {
    const CONTACTS: u64 = 20_000;
    let (inline, fanned) = tokio::join!(
        env(CONTACTS, false, 0, 5_000),
        env(CONTACTS, true, 1_000, 5_000)
    );
    let run = "night-2026-11-20";
    let (inline_outcome, fanned_outcome) = tokio::join!(
        leadsync_app::nightly::handle_at(
            event(run, serde_json::json!({})),
            &inline.deps,
            now(),
            Utc::now
        ),
        leadsync_app::nightly::handle_at(
            event(run, serde_json::json!({})),
            &fanned.deps,
            now(),
            Utc::now
        ),
    );
    let RunOutcome::Finished {
        report: inline_report,
    } = inline_outcome.unwrap()
    else {
        panic!("without a queue the run is inline");
    };
    assert_eq!(inline_report.pulled, CONTACTS);
    let RunOutcome::Queued {
        slices, contacts, ..
    } = fanned_outcome.unwrap()
    else {
        panic!("above the inline limit the run fans out");
    };
    assert_eq!(contacts, CONTACTS);
    assert!((4..=8).contains(&slices), "{slices} slices of ~5,000");
    let stats = drain(&fanned).await;
    assert_eq!(stats.succeeded, u64::from(slices));
    assert_eq!(stats.failed, 0);

    // The run is finished: every slice counted once, the lease released, the watermark moved.
    let results = fanned.deps.store.slice_results(run).await.unwrap();
    assert_eq!(results.len() as u32, slices);
    let pulled: u64 = results.iter().map(|r| r.report.pulled).sum();
    assert_eq!(pulled, CONTACTS, "every contact in exactly one slice");
    assert_eq!(
        fanned
            .deps
            .store
            .watermark("hubspot#contacts")
            .await
            .unwrap(),
        inline
            .deps
            .store
            .watermark("hubspot#contacts")
            .await
            .unwrap()
    );
    assert!(
        fanned
            .deps
            .store
            .acquire_lease("someone-else", Utc::now(), Utc::now())
            .await
            .unwrap()
            .is_none(),
        "the finisher released the lease"
    );

    // Rollups: the same rows, byte for byte.
    let period = period_of(now());
    let (a, b) = (
        inline.deps.store.rows(&period).await.unwrap(),
        fanned.deps.store.rows(&period).await.unwrap(),
    );
    assert!(a.len() > 20, "{} rollup rows", a.len());
    assert_eq!(a, b);
    // Both CRMs hold the same results.
    assert_eq!(ours(&inline.sandbox), ours(&fanned.sandbox));
}

/// leadsync's properties on every contact.
fn ours(sandbox: &Sandbox) -> Vec<(u64, Vec<(String, String)>)> {
    sandbox
        .contacts()
        .into_iter()
        .map(|c| {
            (
                c.id,
                c.properties
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("leadsync_"))
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn overlapping_runs_are_turned_away_cleanly_while_a_fanned_out_run_holds_the_lease() {
    let env = env(2_000, true, 500, 500).await;
    let first = night_1(&env).await;
    let RunOutcome::Queued { slices, .. } = first else {
        panic!("expected a fan-out, got {first:?}");
    };
    assert!(slices >= 4);
    let some_id = leadsync_domain::LeadId::new(env.sandbox.contacts()[0].id.to_string()).unwrap();

    // A second night: busy, names the holder, records nothing.
    let second = leadsync_app::nightly::handle_at(
        event("night-2", serde_json::json!({})),
        &env.deps,
        now(),
        Utc::now,
    )
    .await
    .unwrap();
    let RunOutcome::Busy { holder, .. } = second else {
        panic!("expected busy, got {second:?}");
    };
    assert_eq!(holder, "night-1");
    assert!(
        env.deps
            .store
            .slice_results("night-2")
            .await
            .unwrap()
            .is_empty()
    );

    // A re-score through the function URL: 503 with Retry-After, nothing scored.
    let url_call = |body: serde_json::Value| {
        event(
            "call-1",
            serde_json::json!({
                "version": "2.0",
                "rawPath": "/",
                "headers": {"content-type": "application/json"},
                "requestContext": {"http": {"method": "POST", "path": "/"}},
                "body": body.to_string(),
            }),
        )
    };
    let busy = leadsync_app::rescore::handle_at(
        url_call(serde_json::json!({"lead_ids": [some_id.as_str()]})),
        &env.deps,
        None,
        now(),
        Utc::now,
    )
    .await
    .unwrap();
    assert_eq!(busy["statusCode"], 503, "{busy}");
    assert_eq!(busy["headers"]["retry-after"], "60");
    assert!(
        env.deps
            .store
            .load_states(std::slice::from_ref(&some_id))
            .await
            .unwrap()
            .is_empty()
    );

    // The first run completes; then the re-score goes through.
    let stats = drain(&env).await;
    assert_eq!(stats.succeeded, u64::from(slices));
    let done = leadsync_app::rescore::handle_at(
        url_call(serde_json::json!({"lead_ids": [some_id.as_str()]})),
        &env.deps,
        None,
        now(),
        Utc::now,
    )
    .await
    .unwrap();
    assert_eq!(done["statusCode"], 200, "{done}");
    let body: serde_json::Value = serde_json::from_str(done["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["report"]["pulled"], 1);
    let states = env
        .deps
        .store
        .load_states(std::slice::from_ref(&some_id))
        .await
        .unwrap();
    // Scored by the nightly run; the re-score under the same criteria found nothing to change.
    assert_eq!(states[&some_id].run_id, "night-1");
    assert_eq!(body["report"]["unchanged"], 1, "{body}");

    // A bad request body is a 400 that names the problem.
    let bad = leadsync_app::rescore::handle_at(
        url_call(serde_json::json!({"lead_ids": [], "all": false})),
        &env.deps,
        None,
        now(),
        Utc::now,
    )
    .await
    .unwrap();
    assert_eq!(bad["statusCode"], 400, "{bad}");
}

#[tokio::test]
async fn a_version_published_and_a_webhook_during_a_fanned_out_run_wait_on_the_queue_and_are_applied()
 {
    const SECRET: &str = "app-secret";
    // Put back at once while the lease is held: the pump below is the only clock.
    let env = env_with(2_000, true, 500, 500, &[("RESCORE_RETRY_SECONDS", "0")]).await;
    let first = night_1(&env).await;
    let RunOutcome::Queued { slices, .. } = first else {
        panic!("expected a fan-out, got {first:?}");
    };

    // Both teams sign a new version while the night's slices wait: its upload finds the lease
    // held. S3 does not retry a success, so the re-score must not be answered "busy".
    let v2 = include_str!("../../../infra/criteria/b2b-saas.toml")
        .replace("version = \"2026.11.1\"", "version = \"2026.11.2\"");
    let published = env
        .deps
        .criteria_store
        .publish("b2b-saas-v2.toml", &v2, Utc::now())
        .await
        .unwrap();
    let upload = leadsync_app::rescore::handle_at(
        event(
            "s3-1",
            leadsync_app::rescore::put_notification("leadsync", &published.key, Utc::now()),
        ),
        &env.deps,
        None,
        now(),
        Utc::now,
    )
    .await
    .expect("a busy lease is not an error when there is a queue");
    assert_eq!(upload[0]["outcome"]["status"], "deferred", "{upload}");
    assert_eq!(upload[0]["outcome"]["holder"], "night-1", "{upload}");

    // A signed webhook is acknowledged at once, its contact queued.
    let contact = env.sandbox.contacts()[7].id;
    let body = format!(
        r#"[{{"objectId":{contact},"subscriptionType":"contact.propertyChange","propertyName":"jobtitle"}}]"#
    );
    let hook = webhook(&env, "hook-1", SECRET, &body).await;
    assert_eq!(hook["statusCode"], 200, "{hook}");
    let answer: serde_json::Value = serde_json::from_str(hook["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["contacts"].as_u64()),
        (Some("queued"), Some(1)),
        "{answer}"
    );
    let lead = leadsync_domain::LeadId::new(contact.to_string()).unwrap();
    assert!(
        env.deps
            .store
            .load_states(std::slice::from_ref(&lead))
            .await
            .unwrap()
            .is_empty(),
        "nothing scored before the answer"
    );

    // The worker drains the queue: the night's slices, and the two re-scores once it is done.
    let stats = drain(&env).await;
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert!(
        stats.succeeded >= u64::from(slices) + 2,
        "the night's slices and both re-scores: {stats:?}"
    );
    let ids: Vec<leadsync_domain::LeadId> = env
        .sandbox
        .contacts()
        .iter()
        .map(|c| leadsync_domain::LeadId::new(c.id.to_string()).unwrap())
        .collect();
    let states = env.deps.store.load_states(&ids).await.unwrap();
    assert_eq!(states.len(), ids.len(), "every contact scored");
    let stale: Vec<_> = states
        .values()
        .filter(|s| s.criteria_version != "2026.11.2")
        .map(|s| s.lead_id.as_str().to_owned())
        .take(5)
        .collect();
    assert!(
        stale.is_empty(),
        "not re-scored under the published version: {stale:?}"
    );
    let on_crm = env
        .sandbox
        .contacts()
        .into_iter()
        .find(|c| c.id == contact)
        .unwrap();
    assert_eq!(
        on_crm
            .properties
            .get("leadsync_criteria_version")
            .map(String::as_str),
        Some("2026.11.2")
    );
    assert!(
        env.deps
            .store
            .acquire_lease("someone-else", Utc::now(), Utc::now())
            .await
            .unwrap()
            .is_none(),
        "the lease is free"
    );
}

/// Issue 19 (privacy): HubSpot's `contact.privacyDeletion` is answered at once and the person
/// queued; the slice worker erases them — state and snapshot lines gone, the month's facts
/// kept under a pseudonym.
#[tokio::test]
async fn a_privacy_deletion_webhook_is_answered_at_once_and_the_person_erased() {
    use leadsync_domain::ports::RollupStore;
    let env = env(300, true, 1_000, 500).await;
    let night = night_1(&env).await;
    assert!(matches!(night, RunOutcome::Finished { .. }), "{night:?}");
    let contact = env.sandbox.contacts()[11].id;
    let lead = leadsync_domain::LeadId::new(contact.to_string()).unwrap();
    assert_eq!(held(&env, &lead).await, 1);
    // The sandbox's world is the year up to `now`: facts fall in the month they occurred.
    let store = &env.deps.store;
    let facts_of = |who: String| async move {
        let mut n = 0;
        for month in 1..=11 {
            let period = format!("2026-{month:02}");
            store
                .visit_facts(&period, |f| {
                    let id = f.lead_id().as_str();
                    n += u64::from(if who.is_empty() {
                        id.starts_with("erased-")
                    } else {
                        id == who
                    });
                })
                .await
                .unwrap();
        }
        n
    };
    let before = facts_of(contact.to_string()).await;
    assert!(before >= 1);

    let body =
        format!(r#"[{{"objectId":{contact},"subscriptionType":"contact.privacyDeletion"}}]"#);
    let started = std::time::Instant::now();
    let hook = webhook(&env, "hook-erase", "app-secret", &body).await;
    let answered = started.elapsed();
    assert_eq!(hook["statusCode"], 200, "{hook}");
    let answer: serde_json::Value = serde_json::from_str(hook["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["erasures"].as_u64()),
        (Some("erasing"), Some(1)),
        "{answer}"
    );
    assert!(
        answered < std::time::Duration::from_secs(2),
        "answered in {answered:?}"
    );
    assert_eq!(
        held(&env, &lead).await,
        1,
        "queued, not done before the answer"
    );

    let stats = drain(&env).await;
    assert_eq!((stats.succeeded, stats.failed), (1, 0), "{stats:?}");
    assert_eq!(held(&env, &lead).await, 0, "state erased");
    assert_eq!(
        facts_of(contact.to_string()).await,
        0,
        "no fact names the person"
    );
    assert_eq!(
        facts_of(String::new()).await,
        before,
        "the person's facts kept under the pseudonym"
    );
    for object in env.deps.snapshots.list("snapshots/").await.unwrap() {
        let lines = env.deps.snapshots.read_snapshot(&object.key).await.unwrap();
        assert!(
            lines.iter().all(|l| l.lead.id != lead),
            "{} still has the person",
            object.key
        );
    }
}

/// How many states the table holds for `lead` (0 or 1).
async fn held(env: &Env, lead: &leadsync_domain::LeadId) -> usize {
    env.deps
        .store
        .load_states(std::slice::from_ref(lead))
        .await
        .unwrap()
        .len()
}

/// Issue 19 acceptance: a webhook batch naming 1,000 contacts is answered within 2 s — they are
/// queued, not re-scored before the answer — and the slice worker then re-scores all of them.
#[tokio::test]
async fn a_webhook_naming_1000_contacts_is_answered_within_2_s_and_they_are_rescored() {
    let env = env(1_000, true, 2_000, 1_000).await;
    let night = night_1(&env).await;
    assert!(matches!(night, RunOutcome::Finished { .. }), "{night:?}");
    let ids: Vec<u64> = env.sandbox.contacts().iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 1_000);
    let body = serde_json::Value::from(
        ids.iter()
            .map(|id| serde_json::json!({"objectId": id, "subscriptionType": "contact.propertyChange", "propertyName": "jobtitle"}))
            .collect::<Vec<_>>(),
    )
    .to_string();
    let started = std::time::Instant::now();
    let hook = webhook(&env, "hook-1000", "app-secret", &body).await;
    let answered = started.elapsed();
    assert_eq!(hook["statusCode"], 200, "{hook}");
    let answer: serde_json::Value = serde_json::from_str(hook["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (answer["status"].as_str(), answer["contacts"].as_u64()),
        (Some("queued"), Some(1_000)),
        "{answer}"
    );
    assert!(
        answered < std::time::Duration::from_secs(2),
        "answered in {answered:?}"
    );
    eprintln!(
        "webhook with 1,000 contacts answered in {} ms",
        answered.as_millis()
    );
    let stats = drain(&env).await;
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert!(stats.succeeded >= 1, "the queued re-score ran: {stats:?}");
    // The queued re-score's run: every contact the webhook named pulled and scored.
    let run_id = answer["run_id"].as_str().unwrap();
    let results = env.deps.store.slice_results(run_id).await.unwrap();
    let scored: u64 = results.iter().map(|r| r.report.scored).sum();
    assert_eq!(
        scored, 1_000,
        "every contact the webhook named was re-scored: {results:?}"
    );
}
