//! The adapters the handler uses, built once per cold start.

use crate::config::Config;
use aws_config::SdkConfig;
use leadsync_crm::{HubSpotConfig, HubSpotCrm};
use leadsync_domain::Criteria;
use leadsync_domain::ports::CrmError;
use leadsync_domain::ports::FirmographicProvider;
use leadsync_enrich::{Cached, DatasetProvider, PdlConfig, PdlProvider};
use leadsync_store::{CriteriaStore, DynamoFirmographicCache, DynamoLeadStore, S3SnapshotStore};

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
}

/// Everything a sync needs, shared by every invocation of a warm function.
#[derive(Debug)]
pub struct Deps {
    pub crm: HubSpotCrm,
    /// Enrichment providers in waterfall order (empty: CRM company data only), each behind
    /// the DynamoDB cache.
    pub providers: Vec<Provider>,
    pub store: DynamoLeadStore,
    pub snapshots: S3SnapshotStore,
    pub criteria: Criteria,
    pub config: Config,
}

impl Deps {
    /// # Errors
    /// [`DepsError`]: an unreadable or invalid criteria document, or an HTTP client failure.
    pub async fn new(config: Config, sdk: &SdkConfig) -> Result<Self, DepsError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        // Path-style addressing only where an endpoint override points at a local S3 (moto).
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(sdk.endpoint_url().is_some())
                .build(),
        );
        // Which criteria: an explicit file, else the published active version, else the
        // bundled example agreement (said loudly: production should publish its own).
        let (name, text) = match &config.criteria_file {
            Some(path) => (
                path.display().to_string(),
                std::fs::read_to_string(path).map_err(|source| DepsError::CriteriaFile {
                    path: path.display().to_string(),
                    source,
                })?,
            ),
            None => match CriteriaStore::new(
                s3.clone(),
                dynamo.clone(),
                config.bucket.clone(),
                config.table.clone(),
            )
            .active()
            .await?
            {
                Some((key, text)) => (format!("s3://{}/{key}", config.bucket), text),
                None => {
                    tracing::warn!(
                        "No criteria published yet: using the bundled example agreement."
                    );
                    (
                        "bundled:b2b-saas.toml".to_owned(),
                        BUNDLED_CRITERIA.to_owned(),
                    )
                }
            },
        };
        let criteria = Criteria::parse(&name, &text)?;
        let mut crm_config =
            HubSpotConfig::new(config.crm_base_url.clone(), config.crm_token.clone());
        crm_config.page_size = config.page_size;
        crm_config.limits = leadsync_crm::RateLimits {
            per_window: config.rate_per_10s,
            ..leadsync_crm::RateLimits::FREE
        };
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
            let mut pdl_config = PdlConfig::new(pdl.base_url.clone(), pdl.api_key.clone());
            pdl_config.min_likelihood = pdl.min_likelihood;
            pdl_config.rate = leadsync_ratelimit::RateLimits::new(
                pdl.rate_per_minute,
                std::time::Duration::from_secs(60),
            );
            let cache = DynamoFirmographicCache::new(dynamo.clone(), config.table.clone());
            let ttl = chrono::Duration::days(config.cache_days);
            providers.push(Provider::Pdl(
                Cached::new(PdlProvider::new(pdl_config)?, cache)
                    .with_ttls(ttl, ttl.min(chrono::Duration::days(7))),
            ));
        }
        Ok(Self {
            providers,
            crm: HubSpotCrm::new(crm_config)?,
            store: DynamoLeadStore::new(dynamo, config.table.clone(), "hubspot"),
            snapshots: S3SnapshotStore::new(s3, config.bucket.clone()),
            criteria,
            config,
        })
    }
}
