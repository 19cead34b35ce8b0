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

#[tokio::test]
async fn bulk_query_jobs_snapshot_at_creation_and_page_csv_by_locator() {
    let sandbox = SalesforceSandbox::start(SalesforceConfig {
        bulk_polls: 2,
        ..SalesforceConfig::new(7, 300)
    })
    .await
    .unwrap();
    let (http, instance, token) = login(&sandbox).await;
    let jobs = format!("{instance}/services/data/v63.0/jobs/query");
    let create = |query: &str| {
        http.post(&jobs)
            .bearer_auth(&token)
            .json(&json!({"operation": "query", "query": query}))
            .send()
    };
    // What Bulk 2.0 cannot run is refused when the job is created.
    for bad in [
        "SELECT COUNT() FROM Contact",
        "SELECT Id FROM Contact OFFSET 5",
    ] {
        let refused = create(bad).await.unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body[0]["errorCode"], "API_ERROR", "{bad}");
    }
    let malformed: Value = create("SELECT FROM Contact")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(malformed[0]["errorCode"], "MALFORMED_QUERY");

    let soql = "SELECT Id, Email, Account.Industry, Account.NumberOfEmployees FROM Contact";
    let job: Value = create(soql).await.unwrap().json().await.unwrap();
    assert_eq!(job["state"], "UploadComplete");
    let id = job["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("750") && id.len() == 18, "{id}");
    // Edited after the job was created: the job does not see it.
    let contacts = sandbox.records("Contact");
    let edited = contacts[0].id().to_owned();
    assert!(sandbox.edit(&edited, &[("Email", json!("after.the.job@example.com"))]));

    let info = |path: String| {
        let http = http.clone();
        let token = token.clone();
        async move { http.get(path).bearer_auth(&token).send().await.unwrap() }
    };
    let results = format!("{jobs}/{id}/results");
    let early = info(format!("{results}?maxRecords=10")).await;
    assert_eq!(early.status(), 400, "no results before JobComplete");
    let mut states = Vec::new();
    for _ in 0..3 {
        let v: Value = info(format!("{jobs}/{id}")).await.json().await.unwrap();
        states.push(v["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["InProgress", "InProgress", "JobComplete"]);
    let other_version = info(format!(
        "{instance}/services/data/v62.0/jobs/query/{id}/results"
    ))
    .await;
    assert_eq!(other_version.status(), 409);

    // Pages of 40 by locator, each with its header row, `null` after the last.
    let mut rows = Vec::new();
    let mut locator: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &locator {
            Some(l) => format!("{results}?maxRecords=40&locator={l}"),
            None => format!("{results}?maxRecords=40"),
        };
        let page = info(url).await;
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["content-type"], "text/csv");
        let next = page.headers()["sforce-locator"]
            .to_str()
            .unwrap()
            .to_owned();
        let n: usize = page.headers()["sforce-numberofrecords"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let text = page.text().await.unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            r#""Id","Email","Account.Industry","Account.NumberOfEmployees""#
        );
        let page_rows: Vec<String> = lines.map(str::to_owned).collect();
        assert_eq!(page_rows.len(), n);
        assert!(n <= 40);
        rows.extend(page_rows);
        pages += 1;
        if next == "null" {
            break;
        }
        locator = Some(next);
    }
    assert_eq!(rows.len(), contacts.len());
    assert_eq!(pages, contacts.len().div_ceil(40));
    let first = rows.iter().find(|r| r.contains(&edited)).unwrap();
    assert!(
        !first.contains("after.the.job"),
        "the job holds the org as it was at creation: {first}"
    );
    let counters = sandbox.counters();
    assert_eq!(counters.bulk_results as usize, pages + 2);
    let gone = http
        .delete(format!("{jobs}/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    assert_eq!(info(format!("{jobs}/{id}")).await.status(), 404);
}

#[tokio::test]
async fn the_concurrent_long_running_limit_refuses_while_they_run() {
    let sandbox = SalesforceSandbox::start(SalesforceConfig {
        long_running: (2, std::time::Duration::from_millis(100)),
        faults: leadsync_sandbox::Faults {
            latency_ms: 400,
            ..leadsync_sandbox::Faults::default()
        },
        ..SalesforceConfig::new(7, 20)
    })
    .await
    .unwrap();
    let (http, instance, token) = login(&sandbox).await;
    let url = format!("{instance}/services/data/v63.0/limits");
    let call = || http.get(&url).bearer_auth(&token).send();
    // Two requests run past 100 ms; a third asked meanwhile is refused, one asked after
    // they end goes through.
    let (a, b) = (tokio::spawn(call()), tokio::spawn(call()));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let refused = call().await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(
        body[0]["message"],
        "ConcurrentPerOrgLongTxn Limit exceeded."
    );
    assert_eq!(a.await.unwrap().unwrap().status(), 200);
    assert_eq!(b.await.unwrap().unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(sandbox.counters().refused_long_running, 1);
}

#[tokio::test]
async fn jwt_bearer_assertions_are_verified_as_salesforce_does() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    use leadsync_salesforce_sandbox::server::{JWT_PRIVATE_KEY, JWT_USERNAME};
    let sandbox = SalesforceSandbox::start(SalesforceConfig::new(7, 20))
        .await
        .unwrap();
    let key = EncodingKey::from_rsa_pem(JWT_PRIVATE_KEY.as_bytes()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let sign = |iss: &str, sub: &str, aud: &str, exp: i64| {
        encode(
            &Header::new(Algorithm::RS256),
            &json!({"iss": iss, "sub": sub, "aud": aud, "exp": exp}),
            &key,
        )
        .unwrap()
    };
    let http = reqwest::Client::new();
    let url = format!("{}/services/oauth2/token", sandbox.base_url());
    let ask = |assertion: String| {
        http.post(&url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
    };
    let id = sandbox.client_id().to_owned();
    let login = "https://login.salesforce.com";
    let good = ask(sign(&id, JWT_USERNAME, login, now + 120))
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    let body: Value = good.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));

    // One character of the signature changed (well inside it: not a padding bit).
    let mut tampered = sign(&id, JWT_USERNAME, login, now + 120).into_bytes();
    let at = tampered.len() - 20;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases = [
        (tampered, "invalid_grant", "invalid assertion"),
        (
            sign(&id, JWT_USERNAME, login, now - 60),
            "invalid_grant",
            "expired authorization code",
        ),
        (
            sign(&id, JWT_USERNAME, "https://evil.example", now + 120),
            "invalid_grant",
            "audience is invalid",
        ),
        (
            sign("someone-elses-app", JWT_USERNAME, login, now + 120),
            "invalid_client_id",
            "client identifier invalid",
        ),
        (
            sign(&id, "nobody@example.com", login, now + 120),
            "invalid_grant",
            "user hasn't approved this consumer",
        ),
        ("not.a.jwt".to_owned(), "invalid_grant", "invalid assertion"),
    ];
    for (assertion, error, description) in cases {
        let refused = ask(assertion).await.unwrap();
        assert_eq!(refused.status(), 400, "{description}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], error, "{description}");
        assert_eq!(body["error_description"], description);
    }
}
