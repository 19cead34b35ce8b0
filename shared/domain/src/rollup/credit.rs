//! Crediting a view: SQLs of its version, every sales verdict and every deal, by its plan —
//! each deal once (sales to its owner, marketing split among its contacts' sources), with a
//! statement line behind every credit.

use super::{Incentive, Rollup, RollupRow, RowBody, StatementLine, UNASSIGNED};
use crate::hash::stable_hash;
use crate::incentives::{IncentivePlan, Outcome, Team};
use std::collections::{BTreeMap, BTreeSet};

impl Rollup<'_> {
    /// Credit rows of one version: its SQLs, every sales verdict and every deal, by its plan.
    pub(super) fn credit_rows(
        &self,
        version: &str,
        plan: &IncentivePlan,
        rows: &mut Vec<RollupRow>,
        mut lines: Option<&mut Vec<StatementLine>>,
    ) {
        let mut ledger = Ledger::default();
        let singles = self
            .sqls
            .get(version)
            .into_iter()
            .flatten()
            .chain(self.verdicts.iter().map(|(s, _)| s));
        for s in singles {
            if !plan.credits.contains_key(&s.outcome) {
                continue;
            }
            for (team, owner) in [(Team::Marketing, &s.source), (Team::Sales, &s.owner)] {
                ledger.post(Post {
                    version,
                    team,
                    owner,
                    outcome: s.outcome,
                    item: &s.key,
                    keys: std::slice::from_ref(&s.key),
                    cents: plan.credit_cents(s.outcome, team, None),
                    unconverted: None,
                    line: StatementLine {
                        criteria_version: version.to_owned(),
                        team,
                        owner: owner.clone(),
                        outcome: s.outcome,
                        occurred_at: s.occurred,
                        leads: vec![s.lead.clone()],
                        deal_id: None,
                        amount_cents: None,
                        currency: None,
                        share: [1, 1],
                        credit_cents: 0,
                        reasons: s.reasons.clone(),
                        note: None,
                        facts: vec![s.key.clone()],
                    },
                });
            }
        }
        for ((outcome, deal), sides) in &self.deals {
            if !plan.credits.contains_key(outcome) {
                continue;
            }
            let Some(first) = sides.values().next() else {
                continue;
            };
            let keys: Vec<String> = sides.values().map(|s| s.key.clone()).collect();
            let leads: Vec<String> = sides.keys().cloned().collect();
            let converted = first
                .amount
                .map(|a| (a, plan.in_plan_currency(a, first.currency.as_deref())));
            // Only a share of revenue needs the amount in the plan's currency.
            let uses_revenue = plan
                .credits
                .get(outcome)
                .is_some_and(|c| c.marketing_bps > 0 || c.sales_bps > 0);
            let converted = converted.filter(|_| uses_revenue);
            let (amount, unconverted, note) = match converted {
                Some((_, Some(plan_cents))) => (Some(plan_cents), None, None),
                Some((a, None)) => (
                    None,
                    first.currency.clone().map(|c| (c, a)),
                    Some(format!(
                        "{} deal: the plan has no {} rate, only fixed credits apply",
                        first.currency.as_deref().unwrap_or("?"),
                        first.currency.as_deref().unwrap_or("?")
                    )),
                ),
                None => (None, None, None),
            };
            let line = |team, owner: &str, share, cents| StatementLine {
                criteria_version: version.to_owned(),
                team,
                owner: owner.to_owned(),
                outcome: *outcome,
                occurred_at: first.occurred,
                leads: leads.clone(),
                deal_id: Some(deal.clone()),
                amount_cents: first.amount,
                currency: first.currency.clone(),
                share,
                credit_cents: cents,
                reasons: first.reasons.clone(),
                note: note.clone(),
                facts: keys.clone(),
            };
            let owner = first.owner.clone().unwrap_or_else(|| UNASSIGNED.to_owned());
            let sales = plan.credit_cents(*outcome, Team::Sales, amount);
            ledger.post(Post {
                version,
                team: Team::Sales,
                owner: &owner,
                outcome: *outcome,
                item: deal,
                keys: &keys,
                cents: sales,
                unconverted: unconverted.clone(),
                line: line(Team::Sales, &owner, [1, 1], 0),
            });
            // Marketing: split evenly among the deal's contacts, exact to the cent.
            let total = plan.credit_cents(*outcome, Team::Marketing, amount);
            let n = sides.len() as i64;
            for (i, side) in sides.values().enumerate() {
                let cents = total / n + i64::from((i as i64) < total % n);
                ledger.post(Post {
                    version,
                    team: Team::Marketing,
                    owner: &side.source,
                    outcome: *outcome,
                    item: deal,
                    keys: std::slice::from_ref(&side.key),
                    cents,
                    // The deal's amount is counted once, on its sales row.
                    unconverted: None,
                    line: line(
                        Team::Marketing,
                        &side.source,
                        [1, u32::try_from(n).unwrap_or(u32::MAX)],
                        0,
                    ),
                });
            }
        }
        for ((team, owner), c) in ledger.rows {
            rows.push(RollupRow::new(
                format!("INC#{version}#{}#{owner}", team.as_str()),
                &RowBody::Incentive(Incentive {
                    criteria_version: version.to_owned(),
                    team,
                    owner,
                    credits_cents: c.credits,
                    outcomes: c.outcomes,
                    facts: c.keys.len() as u64,
                    lineage: stable_hash(c.keys.iter().map(String::as_str)),
                    unconverted: c.unconverted,
                }),
            ));
            if let Some(out) = lines.as_deref_mut() {
                out.extend(c.lines);
            }
        }
    }
}

/// One credit posted to a row.
struct Post<'a> {
    version: &'a str,
    team: Team,
    owner: &'a str,
    outcome: Outcome,
    /// What is counted once per row (a fact key, a deal id).
    item: &'a str,
    keys: &'a [String],
    cents: i64,
    unconverted: Option<(String, i64)>,
    line: StatementLine,
}

#[derive(Debug, Default)]
struct Credit {
    credits: i64,
    outcomes: BTreeMap<String, i64>,
    items: BTreeSet<(Outcome, String)>,
    keys: BTreeSet<String>,
    unconverted: BTreeMap<String, i64>,
    lines: Vec<StatementLine>,
}

#[derive(Debug, Default)]
struct Ledger {
    rows: BTreeMap<(Team, String), Credit>,
}

impl Ledger {
    fn post(&mut self, p: Post<'_>) {
        let _ = p.version;
        let c = self.rows.entry((p.team, p.owner.to_owned())).or_default();
        c.credits += p.cents;
        if c.items.insert((p.outcome, p.item.to_owned())) {
            *c.outcomes.entry(p.outcome.as_str().to_owned()).or_default() += 1;
        }
        c.keys.extend(p.keys.iter().cloned());
        if let Some((currency, cents)) = p.unconverted {
            *c.unconverted.entry(currency).or_default() += cents;
        }
        let mut line = p.line;
        line.credit_cents = p.cents;
        c.lines.push(line);
    }
}
