//! The shared incentive plan: what each outcome both teams share credits to marketing and to
//! sales. It lives in the criteria document (`[incentives]`), so the same two signatures cover
//! the definition of a qualified lead and what both teams are paid for.
//!
//! ```toml
//! [incentives]
//! currency = "USD"
//! accepted_statuses = ["IN_PROGRESS", "OPEN_DEAL", "CONNECTED"]  # sales took the lead
//! rejected_statuses = ["UNQUALIFIED"]                            # sales handed it back
//!
//! [incentives.credits.sql]             # a lead reached SQL
//! marketing = 40                       # whole currency units per outcome
//! sales = 0
//! [incentives.credits.won]             # a deal closed-won
//! marketing_bps = 100                  # basis points of the deal amount
//! sales_bps = 500
//!
//! [incentives.fx]                      # deals in other currencies: plan units per unit
//! EUR = 1.08                           # (without a rate such a deal is not credited: said so)
//! ```
//!
//! Money is integer cents throughout; a share of revenue is `amount_cents × bps / 10,000`,
//! rounded down — exact and reproducible.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// An outcome the plan can credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The lead reached SQL (a stage transition).
    Sql,
    /// Sales accepted the lead (its sales status became an accepted one).
    SalesAccepted,
    /// Sales rejected the lead (a rejected status), with the rejection reason.
    SalesRejected,
    /// A deal was created for the lead.
    Opportunity,
    /// A deal of the lead closed-won.
    Won,
    /// A deal of the lead closed and not won (a loss of the opportunity stage; never credited).
    Lost,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Sql,
        Outcome::SalesAccepted,
        Outcome::SalesRejected,
        Outcome::Opportunity,
        Outcome::Won,
        Outcome::Lost,
    ];

    /// Deal outcomes: one per deal, whatever number of contacts share the deal.
    pub fn is_deal(self) -> bool {
        matches!(self, Outcome::Opportunity | Outcome::Won | Outcome::Lost)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Sql => "sql",
            Outcome::SalesAccepted => "sales_accepted",
            Outcome::SalesRejected => "sales_rejected",
            Outcome::Opportunity => "opportunity",
            Outcome::Won => "won",
            Outcome::Lost => "lost",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two teams that share the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Team {
    Marketing,
    Sales,
}

impl Team {
    pub fn as_str(self) -> &'static str {
        match self {
            Team::Marketing => "marketing",
            Team::Sales => "sales",
        }
    }
}

/// What one outcome credits, as written (whole currency units and basis points).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditDoc {
    #[serde(default)]
    pub marketing: i64,
    #[serde(default)]
    pub sales: i64,
    #[serde(default)]
    pub marketing_bps: i64,
    #[serde(default)]
    pub sales_bps: i64,
}

/// `[incentives.credits]`: one optional entry per outcome; unknown outcomes are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreditsDoc {
    sql: Option<CreditDoc>,
    sales_accepted: Option<CreditDoc>,
    sales_rejected: Option<CreditDoc>,
    opportunity: Option<CreditDoc>,
    won: Option<CreditDoc>,
}

/// `[incentives]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncentivesDoc {
    #[serde(default = "default_currency")]
    currency: String,
    #[serde(default)]
    accepted_statuses: Vec<String>,
    #[serde(default)]
    rejected_statuses: Vec<String>,
    #[serde(default)]
    credits: CreditsDoc,
    #[serde(default)]
    fx: BTreeMap<String, f64>,
}

fn default_currency() -> String {
    "USD".to_owned()
}

/// A validated plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncentivePlan {
    pub currency: String,
    /// Sales statuses meaning "accepted" / "rejected", uppercased.
    pub accepted_statuses: BTreeSet<String>,
    pub rejected_statuses: BTreeSet<String>,
    pub credits: BTreeMap<Outcome, CreditDoc>,
    /// Exchange rates into the plan's currency, in millionths (`EUR = 1.08` → 1,080,000).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fx_micros: BTreeMap<String, i64>,
    /// The signed agreement the plan belongs to (set when a run remembers the plan): what the
    /// dashboard shows beside the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
}

/// The criteria document a plan comes from: its id, version, effective date and sign-off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    pub criteria_id: String,
    pub criteria_version: String,
    pub effective: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales: Option<crate::sign_off::SignOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing: Option<crate::sign_off::SignOff>,
}

impl IncentivePlan {
    /// Validate what was written; every problem is returned.
    pub(crate) fn from_doc(doc: IncentivesDoc) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if doc.currency.len() != 3 || !doc.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(format!(
                "incentives.currency {:?} is not a three-letter ISO 4217 code",
                doc.currency
            ));
        }
        let upper = |v: &[String]| -> BTreeSet<String> {
            v.iter().map(|s| s.trim().to_uppercase()).collect()
        };
        let (accepted, rejected) = (upper(&doc.accepted_statuses), upper(&doc.rejected_statuses));
        for both in accepted.intersection(&rejected) {
            problems.push(format!(
                "incentives: status {both:?} is both accepted and rejected"
            ));
        }
        let c = doc.credits;
        let mut credits = BTreeMap::new();
        for (outcome, credit) in [
            (Outcome::Sql, c.sql),
            (Outcome::SalesAccepted, c.sales_accepted),
            (Outcome::SalesRejected, c.sales_rejected),
            (Outcome::Opportunity, c.opportunity),
            (Outcome::Won, c.won),
        ] {
            let Some(credit) = credit else { continue };
            for (field, v) in [("marketing", credit.marketing), ("sales", credit.sales)] {
                if !(0..=1_000_000_000).contains(&v) {
                    problems.push(format!(
                        "incentives.credits.{outcome}.{field} = {v}: must be 0 to 1,000,000,000"
                    ));
                }
            }
            for (field, v) in [
                ("marketing_bps", credit.marketing_bps),
                ("sales_bps", credit.sales_bps),
            ] {
                if !(0..=10_000).contains(&v) {
                    problems.push(format!(
                        "incentives.credits.{outcome}.{field} = {v}: must be 0 to 10,000 basis points"
                    ));
                }
                if v > 0 && outcome != Outcome::Won {
                    problems.push(format!(
                        "incentives.credits.{outcome}.{field}: a share of revenue only applies to `won`"
                    ));
                }
            }
            credits.insert(outcome, credit);
        }
        let mut fx_micros = BTreeMap::new();
        for (code, rate) in doc.fx {
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                problems.push(format!(
                    "incentives.fx.{code}: not a three-letter ISO 4217 code"
                ));
            } else if !(rate.is_finite() && rate > 0.0 && rate < 1_000_000.0) {
                problems.push(format!(
                    "incentives.fx.{code} = {rate}: must be a positive rate into {}",
                    doc.currency
                ));
            } else {
                fx_micros.insert(code, (rate * 1_000_000.0).round() as i64);
            }
        }
        if problems.is_empty() {
            Ok(Self {
                currency: doc.currency,
                accepted_statuses: accepted,
                rejected_statuses: rejected,
                credits,
                fx_micros,
                agreement: None,
            })
        } else {
            Err(problems)
        }
    }

    /// The credit, in cents, that `outcome` earns `team` (with the deal amount for `won`).
    pub fn credit_cents(&self, outcome: Outcome, team: Team, amount_cents: Option<i64>) -> i64 {
        let Some(c) = self.credits.get(&outcome) else {
            return 0;
        };
        let (fixed, bps) = match team {
            Team::Marketing => (c.marketing, c.marketing_bps),
            Team::Sales => (c.sales, c.sales_bps),
        };
        let share = i128::from(amount_cents.unwrap_or(0).max(0)) * i128::from(bps) / 10_000;
        fixed * 100 + i64::try_from(share).unwrap_or(i64::MAX)
    }

    /// An amount in `currency` (the plan's when `None`) as cents of the plan's currency, at the
    /// plan's rate, rounded down; `None` when the plan has no rate for it — such an amount is
    /// never mixed in silently.
    pub fn in_plan_currency(&self, amount_cents: i64, currency: Option<&str>) -> Option<i64> {
        match currency {
            None => Some(amount_cents),
            Some(c) if c == self.currency => Some(amount_cents),
            Some(c) => {
                let rate = self.fx_micros.get(c)?;
                i64::try_from(i128::from(amount_cents) * i128::from(*rate) / 1_000_000).ok()
            }
        }
    }

    /// Is this sales status an acceptance / a rejection?
    pub fn accepts(&self, status: &str) -> bool {
        self.accepted_statuses
            .contains(&status.trim().to_uppercase())
    }
    pub fn rejects(&self, status: &str) -> bool {
        self.rejected_statuses
            .contains(&status.trim().to_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<IncentivePlan, Vec<String>> {
        IncentivePlan::from_doc(toml::from_str(text).map_err(|e| vec![e.to_string()])?)
    }

    #[test]
    fn credits_are_exact_cents() {
        let p = plan(
            r#"
            accepted_statuses = ["in_progress"]
            rejected_statuses = ["UNQUALIFIED"]
            [credits.sql]
            marketing = 40
            [credits.won]
            sales = 10
            marketing_bps = 100
            sales_bps = 333
            "#,
        )
        .unwrap();
        assert_eq!(p.credit_cents(Outcome::Sql, Team::Marketing, None), 4_000);
        assert_eq!(p.credit_cents(Outcome::Sql, Team::Sales, None), 0);
        // 1,234.57 × 3.33% = 41.111181 → 4,111 cents (rounded down), plus 10.00 fixed.
        assert_eq!(
            p.credit_cents(Outcome::Won, Team::Sales, Some(123_457)),
            1_000 + 4_111
        );
        assert_eq!(p.credit_cents(Outcome::Opportunity, Team::Sales, None), 0);
        assert!(p.accepts("IN_PROGRESS") && p.rejects("unqualified"));
    }

    #[test]
    fn other_currencies_convert_only_at_a_stated_rate() {
        let p = plan("[fx]\nEUR = 1.08").unwrap();
        assert_eq!(p.in_plan_currency(10_000, None), Some(10_000));
        assert_eq!(p.in_plan_currency(10_000, Some("USD")), Some(10_000));
        assert_eq!(p.in_plan_currency(10_000, Some("EUR")), Some(10_800));
        assert_eq!(p.in_plan_currency(10_000, Some("GBP")), None);
        assert!(plan("[fx]\neur = 1.0").is_err() && plan("[fx]\nEUR = -1.0").is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = plan(
            r#"
            currency = "dollars"
            accepted_statuses = ["X"]
            rejected_statuses = ["x"]
            [credits.sql]
            marketing = -1
            marketing_bps = 5
            [credits.won]
            sales_bps = 20000
            "#,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(
            plan("[credits.demo]\nsales = 1")
                .unwrap_err()
                .iter()
                .any(|p| p.contains("unknown field `demo`"))
        );
    }
}
