//! The full sync through the HubSpot adapter while the sandbox answers 30% of requests with 429
//! and 5% with 5xx, under a real rate limit: it completes, loses nothing, and never exceeds the
//! limit. A no-change re-run then writes nothing.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use leadsync_crm::{HubSpotConfig, HubSpotCrm, RateLimits, RetryPolicy};
use leadsync_domain::Criteria;
use leadsync_domain::fakes::{FakeLeadStore, FakeSnapshotStore};
use leadsync_enrich::NoProvider;
use leadsync_pipeline::{SyncDeps, SyncInput, sync};
use leadsync_sandbox::{Faults, Limits, Sandbox, SandboxConfig};
use std::time::Duration;

const CRITERIA: &str = include_str!("../../../infra/criteria/b2b-saas.toml");

#[tokio::test]
async fn storm_of_429_and_5xx_loses_nothing_and_never_exceeds_the_limit() {
    let mut config = SandboxConfig::new(11, 1500);
    // 40 a second, as 10 per 250 ms: a ten-secondly 429 without Retry-After waits a window.
    config.limits = Limits {
        per_window: 10,
        window_ms: 250,
        search_per_second: 5,
        daily: u64::MAX,
    };
    config.faults = Faults {
        rate_limit_rate: 0.30,
        server_error_rate: 0.05,
        retry_after_rate: 0.2,
        ..Faults::default()
    };
    let sandbox = Sandbox::start(config).await.unwrap();

    let mut crm_config = HubSpotConfig::new(sandbox.base_url(), sandbox.token().to_owned().into());
    crm_config.page_size = 100;
    crm_config.limits = RateLimits {
        per_window: 10,
        window: Duration::from_millis(250),
        search_per_second: 5,
    };
    // 12 retries from 10 ms: a 30 % storm spends 5 in a row one time in 400.
    crm_config.retry = RetryPolicy {
        first: Duration::from_millis(10),
        cap: Duration::from_millis(500),
        retries: 12,
        max_after: Duration::from_secs(2),
    };
    let crm = HubSpotCrm::new(crm_config).unwrap();
    let (store, snapshots) = (FakeLeadStore::new(), FakeSnapshotStore::new());
    let criteria = Criteria::parse("c", CRITERIA).unwrap();
    let deps = SyncDeps {
        crm: &crm,
        store: &store,
        snapshots: &snapshots,
        providers: &[] as &[NoProvider],
        criteria: &criteria,
        events: None,
    };

    let report = sync(&deps, &SyncInput::nightly("storm-1", Utc::now()))
        .await
        .unwrap();
    assert_eq!(
        (report.pulled, report.scored, report.quarantined),
        (1500, 1500, 0)
    );
    assert_eq!((report.pushed, report.push_failed), (1500, 0));
    assert!(
        sandbox
            .contacts()
            .iter()
            .all(|c| c.properties.contains_key("leadsync_stage")),
        "every lead written back"
    );

    let stats = sandbox.limit_stats();
    assert!(
        stats.injected_429 >= 10 && stats.injected_5xx >= 1,
        "the storm happened: {stats:?}"
    );
    assert_eq!(
        stats.violations, 0,
        "the client never exceeded the limit: {stats:?}"
    );
    assert!(stats.max_in_window <= 40, "{stats:?}");

    // No change since: the re-run reads everything again (our writes touched every contact)
    // and writes nothing.
    let updates = sandbox.request_counts()["POST /crm/v3/objects/contacts/batch/update"];
    let again = sync(&deps, &SyncInput::nightly("storm-2", Utc::now()))
        .await
        .unwrap();
    assert_eq!(again.pulled, 1500);
    assert_eq!((again.push_candidates, again.pushed), (0, 0));
    assert_eq!(
        sandbox.request_counts()["POST /crm/v3/objects/contacts/batch/update"],
        updates,
        "0 write calls"
    );
    assert_eq!(sandbox.limit_stats().violations, 0);
}
