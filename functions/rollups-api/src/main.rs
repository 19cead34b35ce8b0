//! rollups-api: the Lambda binary behind a function URL (AWS_IAM). Clients are built once per
//! cold start.

use lambda_runtime::{Error, service_fn};
use rollups_api::{Api, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = leadsync_app::sdk_config().await;
    let api = Api::from_env(&sdk)?;
    lambda_runtime::run(service_fn(|event| handle(event, &api, chrono::Utc::now()))).await
}
