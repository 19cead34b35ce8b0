//! `Cached`: a provider in front of which answers are remembered in a [`FirmographicCache`]
//! (DynamoDB in production) — matches for `ttl`, no-matches for the shorter `negative_ttl`.
//! Errors are never cached, and a failing cache only costs a provider call.

use chrono::{Duration, Utc};
use leadsync_domain::Firmographics;
use leadsync_domain::ports::{
    CacheEntry, FirmographicCache, FirmographicProvider, Lookup, Origin, ProviderError,
};
use std::collections::HashMap;
use std::sync::Mutex;

/// See the module docs.
#[derive(Debug)]
pub struct Cached<P, C> {
    inner: P,
    cache: C,
    ttl: Duration,
    negative_ttl: Duration,
    /// Answers [`FirmographicProvider::lookup_uncached`] got, written by the next flush.
    pending: Mutex<Vec<CacheEntry>>,
}

impl<P, C> Cached<P, C> {
    /// Matches kept 30 days, no-matches 7, unless changed with [`Cached::with_ttls`].
    pub fn new(inner: P, cache: C) -> Self {
        Self {
            inner,
            cache,
            ttl: Duration::days(30),
            negative_ttl: Duration::days(7),
            pending: Mutex::new(Vec::new()),
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
        // One domain on its own: remembered at once.
        let (answer, entry) = self.ask(domain).await?;
        if let Some(entry) = entry
            && let Err(error) = self
                .cache
                .put(
                    &entry.domain,
                    self.inner.name(),
                    entry.value.as_ref(),
                    entry.expires_at,
                )
                .await
        {
            tracing::warn!(%error, provider = self.inner.name(), "Could not cache a firmographic answer.");
        }
        Ok(answer)
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
        let (answer, entry) = self.ask(domain).await?;
        if let Some(entry) = entry {
            self.pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(entry);
        }
        Ok(answer)
    }

    async fn flush(&self) {
        let pending = std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if pending.is_empty() {
            return;
        }
        if let Err(error) = self.cache.put_many(self.inner.name(), &pending).await {
            tracing::warn!(%error, provider = self.inner.name(), answers = pending.len(), "Could not cache firmographic answers.");
        }
    }
}

impl<P: FirmographicProvider, C> Cached<P, C> {
    /// Ask the provider; with a cacheable answer, the entry to remember it by.
    async fn ask(&self, domain: &str) -> Result<(Lookup, Option<CacheEntry>), ProviderError> {
        let now = Utc::now();
        let answer = self.inner.lookup(domain).await?;
        if !answer.cacheable {
            return Ok((answer, None));
        }
        let expires_at = now
            + if answer.firmographics.is_some() {
                self.ttl
            } else {
                self.negative_ttl
            };
        let entry = CacheEntry {
            domain: domain.to_owned(),
            value: answer.firmographics.clone(),
            expires_at,
        };
        Ok((answer, Some(entry)))
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

    /// Answers asked past the cache's read (`lookup_uncached`, as the enricher asks a page's
    /// misses) are written by the next `flush`, all at once — never lost, never one request
    /// each.
    #[tokio::test]
    async fn a_page_of_answers_is_remembered_at_its_flush() {
        let firmo = Firmographics {
            employees: Some(Sourced::new(42, Provenance::crm())),
            ..Firmographics::default()
        };
        let provider = FakeProvider::new("p", [("acme.com".to_owned(), firmo.clone())]);
        let cached = Cached::new(&provider, FakeFirmographicCache::new());
        for domain in ["acme.com", "none.com"] {
            cached.lookup_uncached(domain).await.unwrap();
        }
        let domains = ["acme.com".to_owned(), "none.com".to_owned()];
        assert!(
            cached.cached(&domains).await.is_empty(),
            "kept for the flush"
        );
        cached.flush().await;
        let found = cached.cached(&domains).await;
        assert_eq!(found.get("acme.com"), Some(&Some(firmo)));
        assert_eq!(found.get("none.com"), Some(&None), "no-matches too");
        cached.flush().await;
        assert_eq!(provider.calls.load(Ordering::Relaxed), 2);
    }
}
