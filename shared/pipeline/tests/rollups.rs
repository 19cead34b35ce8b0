//! Rollups through the nightly sync, on the in-memory fakes: reproducible (re-runs and crashes at
//! random points give byte-identical rows), closed periods frozen, corrections posted forward,
//! exports whose control totals and checksum hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::fakes::{FakeCrm, FakeLeadStore, FakeSnapshotStore};
use leadsync_domain::ports::NoProvider;
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::{RollupRow, RowBody, incentive_rows};
use leadsync_domain::{Criteria, Lead};
use leadsync_pipeline::rollups::{self, RollupError};
use leadsync_pipeline::{SyncDeps, SyncInput, sync};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const CRITERIA: &str = include_str!("../../../infra/criteria/b2b-saas.toml");

use crate::common;
use common::{at, leads};

struct World {
    crm: FakeCrm,
    store: FakeLeadStore,
    snapshots: FakeSnapshotStore,
    criteria: Criteria,
}

impl World {
    fn new(leads: Vec<Lead>) -> Self {
        Self {
            crm: FakeCrm::new(leads).with_page_size(15),
            store: FakeLeadStore::new(),
            snapshots: FakeSnapshotStore::new(),
            criteria: Criteria::parse("b2b-saas.toml", CRITERIA).unwrap(),
        }
    }

    async fn run(
        &self,
        run_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), leadsync_pipeline::SyncError> {
        let deps = SyncDeps {
            crm: &self.crm,
            store: &self.store,
            snapshots: &self.snapshots,
            providers: &[] as &[NoProvider],
            criteria: &self.criteria,
            events: None,
        };
        sync(&deps, &SyncInput::nightly(run_id, now))
            .await
            .map(|_| ())
    }

    fn rows(&self) -> BTreeMap<String, Vec<RollupRow>> {
        self.store.all_rows()
    }
}

fn november() -> DateTime<Utc> {
    at("2026-11-20T03:00:00Z")
}

#[tokio::test]
async fn rollups_cover_the_funnel_and_the_incentive_plan() {
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let rows = w.rows().remove("2026-11").unwrap();
    let version = w.criteria.version.clone();
    let kpi = |metric: &str, dim: &str| {
        rows.iter().find_map(|r| match r.parse().unwrap() {
            RowBody::Kpi(k) if k.metric == metric && k.dimension == dim && k.grain == "month" => {
                Some(k)
            }
            _ => None,
        })
    };
    let reached_mql = kpi("reached#mql", "all").expect("MQLs reached");
    assert!(reached_mql.value > 0);
    let acceptance = kpi("acceptance", "all").expect("sales verdicts");
    // Statuses cycle over 5: IN_PROGRESS and CONNECTED accept, UNQUALIFIED rejects.
    assert_eq!((acceptance.value, acceptance.base), (48, 72));
    assert_eq!(
        acceptance.detail.values().sum::<i64>(),
        24,
        "every rejection has a reason"
    );
    assert!(
        acceptance.detail.contains_key("NO_BUDGET")
            && acceptance.detail.contains_key("WRONG_PERSON")
    );
    let won = kpi("revenue_won#USD", "all").expect("closed-won revenue");
    assert_eq!(won.base, 10, "one win per 12 leads");
    let loss = kpi("loss#new", "all").expect("leads lost on arrival");
    assert!(
        loss.detail
            .keys()
            .any(|r| r == "FREE_MAIL" || r.starts_with("STATUS:")),
        "{:?}",
        loss.detail
    );
    // Dimensions partition "all".
    let by_owner: i64 = (0..4)
        .map(|o| kpi("reached#mql", &format!("owner:owner{o}")).map_or(0, |k| k.value))
        .sum();
    assert_eq!(by_owner, reached_mql.value);
    assert!(kpi("speed_to_lead", "all").is_some());
    // Incentives: each credited fact credits both teams; control totals add up.
    let (incentives, totals) = incentive_rows(&rows, &version);
    assert_eq!(
        totals.credits_cents,
        incentives.iter().map(|i| i.credits_cents).sum::<i64>()
    );
    let won_cents: i64 = leads(november())
        .iter()
        .flat_map(|l| &l.deals)
        .filter(|d| d.is_closed_won())
        .map(|d| d.amount_cents.unwrap() * 600 / 10_000)
        .sum();
    assert!(
        totals.credits_cents > won_cents,
        "fixed credits plus 6% of won revenue (split 1% / 5%)"
    );
    assert!(
        incentives
            .iter()
            .all(|i| i.lineage.len() == 64 && i.facts > 0)
    );
    let report = rollups::funnel_report(&w.store, "2026-11", &version, november(), 30, 5.0)
        .await
        .unwrap();
    assert_eq!(report.steps.len(), 6);
    assert!(
        report
            .steps
            .iter()
            .any(|s| s.revenue_gain_cents.is_some_and(|g| g > 0)),
        "{report:#?}"
    );
    for step in &report.steps {
        assert_eq!(
            step.entered,
            step.advanced + step.lost_total + step.still_in_stage
        );
        if step.lost_total > 0 {
            assert!(step.loss_pct.is_some_and(|p| p > 0.0) && !step.top_loss_reasons.is_empty());
        }
    }
}

#[tokio::test]
async fn a_rerun_gives_byte_identical_rollups_and_writes_none() {
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let once = w.rows();
    w.run("r1", november()).await.unwrap();
    assert_eq!(w.rows(), once);
    let reports = w.store.runs();
    let last = reports.last().unwrap();
    assert_eq!(
        last.rollup_rows_written, 0,
        "nothing changed, nothing written"
    );
}

#[tokio::test]
async fn crashes_at_twenty_random_points_then_a_rerun_give_the_clean_rows() {
    let clean = World::new(leads(at("2026-11-19T12:00:00Z")));
    clean.run("r1", november()).await.unwrap();
    let expected = clean.rows();
    // How many store operations one clean run makes: every one is a crash point.
    let probe = World::new(leads(at("2026-11-19T12:00:00Z")));
    probe.store.crash_at(0);
    probe.run("r1", november()).await.unwrap();
    let ops = probe.store.ops();
    assert!(ops >= 30, "{ops} store operations");
    // 24 distinct points, spread deterministically over the whole run (first and last included).
    let mut points: Vec<u64> = (0..24u64).map(|k| 1 + k * (ops - 1) / 23).collect();
    points.dedup();
    assert!(points.len() >= 20);
    for point in points {
        let w = World::new(leads(at("2026-11-19T12:00:00Z")));
        w.store.crash_at(point);
        assert!(
            w.run("r1", november()).await.is_err(),
            "crash at operation {point}"
        );
        w.store.crash_at(0);
        w.run("r1", november()).await.unwrap();
        assert_eq!(
            w.rows(),
            expected,
            "after a crash at store operation {point} of {ops}"
        );
        assert_eq!(w.store.transitions(), clean.store.transitions());
    }
}

#[tokio::test]
async fn a_closed_period_never_changes_and_late_facts_post_corrections_forward() {
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let status = rollups::close(
        &w.store,
        "2026-11",
        "finance@example",
        at("2026-12-01T09:00:00Z"),
    )
    .await
    .unwrap();
    let frozen = w.rows()["2026-11"].clone();
    assert_eq!(status.rows, frozen.len() as u64);
    assert!(matches!(
        rollups::close(&w.store, "2026-11", "x", at("2026-12-01T10:00:00Z")).await,
        Err(RollupError::AlreadyClosed { .. })
    ));

    // A re-score inside the closed month (a late, back-dated run) under a new version changes
    // stages there: the closed rows stay, a correction posts to December.
    let mut w2_criteria = CRITERIA.replace("version = \"2026.11.1\"", "version = \"2026.11.2\"");
    w2_criteria = w2_criteria.replace(
        "[stages.sql]\nmin_fit = 35\nmin_total = 70",
        "[stages.sql]\nmin_fit = 25\nmin_total = 55",
    );
    let mut later = leads(at("2026-11-19T12:00:00Z"));
    for l in &mut later {
        l.modified_at = at("2026-11-29T12:00:00Z");
    }
    let w2 = World {
        crm: FakeCrm::new(later).with_page_size(15),
        store: w.store,
        snapshots: w.snapshots,
        criteria: Criteria::parse("b2b-saas.toml", &w2_criteria).unwrap(),
    };
    w2.run("r2", at("2026-11-30T03:00:00Z")).await.unwrap();
    let rows = w2.rows();
    assert_eq!(rows["2026-11"], frozen, "closed rows untouched");
    let december = &rows["2026-12"];
    let corrections: Vec<_> = december
        .iter()
        .filter_map(|r| match r.parse().unwrap() {
            RowBody::Correction(c) => Some(c),
            _ => None,
        })
        .collect();
    assert!(!corrections.is_empty());
    assert!(
        corrections
            .iter()
            .all(|c| c.closed_period == "2026-11" && !c.reason.is_empty() && c.lineage.len() == 64)
    );
    assert!(
        corrections
            .iter()
            .any(|c| c.row.starts_with("INC#marketing#") && c.delta_credits_cents > 0),
        "a lower SQL bar restates November with more SQL credits: {corrections:#?}"
    );
    // Posting again (another run) changes nothing: corrections are computed, not added.
    w2.run("r3", at("2026-11-30T04:00:00Z")).await.unwrap();
    assert_eq!(&w2.rows()["2026-12"], december);
    // Writing a closed period directly is refused.
    assert!(w2.store.replace_rows("2026-11", &[]).await.is_err());
}

#[tokio::test]
async fn the_export_control_totals_equal_the_rows_and_the_checksum_matches() {
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let rows = w.store.rows("2026-11").await.unwrap();
    let export = rollups::export("2026-11", &w.criteria.version, "USD", &rows).unwrap();
    assert_eq!(hex_sha(&export.csv), export.sha256);
    let mut reader = csv::Reader::from_reader(export.csv.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let (body, total) = records.split_at(records.len() - 1);
    assert_eq!(&total[0][2], "TOTAL");
    let cents = |s: &str| -> i64 {
        let (units, frac) = s.split_once('.').unwrap();
        units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
    };
    assert_eq!(
        body.iter().map(|r| cents(&r[5])).sum::<i64>(),
        cents(&total[0][5])
    );
    for col in 6..=11 {
        assert_eq!(
            body.iter()
                .map(|r| r[col].parse::<i64>().unwrap())
                .sum::<i64>(),
            total[0][col].parse::<i64>().unwrap(),
            "column {col}"
        );
    }
    assert!(
        export.csv.windows(2).any(|w| w == b"\r\n"),
        "RFC 4180 line endings"
    );
}

fn hex_sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SQL credits the periods report, summed, each period under the version it reports.
fn reported_sql_credits(rows: &BTreeMap<String, Vec<RollupRow>>) -> i64 {
    rows.values()
        .filter_map(|period| {
            let version = leadsync_domain::rollup::reporting_version(period)?;
            let (rows, _) = incentive_rows(period, &version);
            // Sales rows: each credited SQL appears once there (and once on marketing's).
            Some(
                rows.iter()
                    .filter(|i| i.team == leadsync_domain::incentives::Team::Sales)
                    .map(|i| i.outcomes.get("sql").copied().unwrap_or(0))
                    .sum::<i64>(),
            )
        })
        .sum()
}

#[tokio::test]
async fn a_new_criteria_version_restates_the_sql_credits_it_never_pays_them_twice() {
    // Defect: T#sql#<v2> was observed at the re-score, so December credited every November SQL
    // again under the new version.
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let once = reported_sql_credits(&w.rows());
    assert!(once > 0);
    let v2 = CRITERIA.replace("version = \"2026.11.1\"", "version = \"2026.11.2\"");
    let w2 = World {
        crm: FakeCrm::new(leads(at("2026-11-19T12:00:00Z"))).with_page_size(15),
        store: w.store,
        snapshots: w.snapshots,
        criteria: Criteria::parse("b2b-saas.toml", &v2).unwrap(),
    };
    w2.run("rescore", at("2026-12-05T10:00:00Z")).await.unwrap();
    let rows = w2.rows();
    assert_eq!(
        leadsync_domain::rollup::reporting_version(&rows["2026-11"]).as_deref(),
        Some("2026.11.2"),
        "November is restated under the new version"
    );
    // Each lead SQL under the new definition is credited once, in the month it became SQL
    // (engagement decayed by December, so some of November's SQLs are MQLs now: restated,
    // their credit goes with them).
    let sql_now = w2
        .store
        .states()
        .values()
        .filter(|s| s.stage == leadsync_domain::Stage::Sql)
        .count() as i64;
    assert!(sql_now > 0 && sql_now <= once);
    assert_eq!(reported_sql_credits(&rows), sql_now, "credited once");
    assert!(
        rows.get("2026-12")
            .is_none_or(|d| reported_sql_credits(&BTreeMap::from([(
                "2026-12".to_owned(),
                d.clone()
            )])) == 0),
        "nothing new happened in December"
    );
}

/// A first run on 2026-12-02 over leads whose deals were created in September and closed in
/// October: facts spread over several months.
async fn history() -> World {
    let mut leads = leads(at("2026-11-19T12:00:00Z"));
    for l in &mut leads {
        for d in &mut l.deals {
            d.created_at = Some(at("2026-09-03T10:00:00Z"));
            d.close_date = Some(at("2026-10-10T10:00:00Z"));
        }
    }
    let w = World::new(leads);
    w.run("first", at("2026-12-02T03:00:00Z")).await.unwrap();
    w
}

#[tokio::test]
async fn milestones_are_dated_by_the_crm_so_a_first_run_spreads_history_over_its_months() {
    // Defect: every milestone was dated when leadsync first saw it, so the first deployment
    // credited the whole history to the month of its first run.
    let w = history().await;
    let rows = w.rows();
    let revenue = |period: &str| {
        rows.get(period).map_or(0, |r| {
            r.iter()
                .filter_map(|r| match r.parse().unwrap() {
                    RowBody::Kpi(k)
                        if k.metric == "revenue_won#USD"
                            && k.dimension == "all"
                            && k.grain == "month" =>
                    {
                        Some(k.base)
                    }
                    _ => None,
                })
                .max()
                .unwrap_or(0)
        })
    };
    assert_eq!(revenue("2026-10"), 10, "won when they closed");
    assert_eq!(revenue("2026-12"), 0, "not when leadsync first saw them");
    let opened = rows["2026-09"]
        .iter()
        .any(|r| r.sk.contains("#month#reached#opportunity#all"));
    assert!(opened, "opportunities in the month the deals were created");
}

#[tokio::test]
async fn a_refresh_of_consecutive_months_reads_each_month_once_and_writes_the_same_rows() {
    // Each month was read twice (as itself, and as the previous month of the next): on a
    // history of months, half the refresh's reads were repeats.
    let w = history().await;
    let months = ["2026-09", "2026-10", "2026-11"];
    // Each month alone: the reference rows.
    for m in months {
        rollups::refresh(&w.store, &[m.to_owned()].into())
            .await
            .unwrap();
    }
    let alone = w.rows();
    let sizes: Vec<_> = alone.iter().map(|(k, v)| (k.clone(), v.len())).collect();
    assert!(
        months
            .iter()
            .all(|m| alone.get(*m).is_some_and(|r| !r.is_empty())),
        "{sizes:?}"
    );

    let before = w.store.fact_reads().len();
    let all = months.iter().map(|m| (*m).to_owned()).collect();
    let report = rollups::refresh(&w.store, &all).await.unwrap();
    let reads = w.store.fact_reads()[before..].to_vec();
    let mut sorted = reads.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["2026-08", "2026-09", "2026-10", "2026-11"],
        "each month once (and the month before the first): {reads:?}"
    );
    assert_eq!(
        w.rows(),
        alone,
        "the same rows as each month computed alone"
    );
    for (m, written) in &report.periods {
        assert_eq!(
            (written.written, written.deleted),
            (0, 0),
            "{m}: nothing to change"
        );
    }
}

#[tokio::test]
async fn funnels_of_several_months_read_each_month_once_and_match_each_alone() {
    let w = history().await;
    let now = at("2026-12-02T03:00:00Z");
    let version = w.criteria.version.clone();
    let months: Vec<String> = ["2026-11", "2026-10", "2026-09"].map(str::to_owned).into();
    let mut alone = Vec::new();
    for m in &months {
        alone.push(
            rollups::funnel_report(&w.store, m, &version, now, 30, 1.0)
                .await
                .unwrap(),
        );
    }
    assert!(alone.iter().any(|r| r.steps.iter().any(|s| s.entered > 0)));

    let before = w.store.fact_reads().len();
    let together = rollups::funnel_reports(&w.store, &months, &version, now, 30, 1.0)
        .await
        .unwrap();
    assert_eq!(together, alone, "the same reports, in the order asked");
    let mut reads = w.store.fact_reads()[before..].to_vec();
    reads.sort();
    // 2026-09's window starts three months before it and ends at the as-of month.
    assert_eq!(
        reads,
        [
            "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12"
        ],
        "each month once"
    );
}

#[tokio::test]
async fn dashboards_of_several_months_read_each_month_once_and_match_each_page_alone() {
    let w = history().await;
    let now = at("2026-12-02T03:00:00Z");
    let months: Vec<String> = ["2026-09", "2026-10", "2026-11"].map(str::to_owned).into();
    let mut alone = Vec::new();
    for m in &months {
        let page = leadsync_pipeline::dashboard::page(&w.store, m, None, now)
            .await
            .unwrap()
            .expect("a page: the month has rows");
        alone.push(page);
    }

    let before = w.store.fact_reads().len();
    let snapshots = FakeSnapshotStore::new();
    let keys = leadsync_pipeline::dashboard::publish(&w.store, &snapshots, &months, now)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3);
    for (m, page) in months.iter().zip(&alone) {
        assert_eq!(
            snapshots.dashboard(m).as_ref(),
            Some(page),
            "{m}: as rendered alone"
        );
    }
    let mut reads = w.store.fact_reads()[before..].to_vec();
    reads.sort();
    assert_eq!(
        reads,
        [
            "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11", "2026-12"
        ],
        "each month once"
    );
}

#[tokio::test]
async fn a_custom_pipeline_deal_shared_by_two_contacts_is_one_win_for_its_owner() {
    // Defects: won meant dealstage == "closedwon" (custom pipelines never won); a deal on two
    // contacts was credited twice; the contact's owner got the deal owner's credit.
    let mut leads = leads(at("2026-11-19T12:00:00Z"));
    for l in &mut leads {
        l.deals.clear();
    }
    let shared = leadsync_domain::Deal {
        id: "d-shared".into(),
        stage: Some("81234567".into()),
        pipeline: Some("enterprise".into()),
        amount_cents: Some(2_000_000),
        currency: Some("USD".into()),
        closed_won: Some(true),
        closed: Some(true),
        close_date: Some(at("2026-11-12T10:00:00Z")),
        owner_id: Some("deal-owner".into()),
        ..leadsync_domain::Deal::default()
    };
    leads[1].deals.push(shared.clone());
    leads[2].deals.push(shared);
    assert_ne!(leads[1].owner_id.as_deref(), Some("deal-owner"));
    let w = World::new(leads);
    w.run("r1", november()).await.unwrap();
    let rows = w.rows().remove("2026-11").unwrap();
    let (incentives, _) = incentive_rows(&rows, &w.criteria.version);
    let wins = |team| -> i64 {
        incentives
            .iter()
            .filter(|i| i.team == team)
            .map(|i| i.outcomes.get("won").copied().unwrap_or(0))
            .sum()
    };
    use leadsync_domain::incentives::Team;
    assert_eq!(wins(Team::Sales), 1, "one deal, one sales credit");
    assert_eq!(
        wins(Team::Marketing),
        2,
        "marketing's share split between the two sources"
    );
    let revenue = rows
        .iter()
        .find(|r| r.sk.ends_with("#month#revenue_won#USD#all"))
        .expect("a custom pipeline's win is a win");
    assert!(
        revenue.body.contains("\"value\":2000000"),
        "{}",
        revenue.body
    );
    let owner = incentives
        .iter()
        .find(|i| i.owner == "deal-owner")
        .expect("the deal's owner is credited");
    // 5 % of 20,000.00 and the opportunity's 50.00: once.
    assert_eq!(owner.credits_cents, 2_000_000 * 500 / 10_000 + 5_000);
    let contact_owner_wins: i64 = incentives
        .iter()
        .filter(|i| i.team == Team::Sales && i.owner != "deal-owner")
        .map(|i| i.outcomes.get("won").copied().unwrap_or(0))
        .sum();
    assert_eq!(
        contact_owner_wins, 0,
        "contact owners get no credit for the deal"
    );
}

/// Incentive rows and month KPIs of `all` of a period's reported view, keyed without version.
fn view(rows: &[RollupRow]) -> BTreeMap<String, String> {
    let version = leadsync_domain::rollup::reporting_version(rows).unwrap();
    leadsync_domain::rollup::version_view(rows, &version)
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with("INC#") || (k.starts_with("KPI#month#") && k.ends_with("#all"))
        })
        .filter(|(k, _)| !k.contains("speed_to_lead"))
        .map(|(k, r)| {
            let mut body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            body.as_object_mut().unwrap().remove("lineage");
            (k, body.to_string())
        })
        .collect()
}

#[tokio::test]
async fn a_merged_pair_counts_once_in_kpis_and_incentives() {
    let base = leads(at("2026-11-19T12:00:00Z"));
    // The reference: the world where the person was only ever one contact.
    let alone = World::new(base.clone());
    alone.run("r1", november()).await.unwrap();
    let expected = view(&alone.rows()["2026-11"]);

    // The same person entered twice (a duplicate with its own id, the same everything else:
    // SQL, accepted by sales, on the same won deal) — counted twice until the CRM merges them.
    let person = base
        .iter()
        .find(|l| {
            l.deals.iter().any(leadsync_domain::Deal::is_closed_won)
                && l.lead_status.as_deref() == Some("IN_PROGRESS")
        })
        .expect("a lead with a won deal that sales accepted")
        .clone();
    let mut duplicate = person.clone();
    duplicate.id = leadsync_domain::LeadId::new("77777").unwrap();
    let mut with_duplicate = base.clone();
    with_duplicate.push(duplicate.clone());
    let w = World::new(with_duplicate);
    w.run("r1", november()).await.unwrap();
    assert_ne!(
        view(&w.rows()["2026-11"]),
        expected,
        "the duplicate counts twice"
    );

    // HubSpot merges the duplicate into the original: the original carries its id.
    w.crm
        .merge(&person.id, &duplicate.id, at("2026-11-25T10:00:00Z"));
    w.run("r2", at("2026-11-26T03:00:00Z")).await.unwrap();
    let merged = w.rows()["2026-11"].clone();
    assert_eq!(view(&merged), expected, "the merged pair counts once");
    let funnel = rollups::funnel_report(
        &w.store,
        "2026-11",
        &w.criteria.version,
        november(),
        30,
        1.0,
    )
    .await
    .unwrap();
    let reference = rollups::funnel_report(
        &alone.store,
        "2026-11",
        &alone.criteria.version,
        november(),
        30,
        1.0,
    )
    .await
    .unwrap();
    assert_eq!(funnel.steps, reference.steps, "and once in the funnel");
}

#[tokio::test]
async fn a_deleted_contact_leaves_the_next_recompute_and_corrects_a_closed_period() {
    let base = leads(at("2026-11-19T12:00:00Z"));
    let gone = base
        .iter()
        .find(|l| l.deals.iter().any(leadsync_domain::Deal::is_closed_won))
        .unwrap()
        .id
        .clone();
    let w = World::new(base.clone());
    w.run("r1", november()).await.unwrap();
    rollups::close(
        &w.store,
        "2026-11",
        "finance@example",
        at("2026-12-01T09:00:00Z"),
    )
    .await
    .unwrap();
    let frozen = w.rows()["2026-11"].clone();

    // The reference: November as it would have been without the contact.
    let without: Vec<Lead> = base.into_iter().filter(|l| l.id != gone).collect();
    let reference = World::new(without);
    reference.run("r1", november()).await.unwrap();
    let reference = reference.rows()["2026-11"].clone();

    w.crm.delete(&gone, at("2026-12-02T10:00:00Z"));
    w.run("r2", at("2026-12-03T03:00:00Z")).await.unwrap();
    assert_eq!(w.store.runs().last().unwrap().deleted, 1);
    let rows = w.rows();
    assert_eq!(rows["2026-11"], frozen, "a closed period never changes");
    // December carries the correction: November's credits less the deleted contact's.
    let corrections = leadsync_domain::rollup::correction_rows(&rows["2026-12"]);
    let delta: i64 = corrections.iter().map(|c| c.delta_credits_cents).sum();
    let credits = |rows: &[RollupRow]| {
        let version = leadsync_domain::rollup::reporting_version(rows).unwrap();
        incentive_rows(rows, &version).1.credits_cents
    };
    assert!(delta < 0, "{corrections:#?}");
    assert_eq!(credits(&frozen) + delta, credits(&reference));
    // Recomputing November now (what a re-opened period would show) leaves the contact out.
    let (_, totals) = incentive_rows(&rows["2026-12"], &w.criteria.version);
    assert_eq!(totals.corrections_cents, delta);
}

#[tokio::test]
async fn a_deal_that_closes_reaches_its_contact_though_the_contact_never_changed() {
    let mut base = leads(at("2026-11-19T12:00:00Z"));
    let i = base
        .iter()
        .position(|l| l.deals.iter().any(|d| !d.is_closed_won()))
        .expect("a lead with an open deal");
    base[i].modified_at = at("2026-11-10T12:00:00Z");
    let w = World::new(base.clone());
    w.run("r1", november()).await.unwrap();
    let won = |w: &World| {
        w.store
            .milestones()
            .iter()
            .filter(|m| m.outcome == leadsync_domain::incentives::Outcome::Won)
            .count()
    };
    let before = won(&w);
    // The rep closes the deal won: HubSpot changes the deal, not the contact.
    let mut lead = base[i].clone();
    let deal = lead.deals.iter_mut().find(|d| !d.is_closed_won()).unwrap();
    deal.stage = Some("closedwon".into());
    deal.closed_won = Some(true);
    deal.closed = Some(true);
    deal.close_date = Some(at("2026-11-22T15:00:00Z"));
    w.crm.touch_related(lead, at("2026-11-22T15:00:00Z"));
    w.run("r2", at("2026-11-23T03:00:00Z")).await.unwrap();
    let report = w.store.runs().last().unwrap().clone();
    assert_eq!(report.rescored_due, 1, "{report:?}");
    assert_eq!(won(&w), before + 1, "the win is recorded");
    let (_, totals) = incentive_rows(&w.rows()["2026-11"], &w.criteria.version);
    assert!(totals.outcomes.get("won").is_some_and(|n| *n > 0));
}

/// Issue 19 (privacy): erasing a person deletes its state and snapshot lines and moves its
/// facts under a pseudonym — the month's KPIs and incentive totals are exactly what they were,
/// no row names the person any more, and erasing again changes nothing.
#[tokio::test]
async fn an_erased_person_leaves_no_trace_and_the_totals_whole() {
    use leadsync_domain::LeadId;
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let version = w.criteria.version.clone();
    // Someone who won a deal: the most a person can weigh in the month's credits.
    let id = w
        .store
        .milestones()
        .into_iter()
        .find(|m| m.outcome.as_str() == "won")
        .map(|m| m.lead_id)
        .expect("a won deal");
    let names_the_person = |rows: &[RollupRow]| {
        rows.iter()
            .filter(|r| {
                r.body.contains(&format!("\"{id}\"")) || r.body.contains(&format!("\"{id}|"))
            })
            .count()
    };
    let before = w.rows().remove("2026-11").unwrap();
    // Rows carry counts and a lineage hash of fact keys; the statements (computed from the
    // facts for a rep or a source) name each credited lead.
    let statements = rollups::statements(&w.store, "2026-11", &version)
        .await
        .unwrap();
    let naming = |lines: &[leadsync_domain::rollup::StatementLine], who: &LeadId| {
        lines
            .iter()
            .filter(|l| l.leads.iter().any(|x| x == who.as_str()))
            .count()
    };
    let credit = |lines: &[leadsync_domain::rollup::StatementLine]| {
        lines.iter().map(|l| l.credit_cents).sum::<i64>()
    };
    assert!(
        naming(&statements, &id) > 0,
        "the person is in the month's statements before"
    );
    let totals_before = incentive_rows(&before, &version).1;
    assert!(
        w.snapshots
            .snapshots()
            .values()
            .flatten()
            .any(|l| l.lead.id == id)
    );

    let pseudonym = LeadId::new("erased-0f3a9c1d2b4e5a6f").unwrap();
    let done = erase_in(&w, &id, &pseudonym, november()).await;
    assert!(done.table.state_deleted);
    assert!(done.table.facts_anonymised >= 3, "{done:?}");
    assert_eq!(done.table.facts_kept, 0);
    assert!(done.snapshots.lines_removed >= 1, "{done:?}");
    assert_eq!(done.periods_recomputed, vec!["2026-11".to_owned()]);

    assert!(!w.store.states().contains_key(&id));
    assert!(w.store.transitions().iter().all(|t| t.lead_id != id));
    assert!(w.store.milestones().iter().all(|m| m.lead_id != id));
    assert!(w.store.transitions().iter().any(|t| t.lead_id == pseudonym));
    assert!(
        w.snapshots
            .snapshots()
            .values()
            .flatten()
            .all(|l| l.lead.id != id)
    );
    let after = w.rows().remove("2026-11").unwrap();
    assert_eq!(names_the_person(&after), 0, "no row names the person");
    let statements_after = rollups::statements(&w.store, "2026-11", &version)
        .await
        .unwrap();
    assert_eq!(
        naming(&statements_after, &id),
        0,
        "no statement names the person"
    );
    assert_eq!(
        naming(&statements_after, &pseudonym),
        naming(&statements, &id),
        "the pseudonym stands in"
    );
    assert_eq!(
        credit(&statements_after),
        credit(&statements),
        "every credit as it was"
    );
    assert_eq!(
        incentive_rows(&after, &version).1,
        totals_before,
        "the totals are whole"
    );
    let kpis = |rows: &[RollupRow]| {
        rows.iter()
            .filter_map(|r| match r.parse().unwrap() {
                RowBody::Kpi(k) => Some((k.metric, k.dimension, k.grain, k.value, k.base)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(kpis(&after), kpis(&before), "every KPI as it was");

    // Again: nothing left to do, nothing changes.
    let again = erase_in(&w, &id, &pseudonym, november()).await;
    assert!(!again.table.state_deleted);
    assert_eq!(
        (again.table.facts_anonymised, again.snapshots.lines_removed),
        (0, 0)
    );
    assert_eq!(w.rows().remove("2026-11").unwrap(), after);
}

/// A closed (paid) period keeps the person's facts as they are: its frozen rows do not move.
#[tokio::test]
async fn erasing_keeps_the_facts_of_a_closed_period_and_says_so() {
    use leadsync_domain::LeadId;
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    rollups::close(&w.store, "2026-11", "finance", at("2026-12-01T10:00:00Z"))
        .await
        .unwrap();
    let frozen = w.rows().remove("2026-11").unwrap();
    let id = w.store.transitions()[0].lead_id.clone();
    let pseudonym = LeadId::new("erased-1").unwrap();
    let done = erase_in(&w, &id, &pseudonym, at("2026-12-02T10:00:00Z")).await;
    assert!(done.table.state_deleted);
    assert_eq!(done.table.facts_anonymised, 0);
    assert!(done.table.facts_kept >= 1);
    assert_eq!(
        done.table.closed_periods.iter().collect::<Vec<_>>(),
        vec!["2026-11"]
    );
    assert_eq!(
        w.rows().remove("2026-11").unwrap(),
        frozen,
        "a closed period never changes"
    );
    assert!(
        w.snapshots
            .snapshots()
            .values()
            .flatten()
            .all(|l| l.lead.id != id)
    );
}

/// A webhook's erasure waits on the queue while a run holds the lease, is done once it is
/// free, and fails to the DLQ after a day of waiting.
#[tokio::test]
async fn a_queued_erasure_waits_for_the_lease_then_erases() {
    use leadsync_domain::LeadId;
    use leadsync_domain::fakes::FakeSliceQueue;
    use leadsync_domain::ports::RunStore;
    use leadsync_domain::runs::DeferredErase;
    use leadsync_pipeline::erase::{ErasuresDone, run_deferred_erase};
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let ids: Vec<LeadId> = w
        .store
        .transitions()
        .iter()
        .map(|t| t.lead_id.clone())
        .take(2)
        .collect();
    let asked = DeferredErase {
        lead_ids: ids.clone(),
        requested_at: november(),
        attempts: 0,
    };
    let queue = FakeSliceQueue::new();
    let options = leadsync_pipeline::RunOptions::new(SyncInput::nightly("x", november()));
    let names = std::sync::atomic::AtomicU32::new(0);
    let pseudonym = || {
        LeadId::new(format!(
            "erased-{}",
            names.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
        .unwrap()
    };

    assert!(
        w.store
            .acquire_lease(
                "night-2",
                november(),
                november() + chrono::Duration::minutes(20)
            )
            .await
            .unwrap()
            .is_none()
    );
    let busy = run_deferred_erase(
        &w.store,
        &w.snapshots,
        &queue,
        &asked,
        &options,
        november(),
        &pseudonym,
    )
    .await
    .unwrap();
    assert!(
        matches!(busy, ErasuresDone::Again { erased: 0, remaining: 2, attempts: 1, ref holder, .. } if holder == "night-2"),
        "{busy:?}"
    );
    let (back, delay) = queue.drain_erasures().pop().unwrap();
    assert_eq!(
        (back.lead_ids.clone(), back.attempts, delay.as_secs()),
        (ids.clone(), 1, 60)
    );
    assert!(
        ids.iter().all(|id| w.store.states().contains_key(id)),
        "nothing erased while the run held the lease"
    );

    // A day later and still held: it fails (and the queue keeps it in the DLQ).
    let late = november() + chrono::Duration::hours(25);
    assert!(
        w.store
            .acquire_lease("night-3", late, late + chrono::Duration::minutes(20))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        run_deferred_erase(
            &w.store,
            &w.snapshots,
            &queue,
            &back,
            &options,
            late,
            &pseudonym
        )
        .await
        .is_err()
    );
    w.store.release_lease("night-3").await.unwrap();

    let done = run_deferred_erase(
        &w.store,
        &w.snapshots,
        &queue,
        &back,
        &options,
        late,
        &pseudonym,
    )
    .await
    .unwrap();
    assert!(
        matches!(done, ErasuresDone::Erased(ref e) if e.len() == 2),
        "{done:?}"
    );
    assert!(ids.iter().all(|id| !w.store.states().contains_key(id)));
    assert!(
        w.store
            .transitions()
            .iter()
            .all(|t| !ids.contains(&t.lead_id))
    );
}

/// Erase `id` in the world's stores under a 15-minute lease.
async fn erase_in(
    w: &World,
    id: &leadsync_domain::LeadId,
    pseudonym: &leadsync_domain::LeadId,
    now: DateTime<Utc>,
) -> leadsync_pipeline::erase::Erasure {
    leadsync_pipeline::erase::erase(
        &w.store,
        &w.snapshots,
        id,
        pseudonym,
        now,
        chrono::Duration::minutes(15),
    )
    .await
    .unwrap()
}

/// Rollup rows are written in batches, unconditionally, under the sync lease: so a close (and
/// an operator's recompute) takes the lease too, and waits while a run holds it — the close can
/// never freeze a period between a run's check that it is open and its batched writes.
#[tokio::test]
async fn a_close_waits_while_a_run_holds_the_sync_lease() {
    use leadsync_domain::ports::RunStore;
    let w = World::new(leads(at("2026-11-19T12:00:00Z")));
    w.run("r1", november()).await.unwrap();
    let at_close = at("2026-12-01T09:00:00Z");
    assert!(
        w.store
            .acquire_lease(
                "night-2026-12-01",
                at_close,
                at_close + chrono::Duration::minutes(20)
            )
            .await
            .unwrap()
            .is_none()
    );
    let busy = rollups::close(&w.store, "2026-11", "finance@example", at_close).await;
    assert!(
        matches!(&busy, Err(RollupError::Busy { holder, .. }) if holder == "night-2026-12-01"),
        "{busy:?}"
    );
    assert!(busy.unwrap_err().is_retryable());
    assert!(
        matches!(
            rollups::recompute(&w.store, &["2026-11".to_owned()].into(), at_close).await,
            Err(RollupError::Busy { .. })
        ),
        "an operator's recompute waits too"
    );
    assert!(
        w.store.closed_periods().await.unwrap().is_empty(),
        "nothing closed while the run held the lease"
    );

    w.store.release_lease("night-2026-12-01").await.unwrap();
    let status = rollups::close(&w.store, "2026-11", "finance@example", at_close)
        .await
        .unwrap();
    assert_eq!(status.period, "2026-11");
    // The close gave the lease back: the next night takes it at once.
    assert!(
        w.store
            .acquire_lease(
                "night-2026-12-02",
                at_close,
                at_close + chrono::Duration::minutes(20)
            )
            .await
            .unwrap()
            .is_none()
    );
}
