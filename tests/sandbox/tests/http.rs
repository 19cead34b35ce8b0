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

async fn get(sandbox: &Sandbox, path_and_query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path_and_query}", sandbox.base_url()))
        .bearer_auth(sandbox.token())
        // Some clients send a body on a GET; HubSpot ignores it.
        .body("{\"ignored\": true}")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn the_list_endpoint_pages_by_id_with_properties_and_associations() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 25)).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            None => "/crm/v3/objects/contact?limit=10&properties=email,firstname&properties=lifecyclestage&associations=companies&associations=deals&unknown=1".to_owned(),
            Some(a) => format!("/crm/v3/objects/contacts?limit=10&properties=email&after={a}"),
        };
        let (status, page) = get(&sandbox, &query).await;
        assert_eq!(status, 200, "{page}");
        let results = page["results"].as_array().unwrap();
        for r in results {
            seen.push(r["id"].as_str().unwrap().to_owned());
            assert!(
                r["properties"].get("lastmodifieddate").is_some(),
                "always present"
            );
            assert!(r["createdAt"].as_str().unwrap().ends_with('Z'));
            assert!(r["updatedAt"].as_str().unwrap().contains('T'));
        }
        if after.is_none() {
            assert_eq!(results.len(), 10);
            assert!(results[0]["properties"].get("lifecyclestage").is_some());
            assert!(
                results
                    .iter()
                    .any(|r| r["associations"]["companies"]["results"][0]["type"]
                        == "contact_to_company"),
                "{page}"
            );
        }
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => break,
        }
    }
    let all: Vec<String> = sandbox
        .contacts()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(seen, all, "every contact once, in id order");
}

#[tokio::test]
async fn schemas_and_legacy_properties_answer_as_hubspot_does() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 5)).await.unwrap();
    let (status, schemas) = get(&sandbox, "/crm/v3/schemas").await;
    assert_eq!(status, 200);
    assert!(schemas["results"].as_array().unwrap().is_empty());
    let (status, legacy) = get(&sandbox, "/properties/v2/contacts/properties").await;
    assert_eq!(status, 200);
    let defs = legacy.as_array().expect("a bare JSON array");
    assert!(
        defs.iter()
            .any(|d| d["name"] == "lastmodifieddate" && d["type"] == "datetime"),
        "{legacy}"
    );
    let (status, v3) = get(&sandbox, "/crm/v3/properties/contacts").await;
    assert_eq!(status, 200);
    assert_eq!(v3["results"].as_array().unwrap().len(), defs.len());
}

#[tokio::test]
async fn standard_types_without_records_still_list_their_base_properties() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 5)).await.unwrap();
    for object in ["calls", "tickets", "line_items"] {
        let (status, v3) = get(&sandbox, &format!("/crm/v3/properties/{object}")).await;
        assert_eq!(status, 200, "{object}");
        let names: Vec<&str> = v3["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"hs_lastmodifieddate"),
            "{object}: {names:?}"
        );
        let (status, legacy) = get(&sandbox, &format!("/properties/v2/{object}/properties")).await;
        assert_eq!(status, 200, "{object}");
        assert_eq!(legacy.as_array().unwrap().len(), names.len(), "{object}");
    }
    let (status, _) = get(&sandbox, "/crm/v3/properties/widgets").await;
    assert_eq!(status, 404, "not a HubSpot object type");
}

#[tokio::test]
async fn search_accepts_top_level_filters_with_integer_values() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 30)).await.unwrap();
    let token = Some(sandbox.token());
    let cut = sandbox.contacts()[10].id;
    let (status, by_groups) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        token,
        json!({"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": cut.to_string()}]}], "limit": 100}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, top_level) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        token,
        json!({"filters": [{"propertyName": "hs_object_id", "operator": "GT", "value": cut}], "limit": 100}),
    )
    .await;
    assert_eq!(status, 200, "{top_level}");
    assert_eq!(top_level["total"], by_groups["total"]);
    assert_eq!(top_level["total"], 19);
}

#[tokio::test]
async fn a_walk_sees_writes_made_between_its_pages() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 50)).await.unwrap();
    let token = Some(sandbox.token());
    let since = (chrono::Utc::now() - chrono::Duration::minutes(1)).timestamp_millis();
    let page = |after: u64| {
        json!({"filterGroups": [{"filters": [
            {"propertyName": "lastmodifieddate", "operator": "GTE", "value": since.to_string()},
            {"propertyName": "hs_object_id", "operator": "GT", "value": after.to_string()}]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}], "limit": 10})
    };
    let path = "/crm/v3/objects/contacts/search";
    let (status, first) = post(&sandbox, path, token, page(0)).await;
    assert_eq!(status, 200);
    assert_eq!(first["total"], 0, "nothing modified in the last minute yet");
    // Two contacts change between pages: the next page of the same walk must see them.
    let ids: Vec<u64> = sandbox.contacts().iter().map(|c| c.id).collect();
    assert!(sandbox.edit_contact(ids[3], &[("jobtitle", "CTO")]));
    assert!(sandbox.edit_contact(ids[40], &[("jobtitle", "CFO")]));
    let (_, again) = post(&sandbox, path, token, page(0)).await;
    assert_eq!(again["total"], 2, "{again}");
    let (_, later) = post(&sandbox, path, token, page(ids[3])).await;
    assert_eq!(later["total"], 1, "{later}");
    assert_eq!(later["results"][0]["id"], ids[40].to_string());
    // Same filters, other floor, other limit: answered from the kept matches, still exact.
    let (_, all) = post(
        &sandbox,
        path,
        token,
        json!({"filterGroups": [{"filters": [{"propertyName": "hs_object_id", "operator": "GTE", "value": ids[10].to_string()}]}], "limit": 200}),
    )
    .await;
    assert_eq!(all["total"], 40, "{all}");
    assert_eq!(all["results"][0]["id"], ids[10].to_string());
}

#[tokio::test]
async fn merge_and_delete_answer_as_hubspot_does() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 30)).await.unwrap();
    let token = Some(sandbox.token());
    let ids: Vec<u64> = sandbox.contacts().iter().map(|c| c.id).collect();
    let (primary, deleted) = (ids[0], ids[2]);
    sandbox.merge_contacts(ids[3], ids[4]);
    let (status, body) = post(
        &sandbox,
        "/crm/v3/objects/contacts/merge",
        token,
        json!({"primaryObjectId": primary.to_string(), "objectIdToMerge": ids[3].to_string()}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], primary.to_string(), "the primary keeps its id");
    let listed = format!("{};{}", ids[3], ids[4]);
    assert_eq!(
        body["properties"]["hs_merged_object_ids"], listed,
        "the merged id and the ids merged into it"
    );
    let (status, _) = post(
        &sandbox,
        "/crm/v3/objects/contacts/merge",
        token,
        json!({"primaryObjectId": primary.to_string(), "objectIdToMerge": ids[3].to_string()}),
    )
    .await;
    assert_eq!(status, 400, "a merged contact is gone");
    let resp = reqwest::Client::new()
        .delete(format!(
            "{}/crm/v3/objects/contacts/{deleted}",
            sandbox.base_url()
        ))
        .bearer_auth(sandbox.token())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    // Both leave search; both are listed as archived, with when.
    let (_, page) = post(
        &sandbox,
        "/crm/v3/objects/contacts/search",
        token,
        json!({"limit": 100}),
    )
    .await;
    let live: Vec<&str> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(live.len(), 30 - 3, "two merged away, one deleted");
    let (status, archived) =
        get(&sandbox, "/crm/v3/objects/contacts?archived=true&limit=100").await;
    assert_eq!(status, 200);
    let archived: Vec<(String, bool)> = archived["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["archivedAt"].is_string(),
            )
        })
        .collect();
    for id in [ids[3], ids[4], deleted] {
        assert!(
            archived.contains(&(id.to_string(), true)),
            "{id} in {archived:?}"
        );
    }
}
