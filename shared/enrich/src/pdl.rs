//! `PdlProvider`: the People Data Labs company-enrichment API (`GET /v5/company/enrich`) as a
//! [`FirmographicProvider`]. One credit is billed per 200; a 404 (no match) is free.
//!
//! PDL's vocabulary is mapped to ours: industry `"computer software"` → `COMPUTER_SOFTWARE`
//! (the CRM's enumeration style the criteria use), `inferred_revenue` `"$50M-$100M"` → its lower
//! bound in dollars, country `"united states"` → `United States`.

use chrono::Utc;
use leadsync_domain::ports::{FirmographicProvider, ProviderError};
use leadsync_domain::{Firmographics, Provenance, Sourced};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::time::Duration;

/// How to reach the provider.
#[derive(Debug, Clone)]
pub struct PdlConfig {
    /// `https://api.peopledatalabs.com`, or a sandbox's `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub api_key: SecretString,
    /// Matches below this likelihood (1–10) are treated as no match.
    pub min_likelihood: u8,
    pub timeout: Duration,
}

impl PdlConfig {
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            min_likelihood: 6,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The PDL adapter.
#[derive(Debug, Clone)]
pub struct PdlProvider {
    http: reqwest::Client,
    config: PdlConfig,
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    likelihood: Option<u8>,
    #[serde(default)]
    employee_count: Option<u64>,
    #[serde(default)]
    industry: Option<String>,
    #[serde(default)]
    inferred_revenue: Option<String>,
    #[serde(default)]
    location: Option<Location>,
    #[serde(default, rename = "type")]
    company_type: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Location {
    #[serde(default)]
    country: Option<String>,
}

/// `"$50M-$100M"` → 50,000,000; `"$1B-$10B"` → 1,000,000,000; `"$0-$1M"` → 0.
pub fn revenue_lower_bound(range: &str) -> Option<u64> {
    let low = range
        .trim()
        .split('-')
        .next()?
        .trim()
        .trim_start_matches('$');
    let (digits, unit) = low.split_at(
        low.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(low.len()),
    );
    let value: f64 = digits.parse().ok()?;
    let scale = match unit.trim() {
        "" => 1.0,
        "K" | "k" => 1e3,
        "M" | "m" => 1e6,
        "B" | "b" => 1e9,
        _ => return None,
    };
    Some((value * scale).round() as u64)
}

/// `"computer software"` → `"COMPUTER_SOFTWARE"`.
pub fn industry_code(industry: &str) -> String {
    industry
        .trim()
        .to_uppercase()
        .replace([' ', '-', ',', '&', '/'], "_")
        .split('_')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// `"united states"` → `"United States"`.
pub fn title_case(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl PdlProvider {
    /// # Errors
    /// [`ProviderError::Rejected`] when the HTTP client cannot be built.
    pub fn new(config: PdlConfig) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ProviderError::Rejected {
                provider: "pdl".into(),
                message: e.to_string(),
            })?;
        Ok(Self { http, config })
    }
}

impl FirmographicProvider for PdlProvider {
    fn name(&self) -> &str {
        "pdl"
    }

    async fn lookup(&self, domain: &str) -> Result<Option<Firmographics>, ProviderError> {
        let unavailable = |message: String| ProviderError::Unavailable {
            provider: "pdl".into(),
            message,
        };
        // Registrable domains are ASCII letters, digits, '-' and '.': safe in a query string.
        if domain.is_empty()
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(ProviderError::Rejected {
                provider: "pdl".into(),
                message: format!("{domain:?} is not a registrable domain"),
            });
        }
        let response = self
            .http
            .get(format!(
                "{}/v5/company/enrich?website={domain}",
                self.config.base_url
            ))
            .header("X-Api-Key", self.config.api_key.expose_secret())
            .send()
            .await
            .map_err(|e| {
                unavailable(if e.is_timeout() {
                    "timed out".into()
                } else {
                    e.to_string()
                })
            })?;
        let status = response.status();
        match status.as_u16() {
            200 => {}
            404 => return Ok(None),
            429 => {
                return Err(ProviderError::RateLimited {
                    provider: "pdl".into(),
                });
            }
            s if s >= 500 => return Err(unavailable(format!("HTTP {s}"))),
            s => {
                return Err(ProviderError::Rejected {
                    provider: "pdl".into(),
                    message: format!("HTTP {s}"),
                });
            }
        }
        let answer: Answer = response
            .json()
            .await
            .map_err(|e| unavailable(format!("unreadable answer: {e}")))?;
        let likelihood = answer.likelihood.unwrap_or(0);
        if likelihood < self.config.min_likelihood {
            return Ok(None);
        }
        let source = Provenance {
            provider: "pdl".into(),
            likelihood: Some(likelihood),
            fetched_at: Some(Utc::now()),
        };
        let sourced = |v| Sourced::new(v, source.clone());
        Ok(Some(Firmographics {
            industry: answer
                .industry
                .as_deref()
                .map(industry_code)
                .filter(|i| !i.is_empty())
                .map(sourced),
            employees: answer
                .employee_count
                .map(|n| Sourced::new(n, source.clone())),
            annual_revenue: answer
                .inferred_revenue
                .as_deref()
                .and_then(revenue_lower_bound)
                .map(|n| Sourced::new(n, source.clone())),
            country: answer
                .location
                .and_then(|l| l.country)
                .map(|c: String| title_case(&c))
                .filter(|c| !c.is_empty())
                .map(sourced),
            company_type: answer
                .company_type
                .map(|t| Sourced::new(t.to_lowercase(), source.clone())),
            technologies: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_mapping() {
        assert_eq!(revenue_lower_bound("$50M-$100M"), Some(50_000_000));
        assert_eq!(revenue_lower_bound("$1B-$10B"), Some(1_000_000_000));
        assert_eq!(revenue_lower_bound("$0-$1M"), Some(0));
        assert_eq!(revenue_lower_bound("lots"), None);
        assert_eq!(industry_code("computer software"), "COMPUTER_SOFTWARE");
        assert_eq!(
            industry_code("information technology and services"),
            "INFORMATION_TECHNOLOGY_AND_SERVICES"
        );
        assert_eq!(title_case("united states"), "United States");
    }
}
