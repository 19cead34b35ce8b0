use super::*;
use chrono::TimeZone;
use leadsync_domain::facts::{Fact, MilestoneFact};
use leadsync_domain::funnel::Funnel;
use leadsync_domain::incentives::{IncentivePlan, Outcome};
use leadsync_domain::rollup::Rollup;
use leadsync_domain::{LeadId, Stage, Transition};

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap()
}

fn facts() -> Vec<Fact> {
    let sql = Fact::Stage(Transition {
        lead_id: LeadId::new("1").unwrap(),
        from: Some(Stage::Mql),
        to: Stage::Sql,
        criteria_version: "v1".into(),
        observed_at: at(20),
        run_id: "r".into(),
        owner_id: Some("rep<1>".into()),
        source: Some("ads".into()),
        band: "A".into(),
        reasons: vec!["FIT".into()],
        loss_reasons: vec![],
        occurred_at: Some(at(3)),
        restated: false,
    });
    let won = Fact::Milestone(MilestoneFact {
        lead_id: LeadId::new("1").unwrap(),
        outcome: Outcome::Won,
        reference: "d1".into(),
        observed_at: at(20),
        occurred_at: Some(at(9)),
        run_id: "r".into(),
        owner_id: Some("rep<1>".into()),
        source: Some("ads".into()),
        amount_cents: Some(1_234_567),
        currency: None,
        reason: None,
        criteria_version: "v1".into(),
        band: "A".into(),
        reasons: vec!["FIT".into()],
    });
    vec![sql, won]
}

fn plans() -> BTreeMap<String, IncentivePlan> {
    let mut plan = IncentivePlan {
        currency: "USD".into(),
        ..IncentivePlan::default()
    };
    plan.credits.insert(
        Outcome::Sql,
        leadsync_domain::incentives::CreditDoc {
            marketing: 40,
            ..Default::default()
        },
    );
    plan.credits.insert(
        Outcome::Won,
        leadsync_domain::incentives::CreditDoc {
            sales_bps: 500,
            ..Default::default()
        },
    );
    BTreeMap::from([("v1".to_owned(), plan)])
}

fn page() -> String {
    let plans = plans();
    let mut rollup = Rollup::new("2026-11", &plans);
    let mut funnel = Funnel::new("2026-11", "v1", at(30), 30, plans.get("v1"));
    for f in facts() {
        rollup.add(&f);
        funnel.add(&f);
    }
    let (rows, lines) = rollup.finish_with_statements();
    let report = funnel.finish(1.0);
    render(&Dashboard {
        period: "2026-11",
        version: "v1",
        currency: "USD",
        agreement: None,
        computed_at: at(30),
        closed: None,
        rows: &rows,
        funnel: &report,
        statements: &lines,
        left_out: &[LeftOut {
            what: "deleted contacts".into(),
            count: 2,
            why: "deleted in the CRM".into(),
        }],
    })
}

#[test]
fn the_page_is_self_contained_and_escapes_what_it_shows() {
    let html = page();
    assert!(html.starts_with("<!doctype html>"));
    for external in ["src=\"http", "href=\"http", "<script", "@import", "url("] {
        assert!(!html.contains(external), "no external resource: {external}");
    }
    assert!(html.contains("rep&lt;1&gt;") && !html.contains("rep<1>"));
    assert!(html.contains("name=\"viewport\""), "readable on a phone");
}

#[test]
fn every_figure_carries_its_raw_value_and_reads_as_people_write_it() {
    let html = page();
    // The sales row: 5 % of 12,345.67 = 617.28 (rounded down).
    assert!(html.contains(
        "data-figure=\"inc:sales:rep&lt;1&gt;:credits\" data-value=\"61728\">USD 617.28<"
    ));
    assert!(
        html.contains("data-figure=\"inc:marketing:ads:credits\" data-value=\"4000\">USD 40.00<")
    );
    assert!(html.contains("data-figure=\"inc:total:credits\" data-value=\"65728\">USD 657.28<"));
    assert!(html.contains("data-figure=\"left-out:deleted contacts\" data-value=\"2\">2<"));
    // Every definition linked is defined.
    for (anchor, _, _) in DEFINITIONS {
        assert!(html.contains(&format!("id=\"def-{anchor}\"")));
    }
    let linked = html.matches("href=\"#def-").count();
    assert!(linked > 10, "{linked} definitions one click away");
}
