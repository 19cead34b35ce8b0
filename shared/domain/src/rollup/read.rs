//! Reading stored rows: the version a period is reported under, a version's rows keyed
//! without it, corrections of a closed period's view, control totals.

use super::{Correction, Incentive, RollupRow, RowBody, VersionInfo};
use crate::hash::stable_hash;
use crate::incentives::Team;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The version a period is reported under: the one scored most recently (`VER#` rows), else
/// the one with the most incentive rows.
pub fn reporting_version(rows: &[RollupRow]) -> Option<String> {
    let mut newest: Option<VersionInfo> = None;
    let mut counts = BTreeMap::<String, usize>::new();
    for row in rows {
        match row.parse() {
            Ok(RowBody::Version(v))
                if newest.as_ref().is_none_or(|n| {
                    (v.last_observed_at, &v.criteria_version)
                        > (n.last_observed_at, &n.criteria_version)
                }) =>
            {
                newest = Some(v);
            }
            Ok(RowBody::Incentive(i)) => *counts.entry(i.criteria_version).or_default() += 1,
            Ok(RowBody::Kpi(k)) => {
                counts.entry(k.criteria_version).or_default();
            }
            _ => {}
        }
    }
    newest
        .map(|v| v.criteria_version)
        .or_else(|| counts.into_iter().max_by_key(|(_, n)| *n).map(|(v, _)| v))
}

/// The rows of one version keyed without it (`INC#sales#7`, `KPI#month#…`): what corrections
/// compare, so a closed period's view and its restatement line up row by row.
pub fn version_view(rows: &[RollupRow], version: &str) -> BTreeMap<String, RollupRow> {
    let kpi = format!("KPI#{version}#");
    let inc = format!("INC#{version}#");
    rows.iter()
        .filter_map(|r| {
            let rest =
                r.sk.strip_prefix(&kpi)
                    .map(|k| format!("KPI#{k}"))
                    .or_else(|| r.sk.strip_prefix(&inc).map(|k| format!("INC#{k}")))?;
            Some((rest, r.clone()))
        })
        .collect()
}

/// Correction rows for the open period: one per row of the closed view (`was`, keyed without
/// version: [`version_view`]) whose body differs from what the facts give now (`now`).
/// Deterministic, so re-posting overwrites.
pub fn corrections(
    closed_period: &str,
    was: &BTreeMap<String, RollupRow>,
    now: &BTreeMap<String, RollupRow>,
) -> Vec<RollupRow> {
    let credits = |row: Option<&RollupRow>| match row.map(RollupRow::parse) {
        Some(Ok(RowBody::Incentive(i))) => i.credits_cents,
        _ => 0,
    };
    let lineage = |row: Option<&RollupRow>| match row.map(RollupRow::parse) {
        Some(Ok(RowBody::Incentive(i))) => i.lineage,
        _ => row
            .map(|r| stable_hash([r.body.as_str()]))
            .unwrap_or_default(),
    };
    // A restated row differs in its version field alone when nothing else changed: compare
    // the bodies without it.
    let same = |a: Option<&RollupRow>, b: Option<&RollupRow>| match (a, b) {
        (Some(a), Some(b)) => unversioned(a) == unversioned(b),
        (None, None) => true,
        _ => false,
    };
    let keys: BTreeSet<&String> = was.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter(|k| !k.contains("#day:") && !same(was.get(*k), now.get(*k)))
        .map(|k| {
            let (old, new) = (was.get(k), now.get(k));
            RollupRow::new(
                format!("CORR#{closed_period}#{k}"),
                &RowBody::Correction(Correction {
                    closed_period: closed_period.to_owned(),
                    row: k.clone(),
                    was: old.map(|r| r.body.clone()),
                    now: new.map(|r| r.body.clone()),
                    delta_credits_cents: credits(new) - credits(old),
                    reason: format!(
                        "facts recorded after {closed_period} was closed, or a new criteria version, change this row"
                    ),
                    lineage: stable_hash([lineage(old).as_str(), lineage(new).as_str()]),
                }),
            )
        })
        .collect()
}

fn unversioned(row: &RollupRow) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&row.body).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("criteria_version");
        o.remove("lineage");
    }
    v
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
    /// Won revenue left uncredited for want of an exchange rate, per currency (each deal
    /// once: from the sales rows).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unconverted: BTreeMap<String, i64>,
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
                if i.team == Team::Sales {
                    for (k, v) in &i.unconverted {
                        *totals.unconverted.entry(k.clone()).or_default() += v;
                    }
                }
                out.push(i);
            }
            Ok(RowBody::Correction(c)) => totals.corrections_cents += c.delta_credits_cents,
            _ => {}
        }
    }
    (out, totals)
}

/// The correction rows of a period.
pub fn correction_rows(rows: &[RollupRow]) -> Vec<Correction> {
    rows.iter()
        .filter_map(|r| match r.parse() {
            Ok(RowBody::Correction(c)) => Some(c),
            _ => None,
        })
        .collect()
}
