//! Hostile CRM answers (issue 19): search pages HubSpot could send or a proxy could garble.
//! A page either reads or is refused whole (and retried); a page that reads accounts for every
//! contact on it — mapped or quarantined with its raw record, never dropped — and the
//! one-buffer property reader gives back exactly what was sent.

use crate::client::SearchResponse;
use crate::mapping::{contact_to_lead, raw};
use leadsync_domain::criteria::CrmReads;
use leadsync_domain::hostile;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A page as HubSpot's search sends it, for the garbling generator.
const PAGE: &str = r#"{"total":2,"results":[{"id":"101","properties":{"createdate":"2026-01-05T10:00:00.000Z","email":"ana@acme.io","hs_object_id":"101","lastmodifieddate":"2026-11-19T08:30:00.123Z","hs_analytics_num_page_views":"12","hs_email_open":"3","associatedcompanyid":"9","jobtitle":"VP Sales","hs_analytics_last_visit_timestamp":"2026-11-18T00:00:00Z","leadsync_merged_ids":"88;89"},"createdAt":"2026-01-05T10:00:00.000Z","updatedAt":"2026-11-19T08:30:00.123Z","archived":false},{"id":"102","properties":{"email":null,"hs_object_id":"102","lastmodifieddate":"1763540000000","num_conversion_events":"1"},"updatedAt":"2026-11-19T08:31:00Z"}],"paging":{"next":{"after":"2"}}}"#;

fn object() -> impl Strategy<Value = Value> {
    let property = prop_oneof![
        proptest::sample::select(vec![
            "email",
            "lastmodifieddate",
            "hs_analytics_num_page_views",
            "hs_email_open",
            "hs_email_click",
            "num_conversion_events",
            "associatedcompanyid",
            "hs_analytics_last_visit_timestamp",
            "hs_email_last_open_date",
            "leadsync_merged_ids",
            "hubspot_owner_id",
            "hs_lead_status",
            "bant_budget",
        ])
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    (
        hostile::json(),
        proptest::collection::vec((property, hostile::json()), 0..14),
        hostile::json(),
    )
        .prop_map(|(id, properties, updated)| {
            let mut p = serde_json::Map::new();
            for (k, v) in properties {
                p.insert(k, v);
            }
            json!({"id": id, "properties": p, "updatedAt": updated})
        })
}

/// A page of arbitrary objects, or a real page garbled.
fn page() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(object(), 0..12)
            .prop_map(|results| json!({"total": results.len(), "results": results}).to_string()),
        hostile::text(&[PAGE]),
    ]
}

#[test]
fn hostile_search_pages_lose_no_contact_and_never_panic() {
    let companies = HashMap::new();
    let reads = CrmReads::default();
    hostile::check("HubSpot search pages", 4_000, page(), |text| {
        let Ok(page) = serde_json::from_str::<SearchResponse>(&text) else {
            return Ok(()); // refused whole: the client retries it as a cut-short body
        };
        let sent: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let (mut mapped, mut quarantined) = (0, 0);
        for (i, object) in page.results.iter().enumerate() {
            // The reader gives back every string property exactly as sent.
            if let Some(props) = sent
                .pointer(&format!("/results/{i}/properties"))
                .and_then(Value::as_object)
            {
                for (k, v) in props {
                    if let Value::String(s) = v {
                        // The last of duplicate keys is the one a JSON reader keeps.
                        let last = object.properties.iter().filter(|(key, _)| key == k).last();
                        prop_assert_eq!(
                            last.and_then(|(_, v)| v),
                            Some(s.as_str()),
                            "property {}",
                            k
                        );
                    }
                }
            }
            prop_assert!(
                serde_json::from_str::<Value>(&raw(object)).is_ok(),
                "raw record is JSON"
            );
            match contact_to_lead(object, &companies, &reads) {
                Ok(_) => mapped += 1,
                Err(rejected) => {
                    prop_assert!(!rejected.reason.is_empty());
                    prop_assert!(
                        !rejected.raw.is_empty(),
                        "the raw record is kept for quarantine"
                    );
                    quarantined += 1;
                }
            }
        }
        prop_assert_eq!(
            mapped + quarantined,
            page.results.len(),
            "every contact accounted for"
        );
        Ok(())
    });
}
