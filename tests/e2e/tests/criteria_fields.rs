//! Criteria that read a portal's own properties, end to end on the HubSpot sandbox: a contact
//! date, a company picklist and a deal amount, with negative points and date windows, scored and
//! written back, then checked against an independent computation from the sandbox's raw data;
//! BANT on a bare portal (the bootstrap creates the properties, sales fills them, the next run
//! reads them); the reasons a rep reads; a document naming a property the portal lacks refused
//! by name before anything is pulled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, NaiveDate, Utc};
use leadsync_domain::Criteria;
use leadsync_domain::fakes::{FakeLeadStore, FakeSnapshotStore};
use leadsync_enrich::NoProvider;
use leadsync_hubspot::{HubSpotConfig, HubSpotCrm};
use leadsync_pipeline::sync::{SyncDeps, SyncError, SyncInput, sync};
use leadsync_sandbox::{Sandbox, SandboxConfig};

const DOC: &str = r#"
id = "fields-e2e"
version = "1"
effective = "2026-11-01"

[fields]
plan_tier = { object = "company", property = "plan_tier", type = "enumeration" }
deal_amount = { object = "deal", property = "amount", type = "number" }
demo_at = { object = "contact", property = "demo_requested_at", type = "date" }

[stages.mql]
min_fit = 30
min_total = 40

[stages.sql]
min_fit = 60
min_total = 70

[[bands]]
name = "A"
min_total = 70

[[bands]]
name = "B"
min_total = 0

[[fit]]
code = "FIT_ENTERPRISE"
label = "Enterprise plan"
field = "plan_tier"
any_of = ["enterprise"]
points = 40

[[fit]]
code = "FIT_STARTER"
label = "Starter plan: too small for us"
field = "plan_tier"
any_of = ["starter"]
points = -10

[[fit]]
code = "FIT_BIG_DEAL"
label = "Latest deal of 10,000 or more"
field = "deal_amount"
min = 10000
points = 30

[[fit]]
code = "FIT_BUDGET"
label = "Budget confirmed"
field = "budget"
any_of = ["CONFIRMED"]
points = 10

[[engagement]]
code = "ENG_DEMO"
label = "Asked for a demo in the last 30 days"
field = "demo_at"
within_days = 30
points = 30

[[engagement]]
code = "ENG_DEMO_STALE"
label = "Demo request older than 90 days"
field = "demo_at"
older_than_days = 90
points = -5
"#;

fn crm(sandbox: &Sandbox) -> HubSpotCrm {
    let mut config = HubSpotConfig::new(sandbox.base_url(), sandbox.token().to_owned().into());
    config.limits = leadsync_hubspot::RateLimits {
        per_window: 100_000,
        window: std::time::Duration::from_secs(10),
        search_per_second: 100_000,
    };
    HubSpotCrm::new(config).unwrap()
}

struct World {
    crm: HubSpotCrm,
    store: FakeLeadStore,
    snapshots: FakeSnapshotStore,
}

impl World {
    async fn run(
        &self,
        criteria: &Criteria,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<leadsync_domain::ports::RunReport, SyncError> {
        let deps = SyncDeps {
            crm: &self.crm,
            store: &self.store,
            snapshots: &self.snapshots,
            providers: &[] as &[NoProvider],
            criteria,
            events: None,
        };
        let mut input = SyncInput::nightly(run_id, now);
        input.since_override = Some(DateTime::<Utc>::UNIX_EPOCH);
        sync(&deps, &input).await
    }
}

/// What the document says each contact scores, computed from the sandbox's records without
/// leadsync's code: (fit, engagement, the labels of the rules that scored, with their points).
fn expected(sandbox: &Sandbox, now: DateTime<Utc>) -> Vec<(u64, i64, i64, Vec<String>)> {
    let companies: std::collections::HashMap<u64, leadsync_sandbox::Record> =
        sandbox.companies().into_iter().map(|c| (c.id, c)).collect();
    let deals: std::collections::HashMap<u64, leadsync_sandbox::Record> =
        sandbox.deals().into_iter().map(|d| (d.id, d)).collect();
    let mut out = Vec::new();
    for contact in sandbox.contacts().into_iter().filter(|c| !c.archived) {
        let p = &contact.properties;
        let mut scored = Vec::new();
        let (mut fit, mut engagement) = (0i64, 0i64);
        let mut add = |points: i64, label: &str, fit_rule: bool| {
            scored.push(format!("{points:+} {label}"));
            if fit_rule {
                fit += points;
            } else {
                engagement += points;
            }
        };
        let tier = p
            .get("associatedcompanyid")
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| companies.get(&id))
            .and_then(|c| c.properties.get("plan_tier"))
            .map(|t| t.to_lowercase());
        match tier.as_deref() {
            Some("enterprise") => add(40, "Enterprise plan", true),
            Some("starter") => add(-10, "Starter plan: too small for us", true),
            _ => {}
        }
        let latest = sandbox
            .contact_deals(contact.id)
            .iter()
            .filter_map(|id| deals.get(id))
            .filter(|d| !d.archived)
            .filter_map(|d| {
                let amount: f64 = d.properties.get("amount")?.parse().ok()?;
                let created = d.properties.get("createdate")?.clone();
                Some((created, d.id.to_string(), amount))
            })
            .max_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        if latest.is_some_and(|(_, _, amount)| amount >= 10_000.0) {
            add(30, "Latest deal of 10,000 or more", true);
        }
        if p.get("bant_budget").map(String::as_str) == Some("CONFIRMED") {
            add(10, "Budget confirmed", true);
        }
        if let Some(day) = p.get("demo_requested_at") {
            let date = NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc();
            let age = now - date;
            if age >= Duration::zero() && age <= Duration::days(30) {
                add(30, "Asked for a demo in the last 30 days", false);
            }
            if age > Duration::days(90) {
                add(-5, "Demo request older than 90 days", false);
            }
        }
        out.push((
            contact.id,
            fit.clamp(0, 100),
            engagement.clamp(0, 100),
            scored,
        ));
    }
    out
}

/// Each contact's written scores and summary agree with [`expected`].
fn check_written(sandbox: &Sandbox, now: DateTime<Utc>) -> usize {
    let mut checked = 0;
    for (id, fit, engagement, scored) in expected(sandbox, now) {
        let contact = sandbox.contact(id).unwrap();
        let written = |name: &str| contact.properties.get(name).cloned();
        let Some(written_fit) = written("leadsync_fit_score") else {
            continue;
        };
        assert_eq!(written_fit, fit.to_string(), "fit of contact {id}");
        assert_eq!(
            written("leadsync_engagement_score"),
            Some(engagement.to_string()),
            "engagement of contact {id}"
        );
        let total = (fit + engagement).min(100);
        assert_eq!(written("leadsync_score"), Some(total.to_string()), "{id}");
        let summary = written("leadsync_summary").unwrap();
        assert!(!summary.trim().is_empty(), "contact {id} has no summary");
        for line in &scored {
            assert!(
                summary.lines().any(|l| l.starts_with(line.as_str())),
                "contact {id}: {line:?} not in the summary:\n{summary}"
            );
        }
        checked += 1;
    }
    checked
}

#[tokio::test]
async fn a_portal_s_own_properties_score_as_an_independent_computation_expects() {
    let sandbox = Sandbox::start(SandboxConfig {
        inputs_defined: false,
        ..SandboxConfig::new(23, 400)
    })
    .await
    .unwrap();
    let now = Utc::now();
    assert!(sandbox.define_property("contacts", "demo_requested_at", "date", "date"));
    assert!(sandbox.define_property("companies", "plan_tier", "enumeration", "select"));
    for company in sandbox.companies() {
        if company.id % 4 != 0 {
            let tier = ["enterprise", "growth", "starter"][(company.id % 3) as usize];
            sandbox.edit_company(company.id, &[("plan_tier", tier)]);
        }
    }
    for contact in sandbox.contacts() {
        if contact.id % 3 == 0 {
            let day = (now - Duration::days((contact.id % 150) as i64))
                .format("%Y-%m-%d")
                .to_string();
            sandbox.edit_contact(contact.id, &[("demo_requested_at", &day)]);
        }
    }
    // Contacts with two deals: the newer one decides, so each arrangement of a big and a
    // small amount appears.
    let deals: std::collections::HashMap<u64, leadsync_sandbox::Record> =
        sandbox.deals().into_iter().map(|d| (d.id, d)).collect();
    let mut arrangements = [0, 0];
    for contact in sandbox.contacts() {
        let mut mine: Vec<&leadsync_sandbox::Record> = sandbox
            .contact_deals(contact.id)
            .iter()
            .filter_map(|id| deals.get(id))
            .collect();
        match mine.len() {
            2 => {
                mine.sort_by_key(|d| (d.properties["createdate"].clone(), d.id.to_string()));
                let newer_big = (arrangements[0] + arrangements[1]) % 2 == 0;
                arrangements[usize::from(newer_big)] += 1;
                let (older, newer) = if newer_big {
                    ("2500", "50000")
                } else {
                    ("50000", "2500")
                };
                sandbox.edit_deal(mine[0].id, &[("amount", older)]);
                sandbox.edit_deal(mine[1].id, &[("amount", newer)]);
            }
            1 if contact.id % 7 == 0 => {
                sandbox.edit_deal(mine[0].id, &[("amount", "9999.99")]);
            }
            _ => {}
        }
    }
    assert!(arrangements.iter().all(|n| *n >= 1), "{arrangements:?}");
    let criteria = Criteria::parse("fields-e2e.toml", DOC).unwrap();
    let world = World {
        crm: crm(&sandbox),
        store: FakeLeadStore::new(),
        snapshots: FakeSnapshotStore::default(),
    };

    // A bare portal: no BANT properties. The run creates the ones leadsync owns.
    assert!(
        !sandbox
            .property_definitions("contacts")
            .contains_key("bant_budget")
    );
    let first = world.run(&criteria, "r1", now).await.unwrap();
    let defs = sandbox.property_definitions("contacts");
    for name in [
        "bant_budget",
        "bant_authority",
        "bant_need",
        "bant_timeline",
        "lead_rejection_reason",
    ] {
        assert!(defs.contains_key(name), "{name} was not created");
    }
    let budget_options: Vec<&str> = defs["bant_budget"]
        .options
        .iter()
        .map(|o| o.value.as_str())
        .collect();
    assert!(budget_options.contains(&"CONFIRMED"), "{budget_options:?}");
    let checked = check_written(&sandbox, now);
    assert_eq!(checked as u64, first.pushed, "{first:?}");
    assert!(checked >= 380, "only {checked} of 400 contacts were scored");
    // The data exercises every rule, both ways.
    let all = expected(&sandbox, now);
    for label in [
        "+40 Enterprise plan",
        "-10 Starter plan",
        "+30 Latest deal",
        "+30 Asked for a demo",
        "-5 Demo request older",
    ] {
        assert!(
            all.iter()
                .any(|(.., scored)| scored.iter().any(|s| s.starts_with(label))),
            "no contact scored {label}"
        );
    }
    assert!(all.iter().any(|(.., scored)| scored.is_empty()));

    // Sales records BANT in the properties leadsync created; the next run reads it.
    let mut confirmed = 0;
    for contact in sandbox.contacts() {
        if contact.id % 5 == 0 {
            sandbox.edit_contact(contact.id, &[("bant_budget", "CONFIRMED")]);
            confirmed += 1;
        }
    }
    let later = now + Duration::minutes(5);
    world.run(&criteria, "r2", later).await.unwrap();
    assert_eq!(check_written(&sandbox, later), checked);
    let with_budget = sandbox
        .contacts()
        .iter()
        .filter(|c| {
            c.properties
                .get("leadsync_summary")
                .is_some_and(|s| s.contains("+10 Budget confirmed [CONFIRMED]"))
        })
        .count();
    assert!(
        with_budget >= confirmed * 9 / 10,
        "{with_budget} of {confirmed}"
    );

    // A document naming a property the portal lacks is refused by name, before any pull.
    let searches = sandbox.request_counts()["POST /crm/v3/objects/contacts/search"];
    let wrong = DOC.replace("property = \"plan_tier\"", "property = \"plan_teir\"");
    let wrong = Criteria::parse("fields-e2e.toml", &wrong).unwrap();
    let err = world.run(&wrong, "r3", later).await.unwrap_err();
    let text = format!("{err}");
    assert!(matches!(err, SyncError::Fields(_)), "{err:?}");
    assert!(
        text.contains(
            "fields-e2e.toml:7:1: fields.plan_tier: HubSpot has no company property `plan_teir`"
        ),
        "{text}"
    );
    assert_eq!(
        sandbox.request_counts()["POST /crm/v3/objects/contacts/search"],
        searches,
        "nothing is pulled under a mapping that does not hold"
    );
    // A mistyped one too: the portal keeps an old tier as a number.
    assert!(sandbox.define_property("companies", "tier_code", "number", "number"));
    let mistyped = DOC.replace("property = \"plan_tier\"", "property = \"tier_code\"");
    let mistyped = Criteria::parse("fields-e2e.toml", &mistyped).unwrap();
    let text = world
        .run(&mistyped, "r4", later)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("fields-e2e.toml:7:1: fields.plan_tier: the company property `tier_code` is number in HubSpot (number/number), the document says enumeration"),
        "{text}"
    );
    sandbox.shutdown().await;
}

/// The example agreement moving HubSpot's own lifecycle stage and sales status forward.
fn forwarding() -> Criteria {
    let text = leadsync_app::BUNDLED_CRITERIA.replacen(
        "[incentives]\n",
        "[crm.forward]\nlifecycle_stage = { mql = \"marketingqualifiedlead\", sql = \"salesqualifiedlead\" }\nlead_status = { mql = \"NEW\", sql = \"OPEN\" }\n\n[incentives]\n",
        1,
    );
    Criteria::parse("forward.toml", &text).unwrap()
}

#[tokio::test]
async fn the_crm_s_own_lifecycle_stage_and_status_move_forward_never_back() {
    let sandbox = Sandbox::start(SandboxConfig::new(29, 400)).await.unwrap();
    let now = Utc::now();
    // Some contacts start with no sales status (sales has not looked), a few past any target.
    for contact in sandbox.contacts() {
        match contact.id % 5 {
            0 => {
                sandbox.edit_contact(contact.id, &[("hs_lead_status", "")]);
            }
            1 => {
                sandbox.edit_contact(contact.id, &[("lifecyclestage", "customer")]);
            }
            _ => {}
        }
    }
    let before: std::collections::HashMap<u64, leadsync_sandbox::Record> =
        sandbox.contacts().into_iter().map(|c| (c.id, c)).collect();
    let criteria = forwarding();
    let world = World {
        crm: crm(&sandbox),
        store: FakeLeadStore::new(),
        snapshots: FakeSnapshotStore::default(),
    };
    let first = world.run(&criteria, "f1", now).await.unwrap();
    assert!(first.pushed >= 380, "{first:?}");

    // Expected, from the records before the run and the stage leadsync wrote: HubSpot's order
    // of lifecycle stages; a status is set only where sales had set none (or only NEW, for an
    // SQL).
    let order = leadsync_domain::criteria::HUBSPOT_LIFECYCLE;
    let rank = |v: &str| order.iter().position(|o| *o == v);
    let (mut moved, mut kept_ahead, mut statuses_set, mut statuses_kept) = (0, 0, 0, 0);
    for contact in sandbox.contacts().into_iter().filter(|c| !c.archived) {
        let was = &before[&contact.id].properties;
        let now_has = &contact.properties;
        let Some(stage) = now_has.get("leadsync_stage") else {
            continue;
        };
        let old_lc = was.get("lifecyclestage").cloned().unwrap_or_default();
        let target = match stage.as_str() {
            "mql" => Some("marketingqualifiedlead"),
            "sql" => Some("salesqualifiedlead"),
            _ => None,
        };
        let expected_lc = match target {
            Some(t) if old_lc.is_empty() || rank(&old_lc).is_some_and(|r| r < rank(t).unwrap()) => {
                moved += 1;
                t.to_owned()
            }
            Some(_) => {
                kept_ahead += 1;
                old_lc.clone()
            }
            None => old_lc.clone(),
        };
        assert_eq!(
            now_has.get("lifecyclestage").cloned().unwrap_or_default(),
            expected_lc,
            "contact {} at {stage}: lifecycle was {old_lc:?}",
            contact.id
        );
        let old_status = was.get("hs_lead_status").cloned().unwrap_or_default();
        let expected_status = match (stage.as_str(), old_status.as_str()) {
            ("sql", "" | "NEW") => "OPEN".to_owned(),
            ("mql", "") => "NEW".to_owned(),
            _ => old_status.clone(),
        };
        if expected_status == old_status {
            statuses_kept += 1;
        } else {
            statuses_set += 1;
        }
        assert_eq!(
            now_has.get("hs_lead_status").cloned().unwrap_or_default(),
            expected_status,
            "contact {} at {stage}: status was {old_status:?}",
            contact.id
        );
    }
    assert!(
        moved > 0 && kept_ahead > 0 && statuses_set > 0 && statuses_kept > 0,
        "the data exercises each case: moved {moved}, kept ahead {kept_ahead}, statuses set {statuses_set}, kept {statuses_kept}"
    );

    // A re-run writes nothing: the CRM now shows what leadsync means it to, or more (and the
    // summaries name dates, not "N days ago", so the minutes passing change no text).
    let second = world
        .run(&criteria, "f2", now + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(second.pushed, 0, "{second:?}");

    // Sales moves an SQL on to `opportunity` and takes it: the next run leaves both alone.
    let sql = sandbox
        .contacts()
        .into_iter()
        .find(|c| c.properties.get("leadsync_stage").map(String::as_str) == Some("sql"))
        .expect("an SQL");
    sandbox.edit_contact(
        sql.id,
        &[
            ("lifecyclestage", "opportunity"),
            ("hs_lead_status", "IN_PROGRESS"),
        ],
    );
    world
        .run(&criteria, "f3", now + Duration::minutes(10))
        .await
        .unwrap();
    let after = sandbox.contact(sql.id).unwrap();
    assert_eq!(after.properties["lifecyclestage"], "opportunity");
    assert_eq!(after.properties["hs_lead_status"], "IN_PROGRESS");
}
