//! Rollout impact: what a proposed criteria document would change, compared with the current
//! one, over the same leads (a run's snapshot, or any JSON Lines of leads).
//!
//! Each lead is scored under both documents as of one instant. The simulation reports:
//! - the **stage-transition matrix** (current stage → proposed stage), bands, qualified leads per
//!   segment (source, industry), and the rules that drove the leads that changed stage;
//! - **what each stage's leads went on to do** (its conversion, under each document): of the
//!   leads a document puts at a stage, how many sales accepted or rejected, how many have a deal,
//!   how many won one — the CRM's own verdicts, so a stricter bar that keeps the leads that buy
//!   shows a higher win share;
//! - **credits per team and owner** under each document's own plan, and what would change: the
//!   product's own crediting ([`crate::rollup::Rollup`]) over the facts each document would
//!   record for these leads — an SQL fact for each lead it puts at SQL, the sales verdicts and
//!   deals the leads show (each deal once, marketing's share split among its contacts) — all
//!   dated at the simulation's instant, so the totals are what these leads earn as a whole, not
//!   one month's ledger (a run's snapshot holds the leads that run scored: a first or backfill
//!   run has them all, a nightly the ones that changed).
//!
//! Pure: no I/O; the caller reads the leads and hands them over one by one.

use crate::criteria::{Criteria, Score};
use crate::facts::{Fact, milestones_of, period_of};
use crate::incentives::{IncentivePlan, Team};
use crate::lead::Lead;
use crate::rollup::{Rollup, RowBody};
use crate::stage::Stage;
use crate::transition::{LeadState, Transition};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// What a proposed document would change, compared with the current one.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Simulation {
    /// `<id> v<version>` of each document.
    pub current: String,
    pub proposed: String,
    /// When the leads were scored (RFC 3339).
    pub as_of: String,
    pub leads: u64,
    /// Lines that were not leads (reported by the reader, with their place).
    pub skipped: u64,
    /// Leads met again (the same id in two lines): counted once, the first kept.
    pub duplicates: u64,
    /// from stage → to stage → leads.
    pub matrix: BTreeMap<String, BTreeMap<String, u64>>,
    pub changed: u64,
    /// band → leads, under each document.
    pub bands_current: BTreeMap<String, u64>,
    pub bands_proposed: BTreeMap<String, u64>,
    /// segment (`source:…`, `industry:…`) → qualified (MQL or SQL) leads under each document.
    pub segments: BTreeMap<String, (u64, u64)>,
    /// For leads whose stage changed, per rule code: (now matched, no longer matched, matched
    /// under both — it carried the lead across a changed bar).
    pub drivers: Vec<(String, u64, u64, u64)>,
    /// stage → what the leads each document puts there went on to do.
    pub conversion: BTreeMap<String, Conversion>,
    /// Credits per team and owner under each document's plan; rows in either.
    pub credits: Vec<CreditDelta>,
    /// team → (current, proposed) credit cents.
    pub credit_totals: BTreeMap<String, (i64, i64)>,
    /// The plans' currencies (`None`: the document has no `[incentives]`, nothing is credited).
    pub currency_current: Option<String>,
    pub currency_proposed: Option<String>,
}

/// Of the leads a document puts at one stage: how many sales judged, and how many bought.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageOutcomes {
    pub leads: u64,
    /// Sales statuses the document's plan counts as accepted / rejected.
    pub sales_accepted: u64,
    pub sales_rejected: u64,
    /// Leads with a deal, and with a deal closed-won.
    pub opportunity: u64,
    pub won: u64,
}

/// One stage under both documents.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    pub current: StageOutcomes,
    pub proposed: StageOutcomes,
}

/// One team member's (or marketing channel's) credits under both documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditDelta {
    pub team: Team,
    /// The sales owner for sales; the lead source (channel) for marketing.
    pub owner: String,
    pub current_cents: i64,
    pub proposed_cents: i64,
    /// Credited outcomes per kind under each document.
    pub current_outcomes: BTreeMap<String, i64>,
    pub proposed_outcomes: BTreeMap<String, i64>,
}

impl CreditDelta {
    pub fn delta_cents(&self) -> i64 {
        self.proposed_cents - self.current_cents
    }
}

/// Scores leads under two documents and folds what would change; [`Simulator::finish`] gives
/// the [`Simulation`].
#[derive(Debug)]
pub struct Simulator<'c> {
    docs: [&'c Criteria; 2],
    now: DateTime<Utc>,
    sim: Simulation,
    drivers: BTreeMap<String, (u64, u64, u64)>,
    seen: HashSet<String>,
    /// The facts each document would record for the leads.
    facts: [Vec<Fact>; 2],
}

const RUN: &str = "simulation";

impl<'c> Simulator<'c> {
    pub fn new(current: &'c Criteria, proposed: &'c Criteria, now: DateTime<Utc>) -> Self {
        Self {
            docs: [current, proposed],
            now,
            sim: Simulation {
                current: format!("{} v{}", current.id, current.version),
                proposed: format!("{} v{}", proposed.id, proposed.version),
                as_of: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                currency_current: current.incentives.as_ref().map(|p| p.currency.clone()),
                currency_proposed: proposed.incentives.as_ref().map(|p| p.currency.clone()),
                ..Simulation::default()
            },
            drivers: BTreeMap::new(),
            seen: HashSet::new(),
            facts: [Vec::new(), Vec::new()],
        }
    }

    /// A line that was not a lead (the reader says where and why).
    pub fn skip(&mut self) {
        self.sim.skipped += 1;
    }

    /// Score one lead under both documents. `false`: its id was met before — counted once.
    pub fn add(&mut self, lead: &Lead) -> bool {
        if !self.seen.insert(lead.id.as_str().to_owned()) {
            self.sim.duplicates += 1;
            return false;
        }
        let [a, b] = self.docs;
        let (x, y) = (a.score(lead, self.now), b.score(lead, self.now));
        let sim = &mut self.sim;
        sim.leads += 1;
        *sim.matrix
            .entry(x.stage.as_str().to_owned())
            .or_default()
            .entry(y.stage.as_str().to_owned())
            .or_default() += 1;
        *sim.bands_current
            .entry(a.band_name(x.band).to_owned())
            .or_default() += 1;
        *sim.bands_proposed
            .entry(b.band_name(y.band).to_owned())
            .or_default() += 1;
        let qualified = |s: Stage| u64::from(matches!(s, Stage::Mql | Stage::Sql));
        let industry = lead
            .firmographics
            .industry
            .as_ref()
            .map_or("unknown", |s| s.value.as_str());
        for segment in [
            format!("source:{}", lead.source.as_deref().unwrap_or("unknown")),
            format!("industry:{industry}"),
        ] {
            let entry = sim.segments.entry(segment).or_default();
            entry.0 += qualified(x.stage);
            entry.1 += qualified(y.stage);
        }
        if x.stage != y.stage {
            sim.changed += 1;
            let before: BTreeSet<&str> = a.matched_codes(&x).collect();
            let after: BTreeSet<&str> = b.matched_codes(&y).collect();
            for code in after.difference(&before) {
                self.drivers.entry((*code).to_owned()).or_default().0 += 1;
            }
            for code in before.difference(&after) {
                self.drivers.entry((*code).to_owned()).or_default().1 += 1;
            }
            for code in before.intersection(&after) {
                self.drivers.entry((*code).to_owned()).or_default().2 += 1;
            }
        }
        for (side, (doc, score)) in [(a, &x), (b, &y)].into_iter().enumerate() {
            let outcomes = self.sim.conversion.entry(score.stage.as_str().to_owned());
            let outcomes = outcomes.or_default();
            let outcomes = if side == 0 {
                &mut outcomes.current
            } else {
                &mut outcomes.proposed
            };
            outcomes.leads += 1;
            let status = lead.lead_status.as_deref();
            if let (Some(plan), Some(status)) = (doc.incentives.as_ref(), status) {
                outcomes.sales_accepted += u64::from(plan.accepts(status));
                outcomes.sales_rejected += u64::from(plan.rejects(status));
            }
            outcomes.opportunity += u64::from(!lead.deals.is_empty());
            outcomes.won += u64::from(lead.deals.iter().any(crate::lead::Deal::is_closed_won));
            if let Some(plan) = doc.incentives.as_ref() {
                let facts = facts_of(doc, plan, lead, score, self.now);
                self.facts[side].extend(facts);
            }
        }
        true
    }

    /// The simulation, with the credits of both plans.
    pub fn finish(mut self) -> Simulation {
        let mut sim = std::mem::take(&mut self.sim);
        sim.drivers = std::mem::take(&mut self.drivers)
            .into_iter()
            .map(|(code, (gained, lost, both))| (code, gained, lost, both))
            .collect();
        sim.drivers.sort_by(|x, y| {
            (y.1 + y.2, y.3)
                .cmp(&(x.1 + x.2, x.3))
                .then_with(|| x.0.cmp(&y.0))
        });
        let period = period_of(self.now);
        let mut rows: BTreeMap<(Team, String), CreditDelta> = BTreeMap::new();
        for (side, doc) in self.docs.into_iter().enumerate() {
            let Some(plan) = doc.incentives.as_ref() else {
                continue;
            };
            let plans = BTreeMap::from([(doc.version.clone(), plan.clone())]);
            let mut rollup = Rollup::new(&period, &plans);
            for fact in &self.facts[side] {
                rollup.add(fact);
            }
            for row in rollup.finish() {
                let Ok(RowBody::Incentive(i)) = row.parse() else {
                    continue;
                };
                let entry = rows
                    .entry((i.team, i.owner.clone()))
                    .or_insert_with(|| CreditDelta {
                        team: i.team,
                        owner: i.owner.clone(),
                        current_cents: 0,
                        proposed_cents: 0,
                        current_outcomes: BTreeMap::new(),
                        proposed_outcomes: BTreeMap::new(),
                    });
                if side == 0 {
                    entry.current_cents += i.credits_cents;
                    entry.current_outcomes = i.outcomes;
                } else {
                    entry.proposed_cents += i.credits_cents;
                    entry.proposed_outcomes = i.outcomes;
                }
            }
        }
        for row in rows.values() {
            let total = sim
                .credit_totals
                .entry(row.team.as_str().to_owned())
                .or_default();
            total.0 += row.current_cents;
            total.1 += row.proposed_cents;
        }
        sim.credits = rows.into_values().collect();
        // Biggest change first; then by team and owner.
        sim.credits.sort_by(|x, y| {
            y.delta_cents()
                .abs()
                .cmp(&x.delta_cents().abs())
                .then_with(|| (x.team, &x.owner).cmp(&(y.team, &y.owner)))
        });
        sim
    }
}

/// The facts a document would record for a lead first seen now: its stage, and the milestones
/// its CRM data shows under the document's plan — all dated `now` (one view, see the module).
fn facts_of(
    doc: &Criteria,
    plan: &IncentivePlan,
    lead: &Lead,
    score: &Score,
    now: DateTime<Utc>,
) -> Vec<Fact> {
    let state = LeadState {
        lead_id: lead.id.clone(),
        stage: score.stage,
        fit: score.fit,
        engagement: score.engagement,
        total: score.total,
        band: doc.band_name(score.band).to_owned(),
        reasons: doc.matched_codes(score).map(str::to_owned).collect(),
        criteria_version: doc.version.clone(),
        input_hash: String::new(),
        pushed_hash: None,
        owner_id: lead.owner_id.clone(),
        updated_at: now,
        run_id: RUN.to_owned(),
        stage_since: Some(now),
        rescore_at: None,
        announced: Vec::new(),
    };
    let mut facts = Vec::new();
    if let Some(mut t) = Transition::between(None, &state) {
        t.source.clone_from(&lead.source);
        facts.push(Fact::Stage(t));
    }
    for mut m in milestones_of(lead, &state, plan, now, RUN) {
        m.occurred_at = Some(now);
        facts.push(Fact::Milestone(m));
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../infra/criteria/b2b-saas.toml");

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn lead(id: u32, owner: &str, source: &str, page_views: u32, status: Option<&str>) -> Lead {
        serde_json::from_value(serde_json::json!({
            "id": id.to_string(),
            "email": format!("p{id}@acme{id}.com"),
            "owner_id": owner,
            "source": source,
            "lead_status": status,
            "modified_at": "2026-11-01T00:00:00Z",
            "firmographics": {
                "industry": {"value": "COMPUTER_SOFTWARE", "source": {"provider": "crm"}},
                "employees": {"value": 120, "source": {"provider": "crm"}},
                "country": {"value": if id % 3 == 0 { "United States" } else { "Mexico" },
                    "source": {"provider": "crm"}}
            },
            "engagement": {"page_views": page_views, "email_opens": 4, "email_clicks": 3,
                "form_submissions": 2, "last_page_view_at": "2026-11-19T00:00:00Z",
                "last_form_submission_at": "2026-11-18T00:00:00Z"}
        }))
        .unwrap()
    }

    #[test]
    fn a_stricter_sql_bar_takes_sql_credits_from_the_channels_of_the_demoted_leads_only() {
        let now = at("2026-11-20T00:00:00Z");
        let current = Criteria::parse("current.toml", EXAMPLE).unwrap();
        let stricter = EXAMPLE
            .replacen("version = \"2026.11.1\"", "version = \"2026.12.0\"", 1)
            .replacen(
                "[stages.sql]\nmin_fit = 35\nmin_total = 70",
                "[stages.sql]\nmin_fit = 35\nmin_total = 75",
                1,
            );
        let proposed = Criteria::parse("proposed.toml", &stricter).unwrap();
        let mut sim = Simulator::new(&current, &proposed, now);
        let leads: Vec<Lead> = (0..40)
            .map(|i| {
                let source = if i % 2 == 0 {
                    "ORGANIC_SEARCH"
                } else {
                    "PAID_SOCIAL"
                };
                let status = (i % 4 == 0).then_some("IN_PROGRESS");
                lead(i, &format!("owner-{}", i % 3), source, i, status)
            })
            .collect();
        for l in &leads {
            assert!(sim.add(l));
        }
        assert!(!sim.add(&leads[0]), "the same lead twice counts once");
        let sim = sim.finish();
        assert_eq!((sim.leads, sim.duplicates), (40, 1));

        // Expected, independently: a lead SQL under one bar and not the other moves 40 USD
        // of SQL credit to or from its channel; nothing else changes.
        let mut lost: BTreeMap<&str, i64> = BTreeMap::new();
        let (mut kept, mut demoted) = (0, 0);
        for l in &leads {
            let (was, will) = (current.score(l, now).stage, proposed.score(l, now).stage);
            let change = i64::from(will == Stage::Sql) - i64::from(was == Stage::Sql);
            if change != 0 {
                *lost.entry(l.source.as_deref().unwrap()).or_default() += change * 40_00;
            }
            kept += u64::from(was == Stage::Sql && will == Stage::Sql);
            demoted += u64::from(was == Stage::Sql && will != Stage::Sql);
        }
        assert!(kept > 0 && demoted > 0, "kept {kept}, demoted {demoted}");
        let deltas: BTreeMap<(Team, &str), i64> = sim
            .credits
            .iter()
            .filter(|c| c.delta_cents() != 0)
            .map(|c| ((c.team, c.owner.as_str()), c.delta_cents()))
            .collect();
        let expected: BTreeMap<(Team, &str), i64> = lost
            .iter()
            .map(|(source, cents)| ((Team::Marketing, *source), *cents))
            .collect();
        assert_eq!(deltas, expected, "{:#?}", sim.credits);
        // Sales acceptances are credited alike under both (the plans are the same).
        let accepted_sales: i64 = sim
            .credits
            .iter()
            .filter(|c| c.team == Team::Sales)
            .map(|c| c.current_cents)
            .sum();
        assert_eq!(
            accepted_sales,
            10 * 10_00,
            "ten leads accepted, 10 USD each"
        );
        assert_eq!(
            sim.credit_totals["sales"].0, sim.credit_totals["sales"].1,
            "{:?}",
            sim.credit_totals
        );
        let sql = sim.conversion["sql"];
        assert_eq!(
            (sql.current.leads, sql.proposed.leads),
            (kept + demoted, kept)
        );
    }

    #[test]
    fn a_document_without_a_plan_credits_nothing_and_says_so() {
        let now = at("2026-11-20T00:00:00Z");
        let current = Criteria::parse("current.toml", EXAMPLE).unwrap();
        let start = EXAMPLE.find("[incentives]").unwrap();
        let without = &EXAMPLE[..start];
        let proposed = Criteria::parse("proposed.toml", without).unwrap();
        let mut sim = Simulator::new(&current, &proposed, now);
        sim.add(&lead(1, "o", "ORGANIC_SEARCH", 30, Some("IN_PROGRESS")));
        let sim = sim.finish();
        assert_eq!(sim.currency_proposed, None);
        assert!(sim.credits.iter().all(|c| c.proposed_cents == 0));
        assert!(sim.credits.iter().any(|c| c.current_cents > 0));
    }
}
