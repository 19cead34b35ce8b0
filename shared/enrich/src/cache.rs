//! `Cached`: a provider in front of which answers are remembered in a [`FirmographicCache`]
//! (DynamoDB in production) — matches for `ttl`, no-matches for the shorter `negative_ttl`.
//! Errors are never cached, and a failing cache only costs a provider call.

use chrono::{Duration, Utc};
use leadsync_domain::Firmographics;
use leadsync_domain::ports::{FirmographicCache, FirmographicProvider, ProviderError};

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Cached<P, C> {
    inner: P,
    cache: C,
    ttl: Duration,
    negative_ttl: Duration,
}

impl<P, C> Cached<P, C> {
    /// Matches kept 30 days, no-matches 7, unless changed with [`Cached::with_ttls`].
    pub fn new(inner: P, cache: C) -> Self {
        Self {
            inner,
            cache,
            ttl: Duration::days(30),
            negative_ttl: Duration::days(7),
        }
    }

    pub fn with_ttls(mut self, ttl: Duration, negative_ttl: Duration) -> Self {
        self.ttl = ttl;
        self.negative_ttl = negative_ttl;
        self
    }
}

impl<P: FirmographicProvider, C: FirmographicCache> FirmographicProvider for Cached<P, C> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn lookup(&self, domain: &str) -> Result<Option<Firmographics>, ProviderError> {
        let now = Utc::now();
        match self.cache.get(domain, self.inner.name(), now).await {
            Ok(Some(answer)) => return Ok(answer),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, provider = self.inner.name(), "Firmographic cache unreadable; asking the provider.")
            }
        }
        let answer = self.inner.lookup(domain).await?;
        let expires = now
            + if answer.is_some() {
                self.ttl
            } else {
                self.negative_ttl
            };
        if let Err(error) = self
            .cache
            .put(domain, self.inner.name(), answer.as_ref(), expires)
            .await
        {
            tracing::warn!(%error, provider = self.inner.name(), "Could not cache a firmographic answer.");
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadsync_domain::fakes::{FakeFirmographicCache, FakeProvider};
    use leadsync_domain::{Provenance, Sourced};
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn answers_are_remembered_and_errors_are_not() {
        let firmo = Firmographics {
            employees: Some(Sourced::new(42, Provenance::crm())),
            ..Firmographics::default()
        };
        let provider = FakeProvider::new("p", [("acme.com".to_owned(), firmo.clone())]);
        provider.fail_next(
            1,
            ProviderError::RateLimited {
                provider: "p".into(),
            },
        );
        let cached = Cached::new(&provider, FakeFirmographicCache::new());
        assert!(cached.lookup("acme.com").await.is_err());
        assert_eq!(
            cached.lookup("acme.com").await.unwrap(),
            Some(firmo.clone())
        );
        assert_eq!(cached.lookup("acme.com").await.unwrap(), Some(firmo));
        assert_eq!(cached.lookup("none.com").await.unwrap(), None);
        assert_eq!(cached.lookup("none.com").await.unwrap(), None);
        assert_eq!(
            provider.calls.load(Ordering::Relaxed),
            3,
            "error, then one call per domain"
        );
    }

    #[tokio::test]
    async fn expired_entries_are_asked_again() {
        let provider = FakeProvider::new("p", []);
        let cached = Cached::new(&provider, FakeFirmographicCache::new())
            .with_ttls(Duration::days(1), Duration::zero());
        cached.lookup("none.com").await.unwrap();
        cached.lookup("none.com").await.unwrap();
        assert_eq!(
            provider.calls.load(Ordering::Relaxed),
            2,
            "a zero negative TTL remembers nothing"
        );
    }
}
