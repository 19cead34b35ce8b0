//! The AWS checks: the table (exists, keys, index, TTL) and the bucket (exists, versioning).

use super::*;

pub use leadsync_store::s3_client;

/// The table (exists, keys, index, TTL) and the bucket (exists, versioning), when named.
pub(super) async fn aws_checks(target: &Target, sdk: &aws_config::SdkConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    match &target.table {
        None => checks.push(Check::new(
            "table",
            Status::Skip,
            "TABLE_NAME not set (a dry run needs none)",
            "",
        )),
        Some(table) => checks.push(table_check(&aws_sdk_dynamodb::Client::new(sdk), table).await),
    }
    match &target.bucket {
        None => checks.push(Check::new(
            "bucket",
            Status::Skip,
            "BUCKET_NAME not set (a dry run needs none)",
            "",
        )),
        Some(bucket) => checks.push(bucket_check(&s3_client(sdk), bucket).await),
    }
    checks
}

pub(super) async fn table_check(dynamo: &aws_sdk_dynamodb::Client, table: &str) -> Check {
    use aws_sdk_dynamodb::types::{KeyType, TimeToLiveStatus};
    use leadsync_store::keys::{GSI1, GSI1_PK, GSI1_SK, PK, SK, TTL};
    let deploy =
        "deploy infra/template.yaml (its TableName output), or set TABLE_NAME to the stack's table";
    let described = match dynamo.describe_table().table_name(table).send().await {
        Ok(d) => d,
        Err(e) => {
            let not_found = e
                .as_service_error()
                .is_some_and(aws_sdk_dynamodb::operation::describe_table::DescribeTableError::is_resource_not_found_exception);
            return if not_found {
                Check::new(
                    "table",
                    Status::Fail,
                    format!("{table} does not exist"),
                    deploy,
                )
            } else {
                Check::new(
                    "table",
                    Status::Fail,
                    format!(
                        "cannot describe {table}: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
                    ),
                    "check the AWS credentials and region (dynamodb:DescribeTable)",
                )
            };
        }
    };
    let Some(t) = described.table() else {
        return Check::new(
            "table",
            Status::Fail,
            format!("{table}: no description"),
            deploy,
        );
    };
    let key = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement], kind: KeyType| {
        schema
            .iter()
            .find(|k| *k.key_type() == kind)
            .map(|k| k.attribute_name().to_owned())
    };
    let keys = (
        key(t.key_schema(), KeyType::Hash),
        key(t.key_schema(), KeyType::Range),
    );
    if keys != (Some(PK.to_owned()), Some(SK.to_owned())) {
        return Check::new(
            "table",
            Status::Fail,
            format!("{table} is keyed {keys:?}, not ({PK}, {SK})"),
            "this is not a leadsync table: point TABLE_NAME at the stack's",
        );
    }
    let index = t
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(GSI1));
    let index_keys = index.map(|g| {
        (
            key(g.key_schema(), KeyType::Hash),
            key(g.key_schema(), KeyType::Range),
        )
    });
    if index_keys != Some((Some(GSI1_PK.to_owned()), Some(GSI1_SK.to_owned()))) {
        return Check::new(
            "table",
            Status::Fail,
            format!("{table} lacks the index {GSI1} ({GSI1_PK}, {GSI1_SK})"),
            deploy,
        );
    }
    let ttl = dynamo
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await;
    let ttl_on = ttl
        .as_ref()
        .ok()
        .and_then(|t| t.time_to_live_description())
        .is_some_and(|d| {
            d.time_to_live_status() == Some(&TimeToLiveStatus::Enabled)
                && d.attribute_name() == Some(TTL)
        });
    if ttl_on {
        Check::ok(
            "table",
            format!("{table}: keys, index {GSI1} and TTL on {TTL}"),
        )
    } else {
        Check::new(
            "table",
            Status::Warn,
            format!("{table}: keys and index fine, but TTL is not enabled on {TTL}"),
            format!(
                "enable TTL on attribute {TTL} (leases, cache answers and held leads expire by it)"
            ),
        )
    }
}

pub(super) async fn bucket_check(s3: &aws_sdk_s3::Client, bucket: &str) -> Check {
    if let Err(e) = s3.head_bucket().bucket(bucket).send().await {
        let not_found = e
            .as_service_error()
            .is_some_and(aws_sdk_s3::operation::head_bucket::HeadBucketError::is_not_found);
        return Check::new(
            "bucket",
            Status::Fail,
            if not_found {
                format!("{bucket} does not exist")
            } else {
                format!(
                    "cannot reach {bucket}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                )
            },
            "deploy infra/template.yaml (its BucketName output), or set BUCKET_NAME to the stack's bucket",
        );
    }
    match s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) if v.status() == Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled) => {
            Check::ok("bucket", format!("{bucket}: exists, versioning on"))
        }
        Ok(_) => Check::new(
            "bucket",
            Status::Warn,
            format!("{bucket}: exists, versioning off"),
            "turn versioning on: criteria documents and exports are kept by version",
        ),
        // moto answers under another root element (`GetBucketVersioningResponse`), which the
        // SDK refuses: the status is read from the answer's text then.
        Err(e)
            if e.raw_response()
                .and_then(|r| r.body().bytes())
                .is_some_and(|b| {
                    String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")
                }) =>
        {
            Check::ok("bucket", format!("{bucket}: exists, versioning on"))
        }
        Err(e) => Check::new(
            "bucket",
            Status::Warn,
            format!(
                "{bucket}: exists, versioning unknown ({})",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
            "allow s3:GetBucketVersioning to check it",
        ),
    }
}
