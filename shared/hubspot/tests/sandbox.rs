//! The HubSpot adapter against the sandbox server: paging, the 10,000 ceiling, auth, push, 207.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::LeadId;
use leadsync_domain::ports::{Crm, CrmError, PropertyUpdate};
use leadsync_domain::runs::{PullScope, ScopeKey};
use leadsync_hubspot::{HubSpotConfig, HubSpotCrm};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use std::collections::{BTreeMap, BTreeSet};

fn crm(sandbox: &Sandbox, token: &str, page_size: u32) -> HubSpotCrm {
    let mut config = HubSpotConfig::new(sandbox.base_url(), token.to_owned().into());
    config.page_size = page_size;
    // Functional tests: the sandbox is not rate limited here, so neither is the client.
    config.limits = leadsync_hubspot::RateLimits {
        per_window: 100_000,
        window: std::time::Duration::from_secs(10),
        search_per_second: 100_000,
    };
    HubSpotCrm::new(config).unwrap()
}

/// The sandbox's contact ids, in id order.
fn contact_ids(sandbox: &Sandbox) -> Vec<String> {
    sandbox
        .contacts()
        .iter()
        .map(|c| c.id.to_string())
        .collect()
}

async fn pull_all(crm: &HubSpotCrm, since: DateTime<Utc>) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut cursor) = (vec![], 0, None::<String>);
    loop {
        let page = crm
            .pull_page(&PullScope::since(since), cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        ids.extend(page.leads.iter().map(|l| l.id.to_string()));
        assert!(page.rejected.is_empty());
        match page.next {
            Some(next) => cursor = Some(next),
            None => return (ids, pages),
        }
    }
}

#[tokio::test]
async fn the_next_pages_searches_are_read_ahead_while_companies_are_read_and_used_once() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 1000)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 100);
    let scope = PullScope::since(DateTime::<Utc>::UNIX_EPOCH);
    let searches = || sandbox.request_counts()["POST /crm/v3/objects/contacts/search"];

    let first = crm.pull_page(&scope, None).await.unwrap();
    assert!(first.rejected.is_empty() && first.next.is_some());
    let after_first = searches();
    // More than this page's own searches: the next page's went out while it read companies.
    assert!(after_first as usize > first.leads.len().div_ceil(100));

    // A walk under another scope does not take that read-ahead…
    let other = PullScope {
        after: Some(ScopeKey::new("1")),
        ..scope.clone()
    };
    let before_other = searches();
    crm.pull_page(&other, first.next.as_deref()).await.unwrap();
    assert!(searches() > before_other);
    let at_resume = searches();

    // …and the rest of the first walk uses it: every contact once, one search per 100
    // contacts over the whole walk, none repeated.
    let mut cursor = first.next.clone();
    let mut leads = first.leads;
    while let Some(next) = cursor {
        let page = crm.pull_page(&scope, Some(&next)).await.unwrap();
        leads.extend(page.leads);
        cursor = page.next;
    }
    let ids: Vec<String> = leads.iter().map(|l| l.id.to_string()).collect();
    let want = contact_ids(&sandbox);
    assert_eq!(ids, want);
    assert_eq!(after_first + (searches() - at_resume), 10);
    // A company first met on a page read ahead, while the page before was reading it, is
    // not read twice, and its contacts still carry its firmographics.
    let with_company: Vec<_> = leads.iter().filter(|l| l.company_id.is_some()).collect();
    assert!(with_company.len() > 500);
    assert!(with_company.iter().all(|l| !l.firmographics.is_empty()));
    let companies: BTreeSet<&str> = with_company
        .iter()
        .filter_map(|l| l.company_id.as_deref())
        .collect();
    let reads = sandbox.request_counts()["POST /crm/v3/objects/companies/batch/read"];
    assert!(
        (reads as usize) < companies.len().div_ceil(100) + 4,
        "{reads} company reads for {} companies (the other scope's page read some)",
        companies.len()
    );
}

#[tokio::test]
async fn pulls_every_contact_once_in_id_order_with_company_data() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 450)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 100);
    let (ids, pages) = pull_all(&crm, DateTime::<Utc>::UNIX_EPOCH).await;
    let want = contact_ids(&sandbox);
    assert_eq!(ids, want);
    assert!(
        pages < 5,
        "search pages are grouped so company reads go out full ({pages} pull pages)"
    );
    let counts = sandbox.request_counts();
    assert_eq!(counts["POST /crm/v3/objects/contacts/search"], 5);
    // 450 contacts reference at most 112 companies: two batch reads, each company read once.
    assert!(
        counts["POST /crm/v3/objects/companies/batch/read"] <= 3,
        "{counts:?}"
    );

    let page = crm
        .pull_page(&PullScope::since(DateTime::<Utc>::UNIX_EPOCH), None)
        .await
        .unwrap();
    let with_company = page.leads.iter().filter(|l| l.company_id.is_some()).count();
    let with_firmo = page
        .leads
        .iter()
        .filter(|l| !l.firmographics.is_empty())
        .count();
    assert!(
        with_company > 50 && with_firmo == with_company,
        "{with_company} {with_firmo}"
    );
}

#[tokio::test]
async fn watermark_filter_returns_only_recent_changes() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 300)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 200);
    let contacts = sandbox.contacts();
    let since = contacts[150].updated_at;
    let (ids, _) = pull_all(&crm, since).await;
    let want: BTreeSet<String> = contacts
        .iter()
        .filter(|c| c.updated_at >= since)
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), want);
}

#[tokio::test]
async fn more_than_10000_records_sharing_one_timestamp_are_pulled_exactly_once() {
    let sandbox = Sandbox::start(SandboxConfig::new(3, 10_450)).await.unwrap();
    let at = DateTime::parse_from_rfc3339("2026-11-02T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    sandbox.stamp_all_contacts(at);
    let crm = crm(&sandbox, sandbox.token(), 200);
    let (ids, pages) = pull_all(&crm, at).await;
    assert_eq!(ids.len(), 10_450, "every contact");
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        10_450,
        "none twice"
    );
    assert!(pages <= 53);
    // The minimum is 53 searches of 200; the walk splits into 4 lanes after its first page,
    // which costs a census (the walk is open-ended) and at most one partial page per extra
    // lane — never a restart or a re-read.
    let searches = sandbox.request_counts()["POST /crm/v3/objects/contacts/search"];
    assert!(
        (53..=53 + 4).contains(&searches),
        "{searches} searches for 53 pages"
    );
}

#[tokio::test]
async fn a_large_walk_searches_several_id_ranges_at_once() {
    let sandbox = Sandbox::start(SandboxConfig::new(5, 9_000)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 200);
    let scope = PullScope::since(DateTime::<Utc>::UNIX_EPOCH);
    let first = crm.pull_page(&scope, None).await.unwrap();
    let cursor = first.next.clone().unwrap();
    // 9,000 contacts: the rest of the walk (44 pages) is split into four lanes of ≥ 10 pages.
    assert_eq!(cursor.split(',').count(), 4, "{cursor}");
    let second = crm.pull_page(&scope, Some(&cursor)).await.unwrap();
    // The second page holds each lane's first page: ids from every quarter of the range.
    let order = contact_ids(&sandbox);
    let rank = |id: &str| order.iter().position(|o| o == id).unwrap();
    let quarters: BTreeSet<usize> = second
        .leads
        .iter()
        .map(|l| rank(l.id.as_str()) * 4 / order.len())
        .collect();
    assert_eq!(quarters.len(), 4, "{quarters:?}");
    // The walk goes on from there and returns every contact exactly once.
    let mut ids: Vec<String> = first
        .leads
        .iter()
        .chain(&second.leads)
        .map(|l| l.id.to_string())
        .collect();
    let mut next = second.next;
    while let Some(c) = next {
        let page = crm.pull_page(&scope, Some(&c)).await.unwrap();
        ids.extend(page.leads.iter().map(|l| l.id.to_string()));
        next = page.next;
    }
    ids.sort_by_key(|id| rank(id));
    assert_eq!(ids, order);
    let searches = sandbox.request_counts()["POST /crm/v3/objects/contacts/search"];
    assert!((45..=45 + 4).contains(&searches), "{searches} searches");
}

#[tokio::test]
async fn a_lane_that_ends_early_takes_part_of_a_lane_with_more_left() {
    // 12,000 contacts, three of every four archived in the lower three quarters of the ids:
    // the lanes over those end long before the ones over the dense top quarter.
    let sandbox = Sandbox::start(SandboxConfig::new(5, 12_000)).await.unwrap();
    let all = contact_ids(&sandbox);
    for (i, id) in all.iter().enumerate() {
        if i < all.len() * 3 / 4 && i % 4 != 0 {
            sandbox.archive_contact(id.parse().unwrap());
        }
    }
    let live: Vec<String> = all
        .iter()
        .filter(|id| !sandbox.contact(id.parse().unwrap()).unwrap().archived)
        .cloned()
        .collect();
    let crm = crm(&sandbox, sandbox.token(), 100);
    let scope = PullScope::since(DateTime::<Utc>::UNIX_EPOCH);
    let (mut ids, mut next, mut bounds) = (Vec::new(), None::<String>, Vec::new());
    loop {
        let page = crm.pull_page(&scope, next.as_deref()).await.unwrap();
        ids.extend(page.leads.iter().map(|l| l.id.to_string()));
        let Some(cursor) = page.next else { break };
        // Every lane's upper bound, as this cursor carries them.
        bounds.push(
            cursor
                .split(',')
                .filter_map(|lane| lane.split_once('-').map(|(_, through)| through.to_owned()))
                .collect::<BTreeSet<_>>(),
        );
        next = Some(cursor);
    }
    // A bound no lane had when the walk was split is a lane split mid-walk.
    let first = bounds.first().cloned().unwrap_or_default();
    assert!(first.len() >= 4, "the walk was split into lanes: {first:?}");
    assert!(
        bounds.iter().flatten().any(|b| !first.contains(b)),
        "no lane took from another: {bounds:?}"
    );
    // And still every live contact exactly once.
    let rank: BTreeMap<&str, usize> = live
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    ids.sort_by_key(|id| rank.get(id.as_str()).copied().unwrap_or(usize::MAX));
    assert_eq!(ids, live);
    // Each split costs at most one partial page more.
    let searches = sandbox.request_counts()["POST /crm/v3/objects/contacts/search"];
    let pages = live.len().div_ceil(100) as u64;
    assert!(
        searches <= pages + 20,
        "{searches} searches for {pages} pages"
    );
}

#[tokio::test]
async fn wrong_token_is_unauthorized() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 10)).await.unwrap();
    let crm = crm(&sandbox, "wrong", 10);
    assert_eq!(
        crm.pull_page(&PullScope::since(DateTime::<Utc>::UNIX_EPOCH), None)
            .await
            .unwrap_err(),
        CrmError::Unauthorized
    );
}

#[tokio::test]
async fn push_writes_in_batches_of_100_and_maps_207_errors() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 250)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 200);
    crm.ensure_properties(&criteria().crm_property_specs())
        .await
        .unwrap();
    let mut updates: Vec<PropertyUpdate> = sandbox
        .contacts()
        .iter()
        .map(|c| PropertyUpdate {
            lead_id: LeadId::new(c.id.to_string()).unwrap(),
            properties: BTreeMap::from([("leadsync_stage".to_owned(), "mql".to_owned())]),
        })
        .collect();
    updates.push(PropertyUpdate {
        lead_id: LeadId::new("999").unwrap(),
        properties: BTreeMap::new(),
    });
    let outcome = crm.push(&updates).await.unwrap();
    assert_eq!(outcome.requests, 3);
    assert_eq!(outcome.written.len(), 250);
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].lead_id.as_str(), "999");
    assert!(!outcome.failed[0].retryable);
    let first = sandbox.contacts()[0].clone();
    assert_eq!(first.properties["leadsync_stage"], "mql");
    assert_eq!(
        sandbox.request_counts()["POST /crm/v3/objects/contacts/batch/update"],
        3
    );
}

#[tokio::test]
async fn unreachable_crm_is_a_retryable_error() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 1)).await.unwrap();
    let base = sandbox.base_url();
    sandbox.shutdown().await;
    let mut config = HubSpotConfig::new(base, "t".to_owned().into());
    config.retry.retries = 1;
    config.retry.first = std::time::Duration::from_millis(1);
    let error = HubSpotCrm::new(config)
        .unwrap()
        .pull_page(&PullScope::since(DateTime::<Utc>::UNIX_EPOCH), None)
        .await
        .unwrap_err();
    assert!(error.is_retryable(), "{error:?}");
}

fn criteria() -> leadsync_domain::Criteria {
    leadsync_domain::Criteria::parse("c", include_str!("../../../infra/criteria/b2b-saas.toml"))
        .unwrap()
}

#[tokio::test]
async fn property_bootstrap_creates_missing_properties_once() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 5)).await.unwrap();
    let specs = criteria().crm_property_specs();
    let first = crm(&sandbox, sandbox.token(), 200);
    // 8 results, and the 5 inputs leadsync owns (this portal has them already).
    assert_eq!(specs.len(), 13);
    assert_eq!(specs.iter().filter(|s| s.read_only).count(), 5);
    assert_eq!(first.ensure_properties(&specs).await.unwrap(), 8);
    assert_eq!(first.ensure_properties(&specs).await.unwrap(), 0);
    // A fresh client (a new cold start) finds them and creates nothing.
    let second = crm(&sandbox, sandbox.token(), 200);
    assert_eq!(second.ensure_properties(&specs).await.unwrap(), 0);
    let counts = sandbox.request_counts();
    assert_eq!(counts["POST /crm/v3/properties/contacts"], 8);
    assert_eq!(counts["POST /crm/v3/properties/contacts/groups"], 1);
    assert_eq!(
        counts["GET /crm/v3/properties/contacts"], 2,
        "the first client checks once"
    );

    // The stage property is an enumeration of the stages.
    let listed = listed_properties(&sandbox).await;
    let stage = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "leadsync_stage")
        .unwrap();
    assert_eq!(stage["type"], "enumeration");
    assert_eq!(stage["groupName"], "leadsync");
    assert_eq!(
        stage["options"].as_array().unwrap().len(),
        leadsync_domain::Stage::ALL.len()
    );

    // A later version writes a value the enumeration lacks (a renamed band): the option is added,
    // the account's own options kept.
    let mut next = specs.clone();
    next.iter_mut()
        .find(|s| s.name == "leadsync_band")
        .unwrap()
        .options
        .push("A+".into());
    let third = crm(&sandbox, sandbox.token(), 200);
    assert_eq!(third.ensure_properties(&next).await.unwrap(), 0);
    let listed = listed_properties(&sandbox).await;
    let band = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "leadsync_band")
        .unwrap();
    let values: Vec<&str> = band["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["A", "B", "C", "D", "A+"]);
}

#[tokio::test]
async fn writing_an_unknown_property_fails_the_rows_not_the_run() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 3)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 200);
    let updates: Vec<PropertyUpdate> = sandbox
        .contacts()
        .iter()
        .map(|c| PropertyUpdate {
            lead_id: LeadId::new(c.id.to_string()).unwrap(),
            properties: BTreeMap::from([("no_such_property".to_owned(), "x".to_owned())]),
        })
        .collect();
    let outcome = crm.push(&updates).await.unwrap();
    assert_eq!(outcome.failed.len(), 3);
    assert!(
        outcome
            .failed
            .iter()
            .all(|f| !f.retryable && f.message.contains("PROPERTY_DOESNT_EXIST")),
        "{:?}",
        outcome.failed
    );
}

#[tokio::test]
async fn leads_carry_their_deals_from_v4_associations() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 600)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 200);
    let (mut leads, mut cursor) = (vec![], None::<String>);
    loop {
        let page = crm
            .pull_page(
                &PullScope::since(DateTime::<Utc>::UNIX_EPOCH),
                cursor.as_deref(),
            )
            .await
            .unwrap();
        leads.extend(page.leads);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let deals: std::collections::HashMap<String, leadsync_sandbox::Record> = sandbox
        .deals()
        .into_iter()
        .map(|d| (d.id.to_string(), d))
        .collect();
    assert!(deals.len() > 40, "the data has deals ({})", deals.len());
    // Some deals are shared by two contacts: each is attached to both.
    let mut seen = BTreeSet::new();
    for lead in &leads {
        let want: Vec<String> = sandbox
            .contact_deals(lead.id.as_str().parse().unwrap())
            .iter()
            .map(u64::to_string)
            .collect();
        let got: Vec<String> = lead.deals.iter().map(|d| d.id.clone()).collect();
        assert_eq!(got, want, "deals of contact {}", lead.id);
        for deal in &lead.deals {
            let raw = &deals[&deal.id].properties;
            let amount = &raw["amount"];
            let (units, frac) = amount.split_once('.').unwrap();
            assert_eq!(
                deal.amount_cents,
                Some(units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap())
            );
            assert_eq!(deal.stage.as_deref(), Some(raw["dealstage"].as_str()));
            seen.insert(deal.id.clone());
        }
    }
    assert_eq!(
        seen.len(),
        deals.len(),
        "every deal attached to its contacts"
    );
    // One association read per ≤1,000 contacts, deals read 100 at a time.
    let counts = sandbox.request_counts();
    assert!(
        counts["POST /crm/v4/associations/contacts/deals/batch/read"] <= 3,
        "{counts:?}"
    );
    assert!(
        counts["POST /crm/v3/objects/deals/batch/read"] <= (deals.len() as u64).div_ceil(100) + 3,
        "{counts:?}"
    );
}

/// The contact properties as the sandbox lists them.
async fn listed_properties(sandbox: &Sandbox) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}/crm/v3/properties/contacts", sandbox.base_url()))
        .bearer_auth(sandbox.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn slices_walked_by_one_client_read_each_company_once() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 2_000)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 200);
    let order = contact_ids(&sandbox);
    let middle: u64 = order[order.len() / 2].parse().unwrap();
    let mut low = PullScope::since(DateTime::<Utc>::UNIX_EPOCH);
    low.through = Some(ScopeKey::new(middle.to_string()));
    let mut high = PullScope::since(DateTime::<Utc>::UNIX_EPOCH);
    high.after = Some(ScopeKey::new(middle.to_string()));
    let (mut pulled, mut companies) = (0, BTreeSet::new());
    let mut per_slice = Vec::new();
    for scope in [low, high] {
        let mut mine = BTreeSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = crm.pull_page(&scope, cursor.as_deref()).await.unwrap();
            pulled += page.leads.len();
            for lead in &page.leads {
                assert!(!lead.firmographics.is_empty() || lead.company_id.is_none());
                mine.extend(lead.company_id.clone());
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        companies.extend(mine.iter().cloned());
        per_slice.push(mine.len());
    }
    assert_eq!(pulled, 2_000);
    // Both halves reference most companies; the second half's walk reuses the first's reads.
    assert!(
        per_slice.iter().sum::<usize>() > companies.len() * 3 / 2,
        "{per_slice:?} of {}",
        companies.len()
    );
    let reads = sandbox.request_counts()["POST /crm/v3/objects/companies/batch/read"];
    assert!(
        (reads as usize) <= companies.len().div_ceil(100) + 2,
        "{reads} company reads for {} companies",
        companies.len()
    );
}

#[tokio::test]
async fn a_changed_deal_names_its_contacts_and_merges_and_deletions_are_read() {
    let sandbox = Sandbox::start(SandboxConfig::new(7, 400)).await.unwrap();
    let crm = crm(&sandbox, sandbox.token(), 200);
    let t0 = Utc::now() - chrono::Duration::seconds(1);
    assert!(crm.contacts_touched_since(t0).await.unwrap().is_empty());
    // A rep closes a deal shared by two contacts: both are named, though neither changed.
    let contacts = sandbox.contacts();
    let (deal, owners): (u64, Vec<u64>) = sandbox
        .deals()
        .iter()
        .find_map(|d| {
            let with: Vec<u64> = contacts
                .iter()
                .filter(|c| sandbox.contact_deals(c.id).contains(&d.id))
                .map(|c| c.id)
                .collect();
            (with.len() == 2).then_some((d.id, with))
        })
        .expect("a deal on two contacts");
    assert!(sandbox.edit_deal(
        deal,
        &[("hs_is_closed_won", "true"), ("hs_is_closed", "true")]
    ));
    let touched: Vec<String> = crm
        .contacts_touched_since(t0)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expected: Vec<String> = owners.iter().map(u64::to_string).collect();
    assert_eq!(touched, expected);

    // A merge and a deletion: the winner names the loser; both the loser and the deleted
    // contact are listed as deleted since t0, and nothing before it.
    let ids: Vec<u64> = contacts.iter().map(|c| c.id).collect();
    assert!(sandbox.merge_contacts(ids[0], ids[1]));
    assert!(sandbox.archive_contact(ids[2]));
    let deleted: BTreeSet<String> = crm
        .deleted_since(t0)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(
        deleted,
        BTreeSet::from([ids[1].to_string(), ids[2].to_string()])
    );
    assert!(
        crm.deleted_since(Utc::now() + chrono::Duration::minutes(1))
            .await
            .unwrap()
            .is_empty()
    );
    let winner = crm
        .pull_page(
            &PullScope {
                only: vec![LeadId::new(ids[0].to_string()).unwrap()],
                ..PullScope::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        winner.leads[0].merged_ids,
        vec![LeadId::new(ids[1].to_string()).unwrap()]
    );
}
