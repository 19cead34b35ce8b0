//! The sandbox org over HTTP, as a client sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use leadsync_salesforce_sandbox::{SalesforceConfig, SalesforceSandbox};
use serde_json::{Value, json};

async fn login(sandbox: &SalesforceSandbox) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/services/oauth2/token", sandbox.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sandbox.client_id()),
            ("client_secret", sandbox.client_secret()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["issued_at"].as_str().unwrap().parse::<i64>().is_ok());
    (
        http,
        token["instance_url"].as_str().unwrap().to_owned(),
        token["access_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn the_token_flow_answers_as_salesforce_does() {
    let sandbox = SalesforceSandbox::start(SalesforceConfig::new(7, 50))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/services/oauth2/token", sandbox.base_url());
    let wrong = http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", sandbox.client_id()),
            ("client_secret", "nope"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 400);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    // HTTP Basic, as simple-salesforce sends the pair.
    let basic = http
        .post(&url)
        .basic_auth(sandbox.client_id(), Some(sandbox.client_secret()))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let grant = http
        .post(&url)
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    // An expired session: 401 INVALID_SESSION_ID.
    let (http, instance, token) = login(&sandbox).await;
    sandbox.expire_sessions();
    let expired = http
        .get(format!("{instance}/services/data/v63.0/limits"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.headers()["www-authenticate"], "Token");
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
}

#[tokio::test]
async fn queries_page_with_next_records_url_and_say_what_is_malformed() {
    let sandbox = SalesforceSandbox::start(SalesforceConfig::new(7, 900))
        .await
        .unwrap();
    let (http, instance, token) = login(&sandbox).await;
    let get = |path: String| {
        http.get(format!("{instance}{path}"))
            .bearer_auth(&token)
            .header("Sforce-Query-Options", "batchSize=200")
            .send()
    };
    let soql = "SELECT Id, Email, Company, Industry, SystemModstamp FROM Lead WHERE IsConverted = false ORDER BY SystemModstamp, Id";
    let first = get(format!(
        "/services/data/v63.0/query?q={}",
        form_urlencoded_encode(soql)
    ))
    .await
    .unwrap();
    assert_eq!(first.status(), 200);
    let usage = first.headers()["sforce-limit-info"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(usage.starts_with("api-usage="), "{usage}");
    let mut page: Value = first.json().await.unwrap();
    let total = page["totalSize"].as_u64().unwrap();
    let unconverted = sandbox
        .records("Lead")
        .iter()
        .filter(|l| !l.flag("IsConverted"))
        .count() as u64;
    assert_eq!(total, unconverted);
    assert!(total > 400, "{total}");
    let mut seen = Vec::new();
    loop {
        for r in page["records"].as_array().unwrap() {
            assert_eq!(r["attributes"]["type"], "Lead");
            seen.push(r["Id"].as_str().unwrap().to_owned());
        }
        if page["done"] == true {
            break;
        }
        let next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
        assert!(next.starts_with("/services/data/v63.0/query/01g"), "{next}");
        page = get(next).await.unwrap().json().await.unwrap();
    }
    assert_eq!(seen.len() as u64, total);
    // Parent fields come nested, with their attributes.
    let contacts: Value = get(format!(
        "/services/data/v63.0/query?q={}",
        form_urlencoded_encode("SELECT Id, Account.Industry, Account.Name FROM Contact LIMIT 5")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let c = &contacts["records"][0];
    assert_eq!(c["Account"]["attributes"]["type"], "Account");
    assert!(c["Account"].get("Industry").is_some());
    // Malformed and unknown.
    let bad = get(format!(
        "/services/data/v63.0/query?q={}",
        form_urlencoded_encode("SELECT Id FROM Lead WHERE")
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "MALFORMED_QUERY");
    assert!(body[0]["message"].as_str().unwrap().contains("Column:"));
    let unknown: Value = get(format!(
        "/services/data/v63.0/query?q={}",
        form_urlencoded_encode("SELECT Id, Score__c FROM Lead")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(unknown[0]["errorCode"], "INVALID_FIELD");
    // COUNT() and queryAll: a deleted lead is only in the second.
    let victim = seen[3].clone();
    assert!(sandbox.delete(&victim));
    let count = |all: &'static str| {
        let q = format!(
            "/services/data/v63.0/{all}?q={}",
            form_urlencoded_encode(&format!("SELECT COUNT() FROM Lead WHERE Id = '{victim}'"))
        );
        async move {
            get(q).await.unwrap().json::<Value>().await.unwrap()["totalSize"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(count("query").await, 0);
    assert_eq!(count("queryAll").await, 1);
}

fn form_urlencoded_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_collection_update_answers_every_record_in_order() {
    let sandbox = SalesforceSandbox::start(SalesforceConfig::new(7, 60))
        .await
        .unwrap();
    let (http, instance, token) = login(&sandbox).await;
    let leads = sandbox.records("Lead");
    let (a, b) = (leads[0].id().to_owned(), leads[1].id().to_owned());
    sandbox.delete(&b);
    let before = leads[0].text("SystemModstamp").unwrap().to_owned();
    let answer: Value = http
        .patch(format!("{instance}/services/data/v63.0/composite/sobjects"))
        .bearer_auth(&token)
        .json(&json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Lead"}, "id": a, "Title": "VP Sales"},
            {"attributes": {"type": "Lead"}, "id": b, "Title": "x"},
            {"attributes": {"type": "Lead"}, "id": a, "IsConverted": true},
            {"attributes": {"type": "Lead"}, "id": a, "Page_Views__c": "many"},
            {"attributes": {"type": "Lead"}, "id": "00Q5g0000000zzzAAA", "Title": "x"},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            if r["success"] == true {
                "ok"
            } else {
                r["errors"][0]["statusCode"].as_str().unwrap()
            }
        })
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "ENTITY_IS_DELETED",
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "INVALID_CROSS_REFERENCE_KEY"
        ]
    );
    let after = sandbox.record(&a).unwrap();
    assert_eq!(after.text("Title"), Some("VP Sales"));
    assert!(after.text("SystemModstamp").unwrap() > before.as_str());
    // More than 200 records: refused whole.
    let many: Vec<Value> = (0..201)
        .map(|_| json!({"attributes": {"type": "Lead"}, "id": a, "Title": "x"}))
        .collect();
    let refused = http
        .patch(format!("{instance}/services/data/v63.0/composite/sobjects"))
        .bearer_auth(&token)
        .json(&json!({"allOrNone": false, "records": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.json::<Value>().await.unwrap()[0]["errorCode"],
        "EXCEEDED_ID_LIMIT"
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_people_as_the_hubspot_sandbox() {
    let sandbox = SalesforceSandbox::start(SalesforceConfig::new(7, 300))
        .await
        .unwrap();
    let spec = leadsync_sandbox::DataSpec::new(7, 300);
    let (_, contacts) = leadsync_sandbox::data::generate(spec);
    let people: Vec<_> = sandbox
        .records("Lead")
        .into_iter()
        .filter(|l| !l.flag("IsConverted"))
        .chain(sandbox.records("Contact"))
        .collect();
    assert_eq!(people.len(), contacts.len(), "every person once");
    let mut emails: Vec<String> = people
        .iter()
        .filter_map(|p| p.text("Email").map(str::to_owned))
        .collect();
    let mut expected: Vec<String> = contacts
        .iter()
        .filter_map(|c| c.properties.get("email").cloned())
        .collect();
    emails.sort();
    expected.sort();
    assert_eq!(emails, expected);
    assert!(!sandbox.records("Opportunity").is_empty());
    assert!(!sandbox.records("Contact").is_empty());
}
