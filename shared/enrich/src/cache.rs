//! `Cached`: a provider in front of which answers are remembered in a [`FirmographicCache`]
//! (DynamoDB in production) — matches for `ttl`, no-matches for the shorter `negative_ttl`.
//! Errors are never cached, and a failing cache only costs a provider call.

use chrono::{Duration, Utc};
use leadsync_domain::Firmographics;
use leadsync_domain::ports::{
    FirmographicCache, FirmographicProvider, Lookup, Origin, ProviderError,
};
use std::collections::HashMap;

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

    async fn lookup(&self, domain: &str) -> Result<Lookup, ProviderError> {
        match self.cache.get(domain, self.inner.name(), Utc::now()).await {
            Ok(Some(firmographics)) => {
                return Ok(Lookup {
                    firmographics,
                    origin: Origin::Cache,
                    cacheable: true,
                });
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, provider = self.inner.name(), "Firmographic cache unreadable; asking the provider.")
            }
        }
        self.lookup_uncached(domain).await
    }

    async fn cached(&self, domains: &[String]) -> HashMap<String, Option<Firmographics>> {
        match self
            .cache
            .get_many(domains, self.inner.name(), Utc::now())
            .await
        {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, provider = self.inner.name(), domains = domains.len(), "Firmographic cache unreadable; asking the provider.");
                HashMap::new()
            }
        }
    }

    async fn lookup_uncached(&self, domain: &str) -> Result<Lookup, ProviderError> {
        let now = Utc::now();
        let answer = self.inner.lookup(domain).await?;
        if !answer.cacheable {
            return Ok(answer);
        }
        let expires = now
            + if answer.firmographics.is_some() {
                self.ttl
            } else {
                self.negative_ttl
            };
        if let Err(error) = self
            .cache
            .put(
                domain,
                self.inner.name(),
                answer.firmographics.as_ref(),
                expires,
            )
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
    use leadsync_domain::{Firmographics, Provenance, Sourced};
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
        let first = cached.lookup("acme.com").await.unwrap();
        assert_eq!(first.firmographics, Some(firmo.clone()));
        assert_eq!(first.origin, Origin::Call { billed: true });
        let again = cached.lookup("acme.com").await.unwrap();
        assert_eq!(again.firmographics, Some(firmo));
        assert_eq!(
            again.origin,
            Origin::Cache,
            "a hit is neither a call nor a credit"
        );
        assert_eq!(cached.lookup("none.com").await.unwrap().firmographics, None);
        assert_eq!(
            cached.lookup("none.com").await.unwrap().origin,
            Origin::Cache,
            "no-matches are remembered too"
        );
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
