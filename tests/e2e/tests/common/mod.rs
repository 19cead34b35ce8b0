//! Shared set-up of the end-to-end tests: a fresh table and bucket on this binary's moto.

/// Clients for moto and a freshly created table and bucket (each test binary uses what it
/// needs).
#[allow(dead_code)]
pub struct Aws {
    pub sdk: aws_config::SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub bucket: String,
}

/// Start (or reuse) this test binary's moto server and create a table and bucket named after
/// `prefix`, as `infra/template.yaml` declares them.
///
/// # Panics
/// When moto cannot start or the resources cannot be created: the test cannot run.
#[allow(clippy::expect_used)]
pub async fn aws(prefix: &str) -> Aws {
    let moto = leadsync_localstack::shared().expect("moto");
    let sdk = moto.sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let table = leadsync_localstack::unique_name(prefix);
    let bucket = leadsync_localstack::unique_name(prefix);
    leadsync_store::bootstrap::create_table(&dynamo, &table)
        .await
        .expect("create table");
    leadsync_store::bootstrap::create_bucket(&s3, &bucket)
        .await
        .expect("create bucket");
    Aws {
        sdk,
        dynamo,
        s3,
        table,
        bucket,
    }
}

#[allow(dead_code)]
/// Run nightly-sync's handler at `now` and return the report of the run it finished inline.
///
/// # Panics
/// When the run was queued or turned away (these tests run small, uncontended runs).
pub async fn nightly_at(
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
    deps: &leadsync_app::Deps,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<leadsync_domain::ports::RunReport, leadsync_app::nightly::HandlerError> {
    match leadsync_app::nightly::handle_at(event, deps, now, chrono::Utc::now).await? {
        leadsync_app::RunOutcome::Finished { report } => Ok(*report),
        other => panic!("expected a run finished inline, got {other:?}"),
    }
}
