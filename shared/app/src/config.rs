//! Configuration from the environment, validated at cold start. Errors name the key.
//!
//! Secrets come as a value (local runs: `CRM_TOKEN`) or, deployed, as a Secrets Manager ARN
//! (`CRM_TOKEN_SECRET_ARN`) fetched once at cold start by [`crate::secrets`].

use chrono::Duration;
use secrecy::SecretString;
use std::path::PathBuf;

pub const TABLE_NAME: &str = "TABLE_NAME";
pub const BUCKET_NAME: &str = "BUCKET_NAME";
pub const CRM_KIND: &str = "CRM_KIND";
pub const CRM_BASE_URL: &str = "CRM_BASE_URL";
pub const CRM_TOKEN: &str = "CRM_TOKEN";
pub const SF_CLIENT_ID: &str = "SF_CLIENT_ID";
pub const SF_CLIENT_SECRET: &str = "SF_CLIENT_SECRET";
pub const SF_CLIENT_SECRET_ARN: &str = "SF_CLIENT_SECRET_ARN";
pub const SF_DAILY_BUDGET_SHARE: &str = "SF_DAILY_BUDGET_SHARE";
pub const SF_PAGE_SIZE: &str = "SF_PAGE_SIZE";
pub const SF_BULK_THRESHOLD: &str = "SF_BULK_THRESHOLD";
pub const SF_USERNAME: &str = "SF_USERNAME";
pub const SF_PRIVATE_KEY: &str = "SF_PRIVATE_KEY";
pub const SF_PRIVATE_KEY_ARN: &str = "SF_PRIVATE_KEY_ARN";
pub const SF_JWT_AUDIENCE: &str = "SF_JWT_AUDIENCE";
pub const CRM_PAGE_SIZE: &str = "CRM_PAGE_SIZE";
pub const CRM_PULL_LANES: &str = "CRM_PULL_LANES";
pub const CRM_RATE_TIER: &str = "CRM_RATE_TIER";
pub const CRITERIA_FILE: &str = "CRITERIA_FILE";
pub const LOOKBACK_MINUTES: &str = "LOOKBACK_MINUTES";
pub const INDEX_LAG_MINUTES: &str = "INDEX_LAG_MINUTES";
pub const MAX_REJECT_RATIO: &str = "MAX_REJECT_RATIO";
pub const ENRICH_PDL_URL: &str = "ENRICH_PDL_URL";
pub const ENRICH_PDL_API_KEY: &str = "ENRICH_PDL_API_KEY";
pub const ENRICH_MIN_LIKELIHOOD: &str = "ENRICH_MIN_LIKELIHOOD";
pub const ENRICH_PDL_RATE_PER_MINUTE: &str = "ENRICH_PDL_RATE_PER_MINUTE";
pub const ENRICH_CACHE_DAYS: &str = "ENRICH_CACHE_DAYS";
pub const ENRICH_HOLD_HOURS: &str = "ENRICH_HOLD_HOURS";
pub const ENRICH_BUDGET_CREDITS: &str = "ENRICH_BUDGET_CREDITS";
pub const ENRICH_DATASET_KEY: &str = "ENRICH_DATASET_KEY";
pub const CRM_TOKEN_SECRET_ARN: &str = "CRM_TOKEN_SECRET_ARN";
pub const ENRICH_PDL_API_KEY_SECRET_ARN: &str = "ENRICH_PDL_API_KEY_SECRET_ARN";
pub const SLICE_QUEUE_URL: &str = "SLICE_QUEUE_URL";
pub const EVENT_BUS_NAME: &str = "EVENT_BUS_NAME";
pub const INLINE_MAX_CONTACTS: &str = "INLINE_MAX_CONTACTS";
pub const SLICE_CONTACTS: &str = "SLICE_CONTACTS";
pub const SLICE_CONCURRENCY: &str = "SLICE_CONCURRENCY";
pub const LEASE_MINUTES: &str = "LEASE_MINUTES";
pub const HUBSPOT_APP_SECRET: &str = "HUBSPOT_APP_SECRET";
pub const HUBSPOT_APP_SECRET_ARN: &str = "HUBSPOT_APP_SECRET_ARN";
pub const RESCORE_WAIT_SECONDS: &str = "RESCORE_WAIT_SECONDS";
pub const RESCORE_RETRY_SECONDS: &str = "RESCORE_RETRY_SECONDS";

/// Every key this function reads, for documentation and `--help` output.
pub const KEYS: &[(&str, &str)] = &[
    (TABLE_NAME, "DynamoDB table (required)"),
    (
        BUCKET_NAME,
        "S3 bucket for snapshots and quarantine (required)",
    ),
    (CRM_KIND, "the CRM: hubspot (default) or salesforce"),
    (
        CRM_BASE_URL,
        "HubSpot API base URL (default https://api.hubapi.com); Salesforce: the org's My Domain login URL (required)",
    ),
    (
        SF_CLIENT_ID,
        "Salesforce: the connected app's consumer key (required with CRM_KIND=salesforce)",
    ),
    (
        SF_CLIENT_SECRET,
        "Salesforce: its consumer secret (local runs; or SF_CLIENT_SECRET_ARN)",
    ),
    (
        SF_DAILY_BUDGET_SHARE,
        "Salesforce: share of the org's daily API allocation a run may use, 0-1 (default 0.5)",
    ),
    (
        SF_PAGE_SIZE,
        "Salesforce: records per query page, 200-2000 (default 2000)",
    ),
    (
        SF_USERNAME,
        "Salesforce: set for the JWT bearer flow, the pre-authorized user the session acts as",
    ),
    (
        SF_PRIVATE_KEY,
        "Salesforce JWT bearer flow: the private key, PEM (local runs; or SF_PRIVATE_KEY_ARN)",
    ),
    (
        SF_JWT_AUDIENCE,
        "Salesforce JWT bearer flow: the assertion's audience (default https://login.salesforce.com)",
    ),
    (
        SF_BULK_THRESHOLD,
        "Salesforce: a first sync of at least this many Leads in a scope reads them through a Bulk API 2.0 query job; 0 never (default 10000)",
    ),
    (
        CRM_TOKEN,
        "HubSpot private-app token (local runs; or CRM_TOKEN_SECRET_ARN)",
    ),
    (
        CRM_TOKEN_SECRET_ARN,
        "Secrets Manager ARN of the HubSpot token, fetched at cold start",
    ),
    (
        SLICE_QUEUE_URL,
        "SQS queue for slices of a fanned-out run (without it every run is inline)",
    ),
    (
        EVENT_BUS_NAME,
        "EventBridge bus for news about leads (a lead reached SQL, sales rejected one); without it none is sent",
    ),
    (
        INLINE_MAX_CONTACTS,
        "run inline up to this many contacts, fan out above (default 20000)",
    ),
    (
        SLICE_CONTACTS,
        "about this many contacts per slice (default 20000)",
    ),
    (
        SLICE_CONCURRENCY,
        "slices running at once (the queue's maximum concurrency); each slice worker gets 1/N of the CRM rate, an inline run all of it (default 1)",
    ),
    (
        HUBSPOT_APP_SECRET,
        "rescore webhook: the HubSpot app's client secret, to verify X-HubSpot-Signature-v3 (or HUBSPOT_APP_SECRET_ARN)",
    ),
    (
        RESCORE_WAIT_SECONDS,
        "rescore: wait this long for a busy lease before answering busy (default 10)",
    ),
    (
        RESCORE_RETRY_SECONDS,
        "a queued re-score that finds the lease held comes back after this, doubled per attempt up to 900, for 24 h (default 60)",
    ),
    (
        LEASE_MINUTES,
        "a run's lease lasts this long unless renewed by a slice (default 20)",
    ),
    (CRM_PAGE_SIZE, "search page size 1-200 (default 200)"),
    (
        CRM_PULL_LANES,
        "id ranges one walk searches at once, 1-8 (default 4)",
    ),
    (
        CRM_RATE_TIER,
        "HubSpot API limit tier: free (100 per 10 s) or pro (190 per 10 s); default free",
    ),
    (
        CRITERIA_FILE,
        "criteria TOML file (default: the bundled example agreement)",
    ),
    (
        LOOKBACK_MINUTES,
        "re-read this far behind the watermark (default 10)",
    ),
    (
        INDEX_LAG_MINUTES,
        "keep the watermark this far behind now (default 2)",
    ),
    (
        MAX_REJECT_RATIO,
        "fail the run above this share of quarantined records (default 0.2)",
    ),
    (
        ENRICH_PDL_URL,
        "People Data Labs-compatible enrichment API base URL (enrichment off when unset)",
    ),
    (
        ENRICH_PDL_API_KEY,
        "its API key (or ENRICH_PDL_API_KEY_SECRET_ARN; one is required with ENRICH_PDL_URL)",
    ),
    (
        ENRICH_PDL_API_KEY_SECRET_ARN,
        "Secrets Manager ARN of the provider key, fetched at cold start",
    ),
    (
        ENRICH_MIN_LIKELIHOOD,
        "ignore matches below this likelihood, 1-10 (default 6)",
    ),
    (
        ENRICH_PDL_RATE_PER_MINUTE,
        "the provider plan's request limit per minute, kept client-side (PDL: 10 free, 1000 paid; default 1000)",
    ),
    (
        ENRICH_CACHE_DAYS,
        "keep provider matches this many days in the cache (default 30)",
    ),
    (
        ENRICH_BUDGET_CREDITS,
        "provider credits one run may spend (default: no limit)",
    ),
    (
        ENRICH_HOLD_HOURS,
        "a nightly run starting to read within this many hours of now (or a first sync) holds leads a provider could not enrich for a passing reason for the next run, rather than scoring them without (default 48; 0: never)",
    ),
    (
        ENRICH_DATASET_KEY,
        "S3 key (in BUCKET_NAME) of a .jsonl or .csv firmographic dataset, asked first (optional)",
    ),
];

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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn required_keys_are_named() {
        let err = config(&[(BUCKET_NAME, "b"), (CRM_TOKEN, "t")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable TABLE_NAME is required"
        );
    }

    #[test]
    fn invalid_values_are_named_with_the_value() {
        let err = config(&[
            (TABLE_NAME, "t"),
            (BUCKET_NAME, "b"),
            (CRM_TOKEN, "t"),
            (CRM_PAGE_SIZE, "500"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("CRM_PAGE_SIZE = \"500\""), "{err}");
        let err = config(&[
            (TABLE_NAME, "t"),
            (BUCKET_NAME, "b"),
            (CRM_TOKEN, "t"),
            (CRM_BASE_URL, "http://example.com"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("CRM_BASE_URL"), "{err}");
    }

    #[test]
    fn rate_tier() {
        let base = [(TABLE_NAME, "t"), (BUCKET_NAME, "b"), (CRM_TOKEN, "t")];
        assert_eq!(config(&base).unwrap().rate_per_10s, 100);
        assert_eq!(
            config(&[base[0], base[1], base[2], (CRM_RATE_TIER, "pro")])
                .unwrap()
                .rate_per_10s,
            190
        );
        let err = config(&[base[0], base[1], base[2], (CRM_RATE_TIER, "enterprise")]).unwrap_err();
        assert!(err.to_string().contains("CRM_RATE_TIER"), "{err}");
    }

    #[test]
    fn salesforce_signs_in_by_client_credentials_or_jwt_as_configured() {
        let org = [
            (TABLE_NAME, "t"),
            (BUCKET_NAME, "b"),
            (CRM_KIND, "salesforce"),
            (CRM_BASE_URL, "https://acme.my.salesforce.com"),
            (SF_CLIENT_ID, "key"),
        ];
        let cc = config(&[&org[..], &[(SF_CLIENT_SECRET_ARN, "arn:secret")]].concat()).unwrap();
        let sf = cc.salesforce.unwrap();
        assert_eq!(sf.jwt, None);
        assert_eq!(sf.bulk_threshold, 10_000);
        assert!(matches!(&cc.crm_token, SecretSource::SecretsManager(a) if a == "arn:secret"));
        // The template passes the unused flow's variables empty.
        let jwt = config(
            &[
                &org[..],
                &[
                    (SF_USERNAME, "integration@acme.com"),
                    (SF_CLIENT_SECRET_ARN, ""),
                    (SF_PRIVATE_KEY_ARN, "arn:key"),
                    (SF_JWT_AUDIENCE, "https://test.salesforce.com"),
                    (SF_BULK_THRESHOLD, "0"),
                ],
            ]
            .concat(),
        )
        .unwrap();
        let sf = jwt.salesforce.unwrap();
        assert_eq!(
            sf.jwt,
            Some(JwtSettings {
                username: "integration@acme.com".into(),
                audience: "https://test.salesforce.com".into(),
            })
        );
        assert_eq!(sf.bulk_threshold, 0);
        assert!(matches!(&jwt.crm_token, SecretSource::SecretsManager(a) if a == "arn:key"));
        let no_key =
            config(&[&org[..], &[(SF_USERNAME, "integration@acme.com")]].concat()).unwrap_err();
        assert_eq!(
            no_key.to_string(),
            "environment variable SF_PRIVATE_KEY is required"
        );
    }

    #[test]
    fn secrets_come_as_a_value_or_an_arn() {
        let base = [(TABLE_NAME, "t"), (BUCKET_NAME, "b")];
        let c = config(&[
            base[0],
            base[1],
            (CRM_TOKEN_SECRET_ARN, "arn:aws:secretsmanager:x"),
        ])
        .unwrap();
        assert!(
            matches!(&c.crm_token, SecretSource::SecretsManager(a) if a == "arn:aws:secretsmanager:x")
        );
        let err = config(&base).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable CRM_TOKEN is required"
        );
    }

    #[test]
    fn the_rate_is_shared_by_concurrent_slices_and_an_inline_run_has_it_all() {
        let inline = config(&[
            (TABLE_NAME, "t"),
            (BUCKET_NAME, "b"),
            (CRM_TOKEN, "x"),
            (CRM_RATE_TIER, "pro"),
            (SLICE_CONCURRENCY, "4"),
        ])
        .unwrap();
        // nightly-sync and rescore run inline alone under the lease: the whole limit.
        assert_eq!(
            (inline.rate_per_slice(), inline.search_per_slice()),
            (190, 5)
        );
        // Each of the 4 slice workers that may run at once takes a quarter.
        let c = inline.for_slice_worker();
        assert_eq!(c.rate_per_slice(), 47);
        assert_eq!(c.provider_rate_per_minute(), None, "no provider configured");
        // …and so is the account's search limit: 5 per second across all slices.
        assert_eq!(c.search_per_slice(), 1);
        assert_eq!(c.pull_lanes, 5);
        assert!(
            config(&[
                (TABLE_NAME, "t"),
                (BUCKET_NAME, "b"),
                (CRM_TOKEN, "x"),
                (SLICE_CONCURRENCY, "0")
            ])
            .is_err()
        );
    }

    #[test]
    fn the_provider_s_plan_is_shared_by_concurrent_slices_too() {
        let inline = config(&[
            (TABLE_NAME, "t"),
            (BUCKET_NAME, "b"),
            (CRM_TOKEN, "x"),
            (ENRICH_PDL_URL, "https://api.peopledatalabs.com"),
            (ENRICH_PDL_API_KEY, "k"),
            (ENRICH_PDL_RATE_PER_MINUTE, "100"),
            (SLICE_CONCURRENCY, "3"),
        ])
        .unwrap();
        assert_eq!(inline.provider_rate_per_minute(), Some(100));
        assert_eq!(
            inline.for_slice_worker().provider_rate_per_minute(),
            Some(33)
        );
    }

    #[test]
    fn defaults() {
        let c = config(&[
            (TABLE_NAME, "t"),
            (BUCKET_NAME, "b"),
            (CRM_TOKEN, "pat-na1-7f3e"),
        ])
        .unwrap();
        assert_eq!(
            (c.page_size, c.lookback, c.index_lag),
            (200, Duration::minutes(10), Duration::minutes(2))
        );
        assert!(
            !format!("{c:?}").contains("pat-na1-7f3e"),
            "the token never shows in Debug output"
        );
    }
}
