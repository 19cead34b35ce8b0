//! Create the table and bucket the way `infra/template.yaml` declares them, for local runs.

use crate::keys::{GSI1, GSI1_PK, GSI1_SK, PK, SK, TTL};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

/// Bootstrap failed.
#[derive(Debug, thiserror::Error)]
#[error("could not create {what}: {message}")]
pub struct BootstrapError {
    pub what: String,
    pub message: String,
}

fn attr(name: &str) -> Result<AttributeDefinition, BootstrapError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| BootstrapError {
            what: format!("attribute {name}"),
            message: e.to_string(),
        })
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement, BootstrapError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(|e| BootstrapError {
            what: format!("key {name}"),
            message: e.to_string(),
        })
}

/// Create the single table (pk/sk, on-demand, GSI `gsi1`, TTL on `expires_at`). An existing
/// table is left as it is.
///
/// # Errors
/// [`BootstrapError`] when DynamoDB refuses.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), BootstrapError> {
    let fail = |e: String| BootstrapError {
        what: format!("table {table}"),
        message: e,
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1_PK, KeyType::Hash)?)
        .key_schema(key(GSI1_SK, KeyType::Range)?)
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(GSI1_PK)?)
        .attribute_definitions(attr(GSI1_SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    if let Err(e) = created {
        let text = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
        if !text.contains("ResourceInUseException") {
            return Err(fail(text));
        }
    }
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(|e| fail(e.to_string()))?,
        )
        .send()
        .await
        .map(|_| ())
        .or_else(|e| {
            let text = aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string();
            if text.contains("already enabled") {
                Ok(())
            } else {
                Err(fail(text))
            }
        })
}

/// Create the bucket (versioning on). An existing bucket is left as it is.
///
/// # Errors
/// [`BootstrapError`] when S3 refuses.
pub async fn create_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<(), BootstrapError> {
    let fail = |e: String| BootstrapError {
        what: format!("bucket {bucket}"),
        message: e,
    };
    if let Err(e) = client.create_bucket().bucket(bucket).send().await {
        let text = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
        if !text.contains("BucketAlreadyOwnedByYou") && !text.contains("BucketAlreadyExists") {
            return Err(fail(text));
        }
    }
    client
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| fail(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))
}

/// Create the table and the bucket as the template declares them (existing ones are left as
/// they are), and return the clients for them.
///
/// # Errors
/// [`BootstrapError`] when DynamoDB or S3 refuses.
pub async fn create_stores(
    sdk: &aws_config::SdkConfig,
    table: &str,
    bucket: &str,
) -> Result<(aws_sdk_dynamodb::Client, aws_sdk_s3::Client), BootstrapError> {
    let (dynamo, s3) = (aws_sdk_dynamodb::Client::new(sdk), crate::s3_client(sdk));
    create_table(&dynamo, table).await?;
    create_bucket(&s3, bucket).await?;
    Ok((dynamo, s3))
}

/// Create an SQS queue (an existing one is reused) and return its URL.
///
/// # Errors
/// [`BootstrapError`] when SQS refuses.
pub async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<String, BootstrapError> {
    let out = client
        .create_queue()
        .queue_name(name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "960",
        )
        .send()
        .await
        .map_err(|e| BootstrapError {
            what: format!("queue {name}"),
            message: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
        })?;
    out.queue_url.ok_or_else(|| BootstrapError {
        what: format!("queue {name}"),
        message: "no queue URL returned".into(),
    })
}
