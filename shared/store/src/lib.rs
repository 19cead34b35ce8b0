//! leadsync's storage adapters: the DynamoDB single table ([`DynamoLeadStore`], the
//! [`leadsync_domain::ports::LeadStore`] port) and the S3 bucket ([`S3SnapshotStore`], the
//! [`leadsync_domain::ports::SnapshotStore`] port).
//!
//! # Layout
//! - [`keys`]: every partition and sort key of the table, in one place.
//! - [`dynamo`]: lead states, transitions (conditional, append-only), watermarks, run records.
//! - [`rollups`]: milestone facts, the period index of facts, rollup rows, plans, closed periods.
//! - [`runs`]: run plans, finished slices (counted, never incremented) and the sync lease.
//! - [`s3`]: gzipped JSONL snapshots and quarantine files, finance exports.
//! - [`sqs`]: slices of a fanned-out run as SQS messages.
//! - [`criteria`]: published criteria versions and the active pointer.
//! - [`firmo_cache`]: provider answers per company domain, with TTL.
//! - [`bootstrap`]: create the table and bucket as `infra/template.yaml` declares them (local
//!   runs and tests; in AWS, CloudFormation does it).
//!
//! DynamoDB limits are enforced here, not trusted to the server (moto is more lenient than AWS):
//! at most 25 items per `BatchWriteItem`, 100 keys per `BatchGetItem`, unprocessed items
//! retried with backoff.

pub mod bootstrap;
pub mod criteria;
pub mod dynamo;
pub mod events;
pub mod firmo_cache;
pub mod keys;
pub mod rollups;
pub mod runs;
pub mod s3;
pub mod sqs;

pub use criteria::{CriteriaStore, CriteriaStoreError, Pointer, Published};
pub use dynamo::DynamoLeadStore;
pub use events::EventBridgeSink;
pub use firmo_cache::DynamoFirmographicCache;
pub use s3::S3SnapshotStore;
pub use sqs::SqsSliceQueue;

use leadsync_domain::ports::StoreError;

/// The AWS SDK configuration every function and the CLI use: the environment's region,
/// credentials and endpoint, and the SDK's own retries (throttling, 5xx, transport) on the
/// numbers of [`leadsync_retry::Policy::AWS`] — jittered exponential backoff, the same attempts
/// and caps as the batch loops' unprocessed items.
pub async fn sdk_config() -> aws_config::SdkConfig {
    let policy = leadsync_retry::Policy::AWS;
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(1 + policy.retries)
                .with_initial_backoff(policy.first)
                .with_max_backoff(policy.cap),
        )
        .load()
        .await
}

/// An S3 client for `sdk`, path-style when a local endpoint is set (moto, `AWS_ENDPOINT_URL`):
/// virtual-hosted bucket names do not resolve on 127.0.0.1.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build(),
    )
}

/// Map any SDK error to the port's error: throttling, 5xx and transport failures are
/// `Unavailable` (retryable), the rest `Rejected`.
pub(crate) fn sdk_error<E, R>(
    operation: &'static str,
    error: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_dynamodb::error::SdkError;
    let message = aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string();
    let retryable = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            matches!(
                code,
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "SlowDown"
                    | "InternalError"
            )
        }
        _ => false,
    };
    if retryable {
        StoreError::Unavailable { operation, message }
    } else {
        StoreError::Rejected { operation, message }
    }
}
