//! sync-slice: the Lambda binary behind the slice queue. Configuration, secrets and clients
//! once per cold start.

use lambda_runtime::{Error, service_fn};
use sync_slice::{Config, Deps, handle};

fn main() -> Result<(), Error> {
    leadsync_app::function_runtime()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Each invocation is a process of its own: it takes its share of the CRM's limits.
    let config = Config::from_env()?.for_slice_worker();
    let sdk = leadsync_app::sdk_config().await;
    let deps = Deps::new(config, &sdk).await?;
    lambda_runtime::run(service_fn(|event| handle(event, &deps))).await
}
