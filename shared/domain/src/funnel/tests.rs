use super::*;
use crate::facts::MilestoneFact;
use crate::lead::LeadId;
use crate::transition::Transition;

fn day(month: u32, d: u32) -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(2026, month, d, 12, 0, 0).unwrap()
}

fn stage(lead: &str, from: Option<Stage>, to: Stage, at: DateTime<Utc>, reasons: &[&str]) -> Fact {
    Fact::Stage(Transition {
        lead_id: LeadId::new(lead).unwrap(),
        from,
        to,
        criteria_version: "v1".into(),
        observed_at: day(12, 3),
        run_id: "r".into(),
        owner_id: None,
        source: None,
        band: "A".into(),
        reasons: vec![],
        loss_reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        occurred_at: Some(at),
        restated: false,
    })
}

fn milestone(
    lead: &str,
    outcome: Outcome,
    reference: &str,
    at: DateTime<Utc>,
    reason: Option<&str>,
) -> Fact {
    Fact::Milestone(MilestoneFact {
        lead_id: LeadId::new(lead).unwrap(),
        outcome,
        reference: reference.into(),
        observed_at: day(12, 3),
        occurred_at: Some(at),
        run_id: "r".into(),
        owner_id: None,
        source: None,
        amount_cents: Some(1_000_000),
        currency: None,
        reason: reason.map(str::to_owned),
        criteria_version: "v1".into(),
        band: "A".into(),
        reasons: vec![],
    })
}

fn facts() -> Vec<Fact> {
    use Stage::*;
    vec![
        // a: all the way to won.
        stage("a", None, Iql, day(11, 2), &[]),
        stage("a", Some(Iql), Mql, day(11, 5), &[]),
        stage("a", Some(Mql), Sql, day(11, 8), &[]),
        milestone("a", Outcome::SalesAccepted, "status", day(11, 9), None),
        milestone("a", Outcome::Opportunity, "d1", day(11, 10), None),
        milestone("a", Outcome::Won, "d1", day(11, 20), None),
        // b: disqualified at the door.
        stage("b", None, Disqualified, day(11, 3), &["DQ_FREE_MAIL"]),
        // c: rejected by sales as an MQL.
        stage("c", None, Iql, day(11, 2), &[]),
        stage("c", Some(Iql), Mql, day(11, 4), &[]),
        milestone(
            "c",
            Outcome::SalesRejected,
            "status",
            day(11, 6),
            Some("NO_BUDGET"),
        ),
        // d: an MQL recycled.
        stage("d", None, Mql, day(11, 1), &[]),
        stage("d", Some(Mql), Recycled, day(11, 7), &["STATUS:BAD_TIMING"]),
        // e: MQL since October, decayed to IQL in November: not in November's MQL cohort.
        stage("e", None, Mql, day(10, 1), &[]),
        stage("e", Some(Mql), Iql, day(11, 3), &[]),
        // f: SQL since November 2nd, nothing since: stalled by December 15th.
        stage("f", None, Sql, day(11, 2), &[]),
        // g: a deal opened and lost.
        stage("g", None, Sql, day(11, 1), &[]),
        milestone("g", Outcome::SalesAccepted, "status", day(11, 2), None),
        milestone("g", Outcome::Opportunity, "d2", day(11, 3), None),
        milestone("g", Outcome::Lost, "d2", day(11, 25), Some("PRICE")),
        // December facts of another version are ignored.
        {
            let mut f = stage("a", None, Sql, day(12, 1), &[]);
            if let Fact::Stage(t) = &mut f {
                t.criteria_version = "v2".into();
            }
            f
        },
    ]
}

fn report(facts: &[Fact]) -> FunnelReport {
    let mut funnel = Funnel::new("2026-11", "v1", day(12, 15), 30, None);
    for f in facts {
        funnel.add(f);
    }
    funnel.finish(1.0)
}

fn step<'a>(r: &'a FunnelReport, name: &str) -> &'a FunnelStep {
    r.steps.iter().find(|s| s.step == name).unwrap()
}

#[test]
fn every_lead_that_entered_a_step_is_advanced_lost_or_still_there() {
    let r = report(&facts());
    for s in &r.steps {
        assert_eq!(
            s.entered,
            s.advanced + s.lost_total + s.still_in_stage,
            "{s:#?}"
        );
    }
    let new = step(&r, "new");
    assert_eq!((new.entered, new.advanced, new.lost_total), (6, 5, 1));
    assert_eq!(new.top_loss_reasons[0].reason, "DQ_FREE_MAIL");
    let mql = step(&r, "mql");
    // a, c, d entered (plus f and g passing straight to SQL); e entered in October.
    assert_eq!(mql.entered, 5);
    assert_eq!(mql.lost.get("rejected_by_sales"), Some(&1));
    assert_eq!(mql.lost.get("recycled"), Some(&1));
    assert_eq!(mql.lost_total, 2);
    let reasons: Vec<&str> = mql
        .top_loss_reasons
        .iter()
        .map(|r| r.reason.as_str())
        .collect();
    assert!(reasons.contains(&"REJECTED:NO_BUDGET") && reasons.contains(&"STATUS:BAD_TIMING"));
    assert_eq!(
        mql.loss_pct,
        Some(40.0),
        "no row reads 0 % where leads were lost"
    );
    let iql = step(&r, "iql");
    // e fell back into IQL in November: not an entry (it was IQL before its MQL).
    assert_eq!(iql.entered, 5);
    let sql = step(&r, "sql");
    assert_eq!((sql.entered, sql.advanced, sql.stalled), (3, 2, 1));
    let opportunity = step(&r, "opportunity");
    assert_eq!((opportunity.entered, opportunity.advanced), (2, 1));
    assert_eq!(opportunity.lost.get("closed_lost"), Some(&1));
    assert_eq!(opportunity.top_loss_reasons[0].reason, "LOST:PRICE");
}

#[test]
fn a_point_of_conversion_is_priced_by_the_downstream_and_the_average_deal() {
    let r = report(&facts());
    assert_eq!((r.won_deals, r.average_won_cents), (1, Some(1_000_000)));
    let opportunity = step(&r, "opportunity");
    // 2 entered × 1 % × (downstream 1) × 10,000.00 = 200.00.
    assert_eq!(opportunity.revenue_gain_cents, Some(20_000));
    let accepted = step(&r, "sales_accepted");
    // 2 entered × 1 % × (opportunity → won 50 %) × 10,000.00 = 100.00.
    assert_eq!(accepted.downstream_pct, Some(50.0));
    assert_eq!(accepted.revenue_gain_cents, Some(10_000));
}

#[test]
fn the_report_depends_on_the_facts_not_their_order() {
    let mut reversed = facts();
    reversed.reverse();
    assert_eq!(report(&facts()), report(&reversed));
}
