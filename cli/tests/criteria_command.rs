//! `leadsync criteria check` and `leadsync score` as a user runs them.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const EXAMPLE: &str = include_str!("../../infra/criteria/b2b-saas.toml");

fn leadsync(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leadsync"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("leadsync-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn check_accepts_the_example_and_says_it_may_be_published() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/criteria/b2b-saas.toml"
    );
    let (code, out, _) = leadsync(&["criteria", "check", path]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ok") && out.contains("may be published"),
        "{out}"
    );
}

#[test]
fn check_prints_three_errors_for_three_mistakes() {
    let text = EXAMPLE
        .replacen("min_fit = 20\n", "min_fitt = 20\n", 1)
        .replace(
            "min = 10000000\npoints = 10",
            "min = 10000000\npoints = \"ten\"",
        )
        .replace("min = 50\nmax = 5000", "min = 5000\nmax = 50");
    let path = temp_file("three-mistakes.toml", &text);
    let (code, _, err) = leadsync(&["criteria", "check", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let located: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with(path.to_str().unwrap()) && !l.contains("problem(s)"))
        .collect();
    assert_eq!(located.len(), 3, "{err}");
    for line in located {
        let rest = &line[path.to_str().unwrap().len() + 1..];
        let mut parts = rest.splitn(3, ':');
        assert!(
            parts.next().unwrap().parse::<u32>().is_ok()
                && parts.next().unwrap().parse::<u32>().is_ok(),
            "line:col in {line}"
        );
    }
    assert!(err.contains("3 problem(s)"), "{err}");
}

#[test]
fn check_says_when_a_document_is_not_signed() {
    let start = EXAMPLE.find("[approved_by.marketing]").unwrap();
    let end = EXAMPLE.find("# Stages.").unwrap();
    let path = temp_file(
        "unsigned.toml",
        &format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]),
    );
    let (code, out, _) = leadsync(&["criteria", "check", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("not signed by marketing"), "{out}");
}

#[test]
fn score_keeps_input_order_and_skips_bad_lines_with_their_numbers() {
    let criteria = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/criteria/b2b-saas.toml"
    );
    let leads = temp_file(
        "leads.jsonl",
        concat!(
            r#"{"id":"11","email":"a@gmail.com","modified_at":"2026-11-01T00:00:00Z"}"#,
            "\n",
            "this is not json\n",
            r#"{"id":"12","email":"b@acme.com","modified_at":"2026-11-01T00:00:00Z","engagement":{"page_views":3,"email_opens":0,"email_clicks":0,"form_submissions":0,"last_page_view_at":"2026-11-19T00:00:00Z"}}"#,
            "\n",
            "\n",
            r#"{"id":"","modified_at":"2026-11-01T00:00:00Z"}"#,
            "\n",
        ),
    );
    let (code, out, err) = leadsync(&[
        "score",
        "--criteria",
        criteria,
        "--leads",
        leads.to_str().unwrap(),
        "--now",
        "2026-11-20T00:00:00Z",
    ]);
    assert_eq!(code, 1, "bad lines make the exit code non-zero: {err}");
    let results: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0]["lead_id"].as_str(), results[0]["stage"].as_str()),
        (Some("11"), Some("disqualified"))
    );
    assert_eq!(results[1]["lead_id"], "12");
    assert_eq!(
        results[1]["engagement"], 3,
        "page views decayed by one day of a 14-day half-life round to 3"
    );
    assert!(
        err.contains(":2: not a lead") && err.contains(":5: not a lead"),
        "{err}"
    );
    assert!(
        err.contains("scored 2 lead(s)") && err.contains("skipped 2 bad line(s)"),
        "{err}"
    );

    let (_, table, _) = leadsync(&[
        "score",
        "--criteria",
        criteria,
        "--leads",
        leads.to_str().unwrap(),
        "--format",
        "table",
        "--now",
        "2026-11-20T00:00:00Z",
    ]);
    assert!(table.lines().next().unwrap().starts_with("lead"), "{table}");
    assert!(table.contains("DQ_FREE_MAIL"), "{table}");
}

#[test]
fn simulate_shows_what_a_lower_mql_bar_would_change() {
    let current = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/criteria/b2b-saas.toml"
    );
    let proposed = temp_file(
        "proposed.toml",
        &EXAMPLE
            .replace("version = \"2026.11.1\"", "version = \"2026.12.0\"")
            .replacen("min_total = 45\n", "min_total = 30\n", 1),
    );
    let mut lines = String::new();
    for i in 0..60u32 {
        let industry = if i % 2 == 0 {
            "COMPUTER_SOFTWARE"
        } else {
            "RETAIL"
        };
        lines.push_str(&format!(
            r#"{{"lead":{{"id":"{i}","email":"p{i}@acme{i}.com","source":"ORGANIC_SEARCH","modified_at":"2026-11-01T00:00:00Z","firmographics":{{"industry":{{"value":"{industry}","source":{{"provider":"crm"}}}},"employees":{{"value":120,"source":{{"provider":"crm"}}}}}},"engagement":{{"page_views":{pv},"email_opens":0,"email_clicks":0,"form_submissions":0,"last_page_view_at":"2026-11-19T00:00:00Z"}}}},"scorecard":null}}"#,
            pv = i % 25
        ));
        lines.push('\n');
    }
    let leads = temp_file("snapshot.jsonl", &lines);
    let (code, out, err) = leadsync(&[
        "criteria",
        "simulate",
        "--current",
        current,
        "--proposed",
        proposed.to_str().unwrap(),
        "--leads",
        leads.to_str().unwrap(),
        "--now",
        "2026-11-20T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let sim: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sim["leads"], 60);
    assert_eq!(sim["proposed"], "northwind-lead-criteria v2026.12.0");
    let moved = sim["matrix"]["iql"]["mql"].as_u64().unwrap_or(0);
    assert!(
        moved > 0,
        "a lower bar turns some IQLs into MQLs: {}",
        sim["matrix"]
    );
    assert_eq!(
        sim["changed"].as_u64().unwrap(),
        moved,
        "nothing else moves"
    );
    assert!(
        sim["matrix"]["mql"].get("iql").is_none(),
        "nobody is demoted by a lower bar"
    );
    let total: u64 = sim["matrix"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|row| row.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 60, "every lead is in the matrix once");
    let drivers = sim["drivers"].as_array().unwrap();
    assert_eq!(
        drivers[0][0], "FIT_SIZE_MIDMARKET",
        "every test lead has 120 employees: the size rule carried all moved leads: {drivers:?}"
    );
    assert_eq!(drivers[0][3].as_u64(), Some(moved));
    let software = &sim["segments"]["industry:COMPUTER_SOFTWARE"];
    assert!(software[1].as_u64() > software[0].as_u64(), "{software}");

    let (code, table, _) = leadsync(&[
        "criteria",
        "simulate",
        "--current",
        current,
        "--proposed",
        proposed.to_str().unwrap(),
        "--leads",
        leads.to_str().unwrap(),
        "--now",
        "2026-11-20T00:00:00Z",
    ]);
    assert_eq!(code, 0);
    assert!(
        table.contains("stage transitions") && table.contains("rules driving the changes"),
        "{table}"
    );
}

/// The example with a rule on a company property of the portal's own.
fn with_plan_tier() -> String {
    EXAMPLE
        .replacen(
            "[stages.mql]",
            "[fields]\nplan_tier = { object = \"company\", property = \"plan_tier\", type = \"enumeration\" }\n\n[stages.mql]",
            1,
        )
        .replacen(
            "[[engagement]]",
            "[[fit]]\ncode = \"FIT_ENTERPRISE\"\nlabel = \"Enterprise plan\"\nfield = \"plan_tier\"\nany_of = [\"enterprise\"]\npoints = 10\n\n[[engagement]]",
            1,
        )
}

fn publish(path: &std::path::Path, env: &[(&str, String)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadsync"));
    command.args([
        "criteria",
        "publish",
        path.to_str().unwrap(),
        "--table",
        "t",
        "--bucket",
        "b",
    ]);
    for key in [
        "CRM_KIND",
        "CRM_BASE_URL",
        "CRM_TOKEN",
        "CRM_TOKEN_SECRET_ARN",
    ] {
        command.env_remove(key);
    }
    command
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_REGION", "us-east-1")
        // Nothing listens here: a refused publish never reaches AWS.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_refuses_a_property_the_crm_lacks_by_name_and_line() {
    let sandbox = leadsync_sandbox::Sandbox::start(leadsync_sandbox::SandboxConfig::new(3, 5))
        .await
        .unwrap();
    let text = with_plan_tier();
    let line = text
        .lines()
        .position(|l| l.starts_with("plan_tier = "))
        .unwrap()
        + 1;
    let path = temp_file("plan-tier.toml", &text);
    let env = vec![
        ("CRM_BASE_URL", sandbox.base_url()),
        ("CRM_TOKEN", sandbox.token().to_owned()),
    ];
    let run = {
        let (path, env) = (path.clone(), env.clone());
        tokio::task::spawn_blocking(move || publish(&path, &env))
    };
    let (code, _, err) = run.await.unwrap();
    assert_eq!(code, 1, "{err}");
    let want = format!(
        "{}:{line}:1: fields.plan_tier: HubSpot has no company property `plan_tier`",
        path.display()
    );
    assert!(err.contains(&want), "{want} not in:\n{err}");
    assert!(err.contains("nothing was published"), "{err}");

    // Without the CRM's settings it says what to set, or how to skip the check.
    let (code, _, err) = tokio::task::spawn_blocking(move || publish(&path, &[]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--skip-crm-check") && err.contains("CRM_TOKEN"),
        "{err}"
    );
    sandbox.shutdown().await;
}
