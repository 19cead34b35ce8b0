//! The same seeded people through both CRMs: the nightly-sync handler against the HubSpot
//! sandbox and against the Salesforce sandbox org (each with its own table on moto) gives
//! every person the same stage, scores, band and reasons, and the same KPIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use chrono::{DateTime, Utc};
use lambda_runtime::{Context, LambdaEvent};
use leadsync_app::{Config, Deps};
use leadsync_domain::LeadId;
use leadsync_domain::ports::{LeadStore, RollupStore};
use leadsync_domain::rollup::RowBody;
use leadsync_salesforce_sandbox::{SalesforceConfig, SalesforceSandbox};
use leadsync_sandbox::{Sandbox, SandboxConfig};
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

/// A month's KPI and incentive rows, owners named as the Salesforce org names them
/// (`owner_id` turns a HubSpot owner id into its User id; identity for the org's own rows).
/// An incentive row's lineage (a hash of its facts' keys, which hold each CRM's own record
/// ids) is left out; its fact count, credits and outcomes are compared.
async fn rollups(
    deps: &Deps,
    period: &str,
    owner_id: impl Fn(&str) -> String,
) -> BTreeMap<String, String> {
    let owner_dimension = |d: &str| match d.strip_prefix("owner:") {
        Some(id) if id != "(unassigned)" => format!("owner:{}", owner_id(id)),
        _ => d.to_owned(),
    };
    deps.store
        .rows(period)
        .await
        .unwrap()
        .iter()
        .filter_map(|r| match r.parse() {
            Ok(RowBody::Kpi(k)) => Some((
                format!(
                    "KPI|{}|{}|{}",
                    k.grain,
                    k.metric,
                    owner_dimension(&k.dimension)
                ),
                format!("{} of {}", k.value, k.base),
            )),
            Ok(RowBody::Incentive(i)) => {
                let owner = match i.team {
                    leadsync_domain::incentives::Team::Sales if i.owner != "(unassigned)" => {
                        owner_id(&i.owner)
                    }
                    leadsync_domain::incentives::Team::Sales => i.owner.clone(),
                    leadsync_domain::incentives::Team::Marketing => i.owner.clone(),
                };
                Some((
                    format!("INC|{}|{:?}|{owner}", i.criteria_version, i.team),
                    format!(
                        "{} cents, {:?}, {} facts, unconverted {:?}",
                        i.credits_cents, i.outcomes, i.facts, i.unconverted
                    ),
                ))
            }
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

    // The same KPIs and the same incentives, month by month, owner by owner (a HubSpot
    // owner is the org's User built from it).
    let mut incentive_rows = 0;
    for period in ["2026-09", "2026-10"] {
        let (x, y) = (
            rollups(
                &on_hubspot,
                period,
                leadsync_salesforce_sandbox::world::user_id,
            )
            .await,
            rollups(&on_salesforce, period, str::to_owned).await,
        );
        assert!(x.keys().any(|k| k.starts_with("KPI|")), "{period}");
        assert!(
            x.keys().any(|k| k.contains("|owner:005")),
            "{period}: owner rows"
        );
        incentive_rows += x.keys().filter(|k| k.starts_with("INC|")).count();
        let differ: Vec<_> = x
            .iter()
            .filter(|(k, v)| y.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: {v} vs {:?}", y.get(k)))
            .collect();
        assert!(differ.is_empty(), "{period}: {differ:?}");
        assert_eq!(
            x.keys().collect::<Vec<_>>(),
            y.keys().collect::<Vec<_>>(),
            "{period}"
        );
    }
    assert!(incentive_rows > 0, "incentives compared");
}
