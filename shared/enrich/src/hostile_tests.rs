//! Hostile provider answers and datasets (issue 19). A provider answer of any shape maps to
//! firmographics or to none, never a panic; a dataset file accounts for every row — loaded, or
//! listed as bad with its line — whatever its bytes.

use crate::dataset::DatasetProvider;
use crate::pdl::{Answer, PdlConfig, PdlProvider};
use leadsync_domain::hostile;
use proptest::prelude::*;
use serde_json::{Value, json};

const ANSWER: &str = r#"{"status":200,"name":"acme","display_name":"Acme","size":"51-200","employee_count":120,"id":"x","founded":2015,"industry":"computer software","location":{"name":"berlin, germany","country":"germany","continent":"europe"},"linkedin_url":"linkedin.com/company/acme","website":"acme.io","type":"private","inferred_revenue":"$10M-$25M","likelihood":8}"#;

fn answer() -> impl Strategy<Value = String> {
    let field = proptest::sample::select(vec![
        "likelihood",
        "employee_count",
        "industry",
        "inferred_revenue",
        "location",
        "type",
        "status",
        "size",
    ]);
    prop_oneof![
        proptest::collection::vec((field, hostile::json()), 0..8).prop_map(|fields| {
            let mut m = serde_json::Map::new();
            for (k, v) in fields {
                m.insert(k.to_owned(), v);
            }
            Value::Object(m).to_string()
        }),
        hostile::text(&[ANSWER]),
    ]
}

#[test]
fn hostile_provider_answers_map_or_are_set_aside_never_panic() {
    let mut config = PdlConfig::new("http://127.0.0.1:9", "k".to_owned().into());
    config.min_likelihood = 1;
    let provider = PdlProvider::new(config).unwrap_or_else(|e| panic!("{e}"));
    hostile::check("PDL company answers", 3_000, answer(), |text| {
        // An unreadable 200 is billed and the lead scored without it (the client's path).
        if let Ok(answer) = serde_json::from_str::<Answer>(&text) {
            if let Some(f) = provider.firmographics(answer) {
                prop_assert!(f.industry.as_ref().is_none_or(|i| !i.value.is_empty()));
            }
        }
        Ok(())
    });
}

/// A dataset row: the fields a loader reads with values of any type, each row's domain its own.
fn rows() -> impl Strategy<Value = Vec<Value>> {
    let field = proptest::sample::select(vec![
        "industry",
        "size",
        "employee_count",
        "employee_estimate",
        "country",
        "type",
        "revenue",
    ]);
    proptest::collection::vec(
        (
            prop_oneof![
                3 => Just(None),
                1 => hostile::json().prop_map(Some),
            ],
            proptest::collection::vec((field, hostile::json()), 0..6),
        ),
        0..12,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(i, (domain, fields))| {
                let mut m = serde_json::Map::new();
                m.insert(
                    "domain".into(),
                    domain.unwrap_or_else(|| json!(format!("c{i}.example.com"))),
                );
                for (k, v) in fields {
                    m.insert(k.to_owned(), v);
                }
                Value::Object(m)
            })
            .collect()
    })
}

#[test]
fn hostile_jsonl_datasets_account_for_every_row() {
    hostile::check("dataset JSONL", 2_000, rows(), |rows| {
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        let (provider, bad) = DatasetProvider::parse("d", "jsonl", text.as_bytes())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Each row is loaded or listed bad (a repeated company too), none silently dropped.
        prop_assert_eq!(provider.len() + bad.len(), rows.len());
        for b in &bad {
            prop_assert!(
                (1..=rows.len()).contains(&b.line),
                "line {} of {}",
                b.line,
                rows.len()
            );
            prop_assert!(!b.reason.is_empty());
        }
        Ok(())
    });
}

#[test]
fn hostile_dataset_bytes_never_panic_and_bad_rows_name_their_line() {
    const CSV: &str = "domain,industry,size,employee_count,country,type,revenue\nacme.io,computer software,51-200,,germany,private,25000000\nbeta.com,\"retail, online\",11-50,30,france,public,n/a\n";
    const JSONL: &str = "{\"domain\":\"acme.io\",\"industry\":\"computer software\",\"employee_count\":\"120\"}\n{\"website\":\"https://www.beta.com/x\",\"size\":\"1,001-5,000\",\"revenue\":5}\n";
    hostile::check(
        "dataset CSV/JSONL bytes",
        3_000,
        (
            prop_oneof![Just("csv"), Just("jsonl")],
            hostile::text(&[CSV, JSONL]),
        ),
        |(format, text)| {
            // Lines as a CSV reader counts them: `\n`, `\r\n` and a lone `\r` each end one.
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count();
            if let Ok((provider, bad)) = DatasetProvider::parse("d", format, text.as_bytes()) {
                prop_assert!(provider.len() + bad.len() <= lines);
                for b in &bad {
                    prop_assert!(
                        b.line >= 1 && b.line <= lines,
                        "line {} of {}",
                        b.line,
                        lines
                    );
                }
            }
            Ok(())
        },
    );
}

/// Found by the hostile-input test: two rows of one company (`a.example.com`, `b.example.com`)
/// kept only the second, silently.
#[test]
fn a_second_row_of_the_same_company_is_listed_bad_not_silently_overwritten() {
    let text = "{\"domain\":\"a.example.com\",\"industry\":\"retail\"}\n{\"domain\":\"b.example.com\",\"industry\":\"banking\"}\n";
    let (provider, bad) =
        DatasetProvider::parse("d", "jsonl", text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(provider.len(), 1);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 2);
    assert!(
        bad[0]
            .reason
            .contains("example.com was already loaded from line 1"),
        "{:?}",
        bad[0]
    );
}

/// Found by the hostile-input test: CSV bad rows were numbered by record count, so a quoted
/// field spanning lines or a `\r` line end named the wrong line.
#[test]
fn a_bad_csv_row_names_the_line_it_starts_on() {
    let text = "domain,industry\n\"a.io\",\"two\nlines\"\n,missing domain\n";
    let (_, bad) =
        DatasetProvider::parse("d", "csv", text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 4, "{:?}", bad[0]);
}
