//! What an operator checks before a first run (`leadsync doctor`): the token's scopes, the
//! account's rate limits as HubSpot's headers state them, and the requests this client made.

use crate::client::HubSpotCrm;
use leadsync_domain::ports::CrmError;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// The scopes a private app needs for leadsync, each with what it is for.
pub const REQUIRED_SCOPES: &[(&str, &str)] = &[
    ("crm.objects.contacts.read", "pull contacts"),
    (
        "crm.objects.contacts.write",
        "push stage, score and reasons",
    ),
    ("crm.objects.companies.read", "read each contact's company"),
    ("crm.objects.deals.read", "read each contact's deals"),
    (
        "crm.schemas.contacts.read",
        "check the contact properties leadsync reads",
    ),
    (
        "crm.schemas.contacts.write",
        "create leadsync's own contact properties on the first run",
    ),
    (
        "crm.schemas.companies.read",
        "check the company properties the criteria read",
    ),
    (
        "crm.schemas.deals.read",
        "check the deal properties the criteria read",
    ),
];

/// What HubSpot says about a private app's token
/// (`POST /oauth/v2/private-apps/get/access-token-info`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    #[serde(default)]
    pub hub_id: Option<u64>,
    #[serde(default)]
    pub app_id: Option<u64>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl TokenInfo {
    /// The required scopes the token lacks, with what each is for.
    pub fn missing(&self) -> Vec<(&'static str, &'static str)> {
        REQUIRED_SCOPES
            .iter()
            .filter(|(scope, _)| !self.scopes.iter().any(|s| s == scope))
            .copied()
            .collect()
    }
}

/// Requests this client sent, and the account's limits as the last answer's
/// `X-HubSpot-RateLimit-*` headers gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests sent (every attempt, retries included).
    pub requests: u64,
    /// Requests allowed per interval (`-Max`): 100 Free/Starter, 190 Professional/Enterprise.
    pub per_interval: Option<u64>,
    pub interval_ms: Option<u64>,
    /// The day's allowance (`-Daily`) and what is left of it (`-Daily-Remaining`).
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
}

impl Usage {
    /// The tier HubSpot's limits name, for people.
    pub fn tier(&self) -> Option<&'static str> {
        match (self.per_interval?, self.interval_ms?) {
            (100, 10_000) => Some("Free or Starter (100 requests per 10 s)"),
            (190, 10_000) => Some("Professional or Enterprise (190 requests per 10 s)"),
            (n, 10_000) if n > 190 => Some("raised by an API add-on"),
            _ => None,
        }
    }
}

/// The counters behind [`Usage`], shared by a client's clones. `u64::MAX` is "not seen".
#[derive(Debug)]
pub(crate) struct UsageCounter {
    requests: AtomicU64,
    per_interval: AtomicU64,
    interval_ms: AtomicU64,
    daily: AtomicU64,
    daily_remaining: AtomicU64,
}

impl Default for UsageCounter {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            per_interval: AtomicU64::new(u64::MAX),
            interval_ms: AtomicU64::new(u64::MAX),
            daily: AtomicU64::new(u64::MAX),
            daily_remaining: AtomicU64::new(u64::MAX),
        }
    }
}

impl UsageCounter {
    pub(crate) fn sent(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe(&self, headers: &reqwest::header::HeaderMap) {
        for (name, slot) in [
            ("x-hubspot-ratelimit-max", &self.per_interval),
            (
                "x-hubspot-ratelimit-interval-milliseconds",
                &self.interval_ms,
            ),
            ("x-hubspot-ratelimit-daily", &self.daily),
            ("x-hubspot-ratelimit-daily-remaining", &self.daily_remaining),
        ] {
            if let Some(v) = crate::client::header_u64(headers, name) {
                slot.store(v.min(u64::MAX - 1), Ordering::Relaxed);
            }
        }
    }

    fn read(&self) -> Usage {
        let seen = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|v| *v != u64::MAX);
        Usage {
            requests: self.requests.load(Ordering::Relaxed),
            per_interval: seen(&self.per_interval),
            interval_ms: seen(&self.interval_ms),
            daily: seen(&self.daily),
            daily_remaining: seen(&self.daily_remaining),
        }
    }
}

impl HubSpotCrm {
    /// Requests sent so far and the account's limits as last stated.
    pub fn usage(&self) -> Usage {
        self.usage_counter().read()
    }

    /// The token's account and scopes.
    ///
    /// # Errors
    /// [`CrmError::Unauthorized`] for a token HubSpot does not know; [`CrmError`] otherwise.
    pub async fn token_info(&self) -> Result<TokenInfo, CrmError> {
        let body = serde_json::json!({ "tokenKey": self.token_text() });
        let (_, info) = self
            .post_parsed::<TokenInfo, _>("/oauth/v2/private-apps/get/access-token-info", &body)
            .await?;
        Ok(info)
    }
}
