//! `leadsync sandbox` serves search with bearer auth until stopped.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn sandbox_command_serves_search_with_auth() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_leadsync"))
        .args([
            "sandbox",
            "--port",
            &port.to_string(),
            "--seed",
            "7",
            "--contacts",
            "1000",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/crm/v3/objects/contacts/search");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let unauthorised = loop {
        match client.post(&url).json(&serde_json::json!({})).send().await {
            Ok(resp) => break resp.status().as_u16(),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("sandbox did not start: {e}"),
        }
    };
    let page: serde_json::Value = client
        .post(&url)
        .bearer_auth("sandbox-token")
        .json(&serde_json::json!({"limit": 200, "after": "800"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(unauthorised, 401);
    assert_eq!(page["total"], 1000);
    assert_eq!(page["results"].as_array().unwrap().len(), 200);
    assert!(page.get("paging").is_none());
}
