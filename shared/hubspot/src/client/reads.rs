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
    #[serde(deserialize_with = "id_text")]
    pub(super) id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssociationTo {
    #[serde(deserialize_with = "id_text")]
    pub(super) to_object_id: String,
}

/// An object id as text, whether HubSpot wrote it as a string (`"from": {"id": "51"}`) or a
/// number (`"toObjectId": 1001`), read straight from the body.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct IdText;
    impl serde::de::Visitor<'_> for IdText {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object id (a string or a number)")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(IdText)
}

/// The body of a batch read (`objects/<type>/batch/read`, v4 associations): `{"inputs":
/// [{"id": …}, …]}` and, for objects, the properties asked — written from the ids as they are,
/// without building a JSON tree first (a pull sends one input per contact, company and deal).
#[derive(Serialize)]
pub(super) struct BatchReadBody<'a, I: AsRef<str>> {
    #[serde(serialize_with = "id_inputs")]
    inputs: &'a [I],
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<&'a [&'a str]>,
}

impl<'a, I: AsRef<str>> BatchReadBody<'a, I> {
    /// Objects' inputs, with the properties to read.
    pub(super) fn objects(ids: &'a [I], properties: &'a [&'a str]) -> Self {
        Self {
            inputs: ids,
            properties: Some(properties),
        }
    }

    /// Associations' inputs (no properties).
    pub(super) fn associations(ids: &'a [I]) -> Self {
        Self {
            inputs: ids,
            properties: None,
        }
    }
}

fn id_inputs<I: AsRef<str>, S: serde::Serializer>(ids: &&[I], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Input<'a> {
        id: &'a str,
    }
    s.collect_seq(ids.iter().map(|id| Input { id: id.as_ref() }))
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
            .map(|chunk| BatchReadBody::objects(chunk, properties))
            .collect();
        let path = format!("/crm/v3/objects/{object_type}/batch/read");
        let pages: Vec<BatchResponse> = self.post_all(&path, bodies).await?;
        Ok(pages.into_iter().flat_map(|p| p.results).collect())
    }

    /// POST each body to `path`, [`READ_CONCURRENCY`] at a time (each under the governor and
    /// the retry policy); the parsed answers in no particular order.
    pub(super) async fn post_all<T: DeserializeOwned + Send, B: Serialize + Sync>(
        &self,
        path: &str,
        bodies: Vec<B>,
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
            .map(BatchReadBody::associations)
            .collect();
        let answers: Vec<AssociationsResponse> = self
            .post_all("/crm/v4/associations/contacts/deals/batch/read", bodies)
            .await?;
        let mut links: Vec<(String, String)> = Vec::new();
        for result in answers.into_iter().flat_map(|a| a.results) {
            let from = result.from.id;
            links.extend(
                result
                    .to
                    .into_iter()
                    .map(|to| (from.clone(), to.to_object_id)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_read_body_is_the_inputs_and_properties_hubspot_takes() {
        let ids = ["101".to_owned(), "102".to_owned()];
        let body = serde_json::to_value(BatchReadBody::objects(&ids, &["name", "industry"]));
        assert_eq!(
            body.ok(),
            Some(
                json!({"inputs": [{"id": "101"}, {"id": "102"}], "properties": ["name", "industry"]})
            )
        );
        let ids = ["7", "8"];
        let body = serde_json::to_value(BatchReadBody::associations(&ids));
        assert_eq!(
            body.ok(),
            Some(json!({"inputs": [{"id": "7"}, {"id": "8"}]}))
        );
    }

    #[test]
    fn association_ids_are_read_as_text_whether_strings_or_numbers() {
        let answer: AssociationsResponse = serde_json::from_str(
            r#"{"results": [{"from": {"id": "51"}, "to": [{"toObjectId": 1001, "associationTypes": []},
                {"toObjectId": "1002"}]}, {"from": {"id": 52}, "to": []}],
                "errors": [{"status": "error", "context": {"fromObjectId": ["53"]}}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let read: Vec<(String, Vec<String>)> = answer
            .results
            .into_iter()
            .map(|r| {
                (
                    r.from.id,
                    r.to.into_iter().map(|t| t.to_object_id).collect(),
                )
            })
            .collect();
        assert_eq!(
            read,
            vec![
                ("51".to_owned(), vec!["1001".to_owned(), "1002".to_owned()]),
                ("52".to_owned(), vec![])
            ]
        );
        // Anything else is an unreadable body, said so (and retried as one), not a made-up id.
        let bad = serde_json::from_str::<AssociationsResponse>(
            r#"{"results": [{"from": {"id": true}, "to": []}]}"#,
        );
        let message = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("an object id"), "{message}");
    }
}
