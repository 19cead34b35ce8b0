//! rescore: the Lambda binary. Configuration, secrets and clients once per cold start; with a
//! HubSpot app secret configured, it serves the webhook URL (signatures verified).

use lambda_runtime::{Error, service_fn};
use rescore::{Config, Deps, Webhook, handle};

fn main() -> Result<(), Error> {
    leadsync_app::function_runtime()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let sdk = leadsync_app::sdk_config().await;
    let webhook = match &config.webhook_secret {
        Some(source) => Some(Webhook {
            secret: leadsync_app::secrets::resolve(
                &aws_sdk_secretsmanager::Client::new(&sdk),
                source,
            )
            .await?,
        }),
        None => None,
    };
    let deps = Deps::new(config, &sdk).await?;
    lambda_runtime::run(service_fn(|event| handle(event, &deps, webhook.as_ref()))).await
}
