//! Reads beside the walk: companies and deals by batch (100 ids a call, a few calls at once),
//! contacts' deal associations (v4, 1,000 a call), and the ids of objects changed since a time.

use super::*;

/// Batch reads of one kind (companies, deal associations, deals) in flight at once.
pub(super) const READ_CONCURRENCY: usize = 4;

/// The most inputs one v4 association batch read takes.
pub const ASSOCIATION_BATCH_LIMIT: usize = 1_000;

#[derive(Debug, Deserialize)]
pub(super) struct AssociationsResponse {
    #[serde(default)]
    pub(super) results: Vec<AssociationResult>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AssociationResult {
    pub(super) from: AssociationFrom,
    #[serde(default)]
    pub(super) to: Vec<AssociationTo>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AssociationFrom {
    pub(super) id: Value,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssociationTo {
    pub(super) to_object_id: Value,
}

pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One page of `GET /crm/v3/objects/contacts?archived=true`.
#[derive(Debug, Deserialize)]
pub(super) struct ArchivedPage {
    #[serde(default)]
    pub(super) results: Vec<ArchivedContact>,
    pub(super) paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ArchivedContact {
    pub(super) id: String,
    #[serde(rename = "archivedAt")]
    pub(super) archived_at: Option<String>,
    /// Archiving is a record's last change: the fallback when `archivedAt` is missing.
    #[serde(rename = "updatedAt")]
    pub(super) updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Paging {
    pub(super) next: Option<PagingNext>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PagingNext {
    pub(super) after: String,
}

impl HubSpotCrm {
    /// Companies by id, in batches of 100, each read into what it gives its contacts' leads.
    /// Ids the CRM no longer has are simply absent.
    pub(super) async fn read_companies(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Arc<CompanyFacts>>, CrmError> {
        let reads = self.reads();
        let properties: Vec<&str> = reads.company.iter().map(String::as_str).collect();
        let companies = self.batch_read("companies", ids, &properties).await?;
        Ok(companies
            .into_iter()
            .map(|c| {
                let facts = CompanyFacts::read(&c, &reads.asked);
                (c.id, Arc::new(facts))
            })
            .collect())
    }

    /// `objects/<type>/batch/read` of these ids: 100 a request, [`READ_CONCURRENCY`] requests
    /// in flight (each under the governor). Ids the CRM does not have are simply absent.
    pub(super) async fn batch_read(
        &self,
        object_type: &str,
        ids: &[String],
        properties: &[&str],
    ) -> Result<Vec<HubSpotObject>, CrmError> {
        let bodies = ids
            .chunks(BATCH_LIMIT)
            .map(|chunk| {
                json!({
                    "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
                    "properties": properties,
                })
            })
            .collect();
        let path = format!("/crm/v3/objects/{object_type}/batch/read");
        let pages: Vec<BatchResponse> = self.post_all(&path, bodies).await?;
        Ok(pages.into_iter().flat_map(|p| p.results).collect())
    }

    /// POST each body to `path`, [`READ_CONCURRENCY`] at a time (each under the governor and
    /// the retry policy); the parsed answers in no particular order.
    pub(super) async fn post_all<T: DeserializeOwned + Send>(
        &self,
        path: &str,
        bodies: Vec<Value>,
    ) -> Result<Vec<T>, CrmError> {
        // Collected first: a lazy iterator held across the await would not be `Send`.
        let posts: Vec<_> = bodies
            .into_iter()
            .map(|body| async move {
                let (_, parsed): (_, T) = self.post_parsed(path, &body).await?;
                Ok::<_, CrmError>(parsed)
            })
            .collect();
        stream::iter(posts)
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Deals of these contacts: v4 associations (≤ 1,000 contacts a call), then the deals by
    /// batch read (≤ 100 a call). Contacts without deals are simply absent from the map.
    pub(super) async fn read_contact_deals(
        &self,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<Deal>>, CrmError> {
        let bodies = ids
            .chunks(ASSOCIATION_BATCH_LIMIT)
            .map(|chunk| json!({ "inputs": chunk.iter().map(|id| json!({"id": id})).collect::<Vec<_>>() }))
            .collect();
        let answers: Vec<AssociationsResponse> = self
            .post_all("/crm/v4/associations/contacts/deals/batch/read", bodies)
            .await?;
        let mut links: Vec<(String, String)> = Vec::new();
        for result in answers.into_iter().flat_map(|a| a.results) {
            let from = value_text(&result.from.id);
            links.extend(
                result
                    .to
                    .iter()
                    .map(|to| (from.clone(), value_text(&to.to_object_id))),
            );
        }
        let mut unique: Vec<String> = links.iter().map(|(_, deal)| deal.clone()).collect();
        unique.sort();
        unique.dedup();
        let reads = self.reads();
        let properties: Vec<&str> = reads.deal.iter().map(String::as_str).collect();
        let deals: HashMap<String, Deal> = self
            .batch_read("deals", &unique, &properties)
            .await?
            .iter()
            .map(|object| (object.id.clone(), mapping::deal(object, &reads.asked.deal)))
            .collect();
        let mut by_contact: HashMap<String, Vec<Deal>> = HashMap::default();
        for (contact, deal_id) in links {
            if let Some(deal) = deals.get(&deal_id) {
                by_contact.entry(contact).or_default().push(deal.clone());
            }
        }
        for list in by_contact.values_mut() {
            // A stable order keeps the lead's input hash stable across runs.
            list.sort_by(|a, b| a.id.cmp(&b.id));
        }
        Ok(by_contact)
    }

    /// Ids of `object`s modified at or after `since`: a keyset walk by id (200 a search, no
    /// 10,000 ceiling), asking for nothing but the id.
    pub(super) async fn changed_ids(
        &self,
        object: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<String>, CrmError> {
        let mut ids = Vec::new();
        let mut after_id = 0u64;
        loop {
            let body = json!({
                "filterGroups": [{ "filters": [
                    { "propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since.timestamp_millis().to_string() },
                    { "propertyName": "hs_object_id", "operator": "GT", "value": after_id.to_string() },
                ]}],
                "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
                "properties": ["hs_object_id"],
                "limit": 200,
            });
            let (_, page): (_, SearchResponse) = self
                .post_parsed(&format!("/crm/v3/objects/{object}/search"), &body)
                .await?;
            let n = page.results.len();
            for r in page.results {
                after_id = after_id.max(r.id.parse().unwrap_or(after_id));
                ids.push(r.id);
            }
            if n < 200 || page.paging.is_none() {
                return Ok(ids);
            }
        }
    }
}
