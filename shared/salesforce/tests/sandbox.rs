//! The adapter against the Salesforce sandbox org: the walk, slices, push, sessions, fields,
//! the budget, deletes, merges and conversions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::LeadId;
use leadsync_domain::ports::{Crm, CrmError, PropertyKind, PropertySpec, PropertyUpdate};
use leadsync_domain::runs::PullScope;
use leadsync_salesforce::{SalesforceConfig, SalesforceCrm};
use leadsync_salesforce_sandbox::{SalesforceConfig as OrgConfig, SalesforceSandbox};
use secrecy::SecretString;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

fn crm(org: &SalesforceSandbox, page: u32) -> SalesforceCrm {
    let mut config = SalesforceConfig::new(
        org.base_url(),
        org.client_id(),
        SecretString::from(org.client_secret().to_owned()),
    );
    config.page_size = page;
    config.retry = leadsync_salesforce::RetryPolicy::HTTP.faster(40);
    SalesforceCrm::new(config).unwrap()
}

fn epoch() -> PullScope {
    PullScope::since(DateTime::<Utc>::UNIX_EPOCH)
}

async fn walk(
    crm: &SalesforceCrm,
    scope: &PullScope,
    mut between: impl FnMut(usize),
) -> Vec<leadsync_domain::Lead> {
    let mut out = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = crm.pull_page(scope, cursor.as_deref()).await.unwrap();
        assert!(page.rejected.is_empty(), "{:?}", page.rejected);
        out.extend(page.leads);
        pages += 1;
        between(pages);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

#[tokio::test]
async fn a_walk_reads_every_person_once_with_deals_in_the_fewest_requests() {
    let org = SalesforceSandbox::start(OrgConfig::new(7, 2_000))
        .await
        .unwrap();
    let crm = crm(&org, 200);
    let leads = walk(&crm, &epoch(), |_| {}).await;
    let ids: Vec<String> = leads.iter().map(|l| l.id.to_string()).collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "nobody twice in a quiet walk");
    assert_eq!(unique, org.people(), "everybody");
    // Contacts carry their opportunities; the money is exact.
    let with_deals: Vec<_> = leads.iter().filter(|l| !l.deals.is_empty()).collect();
    assert!(!with_deals.is_empty());
    assert!(with_deals.iter().all(|l| l.id.as_str().starts_with("003")));
    let won = with_deals
        .iter()
        .flat_map(|l| &l.deals)
        .filter(|d| d.closed_won == Some(true))
        .count();
    assert!(won > 0);
    // Requests: per object ⌊n / 200⌋ + 1 pages (the last one short), the contact roles of
    // each contact page (200 rows a page), 4 describes, and at the start 2 merge queries and
    // the converted leads (200 a page). Here every contact fits one page.
    let contacts = org.records("Contact").len();
    let unconverted = unique.len() - contacts;
    let roles = org.records("OpportunityContactRole").len();
    let converted = org
        .records("Lead")
        .iter()
        .filter(|l| l.flag("IsConverted"))
        .count();
    assert!(contacts < 200);
    let minimum = contacts / 200
        + 1
        + unconverted / 200
        + 1
        + roles.div_ceil(200)
        + 4
        + 2
        + converted.div_ceil(200).max(1);
    let made = crm.requests() as usize;
    println!(
        "people {} (contacts {contacts}), requests {made}, minimum {minimum}, org {:?}",
        unique.len(),
        org.counters()
    );
    assert!(made <= minimum, "{made} requests, {minimum} the minimum");
    let census = crm.count(&epoch()).await.unwrap();
    assert_eq!(census.total as usize, unique.len());
    assert!(census.last.unwrap().as_str().starts_with("00Q"));
}

#[tokio::test]
async fn edits_during_the_walk_lose_nobody_and_slices_split_the_people() {
    let org = SalesforceSandbox::start(OrgConfig::new(7, 1_500))
        .await
        .unwrap();
    let crm = crm(&org, 200);
    let all: Vec<String> = org.people().into_iter().collect();
    // Between pages, people the walk has and has not reached yet change.
    let mut edited = BTreeSet::new();
    let leads = walk(&crm, &epoch(), |page| {
        for k in 0..5 {
            let id = &all[(page * 97 + k * 311) % all.len()];
            assert!(org.edit(id, &[("Title", json!(format!("Edited {page}")))]));
            edited.insert(id.clone());
        }
    })
    .await;
    let seen: BTreeSet<String> = leads.iter().map(|l| l.id.to_string()).collect();
    assert_eq!(seen.len(), leads.len(), "nobody twice, edited or not");
    assert_eq!(seen, org.people(), "everybody");
    assert!(edited.len() > 20);
    // Slices planned over the key space hold everyone exactly once between them.
    let plan = leadsync_pipeline::plan::plan_slices(&crm, &epoch(), 300, 64)
        .await
        .unwrap();
    println!(
        "{} slices from {} count requests",
        plan.scopes.len(),
        plan.requests
    );
    assert!(plan.scopes.len() >= 4, "{} slices", plan.scopes.len());
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for scope in &plan.scopes {
        for lead in walk(&crm, scope, |_| {}).await {
            *counts.entry(lead.id.to_string()).or_default() += 1;
        }
    }
    assert!(counts.values().all(|n| *n == 1), "a person in two slices");
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        org.people()
    );
}

fn bulk_crm(org: &SalesforceSandbox, threshold: u64) -> SalesforceCrm {
    let mut config = SalesforceConfig::new(
        org.base_url(),
        org.client_id(),
        SecretString::from(org.client_secret().to_owned()),
    );
    config.page_size = 200;
    config.retry = leadsync_salesforce::RetryPolicy::HTTP.faster(40);
    config.bulk_threshold = threshold;
    config.bulk_page_size = 500;
    config.bulk_polling.every = Duration::from_millis(5);
    SalesforceCrm::new(config).unwrap()
}

#[tokio::test]
async fn a_large_first_sync_reads_its_leads_through_one_bulk_job_and_the_same_people() {
    let org = SalesforceSandbox::start(OrgConfig {
        bulk_polls: 3,
        ..OrgConfig::new(7, 2_000)
    })
    .await
    .unwrap();
    let by_rest = walk(&bulk_crm(&org, 0), &epoch(), |_| {}).await;
    let rest_counters = org.counters();
    assert_eq!(rest_counters.bulk_jobs, 0);

    let leads_in_org = org
        .records("Lead")
        .iter()
        .filter(|l| !l.flag("IsConverted"))
        .count();
    let crm = bulk_crm(&org, 1_000);
    let mut edited = Vec::new();
    let all: Vec<String> = org.people().into_iter().collect();
    let by_bulk = walk(&crm, &epoch(), |page| {
        // People change while the job's pages are read.
        let id = &all[(page * 389) % all.len()];
        assert!(org.edit(id, &[("Title", json!(format!("Edited {page}")))]));
        edited.push(id.clone());
    })
    .await;
    let c = org.counters();
    // The first Lead page (REST, 200) says how many there are; the rest in one job, read in
    // pages of 500, then deleted.
    assert_eq!(c.bulk_jobs - rest_counters.bulk_jobs, 1);
    assert_eq!(
        (c.bulk_results - rest_counters.bulk_results) as usize,
        (leads_in_org - 200).div_ceil(500)
    );
    assert!(
        c.bulk_polls - rest_counters.bulk_polls >= 4,
        "polled until complete"
    );
    let ids: Vec<String> = by_bulk.iter().map(|l| l.id.to_string()).collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "nobody twice");
    assert_eq!(unique, org.people(), "everybody");
    // Each person read from the job's CSV is the person the REST walk read (the job's
    // snapshot predates the edits of this walk; the REST walk's came before any).
    let rest: BTreeMap<String, &leadsync_domain::Lead> =
        by_rest.iter().map(|l| (l.id.to_string(), l)).collect();
    let mut compared = 0;
    for lead in &by_bulk {
        if edited.contains(&lead.id.to_string()) {
            continue;
        }
        let mut expected = (*rest[lead.id.as_str()]).clone();
        expected.modified_at = lead.modified_at;
        assert_eq!(lead, &expected, "{}", lead.id);
        compared += 1;
    }
    assert!(compared > 1_500, "{compared}");

    // A walk over changes (not a first sync) never starts a job.
    let since = PullScope::since(Utc::now() - chrono::Duration::days(1));
    let _ = walk(&crm, &since, |_| {}).await;
    assert_eq!(org.counters().bulk_jobs, c.bulk_jobs);
}

#[tokio::test]
async fn cut_short_bulk_pages_are_read_again_not_lost() {
    let org = SalesforceSandbox::start(OrgConfig::new(7, 1_500))
        .await
        .unwrap();
    org.set_faults(
        leadsync_sandbox::Faults {
            malformed_rate: 0.3,
            ..leadsync_sandbox::Faults::default()
        },
        0.0,
    );
    let crm = bulk_crm(&org, 500);
    let leads = walk(&crm, &epoch(), |_| {}).await;
    let unique: BTreeSet<String> = leads.iter().map(|l| l.id.to_string()).collect();
    assert_eq!(unique.len(), leads.len());
    assert_eq!(unique, org.people());
    let c = org.counters();
    assert_eq!(c.bulk_jobs, 1);
    assert!(c.injected_malformed > 0, "{c:?}");
}

fn jwt_crm(org: &SalesforceSandbox, username: &str, key: &str) -> SalesforceCrm {
    let mut config = SalesforceConfig::new(
        org.base_url(),
        org.client_id(),
        SecretString::from(String::new()),
    )
    .with_jwt(leadsync_salesforce::JwtBearer {
        username: username.to_owned(),
        private_key: SecretString::from(key.to_owned()),
        audience: "https://login.salesforce.com".into(),
    });
    config.retry = leadsync_salesforce::RetryPolicy::HTTP.faster(40);
    SalesforceCrm::new(config).unwrap()
}

#[tokio::test]
async fn the_jwt_bearer_flow_logs_in_renews_and_says_what_is_wrong() {
    use leadsync_salesforce_sandbox::server::{JWT_PRIVATE_KEY, JWT_USERNAME};
    let org = SalesforceSandbox::start(OrgConfig::new(7, 300))
        .await
        .unwrap();
    let crm = jwt_crm(&org, JWT_USERNAME, JWT_PRIVATE_KEY);
    let everyone = walk(&crm, &epoch(), |_| {}).await;
    assert_eq!(everyone.len(), org.people().len());
    assert_eq!(org.counters().tokens, 1);
    // An expired session is renewed once, with a fresh assertion.
    org.expire_sessions();
    assert_eq!(walk(&crm, &epoch(), |_| {}).await.len(), everyone.len());
    assert_eq!(org.counters().tokens, 2);

    // A user the app does not know, and a key that is not one: named, not retried.
    let stranger = jwt_crm(&org, "someone@else.example", JWT_PRIVATE_KEY);
    let err = stranger
        .pull_page(&epoch(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid_grant: user hasn't approved this consumer")
            && err.contains("someone@else.example"),
        "{err}"
    );
    let not_a_key = jwt_crm(
        &org,
        JWT_USERNAME,
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    );
    let err = not_a_key
        .pull_page(&epoch(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an RSA key in PEM form"), "{err}");
}

fn specs() -> Vec<PropertySpec> {
    vec![
        PropertySpec {
            name: "leadsync_stage".into(),
            label: "leadsync stage".into(),
            kind: PropertyKind::Enumeration,
            options: vec!["mql".into(), "sql".into()],
            read_only: false,
        },
        PropertySpec {
            name: "leadsync_score".into(),
            label: "leadsync score".into(),
            kind: PropertyKind::Number,
            options: vec![],
            read_only: false,
        },
    ]
}

#[tokio::test]
async fn results_are_written_in_collections_with_locked_rows_retried() {
    let org = SalesforceSandbox::start(OrgConfig::new(7, 600))
        .await
        .unwrap();
    let crm = crm(&org, 200);
    assert_eq!(crm.ensure_properties(&specs()).await.unwrap(), 4);
    assert_eq!(
        crm.ensure_properties(&specs()).await.unwrap(),
        0,
        "idempotent"
    );
    org.set_faults(Default::default(), 0.3);
    let ids: Vec<String> = org.people().into_iter().take(450).collect();
    let updates: Vec<PropertyUpdate> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| PropertyUpdate {
            lead_id: LeadId::new(id).unwrap(),
            properties: BTreeMap::from([
                ("leadsync_stage".to_owned(), "mql".to_owned()),
                ("leadsync_score".to_owned(), (i % 100).to_string()),
            ]),
        })
        .collect();
    let mut deleted = ids[7].clone();
    org.delete(&deleted);
    let outcome = crm.push(&updates).await.unwrap();
    assert_eq!(outcome.written.len(), 449, "{:?}", outcome.failed);
    assert_eq!(outcome.failed.len(), 1);
    assert!(!outcome.failed[0].retryable);
    assert!(outcome.failed[0].message.starts_with("ENTITY_IS_DELETED"));
    assert!(
        org.counters().injected_lock > 0,
        "locks were injected and retried"
    );
    let r = org.record(&ids[3]).unwrap();
    assert_eq!(r.text("Leadsync_Stage__c"), Some("mql"));
    assert_eq!(r.fields["Leadsync_Score__c"], json!(3.0));
    deleted.clear();
}

#[tokio::test]
async fn sessions_fields_and_the_daily_budget_fail_clearly() {
    let mut config = OrgConfig::new(7, 100);
    config.daily_requests = 40;
    let org = SalesforceSandbox::start(config).await.unwrap();
    // An expired session is renewed once, silently.
    let crm = crm(&org, 200);
    crm.count(&epoch()).await.unwrap();
    org.expire_sessions();
    crm.count(&epoch()).await.unwrap();
    // A wrong secret says what to check.
    let mut wrong = SalesforceConfig::new(
        org.base_url(),
        org.client_id(),
        SecretString::from("nope".to_owned()),
    );
    wrong.retry = leadsync_salesforce::RetryPolicy::HTTP.faster(200);
    let e = SalesforceCrm::new(wrong)
        .unwrap()
        .count(&epoch())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("invalid_client"), "{e}");
    // A field the integration user cannot see is named.
    org.hide_field("Lead", "Page_Views__c");
    let fresh = crm_with_share(&org, 1.0);
    let e = fresh.pull_page(&epoch(), None).await.unwrap_err();
    assert!(e.to_string().contains("Lead.Page_Views__c"), "{e}");
    // Past its share of the allocation, the run stops with a rate-limit error.
    let budget = crm_with_share(&org, 0.5);
    let mut stopped = None;
    for _ in 0..40 {
        if let Err(e) = budget.count(&epoch()).await {
            stopped = Some(e);
            break;
        }
    }
    let e = stopped.expect("the budget stops the run");
    assert!(matches!(e, CrmError::RateLimited { .. }), "{e}");
    assert!(e.to_string().contains("DAILY"), "{e}");
    assert!(org.api_usage() <= 40);
}

fn crm_with_share(org: &SalesforceSandbox, share: f64) -> SalesforceCrm {
    let mut config = SalesforceConfig::new(
        org.base_url(),
        org.client_id(),
        SecretString::from(org.client_secret().to_owned()),
    );
    config.daily_budget_share = share;
    config.retry = leadsync_salesforce::RetryPolicy::HTTP.faster(200);
    SalesforceCrm::new(config).unwrap()
}

#[tokio::test]
async fn deletes_merges_and_conversions_keep_each_person_one_lead() {
    let org = SalesforceSandbox::start(OrgConfig::new(7, 400))
        .await
        .unwrap();
    let crm = crm(&org, 200);
    let before = walk(&crm, &epoch(), |_| {}).await;
    let mark = org
        .records("Lead")
        .iter()
        .filter_map(|r| r.text("SystemModstamp").map(str::to_owned))
        .max()
        .unwrap();
    let since = leadsync_salesforce::mapping::parse_time(&mark).unwrap();
    let leads: Vec<String> = before
        .iter()
        .filter(|l| l.id.as_str().starts_with("00Q"))
        .map(|l| l.id.to_string())
        .collect();
    let contacts: Vec<String> = before
        .iter()
        .filter(|l| l.id.as_str().starts_with("003"))
        .map(|l| l.id.to_string())
        .collect();
    // A lead converts, another is deleted, two contacts merge.
    let contact = org.convert(&leads[0], None).unwrap();
    org.delete(&leads[1]);
    assert!(org.merge(&contacts[0], &contacts[1]));
    let scope = PullScope::since(since);
    let after = walk(&crm, &scope, |_| {}).await;
    let by_id: BTreeMap<String, &leadsync_domain::Lead> =
        after.iter().map(|l| (l.id.to_string(), l)).collect();
    assert!(
        !by_id.contains_key(&leads[0]),
        "a converted lead is not a person any more"
    );
    let converted = by_id[&contact];
    assert_eq!(converted.merged_ids, [LeadId::new(&leads[0]).unwrap()]);
    let master = by_id[&contacts[0]];
    assert!(
        master
            .merged_ids
            .contains(&LeadId::new(&contacts[1]).unwrap())
    );
    assert!(!by_id.contains_key(&contacts[1]));
    let gone: BTreeSet<String> = crm
        .deleted_since(since)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    assert!(
        gone.contains(&leads[1]) && gone.contains(&contacts[1]),
        "{gone:?}"
    );
    // An opportunity that changes reaches its contact though the contact did not change.
    let opportunity = org.records("OpportunityContactRole")[0].clone();
    let opp_id = opportunity.text("OpportunityId").unwrap().to_owned();
    let later = leadsync_salesforce::mapping::parse_time(
        org.record(&contact)
            .unwrap()
            .text("SystemModstamp")
            .unwrap(),
    )
    .unwrap();
    org.edit(&opp_id, &[("StageName", json!("Negotiation"))]);
    let touched = crm.contacts_touched_since(later).await.unwrap();
    assert!(
        touched
            .iter()
            .any(|id| id.as_str() == opportunity.text("ContactId").unwrap()),
        "{touched:?}"
    );
}
