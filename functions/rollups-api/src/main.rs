//! rollups-api: the Lambda binary behind a function URL (AWS_IAM): the API's axum router,
//! served by `lambda_http`. Clients are built once per cold start.

use lambda_http::Error;
use rollups_api::{Api, router};
use std::sync::Arc;

fn main() -> Result<(), Error> {
    leadsync_app::function_runtime()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = leadsync_app::sdk_config().await;
    let api = Arc::new(Api::from_env(&sdk)?);
    lambda_http::run(router(api, Arc::new(chrono::Utc::now))).await
}
