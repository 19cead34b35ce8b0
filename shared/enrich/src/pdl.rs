//! `PdlProvider`: the People Data Labs company-enrichment API (`GET /v5/company/enrich`) as a
//! [`FirmographicProvider`]. One credit is billed per 200; a 404 (no match) is free.
//!
//! The plan's rate limit is kept client-side (a sliding window shared by every lookup), 429s
//! honour `Retry-After`, and 429/5xx/timeouts are retried a bounded number of times; what still
//! fails is a [`ProviderError`] and the lead is scored without this provider.
//!
//! PDL's vocabulary is mapped to ours: industry `"computer software"` → `COMPUTER_SOFTWARE`
//! (the CRM's enumeration style the criteria use), `inferred_revenue` `"$50M-$100M"` → its lower
//! bound in dollars, country `"united states"` → `United States`.

use chrono::Utc;
use leadsync_domain::ports::{FirmographicProvider, Lookup, Origin, ProviderError};
use leadsync_domain::{Firmographics, Provenance, Sourced};
use leadsync_ratelimit::{RateGovernor, RateLimits};
use leadsync_retry::{Failure, Policy};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;
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
    /// The plan's rate limit, kept client-side: PDL allows 10 per minute on the free plan and
    /// 1,000 on paid ones ([`PDL_PAID`], the default).
    pub rate: RateLimits,
    /// How a 429, 408, 5xx, timeout or connection failure is retried (then the lead is scored
    /// without this provider): [`PDL_RETRY`] by default.
    pub retry: Policy,
}

/// Two retries from 200 ms, a `Retry-After` honoured up to 10 s: a night's run must not stall on
/// one domain (a lead whose provider failed is scored without it and enriched next time).
pub const PDL_RETRY: Policy = Policy {
    first: Duration::from_millis(200),
    cap: Duration::from_secs(2),
    retries: 2,
    max_after: Duration::from_secs(10),
};

/// PDL's free plan: 10 requests per minute.
pub const PDL_FREE: RateLimits = RateLimits::new(10, Duration::from_secs(60));
/// PDL's paid plans: 1,000 requests per minute.
pub const PDL_PAID: RateLimits = RateLimits::new(1_000, Duration::from_secs(60));

impl PdlConfig {
    pub fn new(base_url: impl Into<String>, api_key: SecretString) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key,
            min_likelihood: 6,
            timeout: Duration::from_secs(10),
            rate: PDL_PAID,
            retry: PDL_RETRY,
        }
    }
}

/// The PDL adapter.
#[derive(Debug, Clone)]
pub struct PdlProvider {
    http: reqwest::Client,
    /// Shared by clones, so every lookup of a deployment is governed together.
    governor: Arc<RateGovernor>,
    config: PdlConfig,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Answer {
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
        Ok(Self {
            http,
            governor: Arc::new(RateGovernor::new(config.rate)),
            config,
        })
    }

    /// One request, no retry: a free [`Lookup`] for 404, the answer for 200 (billed even when
    /// its body is then unreadable), the rest failures classified for the retry policy.
    async fn call(&self, domain: &str) -> Result<Lookup, Failure<ProviderError>> {
        let unavailable = |message: String| {
            Failure::retry(ProviderError::Unavailable {
                provider: "pdl".into(),
                message,
            })
        };
        let permit = self.governor.acquire(false).await;
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
        drop(permit);
        let status = response.status().as_u16();
        match status {
            200 => {}
            404 => return Ok(Lookup::free(None)),
            429 => {
                let after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                return Err(Failure::retry_after(
                    ProviderError::RateLimited {
                        provider: "pdl".into(),
                    },
                    after,
                ));
            }
            s if s == 408 || (s >= 500 && s != 501) => {
                return Err(unavailable(format!("HTTP {s}")));
            }
            s => {
                return Err(Failure::give_up(ProviderError::Rejected {
                    provider: "pdl".into(),
                    message: format!("HTTP {s}"),
                }));
            }
        }
        // A 200 is billed even when its body is then unreadable: never ask again for it.
        match response.json::<Answer>().await {
            Ok(answer) => Ok(Lookup {
                firmographics: self.firmographics(answer),
                origin: Origin::Call { billed: true },
                cacheable: true,
            }),
            Err(e) => {
                tracing::warn!(provider = "pdl", error = %e, "Billed answer unreadable; lead scored without it, asked again next run.");
                // Not remembered: the provider gave no verdict, and a cached "no match" would
                // keep the lead unenriched for a week.
                Ok(Lookup {
                    firmographics: None,
                    origin: Origin::Call { billed: true },
                    cacheable: false,
                })
            }
        }
    }

    pub(crate) fn firmographics(&self, answer: Answer) -> Option<Firmographics> {
        let likelihood = answer.likelihood.unwrap_or(0);
        if likelihood < self.config.min_likelihood {
            return None;
        }
        let source = Provenance {
            provider: "pdl".into(),
            likelihood: Some(likelihood),
            fetched_at: Some(Utc::now()),
        };
        let sourced = |v| Sourced::new(v, source.clone());
        Some(Firmographics {
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
        })
    }
}

impl FirmographicProvider for PdlProvider {
    fn name(&self) -> &str {
        "pdl"
    }

    async fn lookup(&self, domain: &str) -> Result<Lookup, ProviderError> {
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
        self.config
            .retry
            .run("pdl enrich", || self.call(domain))
            .await
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
