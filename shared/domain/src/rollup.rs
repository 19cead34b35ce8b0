//! KPI and shared-incentive rollups: a pure function of a period's facts.
//!
//! [`Rollup`] folds the facts that *occurred* in one month (plus the month before, for velocity
//! and speed to lead) into rows with deterministic sort keys and canonical JSON bodies; writing
//! them overwrites, never increments, so recomputing any number of times gives byte-identical
//! rows. [`corrections`] compares a closed period's frozen view with what its facts say now and
//! produces correction rows for the open period. The funnel reality check is [`crate::funnel`].
//!
//! # Views: one per criteria version, each complete
//! Stage facts belong to the criteria version that scored them; sales milestones (verdicts,
//! deals) belong to no version. Each version with stage facts in the period gets a complete
//! view: its own stage facts plus every milestone, credited by its own plan. A new version
//! restates a period (its facts keep the time the lead got to its stage, so a lead that was SQL
//! in October is SQL in October under the new version too) — it never adds a second credit.
//! Readers show one view: [`reporting_version`], the version scored most recently.
//!
//! # Counted once
//! - A contact merged into another counts as the winner: its facts join the winner's, and a
//!   fact both have (the same stage, the same verdict, the same deal) counts once. A deleted
//!   contact's facts stop counting ([`Rollup::with_links`]).
//! - A deal shared by several contacts is one opportunity, one win or one loss: its revenue is
//!   counted once, sales credit goes to the **deal's** owner, and marketing's credit is split
//!   evenly (exact cents, the remainder to the first contacts by id) among the contacts' sources.
//! - A deal in another currency than the plan's is credited at the plan's rate (`[incentives.fx]`),
//!   or not at all, and the row says how much was left unconverted (`unconverted`).
//!
//! Row keys (all under one partition per period, so a period is one Query):
//! - `KPI#<version>#month#<metric>#<dimension>` and `KPI#<version>#day:<date>#reached#<step>#all`
//! - `INC#<version>#<team>#<owner>`, `VER#<version>`
//! - `CORR#<closed period>#<row key without its version>`
//!
//! Metrics (each row has `value`, `base` and `detail`; a rate is `value / base`):
//! - `reached#<step>`: leads reaching a stage (`iql`, `mql`, …), sales verdicts
//!   (`sales_accepted`, `sales_rejected`), deals (`opportunity`, `won`, `lost`) in the period;
//!   `base` is 0 (a count, not a rate).
//! - `conversion#<from>><to>`: reached `to` ÷ reached `from` in the period (flow conversion: the
//!   two counts need not be the same leads; the cohort view is the funnel check).
//! - `loss#<stage>`: leads lost (disqualified or recycled) leaving `stage` (`new`: first seen, or
//!   first scored under this version) ÷ all moves out of it; `detail` counts the reasons
//!   (disqualifier codes, `STATUS:<sales status>`). `loss#opportunity`: deals lost ÷ deals
//!   closed, `detail` the lost reasons.
//! - `acceptance`: accepted ÷ judged by sales; `detail` counts rejection reasons.
//! - `rejection_by_rule#<code>`: rejected ÷ judged, among leads whose scoring matched the rule.
//! - `speed_to_lead`: median minutes from MQL to the first sales verdict (`value`), over `base`
//!   leads; `detail.max_minutes`.
//! - `velocity#mql`: MQLs this month minus last month (`value`) over last month's (`base`).
//! - `revenue_won#<currency>`: cents of closed-won deals (`value`) over `base` deals, per currency.
//!
//! Dimensions: `all`, `owner:<id>`, `source:<source>`, `band:<band>`.

use crate::facts::{Fact, LeadLinks, counted_as};
use crate::incentives::{IncentivePlan, Outcome};
use crate::stage::Stage;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod credit;
mod kpis;
mod read;
mod rows;

pub use read::{
    ControlTotals, correction_rows, corrections, incentive_rows, reporting_version, version_view,
};
pub use rows::{
    Correction, DAILY, FUNNEL, Incentive, Kpi, RollupRow, RowBody, StatementLine, VersionInfo,
};

const UNASSIGNED: &str = "(unassigned)";
const UNKNOWN: &str = "(unknown)";

fn dims(owner: Option<&str>, source: Option<&str>, band: &str) -> [String; 4] {
    [
        "all".to_owned(),
        format!("owner:{}", owner.unwrap_or(UNASSIGNED)),
        format!("source:{}", source.unwrap_or(UNKNOWN)),
        format!("band:{}", if band.is_empty() { "-" } else { band }),
    ]
}

fn dimensions(f: &Fact) -> [String; 4] {
    dims(f.owner_id(), f.source(), f.band())
}

fn day_of(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d").to_string()
}

/// Counts from one version's stage facts, per dimension.
#[derive(Debug, Default)]
struct StageTally {
    reached: BTreeMap<&'static str, i64>,
    exits: BTreeMap<String, i64>,
    lost: BTreeMap<String, (i64, BTreeMap<String, i64>)>,
}

/// Counts from the sales milestones (no version), per dimension.
#[derive(Debug, Default)]
struct SalesTally {
    reached: BTreeMap<&'static str, i64>,
    accepted: i64,
    rejected: i64,
    rejection_reasons: BTreeMap<String, i64>,
    by_rule: BTreeMap<String, (i64, i64)>,
    speed_minutes: Vec<i64>,
    /// Per currency (`None`: the plan's): cents and deals.
    revenue: BTreeMap<Option<String>, (i64, i64)>,
    closed: i64,
    lost: (i64, BTreeMap<String, i64>),
}

/// A creditable fact of one lead: an SQL (per version) or a sales verdict.
#[derive(Debug, Clone)]
struct Single {
    lead: String,
    outcome: Outcome,
    key: String,
    occurred: DateTime<Utc>,
    owner: String,
    source: String,
    reasons: Vec<String>,
}

/// One contact's fact about a deal.
#[derive(Debug, Clone)]
struct DealSide {
    key: String,
    source: String,
    band: String,
    owner: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    occurred: DateTime<Utc>,
    reason: Option<String>,
    reasons: Vec<String>,
}

/// A period's rows, built by folding its facts one at a time (any order), so a period of any
/// size is computed in memory proportional to its leads, deals and row keys.
///
/// Feed the period's facts with [`Rollup::add`] and the previous month's with
/// [`Rollup::add_previous`] (velocity; MQLs that precede a verdict), then [`Rollup::finish`].
/// The rows depend only on the set of facts, not on the order they arrive in.
#[derive(Debug)]
pub struct Rollup<'p> {
    period: String,
    plans: &'p BTreeMap<String, IncentivePlan>,
    /// First MQL of each lead (any version) in this and the previous month: speed to lead.
    first_mql: HashMap<String, DateTime<Utc>>,
    stage: BTreeMap<(String, String), StageTally>,
    sales: BTreeMap<String, SalesTally>,
    stage_days: BTreeMap<(String, String, &'static str), i64>,
    sales_days: BTreeMap<(String, &'static str), i64>,
    versions: BTreeMap<String, VersionInfo>,
    /// Versions of milestones (a period with no stage facts is viewed under these).
    milestone_versions: BTreeSet<String>,
    sqls: BTreeMap<String, Vec<Single>>,
    verdicts: Vec<(Single, [String; 4])>,
    /// (outcome, deal id) → lead → that contact's fact.
    deals: BTreeMap<(Outcome, String), BTreeMap<String, DealSide>>,
    previous_mql: BTreeMap<(String, String), i64>,
    links: Option<&'p LeadLinks>,
    /// Leads others were merged into.
    winners: BTreeSet<crate::lead::LeadId>,
    /// Keys of facts of `winners` (a merged-away lead's copy of one counts not).
    native: std::collections::HashSet<String>,
    /// Facts of merged-away leads, re-keyed to their winner: folded in at the end, each key
    /// once. (original lead, fact); `previous`: of the month before.
    rekeyed: Vec<(String, Fact, bool)>,
}

impl<'p> Rollup<'p> {
    /// Count merged-away contacts as the lead they were merged into and leave deleted ones
    /// out.
    #[must_use]
    pub fn with_links(mut self, links: &'p LeadLinks) -> Self {
        self.winners = links
            .values()
            .filter_map(|l| match l {
                crate::facts::LeadLink::Merged { into, .. } => Some(into.clone()),
                crate::facts::LeadLink::Deleted { .. } => None,
            })
            .collect();
        self.links = Some(links);
        self
    }

    /// Route a fact through the links: `None` when it is left out or deferred.
    fn route(&mut self, f: &Fact, previous: bool) -> Option<()> {
        let Some(links) = self.links else {
            return Some(());
        };
        let into = counted_as(links, f.lead_id())?;
        if into != f.lead_id() {
            let original = f.lead_id().as_str().to_owned();
            let counted = crate::facts::as_counted(links, f)?;
            self.rekeyed.push((original, counted, previous));
            return None;
        }
        if self.winners.contains(f.lead_id()) {
            self.native.insert(format!("{previous}|{}", f.key()));
        }
        Some(())
    }
    /// An empty rollup of `period` (`YYYY-MM`), crediting by `plans` (by criteria version;
    /// versions without a plan get KPI rows only).
    pub fn new(period: &str, plans: &'p BTreeMap<String, IncentivePlan>) -> Self {
        Self {
            period: period.to_owned(),
            plans,
            first_mql: HashMap::new(),
            stage: BTreeMap::new(),
            sales: BTreeMap::new(),
            stage_days: BTreeMap::new(),
            sales_days: BTreeMap::new(),
            versions: BTreeMap::new(),
            milestone_versions: BTreeSet::new(),
            sqls: BTreeMap::new(),
            verdicts: Vec::new(),
            deals: BTreeMap::new(),
            previous_mql: BTreeMap::new(),
            links: None,
            winners: BTreeSet::new(),
            native: std::collections::HashSet::new(),
            rekeyed: Vec::new(),
        }
    }

    fn note_mql(&mut self, f: &Fact) -> bool {
        if let Fact::Stage(t) = f
            && t.to == Stage::Mql
        {
            let at = f.occurred_at();
            let first = self
                .first_mql
                .entry(t.lead_id.as_str().to_owned())
                .or_insert(at);
            *first = (*first).min(at);
            true
        } else {
            false
        }
    }

    /// Fold in one fact of the previous month.
    pub fn add_previous(&mut self, f: &Fact) {
        if self.route(f, true).is_some() {
            self.fold_previous(f);
        }
    }

    fn fold_previous(&mut self, f: &Fact) {
        if self.note_mql(f) {
            for dim in dimensions(f) {
                *self
                    .previous_mql
                    .entry((f.criteria_version().to_owned(), dim))
                    .or_default() += 1;
            }
        }
    }

    /// Fold in one fact of the period; a fact of another period is ignored.
    pub fn add(&mut self, f: &Fact) {
        if f.period() != self.period || self.route(f, false).is_none() {
            return;
        }
        self.fold(f);
    }

    fn fold(&mut self, f: &Fact) {
        self.note_mql(f);
        match f {
            Fact::Stage(t) => self.add_stage(f, t),
            Fact::Milestone(m) => self.add_milestone(f, m),
        }
    }

    fn add_stage(&mut self, f: &Fact, t: &crate::transition::Transition) {
        let version = t.criteria_version.clone();
        let info = self
            .versions
            .entry(version.clone())
            .or_insert_with(|| VersionInfo {
                criteria_version: version.clone(),
                stage_facts: 0,
                last_observed_at: t.observed_at,
            });
        info.stage_facts += 1;
        info.last_observed_at = info.last_observed_at.max(t.observed_at);
        *self
            .stage_days
            .entry((version.clone(), day_of(f.occurred_at()), t.to.as_str()))
            .or_default() += 1;
        // A restatement is where the lead enters this version's view, not a move.
        let from = match t.from {
            Some(from) if !t.restated && from != t.to => from.as_str(),
            _ => "new",
        };
        for dim in dimensions(f) {
            let tally = self.stage.entry((version.clone(), dim)).or_default();
            *tally.reached.entry(t.to.as_str()).or_default() += 1;
            *tally.exits.entry(from.to_owned()).or_default() += 1;
            if matches!(t.to, Stage::Disqualified | Stage::Recycled) {
                let lost = tally.lost.entry(from.to_owned()).or_default();
                lost.0 += 1;
                for r in &t.loss_reasons {
                    *lost.1.entry(r.clone()).or_default() += 1;
                }
            }
        }
        if t.to == Stage::Sql {
            self.sqls.entry(version).or_default().push(Single {
                lead: t.lead_id.as_str().to_owned(),
                outcome: Outcome::Sql,
                key: f.key(),
                occurred: f.occurred_at(),
                owner: t.owner_id.clone().unwrap_or_else(|| UNASSIGNED.to_owned()),
                source: t.source.clone().unwrap_or_else(|| UNKNOWN.to_owned()),
                reasons: t.reasons.clone(),
            });
        }
    }

    fn add_milestone(&mut self, f: &Fact, m: &crate::facts::MilestoneFact) {
        self.milestone_versions.insert(m.criteria_version.clone());
        if m.outcome.is_deal() {
            self.deals
                .entry((m.outcome, m.reference.clone()))
                .or_default()
                .insert(
                    m.lead_id.as_str().to_owned(),
                    DealSide {
                        key: f.key(),
                        source: m.source.clone().unwrap_or_else(|| UNKNOWN.to_owned()),
                        band: m.band.clone(),
                        owner: m.owner_id.clone(),
                        amount: m.amount_cents,
                        currency: m.currency.clone(),
                        occurred: f.occurred_at(),
                        reason: m.reason.clone(),
                        reasons: m.reasons.clone(),
                    },
                );
            return;
        }
        let dims = dimensions(f);
        *self
            .sales_days
            .entry((day_of(f.occurred_at()), m.outcome.as_str()))
            .or_default() += 1;
        let rejected = m.outcome == Outcome::SalesRejected;
        for dim in &dims {
            let t = self.sales.entry(dim.clone()).or_default();
            *t.reached.entry(m.outcome.as_str()).or_default() += 1;
            if rejected {
                t.rejected += 1;
                *t.rejection_reasons
                    .entry(m.reason.clone().unwrap_or_default())
                    .or_default() += 1;
            } else {
                t.accepted += 1;
            }
            for code in &m.reasons {
                let e = t.by_rule.entry(code.clone()).or_default();
                e.0 += i64::from(rejected);
                e.1 += 1;
            }
        }
        self.verdicts.push((
            Single {
                lead: m.lead_id.as_str().to_owned(),
                outcome: m.outcome,
                key: f.key(),
                occurred: f.occurred_at(),
                owner: m.owner_id.clone().unwrap_or_else(|| UNASSIGNED.to_owned()),
                source: m.source.clone().unwrap_or_else(|| UNKNOWN.to_owned()),
                reasons: m.reasons.clone(),
            },
            dims,
        ));
    }

    /// The rows of the period, sorted by key.
    pub fn finish(self) -> Vec<RollupRow> {
        self.finish_all(false).0
    }

    /// The rows, and every statement line behind the incentive rows (all versions).
    pub fn finish_with_statements(self) -> (Vec<RollupRow>, Vec<StatementLine>) {
        self.finish_all(true)
    }

    fn finish_all(mut self, statements: bool) -> (Vec<RollupRow>, Vec<StatementLine>) {
        // Merged-away leads' facts, each key once, after the winners' own.
        let mut rekeyed = std::mem::take(&mut self.rekeyed);
        rekeyed.sort_by(|a, b| (a.2, a.1.key(), &a.0).cmp(&(b.2, b.1.key(), &b.0)));
        for (_, f, previous) in rekeyed {
            if self.native.insert(format!("{previous}|{}", f.key())) {
                if previous {
                    self.fold_previous(&f);
                } else {
                    self.fold(&f);
                }
            }
        }
        // Speed to lead, now that every MQL has been seen.
        for (v, dims) in &self.verdicts {
            if let Some(mql) = self.first_mql.get(&v.lead)
                && *mql <= v.occurred
            {
                let minutes = (v.occurred - *mql).num_minutes();
                for dim in dims {
                    if let Some(t) = self.sales.get_mut(dim) {
                        t.speed_minutes.push(minutes);
                    }
                }
            }
        }
        // Deals, once each.
        for ((outcome, _), sides) in &self.deals {
            let Some(first) = sides.values().next() else {
                continue;
            };
            let mut touched: BTreeSet<String> = BTreeSet::new();
            for side in sides.values() {
                touched.extend(dims(first.owner.as_deref(), Some(&side.source), &side.band));
            }
            *self
                .sales_days
                .entry((day_of(first.occurred), outcome.as_str()))
                .or_default() += 1;
            for dim in touched {
                let t = self.sales.entry(dim).or_default();
                *t.reached.entry(outcome.as_str()).or_default() += 1;
                match outcome {
                    Outcome::Won => {
                        let r = t.revenue.entry(first.currency.clone()).or_default();
                        r.0 += first.amount.unwrap_or(0);
                        r.1 += 1;
                        t.closed += 1;
                    }
                    Outcome::Lost => {
                        t.closed += 1;
                        t.lost.0 += 1;
                        *t.lost
                            .1
                            .entry(first.reason.clone().unwrap_or_default())
                            .or_default() += 1;
                    }
                    _ => {}
                }
            }
        }
        let mut versions: BTreeSet<String> = self.versions.keys().cloned().collect();
        if versions.is_empty() {
            versions.clone_from(&self.milestone_versions);
        }
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        for version in &versions {
            self.kpi_rows(version, &mut rows);
            if let Some(plan) = self.plans.get(version) {
                self.credit_rows(version, plan, &mut rows, statements.then_some(&mut lines));
            }
            if let Some(info) = self.versions.get(version) {
                rows.push(RollupRow::new(
                    format!("VER#{version}"),
                    &RowBody::Version(info.clone()),
                ));
            }
        }
        rows.sort();
        (rows, lines)
    }
}

#[cfg(test)]
mod tests;
