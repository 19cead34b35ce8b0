//! `DatasetProvider`: firmographics from a file (JSONL or CSV), indexed by domain in memory —
//! a purchased or public company dataset kept in S3 under `datasets/`. Free to query, so it
//! goes first in the waterfall.
//!
//! # Schema
//! Modelled on the People Data Labs free company dataset. One company per line (JSONL) or row
//! (CSV with a header); columns, all optional but `domain`:
//! `domain` (or `website`), `name`, `industry`, `size` (e.g. `51-200`), `employee_count`
//! (or `employee_estimate`), `founded`, `locality`, `region`, `country`, `linkedin_url`,
//! `type`, `revenue` (dollars). Unknown columns are ignored. A row whose `domain` is missing
//! or not a registrable domain is counted as bad with its line number, never fatal.

use crate::pdl::{industry_code, title_case};
use leadsync_domain::domain_name::registrable_domain;
use leadsync_domain::ports::{FirmographicProvider, Lookup, ProviderError};
use leadsync_domain::{Firmographics, Provenance, Sourced};
use serde::Deserialize;
use std::collections::HashMap;

/// One company of the dataset, as written.
#[derive(Debug, Default, Deserialize)]
struct Row {
    #[serde(default, alias = "website")]
    domain: Option<String>,
    #[serde(default)]
    industry: Option<String>,
    #[serde(default)]
    size: Option<String>,
    #[serde(
        default,
        alias = "employee_estimate",
        deserialize_with = "lenient_number"
    )]
    employee_count: Option<u64>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default, rename = "type")]
    company_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_number")]
    revenue: Option<u64>,
}

/// Numbers as numbers or as text ("250", "", "n/a" → none).
fn lenient_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        F(f64),
        S(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        Some(Raw::N(n)) => Some(n),
        Some(Raw::F(f)) if f.is_finite() && f >= 0.0 => Some(f.round() as u64),
        Some(Raw::S(s)) => s.trim().replace(',', "").parse().ok(),
        _ => None,
    })
}

/// A line the loader could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    pub line: usize,
    pub reason: String,
}

/// The dataset in memory.
#[derive(Debug, Clone)]
pub struct DatasetProvider {
    name: String,
    by_domain: HashMap<String, Firmographics>,
}

impl DatasetProvider {
    /// Parse a dataset file. `format` is `jsonl` or `csv`; `name` is the provenance recorded on
    /// every value (e.g. `dataset:companies-2026-10`). Returns the provider and the bad rows.
    ///
    /// # Errors
    /// [`ProviderError::Rejected`] for an unknown format or a CSV without a header.
    pub fn parse(
        name: &str,
        format: &str,
        bytes: &[u8],
    ) -> Result<(Self, Vec<BadRow>), ProviderError> {
        let rejected = |message: String| ProviderError::Rejected {
            provider: name.to_owned(),
            message,
        };
        let mut rows: Vec<(usize, Result<Row, String>)> = Vec::new();
        match format {
            "jsonl" => {
                for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    rows.push((
                        index + 1,
                        serde_json::from_slice::<Row>(line).map_err(|e| e.to_string()),
                    ));
                }
            }
            "csv" => {
                let mut reader = csv::ReaderBuilder::new()
                    .flexible(true)
                    .trim(csv::Trim::All)
                    .from_reader(bytes);
                let headers = reader
                    .headers()
                    .map_err(|e| rejected(format!("no CSV header: {e}")))?
                    .clone();
                for (index, record) in reader.records().enumerate() {
                    // The line the record starts on, as the reader counted it (a quoted field
                    // may span lines; `\r` ends a line too); the header is line 1.
                    let line = |position: Option<&csv::Position>| {
                        position.map_or(index + 2, |p| {
                            usize::try_from(p.line()).unwrap_or(usize::MAX)
                        })
                    };
                    rows.push(match record {
                        Ok(record) => (
                            line(record.position()),
                            record
                                .deserialize::<Row>(Some(&headers))
                                .map_err(|e| e.to_string()),
                        ),
                        Err(e) => (line(e.position()), Err(e.to_string())),
                    });
                }
            }
            other => {
                return Err(rejected(format!(
                    "unknown dataset format {other:?}: expected jsonl or csv"
                )));
            }
        }
        let source = Provenance {
            provider: name.to_owned().into(),
            likelihood: None,
            fetched_at: None,
        };
        let mut by_domain = HashMap::with_capacity(rows.len());
        // The line each company was loaded from: a second row for the same company is listed
        // as bad (naming the first), never a silent overwrite.
        let mut loaded_from: HashMap<String, usize> = HashMap::with_capacity(rows.len());
        let mut bad = Vec::new();
        for (line, row) in rows {
            let row = match row {
                Ok(row) => row,
                Err(reason) => {
                    bad.push(BadRow { line, reason });
                    continue;
                }
            };
            let domain = match row.domain.as_deref().map(registrable_domain) {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    bad.push(BadRow {
                        line,
                        reason: format!("domain: {e}"),
                    });
                    continue;
                }
                None => {
                    bad.push(BadRow {
                        line,
                        reason: "domain: missing".into(),
                    });
                    continue;
                }
            };
            if let Some(first) = loaded_from.get(&domain) {
                bad.push(BadRow {
                    line,
                    reason: format!("domain: {domain} was already loaded from line {first}"),
                });
                continue;
            }
            loaded_from.insert(domain.clone(), line);
            let employees = row.employee_count.or_else(|| {
                // "51-200" → 51: the lower bound, like the revenue ranges of the API.
                row.size.as_deref().and_then(|s| {
                    s.split(['-', '+'])
                        .next()?
                        .trim()
                        .replace(',', "")
                        .parse()
                        .ok()
                })
            });
            let s = |v| Sourced::new(v, source.clone());
            by_domain.insert(
                domain,
                Firmographics {
                    industry: row
                        .industry
                        .as_deref()
                        .map(industry_code)
                        .filter(|i| !i.is_empty())
                        .map(s),
                    employees: employees.map(|n| Sourced::new(n, source.clone())),
                    annual_revenue: row.revenue.map(|n| Sourced::new(n, source.clone())),
                    country: row
                        .country
                        .map(|c| title_case(&c))
                        .filter(|c| !c.is_empty())
                        .map(s),
                    company_type: row
                        .company_type
                        .map(|t| t.trim().to_lowercase())
                        .filter(|t| !t.is_empty())
                        .map(s),
                    technologies: None,
                },
            );
        }
        Ok((
            Self {
                name: name.to_owned(),
                by_domain,
            },
            bad,
        ))
    }

    pub fn len(&self) -> usize {
        self.by_domain.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }
}

impl FirmographicProvider for DatasetProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn lookup(&self, domain: &str) -> Result<Lookup, ProviderError> {
        Ok(Lookup::free(self.by_domain.get(domain).cloned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn csv_and_jsonl_index_by_registrable_domain_and_report_bad_rows() {
        let csv = concat!(
            "name,domain,industry,size,country,type,extra\n",
            "Acme,www.acme.co.uk,computer software,51-200,united kingdom,private,x\n",
            "NoDomain,,retail,11-50,france,public,\n",
            "Big,big.example.com,banking,10001+,united states,public,\n",
        );
        let (dataset, bad) = DatasetProvider::parse("dataset:test", "csv", csv.as_bytes()).unwrap();
        assert_eq!(dataset.len(), 2);
        assert_eq!(
            bad,
            vec![BadRow {
                line: 3,
                reason: "domain: missing".into()
            }]
        );
        let acme = dataset
            .lookup("acme.co.uk")
            .await
            .unwrap()
            .firmographics
            .unwrap();
        assert_eq!(
            acme.industry
                .as_ref()
                .map(|s| (s.value.as_str(), s.source.provider.as_ref())),
            Some(("COMPUTER_SOFTWARE", "dataset:test"))
        );
        assert_eq!(acme.employees.as_ref().map(|s| s.value), Some(51));
        assert_eq!(
            acme.country.as_ref().map(|s| s.value.as_str()),
            Some("United Kingdom")
        );
        assert_eq!(
            dataset
                .lookup("example.com")
                .await
                .unwrap()
                .firmographics
                .unwrap()
                .employees
                .map(|s| s.value),
            Some(10001)
        );

        let jsonl = br#"{"website":"https://shop.acme.io/","industry":"internet","employee_count":"1,200","revenue":25000000}
not json
{"domain":"gmail.com"}

{"domain":"tiny.org","employee_estimate":3.0}"#;
        let (dataset, bad) = DatasetProvider::parse("ds", "jsonl", jsonl).unwrap();
        assert_eq!(dataset.len(), 2);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![2, 3]);
        assert!(bad[1].reason.contains("free-mail"), "{:?}", bad[1]);
        let acme = dataset
            .lookup("acme.io")
            .await
            .unwrap()
            .firmographics
            .unwrap();
        assert_eq!(
            (
                acme.employees.map(|s| s.value),
                acme.annual_revenue.map(|s| s.value)
            ),
            (Some(1200), Some(25_000_000))
        );
        assert_eq!(
            dataset
                .lookup("tiny.org")
                .await
                .unwrap()
                .firmographics
                .unwrap()
                .employees
                .map(|s| s.value),
            Some(3)
        );
        assert!(DatasetProvider::parse("ds", "xlsx", b"").is_err());
    }
}
