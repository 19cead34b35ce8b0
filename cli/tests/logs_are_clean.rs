//! Nothing secret or personal in logs: the demo (sandbox CRM and provider, moto, every function
//! path it drives) runs at `TRACE` — our own spans and events, the AWS SDK's, hyper's and
//! reqwest's — and no line of its output may hold an email address of the seeded people, the
//! CRM token, the provider's API key or the AWS secret key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const SEED: u64 = 7;
const CONTACTS: u64 = 300;

#[test]
fn the_demo_at_trace_logs_no_email_token_or_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_leadsync"))
        .args([
            "demo",
            "--seed",
            &SEED.to_string(),
            "--contacts",
            &CONTACTS.to_string(),
        ])
        // The demo writes its dashboards under ./target/demo: not into the source tree.
        .current_dir(std::env::temp_dir())
        .env("RUST_LOG", "trace")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the demo failed: {}",
        stderr.lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );

    let (_, contacts) =
        leadsync_sandbox::data::generate(leadsync_sandbox::DataSpec::new(SEED, CONTACTS));
    let emails: std::collections::HashSet<String> = contacts
        .iter()
        .filter_map(|c| c.properties.get("email"))
        .map(|e| e.to_lowercase())
        .collect();
    assert!(
        emails.len() > CONTACTS as usize / 2,
        "{} emails",
        emails.len()
    );
    let mut secrets: Vec<(String, &str)> = vec![
        ("sandbox-token".to_owned(), "the CRM token"),
        (
            leadsync_sandbox::enrich::API_KEY.to_owned(),
            "the provider's API key",
        ),
    ];
    if let Ok(key) = std::env::var("AWS_SECRET_ACCESS_KEY")
        && key.len() >= 8
    {
        secrets.push((key, "the AWS secret key"));
    }

    // The scanner finds an address however a log line wraps it.
    let one = emails.iter().next().unwrap().clone();
    for wrapped in [
        format!(r#"{{"email":"{one}"}}"#),
        format!("contact {} updated", one.to_uppercase()),
        format!("GET /v5/company/enrich?email={}", one.replace('@', "%40")),
    ] {
        assert_eq!(
            seeded_emails_in(&wrapped, &emails),
            std::slice::from_ref(&one),
            "{wrapped}"
        );
    }

    let mut lines = 0usize;
    let mut leaks = Vec::new();
    for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        for (n, line) in text.lines().enumerate() {
            lines += 1;
            for email in seeded_emails_in(line, &emails) {
                leaks.push(format!("{stream}:{}: a seeded email ({email})", n + 1));
            }
            for (secret, what) in &secrets {
                if line.contains(secret.as_str()) {
                    leaks.push(format!("{stream}:{}: {what}", n + 1));
                }
            }
        }
    }
    println!(
        "checked {lines} lines ({} bytes) for {} emails and {} secrets",
        stdout.len() + stderr.len(),
        emails.len(),
        secrets.len()
    );
    assert!(
        lines > 1_000,
        "TRACE gave only {lines} lines: is RUST_LOG honoured?"
    );
    assert!(
        leaks.is_empty(),
        "{} lines leak:\n{}",
        leaks.len(),
        leaks
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every address-shaped word around an '@' in `line` (inside JSON strings and URLs too,
/// percent-encoded or not, any case) that is one of the seeded addresses.
fn seeded_emails_in(line: &str, emails: &std::collections::HashSet<String>) -> Vec<String> {
    if !line.contains('@') && !line.contains("%40") {
        return Vec::new();
    }
    let decoded = line.replace("%40", "@").replace("%2B", "+").to_lowercase();
    decoded
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '-' | '+')))
        .map(|word| word.trim_matches('.'))
        .filter(|word| word.contains('@') && emails.contains(*word))
        .map(str::to_owned)
        .collect()
}
