use super::*;
use crate::facts::MilestoneFact;
use crate::lead::LeadId;
use crate::transition::Transition;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn stage(lead: &str, from: Option<Stage>, to: Stage, when: DateTime<Utc>) -> Fact {
    Fact::Stage(Transition {
        lead_id: LeadId::new(lead).unwrap(),
        from,
        to,
        criteria_version: "v1".into(),
        observed_at: when,
        run_id: "r".into(),
        owner_id: Some("7".into()),
        source: Some("ads".into()),
        band: "A".into(),
        reasons: vec!["FIT".into()],
        loss_reasons: vec![],
        occurred_at: None,
        restated: false,
    })
}

fn mql(lead: &str, when: DateTime<Utc>) -> Fact {
    stage(lead, Some(Stage::Iql), Stage::Mql, when)
}

fn milestone(lead: &str, outcome: Outcome, reference: &str, when: DateTime<Utc>) -> MilestoneFact {
    MilestoneFact {
        lead_id: LeadId::new(lead).unwrap(),
        outcome,
        reference: reference.into(),
        observed_at: when,
        occurred_at: None,
        run_id: "r".into(),
        owner_id: Some("7".into()),
        source: Some("ads".into()),
        amount_cents: None,
        currency: None,
        reason: None,
        criteria_version: "v1".into(),
        band: "A".into(),
        reasons: vec!["FIT".into()],
    }
}

fn verdict(lead: &str, when: DateTime<Utc>, accepted: bool) -> Fact {
    let outcome = if accepted {
        Outcome::SalesAccepted
    } else {
        Outcome::SalesRejected
    };
    let mut m = milestone(lead, outcome, "status", when);
    m.reason = (!accepted).then(|| "BUDGET".into());
    Fact::Milestone(m)
}

fn won(lead: &str, deal: &str, cents: i64, owner: &str, source: &str) -> Fact {
    let mut m = milestone(lead, Outcome::Won, deal, at(10, 12));
    m.amount_cents = Some(cents);
    m.owner_id = Some(owner.into());
    m.source = Some(source.into());
    Fact::Milestone(m)
}

fn plan() -> BTreeMap<String, IncentivePlan> {
    let text = r#"
        accepted_statuses = ["IN_PROGRESS"]
        rejected_statuses = ["UNQUALIFIED"]
        [credits.sql]
        marketing = 40
        [credits.won]
        marketing = 1
        sales_bps = 500
        marketing_bps = 100
        [fx]
        EUR = 1.5
    "#;
    let doc: crate::incentives::IncentivesDoc = toml::from_str(text).unwrap();
    BTreeMap::from([("v1".to_owned(), IncentivePlan::from_doc(doc).unwrap())])
}

fn fold(
    current: &[Fact],
    previous: &[Fact],
    reverse: bool,
    plans: &BTreeMap<String, IncentivePlan>,
) -> Vec<RollupRow> {
    let mut r = Rollup::new("2026-11", plans);
    if reverse {
        for f in previous.iter().rev() {
            r.add_previous(f);
        }
        for f in current.iter().rev() {
            r.add(f);
        }
    } else {
        for f in current {
            r.add(f);
        }
        for f in previous {
            r.add_previous(f);
        }
    }
    r.finish()
}

fn kpi(rows: &[RollupRow], sk: &str) -> Kpi {
    let row = rows.iter().find(|r| r.sk == sk).expect(sk);
    match row.parse().unwrap() {
        RowBody::Kpi(k) => k,
        other => panic!("{sk}: {other:?}"),
    }
}

fn incentive(rows: &[RollupRow], sk: &str) -> Incentive {
    let row = rows.iter().find(|r| r.sk == sk).unwrap_or_else(|| {
        panic!(
            "{sk} in {:#?}",
            rows.iter().map(|r| &r.sk).collect::<Vec<_>>()
        )
    });
    match row.parse().unwrap() {
        RowBody::Incentive(i) => i,
        other => panic!("{sk}: {other:?}"),
    }
}

#[test]
fn rows_depend_on_the_facts_not_on_the_order_they_are_folded_in() {
    // Lead 1's verdict arrives before its MQL in one order; lead 2's MQL was last month.
    let current = vec![
        verdict("1", at(3, 12), true),
        mql("1", at(3, 10)),
        verdict("2", at(2, 9), false),
        mql("3", at(5, 8)),
        won("1", "d1", 10_000, "8", "ads"),
        won("3", "d1", 10_000, "8", "web"),
    ];
    let mut previous_mql = mql("2", at(1, 9));
    if let Fact::Stage(t) = &mut previous_mql {
        t.observed_at = chrono::DateTime::parse_from_rfc3339("2026-10-31T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
    }
    let previous = vec![previous_mql];
    let a = fold(&current, &previous, false, &plan());
    let b = fold(&current, &previous, true, &plan());
    assert_eq!(a, b);
    // Speed to lead: lead 1 after 120 minutes, lead 2 after two days (MQL last month).
    let speed = kpi(&a, "KPI#v1#month#speed_to_lead#all");
    assert_eq!((speed.value, speed.base), ((120 + 2880) / 2, 2));
    assert_eq!(speed.detail.get("max_minutes"), Some(&2880));
    let velocity = kpi(&a, "KPI#v1#month#velocity#mql#owner:7");
    assert_eq!((velocity.value, velocity.base), (2 - 1, 1));
    let acceptance = kpi(&a, "KPI#v1#month#acceptance#source:ads");
    assert_eq!((acceptance.value, acceptance.base), (1, 2));
    assert_eq!(acceptance.detail.get("BUDGET"), Some(&1));
}

#[test]
fn a_fact_of_another_period_is_ignored() {
    let plans = BTreeMap::new();
    let mut r = Rollup::new("2026-12", &plans);
    r.add(&mql("1", at(3, 10)));
    assert!(r.finish().is_empty());
}

#[test]
fn a_deal_shared_by_three_contacts_is_one_win_credited_once() {
    // Defect: each contact's fact credited the deal again (3 × revenue, 3 × basis points).
    let facts = vec![
        mql("1", at(2, 9)),
        won("1", "d1", 1_000_001, "8", "ads"),
        won("2", "d1", 1_000_001, "8", "web"),
        won("3", "d1", 1_000_001, "8", "ads"),
    ];
    let rows = fold(&facts, &[], false, &plan());
    let revenue = kpi(&rows, "KPI#v1#month#revenue_won#USD#all");
    assert_eq!(
        (revenue.value, revenue.base),
        (1_000_001, 1),
        "one deal, once"
    );
    assert_eq!(kpi(&rows, "KPI#v1#month#reached#won#all").value, 1);
    let sales = incentive(&rows, "INC#v1#sales#8");
    assert_eq!(sales.credits_cents, 1_000_001 * 500 / 10_000);
    assert_eq!(sales.outcomes.get("won"), Some(&1));
    // Marketing: 1.00 fixed + 1% of 10,000.01 = 101.00 (rounded down), split three ways to
    // the cent by contact id: 33.67 (1, ads) + 33.67 (2, web) + 33.66 (3, ads).
    let total = 100 + 1_000_001 / 100;
    let ads = incentive(&rows, "INC#v1#marketing#ads");
    let web = incentive(&rows, "INC#v1#marketing#web");
    assert_eq!(ads.credits_cents + web.credits_cents, total);
    assert_eq!(web.credits_cents, total / 3 + 1);
    assert_eq!(
        ads.outcomes.get("won"),
        Some(&1),
        "the deal counts once per row"
    );
}

#[test]
fn a_won_deal_credits_the_deal_owner_not_the_contact_owner() {
    // The fact's owner is the deal's (milestones_of); the contact's owner 7 gets nothing.
    let rows = fold(
        &[mql("1", at(2, 9)), won("1", "d1", 50_000, "8", "ads")],
        &[],
        false,
        &plan(),
    );
    assert!(
        rows.iter().all(|r| r.sk != "INC#v1#sales#7"),
        "the contact's owner 7 is credited nothing"
    );
    assert_eq!(incentive(&rows, "INC#v1#sales#8").credits_cents, 2_500);
}

#[test]
fn another_currency_is_converted_at_the_plans_rate_or_left_out_and_said_so() {
    let mut eur = won("1", "d1", 10_000, "8", "ads");
    let mut gbp = won("2", "d2", 20_000, "8", "ads");
    if let (Fact::Milestone(e), Fact::Milestone(g)) = (&mut eur, &mut gbp) {
        e.currency = Some("EUR".into());
        g.currency = Some("GBP".into());
    }
    let rows = fold(&[mql("1", at(2, 9)), eur, gbp], &[], false, &plan());
    assert_eq!(kpi(&rows, "KPI#v1#month#revenue_won#EUR#all").value, 10_000);
    assert_eq!(kpi(&rows, "KPI#v1#month#revenue_won#GBP#all").value, 20_000);
    assert!(
        rows.iter().all(|r| !r.sk.contains("revenue_won#USD")),
        "no silent mixing"
    );
    let sales = incentive(&rows, "INC#v1#sales#8");
    // EUR 100.00 at 1.5 = USD 150.00 → 5% = 7.50; GBP has no rate: nothing, and said so.
    assert_eq!(sales.credits_cents, 750);
    assert_eq!(sales.unconverted.get("GBP"), Some(&20_000));
}

#[test]
fn a_restated_fact_enters_the_view_it_is_not_a_loss_of_its_old_stage() {
    let mut f = stage(
        "1",
        Some(Stage::Disqualified),
        Stage::Disqualified,
        at(3, 1),
    );
    if let Fact::Stage(t) = &mut f {
        t.restated = true;
        t.loss_reasons = vec!["DQ_FREE_MAIL".into()];
    }
    let rows = fold(&[f], &[], false, &plan());
    let loss = kpi(&rows, "KPI#v1#month#loss#new#all");
    assert_eq!((loss.value, loss.base), (1, 1));
    assert!(rows.iter().all(|r| !r.sk.contains("loss#disqualified")));
}

#[test]
fn statement_lines_add_up_to_their_rows() {
    let mut sql = stage("1", Some(Stage::Mql), Stage::Sql, at(4, 9));
    if let Fact::Stage(t) = &mut sql {
        t.source = Some("web".into());
    }
    let facts = vec![
        sql,
        won("1", "d1", 1_000_001, "8", "ads"),
        won("2", "d1", 1_000_001, "8", "web"),
        won("3", "d1", 1_000_001, "8", "ads"),
    ];
    let plans = plan();
    let mut r = Rollup::new("2026-11", &plans);
    for f in &facts {
        r.add(f);
    }
    let (rows, lines) = r.finish_with_statements();
    let (incentives, _) = incentive_rows(&rows, "v1");
    assert!(!incentives.is_empty());
    for i in incentives {
        let sum: i64 = lines
            .iter()
            .filter(|l| l.team == i.team && l.owner == i.owner)
            .map(|l| l.credit_cents)
            .sum();
        assert_eq!(sum, i.credits_cents, "{} {}", i.team.as_str(), i.owner);
    }
    let web_sql = lines
        .iter()
        .find(|l| l.owner == "web" && l.outcome == Outcome::Sql)
        .unwrap();
    assert_eq!(
        (web_sql.credit_cents, web_sql.leads.as_slice()),
        (4_000, &["1".to_owned()][..])
    );
}

#[test]
fn corrections_compare_views_without_their_versions() {
    let plans = plan();
    let frozen = fold(
        &[mql("1", at(2, 9)), won("1", "d1", 50_000, "8", "ads")],
        &[],
        false,
        &plans,
    );
    // Restated under v2 with the same outcome: nothing to correct.
    let mut v2_plans = plans.clone();
    let p = v2_plans.remove("v1").unwrap();
    v2_plans.insert("v2".into(), p);
    let mut restated = mql("1", at(2, 9));
    if let Fact::Stage(t) = &mut restated {
        t.criteria_version = "v2".into();
        t.restated = true;
    }
    let now = fold(
        &[restated.clone(), won("1", "d1", 50_000, "8", "ads")],
        &[],
        false,
        &v2_plans,
    );
    assert_eq!(reporting_version(&now).as_deref(), Some("v2"));
    let was = version_view(&frozen, "v1");
    let is = version_view(&now, "v2");
    let posted = corrections("2026-11", &was, &is);
    assert!(
        posted.iter().all(|r| !r.sk.contains("INC#")),
        "same credits under a new version: no incentive correction: {posted:#?}"
    );
    // A deal that closed later in the closed month is a correction of the sales row.
    let later = fold(
        &[
            restated,
            won("1", "d1", 50_000, "8", "ads"),
            won("2", "d2", 100_000, "8", "ads"),
        ],
        &[],
        false,
        &v2_plans,
    );
    let posted = corrections("2026-11", &was, &version_view(&later, "v2"));
    let delta: i64 = correction_rows(&posted)
        .iter()
        .filter(|c| c.row == "INC#sales#8")
        .map(|c| c.delta_credits_cents)
        .sum();
    assert_eq!(delta, 5_000);
}
