//! The firmographic cache and provider fakes.

use super::*;

/// (domain, provider)
type CacheKey = (String, String);
/// (answer, expires at)
type CacheEntry = (Option<Firmographics>, DateTime<Utc>);

/// A firmographic cache in memory.
#[derive(Debug, Default)]
pub struct FakeFirmographicCache {
    entries: Mutex<HashMap<CacheKey, CacheEntry>>,
    /// Faults scripted per operation (`"get"`, `"get_many"`, `"put"`).
    pub script: super::Script<StoreError>,
}

impl FakeFirmographicCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::ports::FirmographicCache for FakeFirmographicCache {
    async fn get(
        &self,
        domain: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<Firmographics>>, StoreError> {
        self.script.check("get")?;
        Ok(lock(&self.entries)
            .get(&(domain.to_owned(), provider.to_owned()))
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value.clone()))
    }

    async fn get_many(
        &self,
        domains: &[String],
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Option<Firmographics>>, StoreError> {
        self.script.check("get_many")?;
        let entries = lock(&self.entries);
        Ok(domains
            .iter()
            .filter_map(|d| {
                entries
                    .get(&(d.clone(), provider.to_owned()))
                    .filter(|(_, expires)| *expires > now)
                    .map(|(value, _)| (d.clone(), value.clone()))
            })
            .collect())
    }

    async fn put(
        &self,
        domain: &str,
        provider: &str,
        value: Option<&Firmographics>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.script.check("put")?;
        lock(&self.entries).insert(
            (domain.to_owned(), provider.to_owned()),
            (value.cloned(), expires_at),
        );
        Ok(())
    }
}

/// A firmographic provider in memory, counting its lookups.
#[derive(Debug, Default)]
pub struct FakeProvider {
    name: String,
    data: HashMap<String, Firmographics>,
    failures: Mutex<VecDeque<ProviderError>>,
    pub calls: AtomicU64,
}

impl FakeProvider {
    pub fn new(name: &str, data: impl IntoIterator<Item = (String, Firmographics)>) -> Self {
        Self {
            name: name.to_owned(),
            data: data.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn fail_next(&self, n: usize, error: ProviderError) {
        lock(&self.failures).extend(std::iter::repeat_n(error, n));
    }
}

impl FirmographicProvider for FakeProvider {
    fn name(&self) -> &str {
        &self.name
    }

    /// Bills every match, like a per-match vendor.
    async fn lookup(&self, domain: &str) -> Result<Lookup, ProviderError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(error) = lock(&self.failures).pop_front() {
            return Err(error);
        }
        let firmographics = self.data.get(domain).cloned();
        Ok(Lookup {
            origin: Origin::Call {
                billed: firmographics.is_some(),
            },
            firmographics,
            cacheable: true,
        })
    }
}
