//! The firmographic ports: a provider looked up by company domain, the cache in front of it,
//! and the provider of a deployment that has none.

use super::*;

/// A provider lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("provider {provider} rate limit hit")]
    RateLimited { provider: String },
    #[error("provider {provider} unavailable: {message}")]
    Unavailable { provider: String, message: String },
    #[error("provider {provider} rejected the request: {message}")]
    Rejected { provider: String, message: String },
}

impl ProviderError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ProviderError::Rejected { .. })
    }
}

/// Where a provider's answer came from, for the run's cost ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Remembered (a cache): no call made, nothing billed.
    Cache,
    /// Asked of the provider; `billed` when the provider charges for this answer (PDL bills
    /// every 200, even one then set aside for low likelihood; a 404 is free).
    Call { billed: bool },
}

/// One provider answer for one domain.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// `None`: no (confident) match.
    pub firmographics: Option<Firmographics>,
    pub origin: Origin,
    /// Worth remembering: `false` for an answer that could not be read (billed, but no
    /// verdict on the company), so a cache asks again next time instead of keeping a "no match"
    /// the provider never gave.
    pub cacheable: bool,
}

impl Lookup {
    /// An answer from a provider that never bills (a dataset, a fake).
    pub fn free(firmographics: Option<Firmographics>) -> Self {
        Self {
            firmographics,
            origin: Origin::Call { billed: false },
            cacheable: true,
        }
    }
}

/// A source of firmographic data keyed by company domain.
pub trait FirmographicProvider: Send + Sync {
    /// Short stable name, recorded as the provenance of every value it supplies.
    fn name(&self) -> &str;

    /// Firmographics for a registrable domain (`acme.com`) — `firmographics: None` when the
    /// provider has no match — and what the answer cost. May bill per match: callers dedupe
    /// and cache.
    ///
    /// # Errors
    /// [`ProviderError`]; the lead is then scored without this provider's data.
    fn lookup(&self, domain: &str) -> impl Future<Output = Result<Lookup, ProviderError>> + Send;

    /// The answers this provider already holds for any of `domains` without a call — a cache
    /// in front of it reads them in as few requests as its store allows. Absent domains are
    /// then asked with [`FirmographicProvider::lookup_uncached`]. Default: none.
    fn cached(
        &self,
        domains: &[String],
    ) -> impl Future<Output = HashMap<String, Option<Firmographics>>> + Send {
        let _ = domains;
        std::future::ready(HashMap::new())
    }

    /// [`FirmographicProvider::lookup`] for a domain [`FirmographicProvider::cached`] did not
    /// have (a cache in front skips its own read, and keeps the answer for
    /// [`FirmographicProvider::flush`] rather than writing it at once). Default: `lookup`.
    fn lookup_uncached(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Lookup, ProviderError>> + Send {
        self.lookup(domain)
    }

    /// Write down what [`FirmographicProvider::lookup_uncached`] learnt since the last flush,
    /// in as few requests as the store allows (a cache: one `BatchWriteItem` per 25 answers).
    /// The enricher flushes once per page; answers not flushed (a crash between) are only
    /// asked again. Default: nothing to write.
    fn flush(&self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

impl<T: FirmographicProvider + ?Sized> FirmographicProvider for &T {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn lookup(&self, domain: &str) -> impl Future<Output = Result<Lookup, ProviderError>> + Send {
        (**self).lookup(domain)
    }

    fn cached(
        &self,
        domains: &[String],
    ) -> impl Future<Output = HashMap<String, Option<Firmographics>>> + Send {
        (**self).cached(domains)
    }

    fn lookup_uncached(
        &self,
        domain: &str,
    ) -> impl Future<Output = Result<Lookup, ProviderError>> + Send {
        (**self).lookup_uncached(domain)
    }

    fn flush(&self) -> impl Future<Output = ()> + Send {
        (**self).flush()
    }
}

/// Remembered provider answers per company domain, with an expiry.
pub trait FirmographicCache: Send + Sync {
    /// The cached answer of `provider` for `domain`, if present and not expired at `now`:
    /// `Some(Some(f))` a match, `Some(None)` a remembered no-match, `None` nothing usable.
    ///
    /// # Errors
    /// [`StoreError`]; callers treat a failing cache as a miss.
    fn get(
        &self,
        domain: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Option<Firmographics>>, StoreError>> + Send;

    /// [`FirmographicCache::get`] for many domains at once (DynamoDB: `BatchGetItem`, 100
    /// keys a request): the usable answers, by domain; absent and expired ones are left out.
    ///
    /// # Errors
    /// [`StoreError`]; callers treat a failing cache as all misses.
    fn get_many(
        &self,
        domains: &[String],
        provider: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<HashMap<String, Option<Firmographics>>, StoreError>> + Send;

    /// Remember an answer (a match or a no-match) until `expires_at`. Idempotent.
    ///
    /// # Errors
    /// [`StoreError`]; callers log and carry on.
    fn put(
        &self,
        domain: &str,
        provider: &str,
        value: Option<&Firmographics>,
        expires_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// [`FirmographicCache::put`] for many answers of `provider` at once (DynamoDB:
    /// `BatchWriteItem`, 25 a request). Default: one `put` each.
    ///
    /// # Errors
    /// [`StoreError`]; callers log and carry on.
    fn put_many(
        &self,
        provider: &str,
        answers: &[CacheEntry],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for entry in answers {
                self.put(
                    &entry.domain,
                    provider,
                    entry.value.as_ref(),
                    entry.expires_at,
                )
                .await?;
            }
            Ok(())
        }
    }
}

/// One answer to remember ([`FirmographicCache::put_many`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry {
    pub domain: String,
    /// A match, or `None`: a remembered no-match.
    pub value: Option<Firmographics>,
    pub expires_at: DateTime<Utc>,
}

/// A provider type with no values: the waterfall of a deployment that has none configured.
#[derive(Debug, Clone, Copy)]
pub enum NoProvider {}

impl FirmographicProvider for NoProvider {
    fn name(&self) -> &str {
        match *self {}
    }

    async fn lookup(&self, _domain: &str) -> Result<Lookup, ProviderError> {
        match *self {}
    }
}
