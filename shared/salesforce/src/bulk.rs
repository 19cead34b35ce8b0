//! Bulk API 2.0 query jobs, for large first syncs: create a job, poll it until it completes,
//! read its CSV results a page at a time by locator. A results row becomes the JSON record a
//! REST query would have answered (`attributes.type`, values typed by the object's describe:
//! numbers, booleans, an empty field as null), so one mapping reads both.

use crate::client::Transport;
use leadsync_domain::ports::CrmError;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How a job is waited for.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// Between two looks at the job.
    pub every: Duration,
    /// Past this, the job is given up (and deleted) with an error.
    pub at_most: Duration,
}

/// Create a `query` job and wait until it is `JobComplete`; its id.
///
/// # Errors
/// [`CrmError`]: the org's answers; [`CrmError::Unavailable`] when the job failed, was
/// aborted or outlasted `polling.at_most`.
pub async fn run_job(
    transport: &Transport,
    soql: &str,
    polling: Polling,
) -> Result<String, CrmError> {
    let created = transport
        .data_call(
            Method::POST,
            "/jobs/query",
            Some(&json!({"operation": "query", "query": soql, "contentType": "CSV"})),
        )
        .await?;
    let id = created
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| CrmError::Decode("bulk query job answer without id".into()))?
        .to_owned();
    let started = Instant::now();
    loop {
        let info = transport
            .data_call(Method::GET, &format!("/jobs/query/{id}"), None)
            .await?;
        match info.get("state").and_then(Value::as_str) {
            Some("JobComplete") => {
                let records = info
                    .get("numberRecordsProcessed")
                    .and_then(serde_json::Value::as_u64);
                tracing::info!(job = %id, ?records, "Bulk query job complete.");
                return Ok(id);
            }
            Some(state @ ("Failed" | "Aborted")) => {
                return Err(CrmError::Unavailable {
                    status: 0,
                    message: format!(
                        "Bulk API 2.0 query job {id} {state}: {}",
                        info.get("errorMessage")
                            .and_then(Value::as_str)
                            .unwrap_or("no error message")
                    ),
                });
            }
            _ if started.elapsed() >= polling.at_most => {
                let _ = transport
                    .data_call(Method::DELETE, &format!("/jobs/query/{id}"), None)
                    .await;
                return Err(CrmError::Unavailable {
                    status: 0,
                    message: format!(
                        "Bulk API 2.0 query job {id} did not complete within {:?}; deleted",
                        polling.at_most
                    ),
                });
            }
            _ => tokio::time::sleep(polling.every).await,
        }
    }
}

/// One page of a complete job's results: the records, and the locator of the next page
/// (`None` after the last).
///
/// # Errors
/// [`CrmError`]; [`CrmError::Decode`] for CSV that does not parse.
pub async fn results_page(
    transport: &Transport,
    job: &str,
    locator: Option<&str>,
    max_records: usize,
    object: &str,
    types: &BTreeMap<String, String>,
) -> Result<(Vec<Value>, Option<String>), CrmError> {
    let mut path = format!("/jobs/query/{job}/results?maxRecords={max_records}");
    if let Some(l) = locator {
        path.push_str("&locator=");
        path.extend(form_urlencoded::byte_serialize(l.as_bytes()));
    }
    let full = format!("/services/data/v{}{path}", transport.config.api_version);
    transport
        .call_with(Method::GET, &full, None, &[], |headers, text| {
            let next = headers
                .get("sforce-locator")
                .and_then(|v| v.to_str().ok())
                .filter(|l| !l.is_empty() && *l != "null")
                .map(str::to_owned);
            let records = parse_csv(text, object, types)?;
            if let Some(n) = headers
                .get("sforce-numberofrecords")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok())
            {
                // A body cut short still parses as CSV: the count says so.
                if n != records.len() {
                    return Err(CrmError::Decode(format!(
                        "bulk results of job {job}: {} rows where Sforce-NumberOfRecords says {n}",
                        records.len()
                    )));
                }
            }
            Ok((records, next))
        })
        .await
}

/// A results page's CSV as records shaped like a REST query's.
///
/// # Errors
/// [`CrmError::Decode`] naming the row.
pub fn parse_csv(
    text: &str,
    object: &str,
    types: &BTreeMap<String, String>,
) -> Result<Vec<Value>, CrmError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| CrmError::Decode(format!("bulk results header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| CrmError::Decode(format!("bulk results row {}: {e}", i + 2)))?;
        let mut record = Map::new();
        record.insert("attributes".into(), json!({"type": object}));
        for (name, raw) in header.iter().zip(row.iter()) {
            let value = typed(raw, name.split('.').next_back().unwrap_or(name), types);
            match name.split_once('.') {
                // A parent's field (`Account.Industry`): nested as a REST answer nests it.
                Some((parent, field)) => {
                    let slot = record.entry(parent.to_owned()).or_insert(Value::Null);
                    if !value.is_null() {
                        if slot.is_null() {
                            *slot = json!({});
                        }
                        let Some(fields) = slot.as_object_mut() else {
                            return Err(CrmError::Decode(format!(
                                "bulk results row {}: column {name} is a field of {parent}, \
                                 but column {parent} holds a value",
                                i + 2
                            )));
                        };
                        fields.insert(field.to_owned(), value);
                    }
                }
                None => {
                    record.insert(name.clone(), value);
                }
            }
        }
        out.push(Value::Object(record));
    }
    Ok(out)
}

/// A CSV value as JSON, by the field's describe type (unknown types stay text).
fn typed(raw: &str, field: &str, types: &BTreeMap<String, String>) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    match types.get(field).map(String::as_str) {
        Some("int" | "double" | "currency" | "percent" | "long") => raw
            .parse::<f64>()
            .ok()
            .and_then(|n| {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Some(json!(n as i64))
                } else {
                    serde_json::Number::from_f64(n).map(Value::Number)
                }
            })
            .unwrap_or_else(|| Value::String(raw.to_owned())),
        Some("boolean") => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
        _ => Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rows_become_records_typed_by_describe() {
        let types: BTreeMap<String, String> = [
            ("NumberOfEmployees", "int"),
            ("AnnualRevenue", "currency"),
            ("IsConverted", "boolean"),
            ("Company", "string"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let csv = "\"Id\",\"Company\",\"NumberOfEmployees\",\"AnnualRevenue\",\"IsConverted\",\"Account.Industry\"\n\
                   \"00Q000000000001AAA\",\"Acme, \"\"Inc\"\"\",\"120\",\"2500000.5\",\"false\",\"\"\n";
        let records = parse_csv(csv, "Lead", &types).unwrap();
        assert_eq!(
            records,
            vec![json!({
                "attributes": {"type": "Lead"},
                "Id": "00Q000000000001AAA",
                "Company": "Acme, \"Inc\"",
                "NumberOfEmployees": 120,
                "AnnualRevenue": 2_500_000.5,
                "IsConverted": false,
                "Account": null,
            })]
        );
    }

    /// Found by the hostile-input test: a page with both `Account` and `Account.Industry`
    /// columns panicked (indexing a JSON string as an object).
    #[test]
    fn a_parent_column_with_a_value_and_its_field_is_refused_by_row_not_a_panic() {
        let err = parse_csv(
            "\"Id\",\"Account\",\"Account.Industry\"\n\"a\",\"x\",\"Software\"\n",
            "Lead",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("row 2: column Account.Industry"),
            "{err}"
        );
    }

    #[test]
    fn a_broken_row_is_named() {
        let err = parse_csv(
            "\"Id\",\"Email\"\n\"a\",\"b\"\n\"c\"\n",
            "Lead",
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("row 3"), "{err}");
    }
}
