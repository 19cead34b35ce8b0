//! Rollups through the nightly sync, on the in-memory fakes: reproducible (re-runs and crashes at
//! random points give byte-identical rows), closed periods frozen, corrections posted forward,
//! exports whose control totals and checksum hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::fakes::{FakeCrm, FakeLeadStore, FakeSnapshotStore};
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::{RollupRow, RowBody, funnel, incentive_rows};
use leadsync_domain::{Criteria, Lead};
use leadsync_enrich::NoProvider;
use leadsync_pipeline::rollups::{self, RollupError};
use leadsync_pipeline::{SyncDeps, SyncInput, sync};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const CRITERIA: &str = include_str!("../../../infra/criteria/b2b-saas.toml");

mod common;
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
    let won = kpi("revenue_won", "all").expect("closed-won revenue");
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
    let steps = funnel(&rows, &version, 5.0);
    assert_eq!(steps.len(), 5);
    assert!(
        steps
            .iter()
            .any(|s| s.revenue_gain_cents.is_some_and(|g| g > 0)),
        "{steps:#?}"
    );
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
        "min_fit = 20\nmin_total = 45",
        "min_fit = 10\nmin_total = 30",
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
            .any(|c| c.row.starts_with("INC#2026.11.2#") && c.delta_credits_cents > 0)
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
