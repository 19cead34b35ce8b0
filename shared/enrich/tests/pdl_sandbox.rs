//! The PDL-shaped provider against the sandbox, through the run's `Enricher`.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::ports::{FirmographicProvider, Lookup, ProviderError};
use leadsync_domain::{Lead, LeadId};
use leadsync_enrich::{PdlConfig, PdlProvider};
use leadsync_pipeline::enrich::Enricher;
use leadsync_ratelimit::RateLimits;
use leadsync_sandbox::{Faults, Sandbox, SandboxConfig};
use std::time::{Duration, Instant};

fn provider(sandbox: &Sandbox, key: &str) -> PdlProvider {
    let mut config = PdlConfig::new(sandbox.base_url(), key.to_owned().into());
    config.min_likelihood = 1;
    // The sandbox sets no plan limit unless a test does; back off quickly in tests.
    config.rate = RateLimits::new(1_000_000, Duration::from_secs(60));
    config.retry = leadsync_enrich::PDL_RETRY.faster(40);
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
        Lookup::free(None),
        "a 404 is not billed"
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
    assert_eq!(all.len(), 1_000, "no lead lost");
    let stats = enricher.stats;
    // Each lookup tries three times, so most domains get through; the rest fail for good.
    assert!(stats.provider_errors > 5, "{stats:?}");
    let requests = sandbox.request_counts()["GET /v5/company/enrich"];
    assert!(requests > 250, "429s and 5xx were retried: {requests}");
    let enriched = all.iter().filter(|l| !l.firmographics.is_empty()).count();
    assert!(
        enriched > 500 && enriched < 1_000,
        "most enriched, some left without: {enriched}"
    );
    // Every lead left without data says why, and the run counts it.
    let unexplained = all
        .iter()
        .filter(|l| l.firmographics.is_empty() && l.not_enriched.is_none())
        .count();
    assert_eq!(unexplained, 0);
    let marked = all.iter().filter(|l| l.not_enriched.is_some()).count() as u64;
    assert_eq!(marked, stats.unavailable);
    assert!(
        all.iter()
            .filter_map(|l| l.not_enriched.as_deref())
            .all(|why| why.starts_with("provider failed: ")),
    );
    // A failed domain is not asked again within the run (no hammering during a storm).
    assert_eq!(stats.provider_calls, 200);
}

#[tokio::test]
async fn the_plan_rate_limit_is_kept_client_side() {
    let sandbox = Sandbox::start(SandboxConfig::new(5, 400)).await.unwrap();
    let domains: Vec<String> = sandbox
        .companies()
        .iter()
        .filter_map(|c| c.properties.get("domain").cloned())
        .take(60)
        .collect();
    let window = Duration::from_millis(400);
    sandbox.set_enrich_limit(20, window);

    // Ungoverned, the plan's limit is hit at once: the test can fail.
    let ungoverned = provider(&sandbox, key());
    let mut answers = Vec::new();
    for d in &domains[..30] {
        answers.push(ungoverned.lookup(d));
    }
    futures::future::join_all(answers).await;
    assert!(sandbox.enrich_violations() > 0);

    sandbox.set_enrich_limit(20, window);
    let mut config = PdlConfig::new(sandbox.base_url(), key().to_owned().into());
    config.min_likelihood = 1;
    config.rate = RateLimits::new(20, window);
    let governed = [PdlProvider::new(config).unwrap()];
    let mut enricher = Enricher::new(&governed);
    let mut leads: Vec<Lead> = domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut lead = Lead::new(
                LeadId::new(i.to_string()).unwrap(),
                DateTime::<Utc>::UNIX_EPOCH,
            );
            lead.email = Some(format!("x@{d}"));
            lead
        })
        .collect();
    let started = Instant::now();
    enricher.enrich(&mut leads).await;
    let elapsed = started.elapsed();
    assert_eq!(sandbox.enrich_violations(), 0, "never over the plan");
    assert_eq!(enricher.stats.provider_errors, 0);
    assert_eq!(enricher.stats.matches, 60);
    assert!(
        elapsed >= window * 2,
        "60 requests at 20 per window take at least two windows: {elapsed:?}"
    );
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

/// Found by the storms bench: a billed answer cut short in transit was cached as a "no match"
/// for a week, so the lead stayed unenriched after the storm. It is not cached now: the next
/// lookup asks again and gets the company.
#[tokio::test]
async fn an_unreadable_answer_is_not_remembered_as_no_match() {
    use leadsync_domain::fakes::FakeFirmographicCache;
    use leadsync_enrich::Cached;
    let sandbox = Sandbox::start(SandboxConfig::new(5, 50)).await.unwrap();
    let domain = sandbox
        .companies()
        .iter()
        .find_map(|c| c.properties.get("domain").cloned())
        .unwrap();
    let cached = Cached::new(provider(&sandbox, key()), FakeFirmographicCache::new());
    sandbox.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let cut = cached.lookup(&domain).await.unwrap();
    assert_eq!(cut.firmographics, None, "scored without it");
    assert!(!cut.cacheable);
    sandbox.set_faults(Faults::default());
    let again = cached.lookup(&domain).await.unwrap();
    assert!(again.firmographics.is_some(), "asked again, and answered");
    assert_eq!(
        again.origin,
        leadsync_domain::ports::Origin::Call { billed: true }
    );
    let third = cached.lookup(&domain).await.unwrap();
    assert_eq!(
        third.origin,
        leadsync_domain::ports::Origin::Cache,
        "the real answer is remembered"
    );
}
