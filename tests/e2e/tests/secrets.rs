//! Secrets at cold start, against moto's Secrets Manager: the function is configured with the
//! secret's ARN only, fetches the token once while building its dependencies, and the CRM
//! accepts it (a run over the sandbox succeeds). A missing secret fails the cold start with an
//! error that names the ARN and never a value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use leadsync_app::{Config, Deps, RunOutcome};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use std::collections::HashMap;

#[tokio::test]
async fn the_crm_token_comes_from_secrets_manager_at_cold_start() {
    let aws = common::aws("sec").await;
    let sandbox = Sandbox::start(SandboxConfig::new(2, 40)).await.unwrap();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws.sdk);
    let created = secrets
        .create_secret()
        .name(leadsync_localstack::unique_name("hubspot-token"))
        .secret_string(sandbox.token())
        .send()
        .await
        .unwrap();
    let arn = created.arn.unwrap();
    let config = |secret_arn: &str| {
        let vars: HashMap<&str, String> = HashMap::from([
            ("TABLE_NAME", aws.table.clone()),
            ("BUCKET_NAME", aws.bucket.clone()),
            ("CRM_BASE_URL", sandbox.base_url()),
            ("CRM_TOKEN_SECRET_ARN", secret_arn.to_owned()),
        ]);
        Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
    };

    let deps = Deps::new(config(&arn), &aws.sdk).await.unwrap();
    let outcome = leadsync_app::nightly::handle_at(
        lambda_runtime::LambdaEvent::new(serde_json::json!({}), lambda_runtime::Context::default()),
        &deps,
        chrono::Utc::now(),
        chrono::Utc::now,
    )
    .await
    .unwrap();
    let RunOutcome::Finished { report } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(report.pulled, 40, "the CRM accepted the fetched token");

    let missing = format!("{arn}-gone");
    let error = Deps::new(config(&missing), &aws.sdk).await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&missing), "{text}");
    assert!(
        !text.contains(sandbox.token()),
        "the value never appears: {text}"
    );
}
