//! Scale on paper, checked: the README's arithmetic for 1,000,000 contacts rests on the
//! request counts measured here — a run over 100,000 sandbox contacts planned into slices of
//! 20,000 and every slice pulled with the real HubSpot adapter. Each contact is pulled exactly
//! once, planning costs a handful of count requests, and the pull costs what the README says
//! per 1,000 contacts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::ports::Crm;
use leadsync_domain::runs::PullScope;
use leadsync_hubspot::{HubSpotConfig, HubSpotCrm, RateLimits};
use leadsync_pipeline::plan::plan_slices;
use leadsync_sandbox::{Sandbox, SandboxConfig};
use std::collections::HashSet;

const CONTACTS: u64 = 100_000;
const SLICE: u64 = 20_000;

#[tokio::test]
async fn a_100000_contact_run_costs_what_the_readme_says() {
    let sandbox = Sandbox::start(SandboxConfig::new(3, CONTACTS))
        .await
        .unwrap();
    let mut config = HubSpotConfig::new(
        sandbox.base_url(),
        secrecy::SecretString::from(sandbox.token().to_owned()),
    );
    // The sandbox does not rate-limit by default; the governor is measured elsewhere.
    config.limits = RateLimits {
        per_window: 100_000,
        ..RateLimits::FREE
    };
    let crm = HubSpotCrm::new(config).unwrap();

    let plan = plan_slices(
        &crm,
        &PullScope::since(DateTime::<Utc>::UNIX_EPOCH),
        SLICE,
        500,
    )
    .await
    .unwrap();
    assert_eq!(plan.contacts, CONTACTS);
    assert!(
        (5..=8).contains(&plan.scopes.len()),
        "{} slices",
        plan.scopes.len()
    );
    assert!(
        plan.requests <= 20,
        "planning took {} count requests",
        plan.requests
    );

    let before: u64 = sandbox.request_counts().values().sum();
    let mut seen: HashSet<String> = HashSet::new();
    let mut largest = 0usize;
    for scope in &plan.scopes {
        let mut cursor = None;
        let mut in_slice = 0usize;
        loop {
            let page = crm.pull_page(scope, cursor.as_deref()).await.unwrap();
            in_slice += page.leads.len();
            for lead in page.leads {
                assert!(seen.insert(lead.id.to_string()), "{} pulled twice", lead.id);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        largest = largest.max(in_slice);
    }
    assert_eq!(
        seen.len() as u64,
        CONTACTS,
        "every contact pulled exactly once"
    );
    assert!(
        largest as u64 <= SLICE + SLICE / 10,
        "largest slice {largest}"
    );
    let requests: u64 = sandbox.request_counts().values().sum::<u64>() - before;
    let per_thousand = requests as f64 * 1000.0 / CONTACTS as f64;
    eprintln!(
        "{} slices, {} planning requests, {requests} pull requests = {per_thousand:.1} per 1,000 contacts; by endpoint: {:?}",
        plan.scopes.len(),
        plan.requests,
        sandbox.request_counts()
    );
    // The README's figure (17 per 1,000 measured: search 5.1, companies 6.0, associations 1.5,
    // deals 4.5), with a little room for the sandbox's random data.
    assert!(
        per_thousand <= 18.0,
        "{per_thousand:.1} requests per 1,000 contacts"
    );
}
