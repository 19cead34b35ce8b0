//! The same seeded people through both CRMs: the nightly-sync handler against the HubSpot
//! sandbox and against the Salesforce sandbox org (each with its own table on moto) gives
//! every person the same stage, scores, band and reasons, and the same KPIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use leadsync_domain::LeadId;
use leadsync_domain::ports::{LeadStore, RollupStore};
use leadsync_domain::rollup::RowBody;
use leadsync_salesforce_sandbox::{SalesforceConfig, SalesforceSandbox};
use leadsync_sandbox::{Sandbox, SandboxConfig};
use nightly_sync::{Config, Deps};
use std::collections::{BTreeMap, HashMap};

fn event() -> LambdaEvent<serde_json::Value> {
    LambdaEvent::new(serde_json::json!({}), Context::default())
}

async fn deps(vars: Vec<(&'static str, String)>) -> Deps {
    let common::Aws {
        sdk, table, bucket, ..
    } = common::aws("sf").await;
    let mut vars: HashMap<&str, String> = vars.into_iter().collect();
    vars.insert("TABLE_NAME", table);
    vars.insert("BUCKET_NAME", bucket);
    let config = Config::from_lookup(|k| vars.get(k).cloned()).unwrap();
    Deps::new(config, &sdk).await.unwrap()
}

/// KPI rows of a month, keyed without owners (owner ids differ between the CRMs).
async fn kpis(deps: &Deps, period: &str) -> BTreeMap<String, (i64, i64)> {
    deps.store
        .rows(period)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| match r.parse() {
            Ok(RowBody::Kpi(k)) if !k.dimension.starts_with("owner") => Some((
                format!("{}|{}|{}", k.grain, k.metric, k.dimension),
                (k.value, k.base),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_same_people_get_the_same_stages_scores_and_kpis_from_either_crm() {
    const PEOPLE: u64 = 1_200;
    let hubspot = Sandbox::start(SandboxConfig::new(7, PEOPLE)).await.unwrap();
    let org = SalesforceSandbox::start(SalesforceConfig::new(7, PEOPLE))
        .await
        .unwrap();
    let on_hubspot = deps(vec![
        ("CRM_BASE_URL", hubspot.base_url()),
        ("CRM_TOKEN", hubspot.token().to_owned()),
        ("CRM_PAGE_SIZE", "100".to_owned()),
    ])
    .await;
    let on_salesforce = deps(vec![
        ("CRM_KIND", "salesforce".to_owned()),
        ("CRM_BASE_URL", org.base_url()),
        ("SF_CLIENT_ID", org.client_id().to_owned()),
        ("SF_CLIENT_SECRET", org.client_secret().to_owned()),
        ("SF_PAGE_SIZE", "200".to_owned()),
    ])
    .await;
    let now: DateTime<Utc> = "2026-11-01T06:00:00Z".parse().unwrap();
    let a = common::nightly_at(event(), &on_hubspot, now).await.unwrap();
    let b = common::nightly_at(event(), &on_salesforce, now)
        .await
        .unwrap();
    assert_eq!(a.pulled, PEOPLE, "{a:?}");
    assert_eq!(b.pulled, PEOPLE, "{b:?}");
    assert_eq!((a.quarantined, b.quarantined), (0, 0));
    assert_eq!(a.transitions_new, b.transitions_new);
    assert_eq!(a.pushed, b.pushed, "{a:?}\n{b:?}");

    // Person by person: HubSpot contact n is Salesforce record n (contact or lead).
    let people: Vec<(LeadId, LeadId)> = org
        .records("Contact")
        .into_iter()
        .chain(
            org.records("Lead")
                .into_iter()
                .filter(|l| !l.flag("IsConverted")),
        )
        .map(|r| {
            let n = leadsync_salesforce_sandbox::ids::counter(r.id()).unwrap();
            (
                LeadId::new(n.to_string()).unwrap(),
                LeadId::new(r.id()).unwrap(),
            )
        })
        .collect();
    assert_eq!(people.len() as u64, PEOPLE);
    let hs_ids: Vec<LeadId> = people.iter().map(|(h, _)| h.clone()).collect();
    let sf_ids: Vec<LeadId> = people.iter().map(|(_, s)| s.clone()).collect();
    let hs = on_hubspot.store.load_states(&hs_ids).await.unwrap();
    let sf = on_salesforce.store.load_states(&sf_ids).await.unwrap();
    let mut differ = Vec::new();
    for (h, s) in &people {
        let (x, y) = (&hs[h], &sf[s]);
        let seen = |st: &leadsync_domain::LeadState| {
            (
                st.stage,
                st.fit,
                st.engagement,
                st.total,
                st.band.clone(),
                st.reasons.clone(),
            )
        };
        if seen(x) != seen(y) {
            differ.push(format!("{h} / {s}: {:?} vs {:?}", seen(x), seen(y)));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ, e.g. {:?}",
        differ.len(),
        people.len(),
        &differ[..differ.len().min(5)]
    );
    // The results reached the org.
    let written = org
        .records("Lead")
        .iter()
        .filter(|l| l.text("Leadsync_Stage__c").is_some())
        .count();
    assert!(written > 0);

    // The same KPIs, month by month (owners aside: their ids are each CRM's own).
    for period in ["2026-09", "2026-10"] {
        let (x, y) = (
            kpis(&on_hubspot, period).await,
            kpis(&on_salesforce, period).await,
        );
        assert!(!x.is_empty(), "{period}");
        let differ: Vec<_> = x
            .iter()
            .filter(|(k, v)| y.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: {v:?} vs {:?}", y.get(k)))
            .collect();
        assert!(differ.is_empty(), "{period}: {differ:?}");
        assert_eq!(x.len(), y.len(), "{period}");
    }
}
