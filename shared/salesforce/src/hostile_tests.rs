//! Hostile Salesforce answers (issue 19): query records with fields of any type, and Bulk API
//! 2.0 result pages of any CSV. Nothing panics; every record is mapped or quarantined with
//! its raw text; a CSV page reads whole (one record per row) or is refused naming a row.

use crate::bulk::parse_csv;
use crate::mapping::person;
use leadsync_domain::hostile;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const FIELDS: &[&str] = &[
    "Id",
    "Email",
    "SystemModstamp",
    "Page_Views__c",
    "Email_Opens__c",
    "Last_Page_View__c",
    "Lead_Status__c",
    "AccountId",
    "Account",
    "Account.Industry",
    "Account.NumberOfEmployees",
    "NumberOfEmployees",
    "AnnualRevenue",
    "IsConverted",
    "ConvertedContactId",
    "OwnerId",
    "attributes",
    "Company",
    "Industry",
];

fn record() -> impl Strategy<Value = Value> {
    let object = proptest::sample::select(vec!["Lead", "Contact", "Account", ""]);
    let field = prop_oneof![
        proptest::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        "[A-Za-z_.]{1,20}",
    ];
    (
        object,
        proptest::collection::vec((field, hostile::json()), 0..16),
    )
        .prop_map(|(t, fields)| {
            let mut r = serde_json::Map::new();
            r.insert("attributes".into(), json!({"type": t}));
            for (k, v) in fields {
                r.insert(k, v);
            }
            Value::Object(r)
        })
}

#[test]
fn hostile_query_records_are_mapped_or_quarantined_never_lost() {
    hostile::check(
        "Salesforce query records",
        3_000,
        proptest::collection::vec(record(), 0..10),
        |records| {
            let (mut mapped, mut quarantined) = (0, 0);
            for r in &records {
                match person(r) {
                    Ok(_) => mapped += 1,
                    Err(rejected) => {
                        prop_assert!(!rejected.reason.is_empty());
                        prop_assert!(serde_json::from_str::<Value>(&rejected.raw).is_ok());
                        quarantined += 1;
                    }
                }
            }
            prop_assert_eq!(mapped + quarantined, records.len());
            Ok(())
        },
    );
}

/// A CSV page: a header of known and unknown columns (parents and their fields both), rows of
/// any text, quoted as Salesforce quotes them; or a real page garbled.
fn csv_page() -> impl Strategy<Value = String> {
    let header = proptest::collection::vec(proptest::sample::select(FIELDS.to_vec()), 1..8);
    let page = header.prop_flat_map(|h| {
        let width = h.len();
        let cell = prop_oneof![
            Just(String::new()),
            proptest::sample::select(vec![
                "12",
                "12.5",
                "true",
                "false",
                "2026-11-20T03:00:00.000+0000",
                "x"
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ];
        proptest::collection::vec(proptest::collection::vec(cell, width), 0..6).prop_map(
            move |rows| {
                let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
                let mut out = h.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",");
                out.push('\n');
                for row in rows {
                    out.push_str(&row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
                    out.push('\n');
                }
                out
            },
        )
    });
    prop_oneof![
        3 => page,
        1 => hostile::text(&["\"Id\",\"Email\",\"SystemModstamp\",\"Account.Industry\",\"NumberOfEmployees\"\n\"00Q000000000001AAA\",\"a@b.c\",\"2026-11-20T03:00:00.000+0000\",\"Software\",\"120\"\n\"00Q000000000002AAA\",\"\",\"2026-11-20T03:00:00.000+0000\",\"\",\"\"\n"]),
    ]
}

#[test]
fn hostile_bulk_pages_read_whole_or_name_a_row_and_never_panic() {
    let types: BTreeMap<String, String> = [
        ("NumberOfEmployees", "int"),
        ("AnnualRevenue", "currency"),
        ("Page_Views__c", "double"),
        ("IsConverted", "boolean"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    hostile::check(
        "Salesforce Bulk API 2.0 CSV pages",
        3_000,
        csv_page(),
        |text| {
            match parse_csv(&text, "Lead", &types) {
                Ok(records) => {
                    let rows = csv::ReaderBuilder::new()
                        .has_headers(true)
                        .from_reader(text.as_bytes())
                        .records()
                        .count();
                    prop_assert_eq!(records.len(), rows, "one record per row");
                    for r in &records {
                        let _ = person(r);
                    }
                }
                Err(e) => prop_assert!(e.to_string().contains("bulk results"), "{}", e),
            }
            Ok(())
        },
    );
}
