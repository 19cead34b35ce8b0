//! KPI and shared-incentive rollups: a pure function of a period's facts.
//!
//! [`Rollup`] folds the facts of one month (plus the month before, for velocity and speed to
//! lead) into rows with deterministic sort keys and canonical JSON bodies; writing them
//! overwrites, never increments, so recomputing any number of times gives byte-identical rows.
//! [`corrections`] compares a closed period's frozen rows with what its facts say now and
//! produces correction rows for the open period. [`funnel`] is the funnel reality check.
//!
//! Row keys (all under one partition per period, so a period is one Query):
//! - `KPI#<version>#month#<metric>#<dimension>` and `KPI#<version>#day:<date>#reached#<step>#all`
//! - `INC#<version>#<team>#<owner>`
//! - `CORR#<closed period>#<row key>`
//!
//! Metrics (each row has `value`, `base` and `detail`; a rate is `value / base`):
//! - `reached#<step>`: facts reaching a stage (`iql`, `mql`, …) or milestone (`sales_accepted`,
//!   `sales_rejected`, `opportunity`, `won`).
//! - `conversion#<from>><to>`: reached `to` ÷ reached `from` in the period (flow conversion).
//! - `loss#<stage>`: leads lost (disqualified or recycled) leaving `stage` (`new` for a lead
//!   seen for the first time) ÷ all exits from it;
//!   `detail` counts the loss reasons (disqualifier codes, `STATUS:<sales status>`).
//! - `acceptance`: accepted ÷ judged by sales; `detail` counts rejection reasons.
//! - `rejection_by_rule#<code>`: rejected ÷ judged, among leads whose scoring matched the rule.
//! - `speed_to_lead`: median minutes from MQL to the first sales verdict (`value`), over `base`
//!   leads; `detail.max_minutes`.
//! - `velocity#mql`: MQLs this month minus last month (`value`) over last month's (`base`):
//!   the lead velocity rate.
//! - `revenue_won`: cents of closed-won deals (`value`) over `base` deals.
//!
//! Dimensions: `all`, `owner:<id>`, `source:<source>`, `band:<band>`. Every row is computed
//! under one criteria version: a restated version has its own rows, never mixed.

use crate::facts::Fact;
use crate::hash::stable_hash;
use crate::incentives::{IncentivePlan, Outcome, Team};
use crate::stage::Stage;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One stored rollup row: its sort key and its canonical JSON body.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RollupRow {
    pub sk: String,
    pub body: String,
}

/// A KPI value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kpi {
    pub criteria_version: String,
    /// `month` or `day:<YYYY-MM-DD>`.
    pub grain: String,
    pub metric: String,
    pub dimension: String,
    pub value: i64,
    pub base: i64,
    #[serde(default)]
    pub detail: BTreeMap<String, i64>,
}

/// Credits of one team member (or marketing channel) for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incentive {
    pub criteria_version: String,
    pub team: Team,
    /// The sales owner for sales; the lead source (channel) for marketing.
    pub owner: String,
    pub credits_cents: i64,
    /// Credited outcomes per kind.
    pub outcomes: BTreeMap<String, i64>,
    /// Facts behind the row, and a hash of their keys (lineage).
    pub facts: u64,
    pub lineage: String,
}

/// A change to a closed period's row, posted to an open period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub closed_period: String,
    pub row: String,
    /// The frozen body and the body the facts give now (`None`: no such row).
    pub was: Option<String>,
    pub now: Option<String>,
    pub delta_credits_cents: i64,
    pub reason: String,
    /// Hash of the frozen and recomputed lineages.
    pub lineage: String,
}

/// The body of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RowBody {
    Kpi(Kpi),
    Incentive(Incentive),
    Correction(Correction),
}

impl RollupRow {
    fn new(sk: String, body: &RowBody) -> Self {
        // Serialising our own types (strings, integers, ordered maps) cannot fail.
        let body = serde_json::to_string(body).unwrap_or_default();
        Self { sk, body }
    }

    /// The typed body.
    ///
    /// # Errors
    /// When the stored body is not a rollup body (a corrupt row).
    pub fn parse(&self) -> Result<RowBody, serde_json::Error> {
        serde_json::from_str(&self.body)
    }
}

/// Funnel steps in order, for conversion.
pub const FUNNEL: [&str; 6] = ["iql", "mql", "sql", "sales_accepted", "opportunity", "won"];

fn dimensions(f: &Fact) -> [String; 4] {
    [
        "all".to_owned(),
        format!("owner:{}", f.owner_id().unwrap_or("(unassigned)")),
        format!("source:{}", f.source().unwrap_or("(unknown)")),
        format!("band:{}", if f.band().is_empty() { "-" } else { f.band() }),
    ]
}

#[derive(Debug, Default)]
struct Tally {
    reached: BTreeMap<&'static str, i64>,
    exits: BTreeMap<String, i64>,
    lost: BTreeMap<String, (i64, BTreeMap<String, i64>)>,
    accepted: i64,
    rejected: i64,
    rejection_reasons: BTreeMap<String, i64>,
    by_rule: BTreeMap<String, (i64, i64)>,
    speed_minutes: Vec<i64>,
    revenue: (i64, i64),
}

/// A period's rows, built by folding its facts one at a time (any order), so a period of any
/// size is computed in memory proportional to its leads and row keys, never to its facts.
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
    tallies: BTreeMap<(String, String), Tally>,
    days: BTreeMap<(String, String, &'static str), i64>,
    /// Sales verdicts whose speed to lead is known only once every MQL has been seen:
    /// (version, dimensions, lead, verdict time).
    verdicts: Vec<(String, [String; 4], String, DateTime<Utc>)>,
    /// Last month's MQLs per (version, dimension), for velocity.
    previous_mql: BTreeMap<(String, String), i64>,
    credits: BTreeMap<(String, Team, String), Credit>,
}

#[derive(Debug, Default)]
struct Credit {
    credits: i64,
    outcomes: BTreeMap<String, i64>,
    keys: BTreeSet<String>,
}

impl<'p> Rollup<'p> {
    /// An empty rollup of `period` (`YYYY-MM`), crediting by `plans` (by criteria version;
    /// versions without a plan get KPI rows only).
    pub fn new(period: &str, plans: &'p BTreeMap<String, IncentivePlan>) -> Self {
        Self {
            period: period.to_owned(),
            plans,
            first_mql: HashMap::new(),
            tallies: BTreeMap::new(),
            days: BTreeMap::new(),
            verdicts: Vec::new(),
            previous_mql: BTreeMap::new(),
            credits: BTreeMap::new(),
        }
    }

    fn note_mql(&mut self, f: &Fact) -> bool {
        if let Fact::Stage(t) = f
            && t.to == Stage::Mql
        {
            let at = self
                .first_mql
                .entry(t.lead_id.as_str().to_owned())
                .or_insert(t.observed_at);
            *at = (*at).min(t.observed_at);
            true
        } else {
            false
        }
    }

    /// Fold in one fact of the previous month.
    pub fn add_previous(&mut self, f: &Fact) {
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
        if f.period() != self.period {
            return;
        }
        self.note_mql(f);
        let version = f.criteria_version();
        *self
            .days
            .entry((
                version.to_owned(),
                f.observed_at().format("%Y-%m-%d").to_string(),
                f.step(),
            ))
            .or_default() += 1;
        let dims = dimensions(f);
        for dim in &dims {
            let t = self
                .tallies
                .entry((version.to_owned(), dim.clone()))
                .or_default();
            *t.reached.entry(f.step()).or_default() += 1;
            match f {
                Fact::Stage(tr) => {
                    let from = tr.from.map_or("new", Stage::as_str).to_owned();
                    *t.exits.entry(from.clone()).or_default() += 1;
                    if matches!(tr.to, Stage::Disqualified | Stage::Recycled) {
                        let lost = t.lost.entry(from).or_default();
                        lost.0 += 1;
                        for r in &tr.loss_reasons {
                            *lost.1.entry(r.clone()).or_default() += 1;
                        }
                    }
                }
                Fact::Milestone(m) => match m.outcome {
                    Outcome::SalesAccepted | Outcome::SalesRejected => {
                        let rejected = m.outcome == Outcome::SalesRejected;
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
                    Outcome::Won => {
                        t.revenue.0 += m.amount_cents.unwrap_or(0);
                        t.revenue.1 += 1;
                    }
                    Outcome::Opportunity | Outcome::Sql => {}
                },
            }
        }
        if let Fact::Milestone(m) = f
            && matches!(m.outcome, Outcome::SalesAccepted | Outcome::SalesRejected)
        {
            self.verdicts.push((
                version.to_owned(),
                dims,
                m.lead_id.as_str().to_owned(),
                m.observed_at,
            ));
        }
        self.credit(f);
    }

    /// Each credited fact credits marketing (to the lead's source) and sales (to the lead's
    /// owner) per the plan of its criteria version.
    fn credit(&mut self, f: &Fact) {
        let Some(plan) = self.plans.get(f.criteria_version()) else {
            return;
        };
        let (outcome, amount) = match f {
            Fact::Stage(t) if t.to == Stage::Sql => (Outcome::Sql, None),
            Fact::Stage(_) => return,
            Fact::Milestone(m) => (m.outcome, m.amount_cents),
        };
        if !plan.credits.contains_key(&outcome) {
            return;
        }
        let key = f.key();
        for team in [Team::Marketing, Team::Sales] {
            let owner = match team {
                Team::Marketing => f.source().unwrap_or("(unknown)"),
                Team::Sales => f.owner_id().unwrap_or("(unassigned)"),
            };
            let a = self
                .credits
                .entry((f.criteria_version().to_owned(), team, owner.to_owned()))
                .or_default();
            a.credits += plan.credit_cents(outcome, team, amount);
            *a.outcomes.entry(outcome.as_str().to_owned()).or_default() += 1;
            a.keys.insert(key.clone());
        }
    }

    /// The rows of the period, sorted by key.
    pub fn finish(mut self) -> Vec<RollupRow> {
        for (version, dims, lead, at) in std::mem::take(&mut self.verdicts) {
            if let Some(mql) = self.first_mql.get(&lead)
                && *mql <= at
            {
                let minutes = (at - *mql).num_minutes();
                for dim in dims {
                    if let Some(t) = self.tallies.get_mut(&(version.clone(), dim)) {
                        t.speed_minutes.push(minutes);
                    }
                }
            }
        }
        let mut rows = self.kpi_rows();
        rows.extend(self.incentive_rows());
        rows.sort();
        rows
    }

    fn kpi_rows(&self) -> Vec<RollupRow> {
        let mut rows = Vec::new();
        let mut kpi =
            |version: &str, grain: &str, metric: String, dim: &str, value, base, detail| {
                let sk = format!("KPI#{version}#{grain}#{metric}#{dim}");
                rows.push(RollupRow::new(
                    sk,
                    &RowBody::Kpi(Kpi {
                        criteria_version: version.to_owned(),
                        grain: grain.to_owned(),
                        metric,
                        dimension: dim.to_owned(),
                        value,
                        base,
                        detail,
                    }),
                ));
            };
        for ((version, dim), t) in &self.tallies {
            let reached = |s: &str| t.reached.get(s).copied().unwrap_or(0);
            for (step, n) in &t.reached {
                kpi(
                    version,
                    "month",
                    format!("reached#{step}"),
                    dim,
                    *n,
                    0,
                    BTreeMap::new(),
                );
            }
            for pair in FUNNEL.windows(2) {
                let (from, to) = (pair[0], pair[1]);
                if reached(from) > 0 || reached(to) > 0 {
                    kpi(
                        version,
                        "month",
                        format!("conversion#{from}>{to}"),
                        dim,
                        reached(to),
                        reached(from),
                        BTreeMap::new(),
                    );
                }
            }
            for (from, (n, reasons)) in &t.lost {
                kpi(
                    version,
                    "month",
                    format!("loss#{from}"),
                    dim,
                    *n,
                    t.exits.get(from).copied().unwrap_or(0),
                    reasons.clone(),
                );
            }
            if t.accepted + t.rejected > 0 {
                kpi(
                    version,
                    "month",
                    "acceptance".into(),
                    dim,
                    t.accepted,
                    t.accepted + t.rejected,
                    t.rejection_reasons.clone(),
                );
                for (code, (rejected, judged)) in &t.by_rule {
                    kpi(
                        version,
                        "month",
                        format!("rejection_by_rule#{code}"),
                        dim,
                        *rejected,
                        *judged,
                        BTreeMap::new(),
                    );
                }
            }
            if !t.speed_minutes.is_empty() {
                let mut m = t.speed_minutes.clone();
                m.sort_unstable();
                let median = if m.len() % 2 == 1 {
                    m[m.len() / 2]
                } else {
                    (m[m.len() / 2 - 1] + m[m.len() / 2]) / 2
                };
                kpi(
                    version,
                    "month",
                    "speed_to_lead".into(),
                    dim,
                    median,
                    m.len() as i64,
                    BTreeMap::from([("max_minutes".to_owned(), m[m.len() - 1])]),
                );
            }
            let before = self
                .previous_mql
                .get(&(version.clone(), dim.clone()))
                .copied()
                .unwrap_or(0);
            kpi(
                version,
                "month",
                "velocity#mql".into(),
                dim,
                reached("mql") - before,
                before,
                BTreeMap::new(),
            );
            if t.revenue.1 > 0 {
                kpi(
                    version,
                    "month",
                    "revenue_won".into(),
                    dim,
                    t.revenue.0,
                    t.revenue.1,
                    BTreeMap::new(),
                );
            }
        }
        for ((version, day, step), n) in &self.days {
            kpi(
                version,
                &format!("day:{day}"),
                format!("reached#{step}"),
                "all",
                *n,
                0,
                BTreeMap::new(),
            );
        }
        rows
    }

    fn incentive_rows(&self) -> Vec<RollupRow> {
        self.credits
            .iter()
            .map(|((version, team, owner), a)| {
                RollupRow::new(
                    format!("INC#{version}#{}#{owner}", team.as_str()),
                    &RowBody::Incentive(Incentive {
                        criteria_version: version.clone(),
                        team: *team,
                        owner: owner.clone(),
                        credits_cents: a.credits,
                        outcomes: a.outcomes.clone(),
                        facts: a.keys.len() as u64,
                        lineage: stable_hash(a.keys.iter().map(String::as_str)),
                    }),
                )
            })
            .collect()
    }
}

/// Correction rows for `open_period`: one per row of the closed period whose frozen body
/// differs from what its facts give now. Deterministic, so re-posting overwrites.
pub fn corrections(
    closed_period: &str,
    frozen: &[RollupRow],
    recomputed: &[RollupRow],
) -> Vec<RollupRow> {
    let was: BTreeMap<&str, &RollupRow> = frozen
        .iter()
        .filter(|r| !r.sk.starts_with("CORR#"))
        .map(|r| (r.sk.as_str(), r))
        .collect();
    let now: BTreeMap<&str, &RollupRow> = recomputed.iter().map(|r| (r.sk.as_str(), r)).collect();
    let credits = |row: Option<&&RollupRow>| match row.map(|r| r.parse()) {
        Some(Ok(RowBody::Incentive(i))) => i.credits_cents,
        _ => 0,
    };
    let lineage = |row: Option<&&RollupRow>| match row.map(|r| r.parse()) {
        Some(Ok(RowBody::Incentive(i))) => i.lineage,
        _ => row
            .map(|r| stable_hash([r.body.as_str()]))
            .unwrap_or_default(),
    };
    let keys: BTreeSet<&str> = was.keys().chain(now.keys()).copied().collect();
    keys.into_iter()
        .filter(|k| was.get(k).map(|r| &r.body) != now.get(k).map(|r| &r.body))
        .map(|k| {
            let (old, new) = (was.get(k), now.get(k));
            RollupRow::new(
                format!("CORR#{closed_period}#{k}"),
                &RowBody::Correction(Correction {
                    closed_period: closed_period.to_owned(),
                    row: k.to_owned(),
                    was: old.map(|r| r.body.clone()),
                    now: new.map(|r| r.body.clone()),
                    delta_credits_cents: credits(new) - credits(old),
                    reason: format!(
                        "facts recorded after {closed_period} was closed change this row"
                    ),
                    lineage: stable_hash([lineage(old).as_str(), lineage(new).as_str()]),
                }),
            )
        })
        .collect()
}

/// Control totals of a period's incentive rows for one criteria version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlTotals {
    pub rows: u64,
    pub credits_cents: i64,
    pub facts: u64,
    pub outcomes: BTreeMap<String, i64>,
    /// Credits of correction rows posted to this period.
    pub corrections_cents: i64,
}

/// The incentive rows (and corrections) of a period, with their control totals.
pub fn incentive_rows(rows: &[RollupRow], version: &str) -> (Vec<Incentive>, ControlTotals) {
    let mut out = Vec::new();
    let mut totals = ControlTotals::default();
    for row in rows {
        match row.parse() {
            Ok(RowBody::Incentive(i)) if i.criteria_version == version => {
                totals.rows += 1;
                totals.credits_cents += i.credits_cents;
                totals.facts += i.facts;
                for (k, v) in &i.outcomes {
                    *totals.outcomes.entry(k.clone()).or_default() += v;
                }
                out.push(i);
            }
            Ok(RowBody::Correction(c)) => totals.corrections_cents += c.delta_credits_cents,
            _ => {}
        }
    }
    (out, totals)
}

/// One stage of the funnel reality check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStep {
    pub from: String,
    pub to: String,
    pub entered: i64,
    pub advanced: i64,
    /// Share lost leaving `from` (disqualified or recycled), percent.
    pub loss_pct: f64,
    pub top_loss_reasons: Vec<(String, i64)>,
    /// Revenue gained (cents) if this step's conversion were `points` higher, all else equal.
    pub revenue_gain_cents: Option<i64>,
}

/// The funnel reality check of a period (dimension `all`, one criteria version): loss per
/// stage with its top reasons, and the revenue sensitivity to each step's conversion.
pub fn funnel(rows: &[RollupRow], version: &str, points: f64) -> Vec<FunnelStep> {
    let mut kpis: BTreeMap<String, Kpi> = BTreeMap::new();
    for row in rows {
        if let Ok(RowBody::Kpi(k)) = row.parse()
            && k.criteria_version == version
            && k.grain == "month"
            && k.dimension == "all"
        {
            kpis.insert(k.metric.clone(), k);
        }
    }
    let revenue = kpis.get("revenue_won").map_or(0, |k| k.value);
    FUNNEL
        .windows(2)
        .map(|pair| {
            let (from, to) = (pair[0], pair[1]);
            let conv = kpis.get(&format!("conversion#{from}>{to}"));
            let (advanced, entered) = conv.map_or((0, 0), |k| (k.value, k.base));
            let loss = kpis.get(&format!("loss#{from}"));
            let mut reasons: Vec<(String, i64)> = loss
                .map(|k| k.detail.iter().map(|(r, n)| (r.clone(), *n)).collect())
                .unwrap_or_default();
            reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            reasons.truncate(3);
            let rate = if entered > 0 {
                advanced as f64 / entered as f64
            } else {
                0.0
            };
            FunnelStep {
                from: from.to_owned(),
                to: to.to_owned(),
                entered,
                advanced,
                loss_pct: loss.map_or(0.0, |k| {
                    if k.base > 0 {
                        100.0 * k.value as f64 / k.base as f64
                    } else {
                        0.0
                    }
                }),
                top_loss_reasons: reasons,
                revenue_gain_cents: (rate > 0.0)
                    .then(|| (revenue as f64 * (points / 100.0) / rate).round() as i64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::MilestoneFact;
    use crate::lead::LeadId;
    use crate::transition::Transition;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn mql(lead: &str, when: DateTime<Utc>) -> Fact {
        Fact::Stage(Transition {
            lead_id: LeadId::new(lead).unwrap(),
            from: Some(Stage::Iql),
            to: Stage::Mql,
            criteria_version: "v1".into(),
            observed_at: when,
            run_id: "r".into(),
            owner_id: Some("7".into()),
            source: Some("ads".into()),
            band: "A".into(),
            reasons: vec!["FIT".into()],
            loss_reasons: vec![],
        })
    }

    fn verdict(lead: &str, when: DateTime<Utc>, accepted: bool) -> Fact {
        Fact::Milestone(MilestoneFact {
            lead_id: LeadId::new(lead).unwrap(),
            outcome: if accepted {
                Outcome::SalesAccepted
            } else {
                Outcome::SalesRejected
            },
            reference: "status".into(),
            observed_at: when,
            run_id: "r".into(),
            owner_id: Some("7".into()),
            source: Some("ads".into()),
            amount_cents: None,
            reason: (!accepted).then(|| "BUDGET".into()),
            criteria_version: "v1".into(),
            band: "A".into(),
            reasons: vec!["FIT".into()],
        })
    }

    fn rows(current: &[Fact], previous: &[Fact], interleave: bool) -> Vec<RollupRow> {
        let plans = BTreeMap::new();
        let mut r = Rollup::new("2026-11", &plans);
        if interleave {
            for f in current {
                r.add(f);
            }
            for f in previous {
                r.add_previous(f);
            }
        } else {
            for f in previous.iter().rev() {
                r.add_previous(f);
            }
            for f in current.iter().rev() {
                r.add(f);
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

    #[test]
    fn rows_depend_on_the_facts_not_on_the_order_they_are_folded_in() {
        // Lead 1's verdict arrives before its MQL in one order; lead 2's MQL was last month.
        let current = vec![
            verdict("1", at(3, 12), true),
            mql("1", at(3, 10)),
            verdict("2", at(2, 9), false),
            mql("3", at(5, 8)),
        ];
        let mut previous_mql = mql("2", at(1, 9));
        if let Fact::Stage(t) = &mut previous_mql {
            t.observed_at = chrono::DateTime::parse_from_rfc3339("2026-10-31T09:00:00Z")
                .unwrap()
                .with_timezone(&Utc);
        }
        let previous = vec![previous_mql];
        let a = rows(&current, &previous, true);
        let b = rows(&current, &previous, false);
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
}
