//! The PDL-shaped provider against the sandbox, through the run's `Enricher`.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::ports::{FirmographicProvider, ProviderError};
use leadsync_domain::{Lead, LeadId};
use leadsync_enrich::{Enricher, PdlConfig, PdlProvider};
use leadsync_sandbox::{Faults, Sandbox, SandboxConfig};

fn provider(sandbox: &Sandbox, key: &str) -> PdlProvider {
    let mut config = PdlConfig::new(sandbox.base_url(), key.to_owned().into());
    config.min_likelihood = 1;
    PdlProvider::new(config).unwrap()
}

fn key() -> &'static str {
    leadsync_sandbox::enrich::API_KEY
}

/// `n` leads spread over the sandbox's company domains (and a few unknown ones).
fn leads(sandbox: &Sandbox, n: usize) -> Vec<Lead> {
    let domains: Vec<String> = sandbox
        .companies()
        .iter()
        .filter_map(|c| c.properties.get("domain").cloned())
        .collect();
    (0..n)
        .map(|i| {
            let mut lead = Lead::new(
                LeadId::new(i.to_string()).unwrap(),
                DateTime::<Utc>::UNIX_EPOCH,
            );
            lead.email = Some(format!("person{i}@mail.{}", domains[i % domains.len()]));
            lead
        })
        .collect()
}

#[tokio::test]
async fn ten_thousand_leads_over_two_thousand_domains_make_one_call_per_domain() {
    let sandbox = Sandbox::start(SandboxConfig::new(5, 8_000)).await.unwrap();
    assert_eq!(sandbox.companies().len(), 2_000);
    let pdl = [provider(&sandbox, key())];
    let mut enricher = Enricher::new(&pdl);
    let mut all = leads(&sandbox, 10_000);
    for page in all.chunks_mut(200) {
        enricher.enrich(page).await;
    }
    let calls = sandbox.request_counts()["GET /v5/company/enrich"];
    assert_eq!(
        calls, 2_000,
        "one call per distinct domain across all pages"
    );
    assert_eq!(enricher.stats.provider_calls, 2_000);
    assert_eq!(
        sandbox.credits(),
        2_000,
        "every domain matched once: billed once"
    );
    let enriched = all
        .iter()
        .filter(|l| l.firmographics.employees.is_some() || l.firmographics.industry.is_some())
        .count();
    assert!(enriched > 9_000, "{enriched}");
    let sample = all
        .iter()
        .find(|l| l.firmographics.industry.is_some())
        .unwrap();
    let industry = sample.firmographics.industry.as_ref().unwrap();
    assert_eq!(industry.source.provider, "pdl");
    assert!(industry.source.likelihood.is_some() && industry.source.fetched_at.is_some());
    assert!(
        industry
            .value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_'),
        "CRM-style industry codes: {}",
        industry.value
    );
}

#[tokio::test]
async fn no_match_is_free_and_a_bad_key_is_refused() {
    let sandbox = Sandbox::start(SandboxConfig::new(5, 40)).await.unwrap();
    assert_eq!(
        provider(&sandbox, key())
            .lookup("unknown-company.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(sandbox.credits(), 0);
    let err = provider(&sandbox, "wrong")
        .lookup("acme.com")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { .. }) && !err.is_retryable(),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_429_storm_leaves_leads_unenriched_but_never_loses_one() {
    let sandbox = Sandbox::start(SandboxConfig::new(5, 800)).await.unwrap();
    sandbox.set_faults(Faults {
        rate_limit_rate: 0.5,
        server_error_rate: 0.1,
        latency_ms: 2,
        ..Faults::default()
    });
    let pdl = [provider(&sandbox, key())];
    let mut enricher = Enricher::new(&pdl);
    let mut all = leads(&sandbox, 1_000);
    for page in all.chunks_mut(200) {
        enricher.enrich(page).await;
    }
    assert_eq!(all.len(), 1_000);
    assert!(enricher.stats.provider_errors > 50, "{:?}", enricher.stats);
    let enriched = all.iter().filter(|l| !l.firmographics.is_empty()).count();
    assert!(
        enriched > 100 && enriched < 1_000,
        "some enriched, some left without: {enriched}"
    );
    // A failed domain is not asked again within the run (no hammering during a storm).
    assert_eq!(enricher.stats.provider_calls, 200);
}

#[tokio::test]
async fn a_budget_of_100_credits_bills_at_most_100_calls_and_marks_the_rest() {
    let sandbox = Sandbox::start(SandboxConfig::new(5, 2_000)).await.unwrap();
    let pdl = [provider(&sandbox, key())];
    let mut enricher = Enricher::new(&pdl).with_budget(100);
    let mut all = leads(&sandbox, 2_000);
    for page in all.chunks_mut(250) {
        enricher.enrich(page).await;
    }
    assert_eq!(all.len(), 2_000, "no lead lost");
    assert!(sandbox.credits() <= 100, "billed {}", sandbox.credits());
    assert_eq!(enricher.stats.provider_calls, 100);
    assert_eq!(enricher.stats.credits, 100);
    let marked = all
        .iter()
        .filter(|l| l.not_enriched.as_deref() == Some("credit budget spent"))
        .count() as u64;
    assert_eq!(marked, enricher.stats.skipped_for_budget);
    assert!(marked > 1_000, "{marked}");
    let criteria = leadsync_domain::Criteria::parse(
        "c",
        include_str!("../../../infra/criteria/b2b-saas.toml"),
    )
    .unwrap();
    let lead = all.iter().find(|l| l.not_enriched.is_some()).unwrap();
    let card = criteria.evaluate(lead, Utc::now());
    let reason = card
        .reasons
        .iter()
        .find(|r| r.code == "NOT_ENRICHED")
        .unwrap();
    assert_eq!(reason.value.as_deref(), Some("credit budget spent"));
}
