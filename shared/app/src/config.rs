//! Configuration from the environment, validated at cold start. Errors name the key.
//!
//! Secrets come as a value (local runs: `CRM_TOKEN`) or, deployed, as a Secrets Manager ARN
//! (`CRM_TOKEN_SECRET_ARN`) fetched once at cold start by [`crate::secrets`].

use chrono::Duration;
use secrecy::SecretString;
use std::path::PathBuf;

mod keys;
pub use keys::*;

/// A configuration value is missing or invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {key} = {value:?} is invalid: {why}")]
    Invalid {
        key: &'static str,
        value: String,
        why: String,
    },
}

/// Which CRM a deployment serves. Only configuration and wiring name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmKind {
    HubSpot,
    Salesforce,
}

impl CrmKind {
    /// The namespace of the CRM's records in the table (`LEAD#<name>#…`, `LINKS#<name>`).
    pub fn name(self) -> &'static str {
        match self {
            CrmKind::HubSpot => "hubspot",
            CrmKind::Salesforce => "salesforce",
        }
    }

    /// The watermark of nightly runs.
    pub fn watermark_key(self) -> String {
        format!("{}#contacts", self.name())
    }

    /// From `CRM_KIND` (absent: HubSpot).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for another value.
    pub fn from_value(raw: Option<String>) -> Result<Self, ConfigError> {
        match raw.as_deref().map(str::trim) {
            None | Some("") | Some("hubspot") => Ok(CrmKind::HubSpot),
            Some("salesforce") => Ok(CrmKind::Salesforce),
            Some(other) => Err(ConfigError::Invalid {
                key: CRM_KIND,
                value: other.to_owned(),
                why: "hubspot or salesforce".into(),
            }),
        }
    }
}

/// A Salesforce org's connected app (`CRM_KIND=salesforce`); its secret is
/// [`Config::crm_token`].
#[derive(Debug, Clone, PartialEq)]
pub struct SalesforceSettings {
    pub client_id: String,
    /// Set: the JWT bearer flow (the secret is the private key), else client credentials.
    pub jwt: Option<JwtSettings>,
    pub daily_budget_share: f64,
    pub page_size: u32,
    /// A first sync of at least this many Leads in a scope goes through Bulk API 2.0 (0:
    /// never).
    pub bulk_threshold: u64,
}

/// The JWT bearer flow's user and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    pub username: String,
    pub audience: String,
}

/// A secret as configured: the value itself, or where to fetch it.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Value(SecretString),
    /// A Secrets Manager ARN (or name).
    SecretsManager(String),
}

/// The enrichment provider's settings.
#[derive(Debug, Clone)]
pub struct PdlSettings {
    pub base_url: String,
    pub api_key: SecretSource,
    pub min_likelihood: u8,
    /// The plan's requests per minute.
    pub rate_per_minute: u32,
}

/// The function's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub crm_kind: CrmKind,
    pub table: String,
    pub bucket: String,
    pub crm_base_url: String,
    /// The CRM's secret: HubSpot's private-app token, or the Salesforce connected app's
    /// consumer secret.
    pub crm_token: SecretSource,
    /// Set when `crm_kind` is Salesforce.
    pub salesforce: Option<SalesforceSettings>,
    pub page_size: u32,
    /// Id-range lanes one pull walk searches at once.
    pub pull_lanes: u32,
    /// Requests allowed per rolling 10 s (100 Free/Starter, 190 Professional/Enterprise).
    pub rate_per_10s: u32,
    pub criteria_file: Option<PathBuf>,
    pub lookback: Duration,
    pub index_lag: Duration,
    pub max_reject_ratio: f64,
    /// The enrichment provider, when configured.
    pub pdl: Option<PdlSettings>,
    pub cache_days: i64,
    pub enrich_budget: Option<u64>,
    /// Hold leads a provider failed to enrich for a passing reason while the run reads from
    /// within this long of now ([`leadsync_pipeline::sync::SyncInput::enrich_hold`]); `None`: never.
    pub enrich_hold: Option<Duration>,
    pub dataset_key: Option<String>,
    /// Where fanned-out slices go; `None`: every run inline.
    pub slice_queue_url: Option<String>,
    /// Where news about leads goes; `None`: nowhere.
    pub event_bus: Option<String>,
    pub inline_max: u64,
    pub slice_contacts: u64,
    pub slice_concurrency: u32,
    /// How many processes share the account's CRM limits: 1 (an inline run, alone under the
    /// lease, or slices pumped through one client), or `slice_concurrency` in the slice
    /// worker, where each invocation is its own process with its own governor.
    pub rate_share: u32,
    pub lease_minutes: i64,
    /// The HubSpot app secret that signs webhooks (rescore's webhook URL only).
    pub webhook_secret: Option<SecretSource>,
    pub rescore_wait_secs: i64,
    /// A deferred re-score's first delay when the lease is held.
    pub rescore_retry_secs: i64,
}

/// A secret from its value key or its ARN key; the value wins (local runs), one is required.
fn secret(
    get: &impl Fn(&str) -> Option<String>,
    value_key: &'static str,
    arn_key: &'static str,
) -> Result<SecretSource, ConfigError> {
    let present = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    match (present(value_key), present(arn_key)) {
        (Some(value), _) => Ok(SecretSource::Value(SecretString::from(value))),
        (None, Some(arn)) => Ok(SecretSource::SecretsManager(arn)),
        (None, None) => Err(ConfigError::Missing(value_key)),
    }
}

impl Config {
    /// The slice worker's configuration: up to `slice_concurrency` invocations run at once,
    /// each a process of its own, so each takes its share of the account's limits.
    #[must_use]
    pub fn for_slice_worker(mut self) -> Self {
        self.rate_share = self.slice_concurrency.max(1);
        self
    }

    /// The enrichment provider's requests per minute this process may make: the plan's
    /// limit shared the same way as the CRM's (at least one each).
    pub fn provider_rate_per_minute(&self) -> Option<u32> {
        self.pdl
            .as_ref()
            .map(|p| (p.rate_per_minute / self.rate_share.max(1)).max(1))
    }

    /// The CRM requests per 10 s this process may make: the account's limit, divided among
    /// the processes that share it ([`Config::rate_share`]).
    pub fn rate_per_slice(&self) -> u32 {
        (self.rate_per_10s / self.rate_share.max(1)).max(1)
    }

    /// The searches per second this process may make: HubSpot's 5 per account, shared the
    /// same way (at least one each, which is why the template allows at most 5 slices at once).
    pub fn search_per_slice(&self) -> u32 {
        (leadsync_hubspot::RateLimits::FREE.search_per_second / self.rate_share.max(1)).max(1)
    }

    /// Read from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad key.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read from any key → value lookup (tests, the CLI).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad key.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |key: &'static str| {
            get(key)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(key))
        };
        fn parsed<T: std::str::FromStr>(
            key: &'static str,
            raw: Option<String>,
            default: T,
            ok: impl Fn(&T) -> bool,
            why: &str,
        ) -> Result<T, ConfigError> {
            match raw {
                None => Ok(default),
                Some(value) => match value.trim().parse::<T>() {
                    Ok(v) if ok(&v) => Ok(v),
                    _ => Err(ConfigError::Invalid {
                        key,
                        value,
                        why: why.to_owned(),
                    }),
                },
            }
        }
        let crm_kind = CrmKind::from_value(get(CRM_KIND))?;
        let base_url = match crm_kind {
            CrmKind::HubSpot => {
                get(CRM_BASE_URL).unwrap_or_else(|| "https://api.hubapi.com".to_owned())
            }
            CrmKind::Salesforce => required(CRM_BASE_URL)?,
        };
        let (crm_token, salesforce) = match crm_kind {
            CrmKind::HubSpot => (secret(&get, CRM_TOKEN, CRM_TOKEN_SECRET_ARN)?, None),
            CrmKind::Salesforce => {
                let username = get(SF_USERNAME).filter(|u| !u.trim().is_empty());
                let jwt = username.map(|username| JwtSettings {
                    username,
                    audience: get(SF_JWT_AUDIENCE)
                        .filter(|a| !a.trim().is_empty())
                        .unwrap_or_else(|| "https://login.salesforce.com".to_owned()),
                });
                let secret = match &jwt {
                    Some(_) => secret(&get, SF_PRIVATE_KEY, SF_PRIVATE_KEY_ARN)?,
                    None => secret(&get, SF_CLIENT_SECRET, SF_CLIENT_SECRET_ARN)?,
                };
                (
                    secret,
                    Some(SalesforceSettings {
                        client_id: required(SF_CLIENT_ID)?,
                        jwt,
                        daily_budget_share: parsed(
                            SF_DAILY_BUDGET_SHARE,
                            get(SF_DAILY_BUDGET_SHARE),
                            0.5,
                            |v: &f64| *v > 0.0 && *v <= 1.0,
                            "a share above 0 and at most 1",
                        )?,
                        page_size: parsed(
                            SF_PAGE_SIZE,
                            get(SF_PAGE_SIZE),
                            2_000,
                            |v: &u32| (200..=2_000).contains(v),
                            "a whole number from 200 to 2000",
                        )?,
                        bulk_threshold: parsed(
                            SF_BULK_THRESHOLD,
                            get(SF_BULK_THRESHOLD),
                            10_000,
                            |_: &u64| true,
                            "a whole number (0: never)",
                        )?,
                    }),
                )
            }
        };
        if !(base_url.starts_with("https://")
            || base_url.starts_with("http://127.")
            || base_url.starts_with("http://localhost"))
        {
            return Err(ConfigError::Invalid {
                key: CRM_BASE_URL,
                value: base_url,
                why: "must be https:// (or http:// on loopback)".into(),
            });
        }
        Ok(Self {
            crm_kind,
            table: required(TABLE_NAME)?,
            bucket: required(BUCKET_NAME)?,
            crm_base_url: base_url,
            crm_token,
            salesforce,
            page_size: parsed(
                CRM_PAGE_SIZE,
                get(CRM_PAGE_SIZE),
                200,
                |v| (1..=200).contains(v),
                "a whole number from 1 to 200",
            )?,
            pull_lanes: parsed(
                CRM_PULL_LANES,
                get(CRM_PULL_LANES),
                // HubSpot's search limit is 5 a second: one round of every lane's search is
                // one second's allowance, and pages are 2 rounds (2,000 contacts), not 2 of 4.
                5,
                |v| (1..=8).contains(v),
                "a whole number from 1 to 8",
            )?,
            rate_per_10s: match get(CRM_RATE_TIER).as_deref().map(str::trim) {
                None | Some("") | Some("free") => 100,
                Some("pro") => 190,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        key: CRM_RATE_TIER,
                        value: other.to_owned(),
                        why: "free or pro".into(),
                    });
                }
            },
            criteria_file: get(CRITERIA_FILE)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            lookback: Duration::minutes(parsed(
                LOOKBACK_MINUTES,
                get(LOOKBACK_MINUTES),
                10,
                |v: &i64| *v >= 0,
                "whole minutes, 0 or more",
            )?),
            index_lag: Duration::minutes(parsed(
                INDEX_LAG_MINUTES,
                get(INDEX_LAG_MINUTES),
                2,
                |v: &i64| *v >= 0,
                "whole minutes, 0 or more",
            )?),
            max_reject_ratio: parsed(
                MAX_REJECT_RATIO,
                get(MAX_REJECT_RATIO),
                0.2,
                |v: &f64| (0.0..=1.0).contains(v),
                "a number from 0 to 1",
            )?,
            pdl: match get(ENRICH_PDL_URL).filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(url) => Some(PdlSettings {
                    base_url: url,
                    api_key: secret(&get, ENRICH_PDL_API_KEY, ENRICH_PDL_API_KEY_SECRET_ARN)?,
                    min_likelihood: parsed(
                        ENRICH_MIN_LIKELIHOOD,
                        get(ENRICH_MIN_LIKELIHOOD),
                        6,
                        |v: &u8| (1..=10).contains(v),
                        "a whole number from 1 to 10",
                    )?,
                    rate_per_minute: parsed(
                        ENRICH_PDL_RATE_PER_MINUTE,
                        get(ENRICH_PDL_RATE_PER_MINUTE),
                        1_000,
                        |v: &u32| *v >= 1,
                        "a whole number of requests, 1 or more",
                    )?,
                }),
            },
            cache_days: parsed(
                ENRICH_CACHE_DAYS,
                get(ENRICH_CACHE_DAYS),
                30,
                |v: &i64| *v >= 0,
                "whole days, 0 or more",
            )?,
            dataset_key: get(ENRICH_DATASET_KEY).filter(|v| !v.trim().is_empty()),
            slice_queue_url: get(SLICE_QUEUE_URL).filter(|v| !v.trim().is_empty()),
            event_bus: get(EVENT_BUS_NAME).filter(|v| !v.trim().is_empty()),
            inline_max: parsed(
                INLINE_MAX_CONTACTS,
                get(INLINE_MAX_CONTACTS),
                20_000,
                |_: &u64| true,
                "a whole number of contacts",
            )?,
            slice_contacts: parsed(
                SLICE_CONTACTS,
                get(SLICE_CONTACTS),
                20_000,
                |v: &u64| *v >= 100,
                "a whole number of contacts, 100 or more",
            )?,
            slice_concurrency: parsed(
                SLICE_CONCURRENCY,
                get(SLICE_CONCURRENCY),
                1,
                |v: &u32| (1..=5).contains(v),
                "a whole number from 1 to 5 (HubSpot allows 5 searches per second in all)",
            )?,
            rate_share: 1,
            webhook_secret: secret(&get, HUBSPOT_APP_SECRET, HUBSPOT_APP_SECRET_ARN).ok(),
            rescore_wait_secs: parsed(
                RESCORE_WAIT_SECONDS,
                get(RESCORE_WAIT_SECONDS),
                10,
                |v: &i64| (0..=600).contains(v),
                "whole seconds from 0 to 600",
            )?,
            rescore_retry_secs: parsed(
                RESCORE_RETRY_SECONDS,
                get(RESCORE_RETRY_SECONDS),
                60,
                |v: &i64| (0..=900).contains(v),
                "whole seconds from 0 to 900 (SQS's longest delay)",
            )?,
            lease_minutes: parsed(
                LEASE_MINUTES,
                get(LEASE_MINUTES),
                20,
                |v: &i64| (1..=24 * 60).contains(v),
                "whole minutes from 1 to 1440",
            )?,
            enrich_hold: match parsed(
                ENRICH_HOLD_HOURS,
                get(ENRICH_HOLD_HOURS),
                48,
                |v: &i64| (0..=720).contains(v),
                "whole hours from 0 to 720",
            )? {
                0 => None,
                hours => Some(Duration::hours(hours)),
            },
            enrich_budget: match get(ENRICH_BUDGET_CREDITS).filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(v) => Some(v.trim().parse::<u64>().map_err(|_| ConfigError::Invalid {
                    key: ENRICH_BUDGET_CREDITS,
                    value: v.clone(),
                    why: "a whole number of credits".into(),
                })?),
            },
        })
    }
}

#[cfg(test)]
mod tests;
