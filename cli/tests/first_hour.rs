//! The first hour on a portal, as an evaluator runs it from a laptop: `leadsync doctor`,
//! `leadsync sync --dry-run`, `leadsync sync`, `leadsync backfill` — the binary itself, against
//! the HubSpot sandbox and a moto server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use leadsync_sandbox::{ALL_SCOPES, Sandbox, SandboxConfig};
use std::collections::BTreeMap;
use std::process::Command;

const EXAMPLE: &str = include_str!("../../infra/criteria/b2b-saas.toml");

struct Run {
    code: i32,
    out: String,
    err: String,
}

/// The binary with only what a laptop would have: the CRM's variables, and AWS's when given.
fn leadsync(args: &[&str], env: &[(&str, String)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_leadsync"));
    cmd.args(args)
        .env_remove("TABLE_NAME")
        .env_remove("BUCKET_NAME")
        .env_remove("CRITERIA_FILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn crm_env(sandbox: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        ("CRM_BASE_URL", sandbox.base_url()),
        ("CRM_TOKEN", sandbox.token().to_owned()),
    ]
}

async fn sandbox(contacts: u64, scopes: Option<Vec<String>>) -> Sandbox {
    Sandbox::start(SandboxConfig {
        scopes,
        ..SandboxConfig::new(11, contacts)
    })
    .await
    .unwrap()
}

/// A fresh table and bucket on the shared moto server, made as the template makes them.
async fn aws() -> Vec<(&'static str, String)> {
    let moto = leadsync_localstack::shared().unwrap();
    let sdk = moto.sdk_config().await;
    let table = leadsync_localstack::unique_name("first-hour");
    let bucket = leadsync_localstack::unique_name("first-hour");
    leadsync_store::bootstrap::create_stores(&sdk, &table, &bucket)
        .await
        .unwrap();
    vec![
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("TABLE_NAME", table),
        ("BUCKET_NAME", bucket),
    ]
}

fn line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check)))
        .unwrap_or_else(|| panic!("no {check:?} line in:\n{report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_on_a_good_setup() {
    let sandbox = sandbox(50, None).await;
    let mut env = crm_env(&sandbox);
    env.extend(aws().await);
    let run = leadsync(&["doctor"], &env);
    assert_eq!(run.code, 0, "{}{}", run.out, run.err);
    for check in [
        "crm token",
        "crm scopes",
        "crm properties read",
        "crm properties written",
        "criteria",
        "table",
        "bucket",
    ] {
        assert!(
            line(&run.out, check).starts_with("ok"),
            "{check}:\n{}",
            run.out
        );
    }
    // The sandbox's generous test limits are above the free tier CRM_RATE_TIER defaults to.
    assert!(
        line(&run.out, "crm rate tier").starts_with("warn"),
        "{}",
        run.out
    );
    assert!(run.out.contains("ready:"), "{}", run.out);
    // Doctor only reads.
    let requests = sandbox.request_counts();
    assert!(
        requests
            .keys()
            .all(|k| k.starts_with("GET ") || k.ends_with("/access-token-info")),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_a_missing_scope_a_missing_property_and_a_missing_table() {
    // A token without the scope to write contacts.
    let scopes: Vec<String> = ALL_SCOPES
        .iter()
        .filter(|s| **s != "crm.objects.contacts.write")
        .map(|s| (*s).to_owned())
        .collect();
    let sandbox = sandbox(20, Some(scopes)).await;
    let run = leadsync(&["doctor"], &crm_env(&sandbox));
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    let scopes = line(&run.out, "crm scopes");
    assert!(
        scopes.starts_with("FAIL") && scopes.contains("crm.objects.contacts.write"),
        "{}",
        run.out
    );
    assert!(
        run.out.contains("Private apps"),
        "says where to fix it:\n{}",
        run.out
    );
    assert!(line(&run.out, "table").starts_with("skip"), "{}", run.out);

    // Criteria reading a property the portal lacks.
    let sandbox = sandbox_all(20).await;
    let doc = format!(
        "{EXAMPLE}\n[fields]\ndemo_at = {{ object = \"contact\", property = \"demo_requested_att\", type = \"date\" }}\n\n[[engagement]]\ncode = \"ENG_DEMO_DOCTOR\"\nlabel = \"Asked for a demo lately\"\nfield = \"demo_at\"\nwithin_days = 30\npoints = 5\n"
    );
    let dir = std::env::temp_dir().join(format!("leadsync-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("misspelt.toml");
    std::fs::write(&path, doc).unwrap();
    let mut env = crm_env(&sandbox);
    env.push(("CRITERIA_FILE", path.display().to_string()));
    let run = leadsync(&["doctor"], &env);
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    let fields = line(&run.out, "criteria fields");
    assert!(
        fields.starts_with("FAIL") && run.out.contains("demo_requested_att"),
        "{}",
        run.out
    );
    assert!(
        line(&run.out, "crm scopes").starts_with("ok"),
        "{}",
        run.out
    );

    // A table that does not exist.
    let mut env = crm_env(&sandbox);
    let mut aws = aws().await;
    for (k, v) in &mut aws {
        if *k == "TABLE_NAME" {
            v.push_str("-missing");
        }
    }
    env.extend(aws);
    let run = leadsync(&["doctor"], &env);
    assert_eq!(run.code, 1, "{}{}", run.out, run.err);
    let table = line(&run.out, "table");
    assert!(
        table.starts_with("FAIL") && table.contains("does not exist"),
        "{}",
        run.out
    );
    assert!(line(&run.out, "bucket").starts_with("ok"), "{}", run.out);
}

async fn sandbox_all(contacts: u64) -> Sandbox {
    sandbox(contacts, None).await
}

/// The `--format jsonl` lines of a dry run: contact → the properties it would write.
fn would_change(out: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let after: BTreeMap<String, String> =
                serde_json::from_value(v["after"].clone()).unwrap();
            (v["lead_id"].as_str().unwrap().to_owned(), after)
        })
        .collect()
}

fn writes(sandbox: &Sandbox) -> u64 {
    sandbox
        .request_counts()
        .iter()
        .filter(|(k, _)| {
            k.starts_with("POST")
                && !k.ends_with("/search")
                && !k.ends_with("/batch/read")
                && !k.ends_with("/access-token-info")
                || k.starts_with("PATCH")
                || k.starts_with("DELETE")
        })
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_writes_nothing_and_lists_exactly_what_the_real_run_then_writes() {
    let sandbox = sandbox_all(300).await;
    let mut env = crm_env(&sandbox);
    env.push(("CRM_RATE_TIER", "pro".to_owned()));

    // A first look, without AWS: every contact would change (nothing shows leadsync's values).
    let dry = leadsync(&["sync", "--dry-run", "--format", "jsonl"], &env);
    assert_eq!(dry.code, 0, "{}", dry.err);
    assert_eq!(writes(&sandbox), 0, "{:?}", sandbox.request_counts());
    let first = would_change(&dry.out);
    assert!(first.len() > 200, "{} of 300", first.len());
    assert!(dry.err.contains("wrote nothing"), "{}", dry.err);
    assert!(
        dry.err.contains("the first real run creates"),
        "{}",
        dry.err
    );
    assert!(dry.err.contains("stages:"), "{}", dry.err);

    // --limit stops early.
    let limited = leadsync(
        &["sync", "--dry-run", "--format", "csv", "--limit", "20"],
        &env,
    );
    assert_eq!(limited.code, 0, "{}", limited.err);
    assert!(
        limited.err.contains("20 contacts pulled"),
        "{}",
        limited.err
    );
    assert!(
        limited.out.starts_with("lead_id,property,before,after"),
        "{}",
        limited.out
    );

    // The real run writes exactly that.
    env.extend(aws().await);
    let real = leadsync(&["sync"], &env);
    assert_eq!(real.code, 0, "{}", real.err);
    assert!(
        real.err
            .contains(&format!("pushed {} contacts", first.len())),
        "{}",
        real.err
    );
    for (id, after) in &first {
        let shown = sandbox.contact(id.parse().unwrap()).unwrap().properties;
        for (name, value) in after {
            assert_eq!(shown.get(name), Some(value), "contact {id} {name}");
        }
    }

    // Five contacts lose their email address (a disqualifier); a dry run now lists those that
    // would change, and a real run writes those and no others.
    let edited: Vec<&String> = first
        .iter()
        .filter(|(_, after)| {
            after
                .get("leadsync_stage")
                .is_some_and(|s| s != "disqualified")
        })
        .map(|(id, _)| id)
        .take(5)
        .collect();
    for id in &edited {
        assert!(sandbox.edit_contact(id.parse().unwrap(), &[("email", "")]));
    }
    let before_writes = writes(&sandbox);
    let dry = leadsync(&["sync", "--dry-run", "--format", "jsonl"], &env);
    assert_eq!(dry.code, 0, "{}", dry.err);
    assert_eq!(writes(&sandbox), before_writes, "a dry run writes nothing");
    let second = would_change(&dry.out);
    assert_eq!(
        second.keys().collect::<Vec<_>>(),
        edited,
        "exactly the edited contacts would change"
    );
    assert!(
        second
            .values()
            .all(|after| after["leadsync_stage"] == "disqualified")
    );
    assert!(dry.err.contains("already show these values"), "{}", dry.err);
    let real = leadsync(&["sync"], &env);
    assert_eq!(real.code, 0, "{}", real.err);
    assert!(
        real.err
            .contains(&format!("pushed {} contacts", second.len())),
        "dry run listed {}: {}",
        second.len(),
        real.err
    );
    for (id, after) in &second {
        let shown = sandbox.contact(id.parse().unwrap()).unwrap().properties;
        for (name, value) in after {
            assert_eq!(shown.get(name), Some(value), "contact {id} {name}");
        }
    }
}

fn searches(sandbox: &Sandbox) -> u64 {
    sandbox
        .request_counts()
        .get("POST /crm/v3/objects/contacts/search")
        .copied()
        .unwrap_or(0)
}

fn pushes(sandbox: &Sandbox) -> u64 {
    sandbox
        .request_counts()
        .get("POST /crm/v3/objects/contacts/batch/update")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backfill_goes_on_from_its_checkpoint() {
    const CONTACTS: u64 = 2_000;
    let args = [
        "backfill",
        "--since",
        "2000-01-01",
        "--slice-contacts",
        "400",
    ];
    // The searches a whole backfill makes, on a twin sandbox.
    let twin = sandbox_all(CONTACTS).await;
    let mut env = crm_env(&twin);
    env.push(("CRM_RATE_TIER", "pro".to_owned()));
    env.extend(aws().await);
    let whole = leadsync(&args, &env);
    assert_eq!(whole.code, 0, "{}", whole.err);
    assert!(
        whole.err.contains(&format!("{CONTACTS} contacts pulled")),
        "{}",
        whole.err
    );
    let whole_searches = searches(&twin);

    // Killed once two slices of 400 have pushed (4 batches each) and the third has begun…
    let sandbox = sandbox_all(CONTACTS).await;
    let mut env = crm_env(&sandbox);
    env.push(("CRM_RATE_TIER", "pro".to_owned()));
    env.extend(aws().await);
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadsync"));
    child
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in &env {
        child.env(k, v);
    }
    let mut child = child.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while pushes(&sandbox) < 9 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backfill never pushed"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "it finished before the kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let searched_before = searches(&sandbox);

    // …and started again with the same command: it finishes, without walking again the slices
    // it had recorded, and every contact is scored in the CRM.
    let resumed = leadsync(&args, &env);
    assert_eq!(resumed.code, 0, "{}", resumed.err);
    assert!(
        resumed.out.contains("finished"),
        "{}{}",
        resumed.out,
        resumed.err
    );
    let searched_after = searches(&sandbox) - searched_before;
    assert!(
        searched_after < whole_searches,
        "the restart searched {searched_after} times, a whole backfill {whole_searches}"
    );
    let unscored: Vec<u64> = sandbox
        .contacts()
        .iter()
        .filter(|c| !c.properties.contains_key("leadsync_stage"))
        .map(|c| c.id)
        .collect();
    assert!(
        unscored.is_empty(),
        "{} contacts never scored",
        unscored.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_and_the_dry_run_work_on_salesforce_too() {
    use leadsync_salesforce_sandbox::{SalesforceConfig, SalesforceSandbox};
    let org = SalesforceSandbox::start(SalesforceConfig::new(11, 200))
        .await
        .unwrap();
    let env = vec![
        ("CRM_KIND", "salesforce".to_owned()),
        ("CRM_BASE_URL", org.base_url()),
        ("SF_CLIENT_ID", org.client_id().to_owned()),
        ("SF_CLIENT_SECRET", org.client_secret().to_owned()),
    ];
    let doctor = leadsync(&["doctor"], &env);
    assert_eq!(doctor.code, 0, "{}{}", doctor.out, doctor.err);
    assert!(
        line(&doctor.out, "crm token").starts_with("ok"),
        "{}",
        doctor.out
    );
    assert!(
        line(&doctor.out, "crm properties written").starts_with("ok"),
        "{}",
        doctor.out
    );

    let dry = leadsync(&["sync", "--dry-run", "--format", "jsonl"], &env);
    assert_eq!(dry.code, 0, "{}", dry.err);
    assert_eq!(
        org.counters().collection_updates,
        0,
        "a dry run updates nothing"
    );
    assert_eq!(org.counters().tooling, 0, "nor creates fields");
    let changes = would_change(&dry.out);
    assert_eq!(changes.len(), 200, "{}", dry.err);
    assert!(dry.err.contains("200 contacts pulled"), "{}", dry.err);
    // Wrong credentials: the token check fails and says what to set.
    let mut bad = env.clone();
    bad[3].1.push('x');
    let doctor = leadsync(&["doctor"], &bad);
    assert_eq!(doctor.code, 1, "{}{}", doctor.out, doctor.err);
    let token = line(&doctor.out, "crm token");
    assert!(token.starts_with("FAIL"), "{}", doctor.out);
    assert!(doctor.out.contains("SF_CLIENT_SECRET"), "{}", doctor.out);
}
