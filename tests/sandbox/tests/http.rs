//! The sandbox's wire format as a HubSpot client sees it: auth, paging shape, batch limits.
#![allow(clippy::unwrap_used)]

use leadsync_sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

async fn post(sandbox: &Sandbox, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}{path}", sandbox.base_url()))
        .json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn search_needs_the_bearer_token() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 20)).await.unwrap();
    let (status, body) = post(&sandbox, "/crm/v3/objects/contacts/search", None, json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    let (status, _) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        Some("nope"),
        json!({}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        Some(sandbox.token()),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn paging_matches_hubspot_shape() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 25)).await.unwrap();
    let token = Some(sandbox.token());
    let (status, page) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        token,
        json!({"limit": 10, "properties": ["email"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 25);
    assert_eq!(page["results"].as_array().unwrap().len(), 10);
    assert_eq!(
        page["paging"]["next"]["after"], "10",
        "after is an integer as a string"
    );
    let first = &page["results"][0];
    assert!(first["id"].is_string());
    for key in ["email", "createdate", "lastmodifieddate", "hs_object_id"] {
        assert!(first["properties"].get(key).is_some(), "{key}");
    }
    let (_, last) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        token,
        json!({"limit": 10, "after": "20"}),
    )
    .await;
    assert_eq!(last["results"].as_array().unwrap().len(), 5);
    assert!(last.get("paging").is_none(), "no paging on the last page");
    let (status, body) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        token,
        json!({"limit": 500}),
    )
    .await;
    assert_eq!(
        (status, body["category"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn batch_update_limits_and_207() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 5)).await.unwrap();
    let token = Some(sandbox.token());
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"id": i.to_string(), "properties": {}}))
        .collect();
    let (status, _) = post(
        &sandbox,
        "/crm/v3/objects/contacts/batch/update",
        token,
        json!({"inputs": too_many}),
    )
    .await;
    assert_eq!(status, 400);
    let id = sandbox.contacts()[0].id.to_string();
    let (status, body) = post(&sandbox, "/crm/v3/objects/contacts/batch/update", token,
        json!({"inputs": [{"id": id, "properties": {"jobtitle": "CMO"}}, {"id": "1", "properties": {"jobtitle": "y"}}]})).await;
    assert_eq!(status, 207);
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["context"]["ids"][0], "1");
    assert_eq!(sandbox.contacts()[0].properties["jobtitle"], "CMO");

    // A property that does not exist fails the whole batch.
    let (status, body) = post(
        &sandbox,
        "/crm/v3/objects/contacts/batch/update",
        token,
        json!({"inputs": [{"id": id, "properties": {"leadsync_stage": "sql"}}]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("PROPERTY_DOESNT_EXIST"),
        "{body}"
    );

    // Creating it makes the write succeed; creating it twice is a 409.
    let property = json!({"name": "leadsync_stage", "label": "Stage", "type": "string", "fieldType": "text", "groupName": "contactinformation"});
    let (status, _) = post(
        &sandbox,
        "/crm/v3/properties/contacts",
        token,
        property.clone(),
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = post(&sandbox, "/crm/v3/properties/contacts", token, property).await;
    assert_eq!(
        (status, body["category"].as_str()),
        (409, Some("OBJECT_ALREADY_EXISTS"))
    );
    let (status, _) = post(
        &sandbox,
        "/crm/v3/objects/contacts/batch/update",
        token,
        json!({"inputs": [{"id": id, "properties": {"leadsync_stage": "sql"}}]}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn archived_contacts_leave_search_and_batch_reads() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 30)).await.unwrap();
    let token = Some(sandbox.token());
    let id = sandbox.contacts()[3].id;
    assert!(sandbox.archive_contact(id));
    let (_, page) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        token,
        json!({"limit": 100}),
    )
    .await;
    assert_eq!(page["total"], 29);
    assert!(
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"].as_str() != Some(id.to_string().as_str()))
    );
    let (status, body) = post(
        &sandbox,
        "/crm/v3/objects/contacts/batch/read",
        token,
        json!({"inputs": [{"id": id.to_string()}], "properties": []}),
    )
    .await;
    assert_eq!(status, 207);
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn batch_upsert_by_email_updates_or_creates() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 10)).await.unwrap();
    let token = Some(sandbox.token());
    let existing = sandbox
        .contacts()
        .into_iter()
        .find(|c| c.properties.contains_key("email"))
        .unwrap();
    let email = existing.properties["email"].to_uppercase();
    let (status, body) = post(&sandbox, "/crm/v3/objects/contacts/batch/upsert", token, json!({"inputs": [
        {"idProperty": "email", "id": email, "properties": {"jobtitle": "Upserted"}},
        {"idProperty": "email", "id": "brand.new@acme-example.com", "properties": {"jobtitle": "New"}},
    ]})).await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert_eq!(
        (results[0]["new"].as_bool(), results[1]["new"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(results[0]["id"], existing.id.to_string());
    assert_eq!(
        sandbox.contact(existing.id).unwrap().properties["jobtitle"],
        "Upserted"
    );
    assert_eq!(sandbox.contacts().len(), 11);

    let (status, _) = post(
        &sandbox,
        "/crm/v3/objects/contacts/batch/upsert",
        token,
        json!({"inputs": [{"idProperty": "jobtitle", "id": "CTO", "properties": {}}]}),
    )
    .await;
    assert_eq!(status, 400, "idProperty must be unique-valued");
}

#[tokio::test]
async fn admin_edit_moves_a_contact_into_the_next_sync() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 10)).await.unwrap();
    let id = sandbox.contacts()[0].id;
    let before = sandbox.contact(id).unwrap().updated_at;
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/__sandbox/contacts/{id}/edit",
            sandbox.base_url()
        ))
        .json(&json!({"hs_email_click": "12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let after = sandbox.contact(id).unwrap();
    assert_eq!(after.properties["hs_email_click"], "12");
    assert!(after.updated_at > before);
}
