//! The adapters a function uses, built once per cold start, and the criteria it scores with.
//!
//! Criteria: an explicit `CRITERIA_FILE`, else the published active version (checked with one
//! GetItem per invocation and reloaded only when it changed, so a warm function never scores
//! with a superseded version), else the bundled example agreement.

use crate::config::Config;
use crate::crm::AnyCrm;
use crate::secrets::{SecretError, resolve};
use aws_config::SdkConfig;
use leadsync_domain::Criteria;
use leadsync_domain::ports::CrmError;
use leadsync_domain::ports::FirmographicProvider;
use leadsync_domain::ports::{SliceQueue, StoreError};
use leadsync_domain::runs::SliceSpec;
use leadsync_enrich::{Cached, DatasetProvider, PdlConfig, PdlProvider};
use leadsync_hubspot::{HubSpotConfig, HubSpotCrm};
use leadsync_pipeline::{RunOptions, SyncDeps, SyncInput};
use leadsync_store::SqsSliceQueue;
use leadsync_store::{CriteriaStore, DynamoFirmographicCache, DynamoLeadStore, S3SnapshotStore};
use std::sync::{Arc, Mutex};

/// The example agreement shipped with leadsync, used when `CRITERIA_FILE` is not set.
pub const BUNDLED_CRITERIA: &str = include_str!("../../../infra/criteria/b2b-saas.toml");

/// Building the dependencies failed.
#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error("cannot read the criteria file {path}: {source}")]
    CriteriaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the criteria document is invalid:\n{0}")]
    Criteria(#[from] leadsync_domain::CriteriaError),
    #[error("cannot load the published criteria: {0}")]
    Published(#[from] leadsync_store::CriteriaStoreError),
    #[error("cannot read the firmographic dataset {key}: {message}")]
    Dataset { key: String, message: String },
    #[error("cannot build the enrichment client: {0}")]
    Provider(#[from] leadsync_domain::ports::ProviderError),
    #[error("cannot build the CRM client: {0}")]
    Crm(#[from] CrmError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("criteria {id} {version} is not published")]
    UnknownVersion { id: String, version: String },
}

/// An enrichment provider as deployed: a dataset from S3 (free, asked first), or the
/// PDL-shaped API behind the DynamoDB cache.
#[derive(Debug)]
pub enum Provider {
    Dataset(DatasetProvider),
    Pdl(Cached<PdlProvider, DynamoFirmographicCache>),
}

impl FirmographicProvider for Provider {
    fn name(&self) -> &str {
        match self {
            Provider::Dataset(p) => p.name(),
            Provider::Pdl(p) => p.name(),
        }
    }

    async fn lookup(
        &self,
        domain: &str,
    ) -> Result<leadsync_domain::ports::Lookup, leadsync_domain::ports::ProviderError> {
        match self {
            Provider::Dataset(p) => p.lookup(domain).await,
            Provider::Pdl(p) => p.lookup(domain).await,
        }
    }

    async fn cached(
        &self,
        domains: &[String],
    ) -> std::collections::HashMap<String, Option<leadsync_domain::Firmographics>> {
        match self {
            Provider::Dataset(p) => p.cached(domains).await,
            Provider::Pdl(p) => p.cached(domains).await,
        }
    }

    async fn lookup_uncached(
        &self,
        domain: &str,
    ) -> Result<leadsync_domain::ports::Lookup, leadsync_domain::ports::ProviderError> {
        match self {
            Provider::Dataset(p) => p.lookup_uncached(domain).await,
            Provider::Pdl(p) => p.lookup_uncached(domain).await,
        }
    }

    async fn flush(&self) {
        match self {
            Provider::Dataset(p) => p.flush().await,
            Provider::Pdl(p) => p.flush().await,
        }
    }
}

/// Where slices go: SQS when a queue is configured; otherwise there is no queue and every
/// run is inline (the run options say so).
#[derive(Debug)]
pub struct Queue(Option<SqsSliceQueue>);

impl Queue {
    /// Whether a queue is configured (`SLICE_QUEUE_URL`).
    pub fn is_configured(&self) -> bool {
        self.0.is_some()
    }
}

impl SliceQueue for Queue {
    async fn send(&self, slices: &[SliceSpec]) -> Result<(), StoreError> {
        match &self.0 {
            Some(queue) => queue.send(slices).await,
            None => Err(StoreError::Rejected {
                operation: "SendMessageBatch",
                message: "no SLICE_QUEUE_URL is configured".into(),
            }),
        }
    }

    async fn defer(
        &self,
        rescore: &leadsync_domain::runs::DeferredRescore,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        match &self.0 {
            Some(queue) => queue.defer(rescore, delay).await,
            None => Err(StoreError::Rejected {
                operation: "SendMessage",
                message: "no SLICE_QUEUE_URL is configured".into(),
            }),
        }
    }

    async fn defer_erase(
        &self,
        erase: &leadsync_domain::runs::DeferredErase,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        match &self.0 {
            Some(queue) => queue.defer_erase(erase, delay).await,
            None => Err(StoreError::Rejected {
                operation: "SendMessage",
                message: "no SLICE_QUEUE_URL is configured".into(),
            }),
        }
    }
}

/// Everything a sync needs, shared by every invocation of a warm function.
#[derive(Debug)]
pub struct Deps {
    pub crm: AnyCrm,
    /// Enrichment providers in waterfall order (empty: CRM company data only), each behind
    /// the DynamoDB cache.
    pub providers: Vec<Provider>,
    pub store: DynamoLeadStore,
    pub snapshots: S3SnapshotStore,
    pub criteria_store: CriteriaStore,
    pub queue: Queue,
    /// News about leads, when `EVENT_BUS_NAME` names a bus.
    pub events: Option<leadsync_store::EventBridgeSink>,
    pub config: Config,
    /// The criteria in use, and whether they come from the published store (reloadable).
    criteria: Mutex<Arc<Criteria>>,
    published: bool,
}

/// The CRM adapter the configuration names (HubSpot or Salesforce), its secret resolved —
/// what every function and `leadsync criteria publish` talk to.
///
/// # Errors
/// [`DepsError`]: the secret cannot be fetched or the HTTP client cannot be built.
pub async fn build_crm(
    config: &Config,
    secrets: &aws_sdk_secretsmanager::Client,
) -> Result<AnyCrm, DepsError> {
    let token = resolve(secrets, &config.crm_token).await?;
    let crm = match &config.salesforce {
        None => {
            let mut crm_config = HubSpotConfig::new(config.crm_base_url.clone(), token);
            crm_config.page_size = config.page_size;
            crm_config.pull_lanes = config.pull_lanes;
            // Slices running at once share the account's limits.
            crm_config.limits = leadsync_hubspot::RateLimits {
                per_window: config.rate_per_slice(),
                search_per_second: config.search_per_slice(),
                ..leadsync_hubspot::RateLimits::FREE
            };
            AnyCrm::HubSpot(HubSpotCrm::new(crm_config)?)
        }
        Some(sf) => {
            let mut sf_config = match &sf.jwt {
                Some(jwt) => leadsync_salesforce::SalesforceConfig::new(
                    config.crm_base_url.clone(),
                    sf.client_id.clone(),
                    secrecy::SecretString::from(String::new()),
                )
                .with_jwt(leadsync_salesforce::JwtBearer {
                    username: jwt.username.clone(),
                    private_key: token,
                    audience: jwt.audience.clone(),
                }),
                None => leadsync_salesforce::SalesforceConfig::new(
                    config.crm_base_url.clone(),
                    sf.client_id.clone(),
                    token,
                ),
            };
            sf_config.page_size = sf.page_size;
            sf_config.bulk_threshold = sf.bulk_threshold;
            // Slices running at once share the run's share of the allocation: each
            // stops at the same org-wide usage, so together they stay inside it.
            sf_config.daily_budget_share = sf.daily_budget_share;
            AnyCrm::Salesforce(Box::new(leadsync_salesforce::SalesforceCrm::new(
                sf_config,
            )?))
        }
    };
    Ok(crm)
}

impl Deps {
    /// # Errors
    /// [`DepsError`]: an unreadable or invalid criteria document, a secret that cannot be
    /// fetched, or an HTTP client failure.
    pub async fn new(config: Config, sdk: &SdkConfig) -> Result<Self, DepsError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let s3 = leadsync_store::s3_client(sdk);
        let secrets = aws_sdk_secretsmanager::Client::new(sdk);
        let criteria_store = CriteriaStore::new(
            s3.clone(),
            dynamo.clone(),
            config.bucket.clone(),
            config.table.clone(),
        );
        let (name, text, published) = match &config.criteria_file {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| DepsError::CriteriaFile {
                    path: path.display().to_string(),
                    source,
                })?,
                false,
            ),
            None => match criteria_store.active().await? {
                Some((key, text)) => (format!("s3://{}/{key}", config.bucket), text, true),
                None => {
                    tracing::warn!(
                        "No criteria published yet: using the bundled example agreement until one is."
                    );
                    (
                        "bundled:b2b-saas.toml".to_owned(),
                        BUNDLED_CRITERIA.to_owned(),
                        true,
                    )
                }
            },
        };
        let criteria = Criteria::parse(&name, &text)?;
        let crm = build_crm(&config, &secrets).await?;
        let mut providers = Vec::new();
        if let Some(key) = &config.dataset_key {
            let dataset_error = |message: String| DepsError::Dataset {
                key: key.clone(),
                message,
            };
            let object = s3
                .get_object()
                .bucket(&config.bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| {
                    dataset_error(aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
                })?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| dataset_error(e.to_string()))?
                .into_bytes();
            let format = if key.ends_with(".csv") {
                "csv"
            } else {
                "jsonl"
            };
            let (dataset, bad) = DatasetProvider::parse(&format!("dataset:{key}"), format, &bytes)?;
            for row in bad.iter().take(20) {
                tracing::warn!(key = %key, line = row.line, reason = %row.reason, "Dataset row skipped.");
            }
            tracing::info!(key = %key, companies = dataset.len(), bad_rows = bad.len(), "Firmographic dataset loaded.");
            providers.push(Provider::Dataset(dataset));
        }
        if let Some(pdl) = &config.pdl {
            let key = resolve(&secrets, &pdl.api_key).await?;
            let mut pdl_config = PdlConfig::new(pdl.base_url.clone(), key);
            pdl_config.min_likelihood = pdl.min_likelihood;
            pdl_config.rate = leadsync_ratelimit::RateLimits::new(
                config
                    .provider_rate_per_minute()
                    .unwrap_or(pdl.rate_per_minute),
                std::time::Duration::from_secs(60),
            );
            let cache = DynamoFirmographicCache::new(dynamo.clone(), config.table.clone());
            let ttl = chrono::Duration::days(config.cache_days);
            providers.push(Provider::Pdl(
                Cached::new(PdlProvider::new(pdl_config)?, cache)
                    .with_ttls(ttl, ttl.min(chrono::Duration::days(7))),
            ));
        }
        let queue = Queue(
            config
                .slice_queue_url
                .as_ref()
                .map(|url| SqsSliceQueue::new(aws_sdk_sqs::Client::new(sdk), url.clone())),
        );
        let events = config.event_bus.as_ref().map(|bus| {
            leadsync_store::EventBridgeSink::new(aws_sdk_eventbridge::Client::new(sdk), bus.clone())
        });
        Ok(Self {
            providers,
            crm,
            events,
            store: DynamoLeadStore::new(dynamo, config.table.clone(), config.crm_kind.name()),
            snapshots: S3SnapshotStore::new(s3, config.bucket.clone()),
            criteria_store,
            queue,
            criteria: Mutex::new(Arc::new(criteria)),
            published,
            config,
        })
    }

    /// The criteria last loaded (no I/O).
    pub fn criteria(&self) -> Arc<Criteria> {
        Arc::clone(
            &self
                .criteria
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The active criteria: when they come from the published store, one GetItem says whether
    /// a new version was activated since the last call, and only then is it read and parsed.
    ///
    /// # Errors
    /// [`DepsError`] when the store cannot be read or the published document is invalid.
    pub async fn active_criteria(&self) -> Result<Arc<Criteria>, DepsError> {
        let current = self.criteria();
        if !self.published {
            return Ok(current);
        }
        let Some(pointer) = self.criteria_store.active_pointer().await? else {
            return Ok(current);
        };
        if pointer.id == current.id && pointer.version == current.version {
            return Ok(current);
        }
        self.criteria_version(&pointer.id, &pointer.version).await
    }

    /// Exactly this published version (a slice runs with the version its run was planned with),
    /// or the bundled agreement when that is the one asked for.
    ///
    /// # Errors
    /// [`DepsError::UnknownVersion`] when it was never published, or a store/parse error.
    pub async fn criteria_version(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Arc<Criteria>, DepsError> {
        let current = self.criteria();
        if current.id == id && current.version == version {
            return Ok(current);
        }
        let Some((key, text)) = self.criteria_store.version(id, version).await? else {
            // The bundled agreement is never in the store: a run planned with it before the
            // first version was published still runs with it.
            let bundled = Criteria::parse("bundled:b2b-saas.toml", BUNDLED_CRITERIA)?;
            if bundled.id == id && bundled.version == version {
                return Ok(Arc::new(bundled));
            }
            return Err(DepsError::UnknownVersion {
                id: id.to_owned(),
                version: version.to_owned(),
            });
        };
        let loaded = Arc::new(Criteria::parse(
            &format!("s3://{}/{key}", self.config.bucket),
            &text,
        )?);
        tracing::info!(criteria_id = %loaded.id, criteria_version = %loaded.version, "Criteria loaded.");
        *self
            .criteria
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&loaded);
        Ok(loaded)
    }

    /// The ports a sync runs with, under `criteria`.
    pub fn sync_deps<'a>(
        &'a self,
        criteria: &'a Criteria,
    ) -> SyncDeps<'a, AnyCrm, DynamoLeadStore, S3SnapshotStore, Provider> {
        SyncDeps {
            crm: &self.crm,
            store: &self.store,
            snapshots: &self.snapshots,
            providers: &self.providers,
            criteria,
            events: self
                .events
                .as_ref()
                .map(|e| e as &dyn leadsync_domain::ports::EventSink),
        }
    }

    /// A run's input from the configuration.
    pub fn sync_input(&self, run_id: &str, now: chrono::DateTime<chrono::Utc>) -> SyncInput {
        let mut input = SyncInput::nightly(run_id, now);
        input.source = self.config.crm_kind.watermark_key();
        input.lookback = self.config.lookback;
        input.index_lag = self.config.index_lag;
        input.max_reject_ratio = self.config.max_reject_ratio;
        input.enrich_budget = self.config.enrich_budget;
        input.enrich_hold = self.config.enrich_hold;
        input
    }

    /// How runs are cut, from the configuration. Without a queue every run is inline.
    pub fn run_options(&self, now: chrono::DateTime<chrono::Utc>) -> RunOptions {
        let mut options = RunOptions::new(self.sync_input("template", now));
        options.inline_max = if self.queue.0.is_some() {
            self.config.inline_max
        } else {
            u64::MAX
        };
        options.slice_target = self.config.slice_contacts;
        options.lease_for = chrono::Duration::minutes(self.config.lease_minutes);
        options.defer_base = chrono::Duration::seconds(self.config.rescore_retry_secs);
        options
    }
}
