//! Enrichment end to end: the PDL-shaped sandbox provider behind the DynamoDB cache (moto).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::{Lead, LeadId};
use leadsync_enrich::{Cached, PdlConfig, PdlProvider};
use leadsync_pipeline::enrich::Enricher;
use leadsync_sandbox::{Sandbox, SandboxConfig};
use leadsync_store::DynamoFirmographicCache;

#[tokio::test]
async fn second_run_makes_no_provider_calls() {
    let moto = leadsync_localstack::shared().unwrap();
    let dynamo = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
    let table = leadsync_localstack::unique_name("firmo");
    leadsync_store::bootstrap::create_table(&dynamo, &table)
        .await
        .unwrap();
    let sandbox = Sandbox::start(SandboxConfig::new(5, 8_000)).await.unwrap();
    let mut config = PdlConfig::new(
        sandbox.base_url(),
        leadsync_sandbox::enrich::API_KEY.to_owned().into(),
    );
    config.min_likelihood = 1;
    // The paid plan's 1,000 per minute, on a clock 100 times faster: the governor still keeps
    // it (its own tests prove that); this test is about the cache, not a minute's wait.
    config.rate = leadsync_ratelimit::RateLimits::new(1_000, std::time::Duration::from_millis(600));
    let provider = [Cached::new(
        PdlProvider::new(config).unwrap(),
        DynamoFirmographicCache::new(dynamo, &table),
    )];
    let domains: Vec<String> = sandbox
        .companies()
        .iter()
        .filter_map(|c| c.properties.get("domain").cloned())
        .collect();
    let leads = || -> Vec<Lead> {
        (0..10_000)
            .map(|i| {
                let mut lead = Lead::new(
                    LeadId::new(i.to_string()).unwrap(),
                    DateTime::<Utc>::UNIX_EPOCH,
                );
                lead.email = Some(format!("p{i}@{}", domains[i % domains.len()]));
                lead
            })
            .collect()
    };

    let mut first = leads();
    let mut run = Enricher::new(&provider);
    for page in first.chunks_mut(500) {
        run.enrich(page).await;
    }
    assert_eq!(
        sandbox.request_counts()["GET /v5/company/enrich"],
        2_000,
        "one provider call per uncached domain"
    );
    assert_eq!(sandbox.credits(), 2_000);

    let mut second = leads();
    let mut run = Enricher::new(&provider);
    for page in second.chunks_mut(500) {
        run.enrich(page).await;
    }
    assert_eq!(
        sandbox.request_counts()["GET /v5/company/enrich"],
        2_000,
        "the second run is served from the cache"
    );
    assert_eq!(sandbox.credits(), 2_000, "nothing billed twice");
    assert_eq!(
        first, second,
        "the cache gives the same firmographics, provenance included"
    );
}
