//! The rows a rollup writes — KPIs, incentives, corrections, version markers, statement
//! lines — with their sort keys and canonical JSON bodies.

use crate::incentives::{Outcome, Team};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// `month`, or `daily`: the month's day-by-day series of one metric, its days
    /// (`YYYY-MM-DD`) in [`detail`](Self::detail) and their sum in `value` (one stored row
    /// a metric, not one a day; [`Kpi::days`] reads it back).
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
    /// Credited outcomes per kind (a deal counts once per row).
    pub outcomes: BTreeMap<String, i64>,
    /// Facts behind the row, and a hash of their keys (lineage).
    pub facts: u64,
    pub lineage: String,
    /// Deal amounts (cents per currency) whose share of revenue was not credited: the plan has
    /// no exchange rate for their currency.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unconverted: BTreeMap<String, i64>,
}

/// A change to a closed period's row, posted to an open period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub closed_period: String,
    /// The row's key without its criteria version (`INC#sales#7`): the closed view and the
    /// current one are compared row by row even when a new version restated the period.
    pub row: String,
    /// The frozen body and the body the facts give now (`None`: no such row).
    pub was: Option<String>,
    pub now: Option<String>,
    pub delta_credits_cents: i64,
    pub reason: String,
    /// Hash of the frozen and recomputed lineages.
    pub lineage: String,
}

/// A criteria version's view of a period: which definition the rows beside it use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub criteria_version: String,
    /// Stage facts of this version in the period.
    pub stage_facts: u64,
    /// When the newest of them was recorded: the most recently scored version is reported.
    pub last_observed_at: DateTime<Utc>,
}

/// The body of a row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RowBody {
    Kpi(Kpi),
    Incentive(Incentive),
    Correction(Correction),
    Version(VersionInfo),
}

impl RollupRow {
    pub(super) fn new(sk: String, body: &RowBody) -> Self {
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

/// One credited item on an owner's (or a source's) statement: what a rep checks line by line.
/// The lines of a row add up to its `credits_cents` exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementLine {
    pub criteria_version: String,
    pub team: Team,
    pub owner: String,
    pub outcome: Outcome,
    pub occurred_at: DateTime<Utc>,
    /// The leads behind the credit (a deal's contacts; one lead otherwise).
    pub leads: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_cents: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// This row's share of the outcome: `[n, of]` contacts (marketing's credit for a deal is
    /// split among its contacts' sources); `[1, 1]` otherwise.
    pub share: [u32; 2],
    pub credit_cents: i64,
    /// The rule codes the lead matched when the outcome was recorded.
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The facts behind the line (their keys).
    pub facts: Vec<String>,
}

/// Funnel steps in order, for conversion.
pub const FUNNEL: [&str; 6] = ["iql", "mql", "sql", "sales_accepted", "opportunity", "won"];

/// The grain of a KPI row that holds a month's day-by-day series.
pub const DAILY: &str = "daily";

impl Kpi {
    /// A `daily` row's series as `(day, value)` pairs, one a day with a count (`YYYY-MM-DD`,
    /// in order); empty for any other grain.
    pub fn days(&self) -> impl Iterator<Item = (&str, i64)> {
        (self.grain == DAILY)
            .then_some(&self.detail)
            .into_iter()
            .flatten()
            .map(|(day, n)| (day.as_str(), *n))
    }
}
