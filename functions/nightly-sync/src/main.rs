//! nightly-sync: the Lambda binary. Configuration, secrets and clients once per cold start.

use lambda_runtime::{Error, service_fn};
use nightly_sync::{Config, Deps, handle};

fn main() -> Result<(), Error> {
    leadsync_app::function_runtime()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    // JSON when the function's LoggingConfig says so (AWS_LAMBDA_LOG_FORMAT=JSON).
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = leadsync_app::sdk_config().await;
    let deps = Deps::new(config, &sdk).await?;
    lambda_runtime::run(service_fn(|event| handle(event, &deps))).await
}
