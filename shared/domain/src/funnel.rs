//! The funnel reality check (seed 004: "what percentage of prospects are lost at each stage in
//! the funnel, and why", and what improving each stage is worth): a **cohort** view of one
//! period under one criteria version.
//!
//! For each step, the cohort is the leads that *entered* it in the period (by the CRM's clock).
//! Each is followed through every fact since, up to `as_of`, and ends in exactly one of:
//! - **advanced**: reached a later step first;
//! - **lost**, by kind: `disqualified` (a disqualifier matched), `recycled` (sales handed it back
//!   for nurture), `rejected_by_sales` (a rejected sales status), `fell_back` (its score dropped
//!   below the stage, e.g. engagement decay), `closed_lost` (its deal was lost, and none won) —
//!   each with its reasons (rule codes, `STATUS:<status>`, `REJECTED:<reason>`, `LOST:<reason>`);
//! - **still in stage**, of which **stalled**: in it longer than `stall_days` at `as_of`.
//!
//! `entered = advanced + lost + still in stage` for every step. The first step, `new`, is the
//! door: leads seen for the first time (or first scored under this version) that became IQL or
//! better, or were disqualified on arrival.
//!
//! Steps are cumulative: a lead that reaches a later step passes every step before it at that
//! moment (sales may accept an MQL before it scores SQL, a deal may be opened before the
//! contact's last change). Where a lead stood when the period began is read from the facts of
//! the months before it that the caller feeds in.
//!
//! **Sensitivity**: one step's conversion `points` higher, all else equal, brings
//! `entered × points / 100 × downstream × average won deal` more revenue, where `downstream` is
//! the product of the later steps' conversions in the same period's cohorts and the average won
//! deal is over the deals won in the period (in the plan's currency; deals in a currency without
//! a rate are left out and counted). A recent period's cohorts are still young: later steps
//! convert less yet, so its gains are a floor.

use crate::facts::Fact;
use crate::incentives::{IncentivePlan, Outcome};
use crate::stage::Stage;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The steps, in order; index = level.
pub const STEPS: [&str; 7] = [
    "new",
    "iql",
    "mql",
    "sql",
    "sales_accepted",
    "opportunity",
    "won",
];

/// The kinds of loss, in the order they are shown.
pub const LOSS_KINDS: [&str; 5] = [
    "disqualified",
    "recycled",
    "rejected_by_sales",
    "fell_back",
    "closed_lost",
];

/// One reason leads were lost at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossReason {
    pub reason: String,
    pub kind: String,
    pub count: i64,
    /// Share of the step's lost leads that carry this reason, percent.
    pub share_pct: f64,
}

/// One step of the funnel: where the leads that entered it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStep {
    pub step: String,
    pub next: String,
    pub entered: i64,
    pub advanced: i64,
    /// Lost leads per kind ([`LOSS_KINDS`]; kinds with none are absent).
    pub lost: BTreeMap<String, i64>,
    pub lost_total: i64,
    pub still_in_stage: i64,
    /// Of `still_in_stage`: there longer than the stall limit.
    pub stalled: i64,
    /// advanced ÷ entered, percent (`None` when nobody entered).
    pub conversion_pct: Option<f64>,
    /// lost ÷ entered, percent.
    pub loss_pct: Option<f64>,
    /// The most frequent loss reasons, most frequent first (up to 5).
    pub top_loss_reasons: Vec<LossReason>,
    /// Product of the later steps' conversions (the chance an advancing lead ends won).
    pub downstream_pct: Option<f64>,
    /// Revenue (cents, plan currency) from `points` more conversion here.
    pub revenue_gain_cents: Option<i64>,
}

/// The funnel reality check of a period under one criteria version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelReport {
    pub period: String,
    pub criteria_version: String,
    /// `cohort`: each step's leads are those that entered it in the period, followed to `as_of`.
    pub basis: String,
    pub as_of: DateTime<Utc>,
    pub stall_days: u32,
    pub points: f64,
    pub currency: String,
    /// Deals won in the period (once each) and their average value in the plan's currency.
    pub won_deals: i64,
    pub average_won_cents: Option<i64>,
    /// Won deals left out of the average: their currency has no rate in the plan.
    pub won_deals_unconverted: i64,
    pub steps: Vec<FunnelStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// Reached a level (a stage, a sales acceptance, a deal, a win); `from`: the level before,
    /// as the fact records it.
    Up {
        level: u8,
        from: Option<u8>,
    },
    /// Dropped to a lower stage level.
    Down {
        level: u8,
        from: Option<u8>,
    },
    /// Left the funnel: disqualified (0) or recycled (1).
    Out {
        kind: u8,
        from: Option<u8>,
    },
    Rejected,
    DealLost,
}

#[derive(Debug, Clone)]
struct Event {
    at: DateTime<Utc>,
    kind: Kind,
    reasons: Vec<String>,
}

fn stage_level(stage: Stage) -> Option<u8> {
    match stage {
        Stage::Iql => Some(1),
        Stage::Mql => Some(2),
        Stage::Sql => Some(3),
        Stage::Disqualified | Stage::Recycled => None,
    }
}

/// Builds a [`FunnelReport`] from facts (any order) of the period and every period after it.
#[derive(Debug)]
pub struct Funnel<'p> {
    period: String,
    version: String,
    as_of: DateTime<Utc>,
    stall_days: u32,
    plan: Option<&'p IncentivePlan>,
    leads: HashMap<String, Vec<Event>>,
    links: Option<&'p crate::facts::LeadLinks>,
    /// Deals won in the period: amount and currency (first contact by id).
    won: BTreeMap<String, (String, Option<i64>, Option<String>)>,
}

impl<'p> Funnel<'p> {
    pub fn new(
        period: &str,
        version: &str,
        as_of: DateTime<Utc>,
        stall_days: u32,
        plan: Option<&'p IncentivePlan>,
    ) -> Self {
        Self {
            period: period.to_owned(),
            version: version.to_owned(),
            as_of,
            stall_days,
            plan,
            leads: HashMap::new(),
            links: None,
            won: BTreeMap::new(),
        }
    }

    /// Count merged-away contacts as the lead they were merged into (a step they both
    /// reached counts once) and leave deleted ones out.
    #[must_use]
    pub fn with_links(mut self, links: &'p crate::facts::LeadLinks) -> Self {
        self.links = Some(links);
        self
    }

    /// Fold in a fact. Facts before the period only tell where a lead stood when it began
    /// (feed a few months of them); other versions' stage facts and facts after `as_of` are
    /// ignored.
    pub fn add(&mut self, f: &Fact) {
        let at = f.occurred_at();
        if at > self.as_of {
            return;
        }
        let counted;
        let f = match self.links {
            Some(links) => match crate::facts::as_counted(links, f) {
                Some(c) => {
                    counted = c;
                    &counted
                }
                None => return,
            },
            None => f,
        };
        let event = match f {
            Fact::Stage(t) => {
                if t.criteria_version != self.version {
                    return;
                }
                let from = t
                    .from
                    .filter(|from| !t.restated && *from != t.to)
                    .and_then(stage_level);
                let kind = match (t.to, stage_level(t.to)) {
                    (_, Some(level)) if from.is_some_and(|f| f > level) => {
                        Kind::Down { level, from }
                    }
                    (_, Some(level)) => Kind::Up { level, from },
                    (Stage::Disqualified, None) => Kind::Out { kind: 0, from },
                    _ => Kind::Out { kind: 1, from },
                };
                let reasons = match kind {
                    Kind::Out { .. } => t.loss_reasons.clone(),
                    Kind::Down { .. } => {
                        vec![format!("FELL_BACK_TO_{}", t.to.as_str().to_uppercase())]
                    }
                    _ => Vec::new(),
                };
                Event { at, kind, reasons }
            }
            Fact::Milestone(m) => {
                let reason = m.reason.clone().unwrap_or_else(|| "UNSPECIFIED".to_owned());
                let (kind, reasons) = match m.outcome {
                    Outcome::SalesAccepted => (
                        Kind::Up {
                            level: 4,
                            from: None,
                        },
                        vec![],
                    ),
                    Outcome::Opportunity => (
                        Kind::Up {
                            level: 5,
                            from: None,
                        },
                        vec![],
                    ),
                    Outcome::Won => {
                        if f.period() == self.period {
                            let lead = m.lead_id.as_str().to_owned();
                            let entry = self.won.entry(m.reference.clone()).or_insert_with(|| {
                                (lead.clone(), m.amount_cents, m.currency.clone())
                            });
                            if lead < entry.0 {
                                *entry = (lead, m.amount_cents, m.currency.clone());
                            }
                        }
                        (
                            Kind::Up {
                                level: 6,
                                from: None,
                            },
                            vec![],
                        )
                    }
                    Outcome::SalesRejected => (Kind::Rejected, vec![format!("REJECTED:{reason}")]),
                    Outcome::Lost => (Kind::DealLost, vec![format!("LOST:{reason}")]),
                    Outcome::Sql => return,
                };
                Event { at, kind, reasons }
            }
        };
        self.leads
            .entry(f.lead_id().as_str().to_owned())
            .or_default()
            .push(event);
    }

    /// The report, with the revenue sensitivity for `points` more conversion per step.
    pub fn finish(self, points: f64) -> FunnelReport {
        let in_period = |at: DateTime<Utc>| crate::facts::period_of(at) == self.period;
        let mut steps: Vec<Acc> = (0..6).map(|_| Acc::default()).collect();
        let stall = Duration::days(i64::from(self.stall_days));
        let mut ids: Vec<&String> = self.leads.keys().collect();
        ids.sort();
        for id in ids {
            let mut events = self.leads[id].clone();
            events.sort_by(|a, b| a.at.cmp(&b.at).then(a.kind.cmp(&b.kind)));
            let ever_won = events
                .iter()
                .any(|e| matches!(e.kind, Kind::Up { level: 6, .. }));
            // The level before the first event, as far as the facts tell.
            let mut level: u8 = match events.first().map(|e| e.kind) {
                Some(
                    Kind::Up { from: Some(f), .. }
                    | Kind::Down { from: Some(f), .. }
                    | Kind::Out { from: Some(f), .. },
                ) => f,
                _ => 0,
            };
            // Entry time per step (first entry), and whether it is still open.
            let mut entered: [Option<DateTime<Utc>>; 6] = [None; 6];
            let mut open: [bool; 6] = [false; 6];
            let mut first = true;
            for e in &events {
                if first && level == 0 {
                    // The door: the lead's first appearance.
                    entered[0] = Some(e.at);
                    open[0] = true;
                }
                first = false;
                match e.kind {
                    Kind::Up { level: to, .. } if to > level => {
                        for (s, slot) in open.iter_mut().enumerate() {
                            if *slot && (s as u8) < to {
                                steps[s].close(entered[s], in_period, Fate::Advanced);
                                *slot = false;
                            }
                        }
                        for s in (level + 1)..to.min(6) {
                            let s = usize::from(s);
                            if entered[s].is_none() {
                                entered[s] = Some(e.at);
                                // Passed straight through: it advanced at once.
                                steps[s].close(entered[s], in_period, Fate::Advanced);
                            }
                        }
                        if usize::from(to) < 6 && entered[usize::from(to)].is_none() {
                            entered[usize::from(to)] = Some(e.at);
                            open[usize::from(to)] = true;
                        }
                        level = to;
                    }
                    Kind::Up { .. } => {}
                    Kind::Down { level: to, .. } => {
                        lose(
                            &mut steps,
                            &mut open,
                            &entered,
                            |s| s > usize::from(to),
                            in_period,
                            "fell_back",
                            &e.reasons,
                        );
                        level = to;
                    }
                    Kind::Out { kind, .. } => {
                        let name = if kind == 0 {
                            "disqualified"
                        } else {
                            "recycled"
                        };
                        lose(
                            &mut steps,
                            &mut open,
                            &entered,
                            |_| true,
                            in_period,
                            name,
                            &e.reasons,
                        );
                        level = 0;
                    }
                    Kind::Rejected => {
                        lose(
                            &mut steps,
                            &mut open,
                            &entered,
                            |s| s >= 1,
                            in_period,
                            "rejected_by_sales",
                            &e.reasons,
                        );
                    }
                    Kind::DealLost if !ever_won => {
                        lose(
                            &mut steps,
                            &mut open,
                            &entered,
                            |s| s == 5,
                            in_period,
                            "closed_lost",
                            &e.reasons,
                        );
                    }
                    Kind::DealLost => {}
                }
            }
            for s in 0..6 {
                if open[s]
                    && let Some(at) = entered[s]
                {
                    let fate = if self.as_of - at > stall {
                        Fate::Stalled
                    } else {
                        Fate::Still
                    };
                    steps[s].close(Some(at), in_period, fate);
                }
            }
        }
        // Average won deal in the plan's currency.
        let (mut sum, mut n, mut unconverted) = (0i64, 0i64, 0i64);
        for (_, amount, currency) in self.won.values() {
            let converted = match self.plan {
                Some(p) => amount.and_then(|a| p.in_plan_currency(a, currency.as_deref())),
                None => *amount,
            };
            match converted {
                Some(c) => {
                    sum += c;
                    n += 1;
                }
                None => unconverted += 1,
            }
        }
        let average = (n > 0).then(|| sum / n);
        let conversion: Vec<Option<f64>> = steps
            .iter()
            .map(|a| (a.entered > 0).then(|| a.advanced as f64 / a.entered as f64))
            .collect();
        let out = steps
            .into_iter()
            .enumerate()
            .map(|(s, a)| {
                let downstream = conversion[s + 1..]
                    .iter()
                    .try_fold(1.0, |acc, c| c.map(|c| acc * c));
                let gain = match (downstream, average) {
                    (Some(d), Some(avg)) if a.entered > 0 => {
                        Some((a.entered as f64 * points / 100.0 * d * avg as f64).round() as i64)
                    }
                    _ => None,
                };
                a.into_step(s, downstream, gain)
            })
            .collect();
        FunnelReport {
            period: self.period,
            criteria_version: self.version,
            basis: "cohort".to_owned(),
            as_of: self.as_of,
            stall_days: self.stall_days,
            points,
            currency: self
                .plan
                .map_or_else(|| "USD".to_owned(), |p| p.currency.clone()),
            won_deals: self.won.len() as i64,
            average_won_cents: average,
            won_deals_unconverted: unconverted,
            steps: out,
        }
    }
}

fn lose(
    steps: &mut [Acc],
    open: &mut [bool; 6],
    entered: &[Option<DateTime<Utc>>; 6],
    applies: impl Fn(usize) -> bool,
    in_period: impl Fn(DateTime<Utc>) -> bool + Copy,
    kind: &'static str,
    reasons: &[String],
) {
    for s in 0..6 {
        if open[s] && applies(s) {
            steps[s].close(entered[s], in_period, Fate::Lost { kind, reasons });
            open[s] = false;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fate<'a> {
    Advanced,
    Lost {
        kind: &'static str,
        reasons: &'a [String],
    },
    Still,
    Stalled,
}

#[derive(Debug, Default)]
struct Acc {
    entered: i64,
    advanced: i64,
    lost: BTreeMap<String, i64>,
    reasons: BTreeMap<(String, String), i64>,
    still: i64,
    stalled: i64,
}

impl Acc {
    /// Count a lead of this step's cohort (entered in the period) with its fate.
    fn close(
        &mut self,
        entered: Option<DateTime<Utc>>,
        in_period: impl Fn(DateTime<Utc>) -> bool,
        fate: Fate<'_>,
    ) {
        if !entered.is_some_and(in_period) {
            return;
        }
        self.entered += 1;
        match fate {
            Fate::Advanced => self.advanced += 1,
            Fate::Lost { kind, reasons } => {
                *self.lost.entry(kind.to_owned()).or_default() += 1;
                if reasons.is_empty() {
                    *self
                        .reasons
                        .entry(("UNSPECIFIED".to_owned(), kind.to_owned()))
                        .or_default() += 1;
                }
                for r in reasons {
                    *self
                        .reasons
                        .entry((r.clone(), kind.to_owned()))
                        .or_default() += 1;
                }
            }
            Fate::Still => self.still += 1,
            Fate::Stalled => {
                self.still += 1;
                self.stalled += 1;
            }
        }
    }

    fn into_step(self, s: usize, downstream: Option<f64>, gain: Option<i64>) -> FunnelStep {
        let lost_total: i64 = self.lost.values().sum();
        let pct = |n: i64| (self.entered > 0).then(|| 100.0 * n as f64 / self.entered as f64);
        let mut reasons: Vec<LossReason> = self
            .reasons
            .into_iter()
            .map(|((reason, kind), count)| LossReason {
                reason,
                kind,
                count,
                share_pct: if lost_total > 0 {
                    100.0 * count as f64 / lost_total as f64
                } else {
                    0.0
                },
            })
            .collect();
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        reasons.truncate(5);
        FunnelStep {
            step: STEPS[s].to_owned(),
            next: STEPS[s + 1].to_owned(),
            entered: self.entered,
            advanced: self.advanced,
            lost: self.lost,
            lost_total,
            still_in_stage: self.still,
            stalled: self.stalled,
            conversion_pct: pct(self.advanced),
            loss_pct: pct(lost_total),
            top_loss_reasons: reasons,
            downstream_pct: downstream.map(|d| 100.0 * d),
            revenue_gain_cents: gain,
        }
    }
}

#[cfg(test)]
mod tests;
