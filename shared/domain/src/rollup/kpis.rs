//! The KPI rows of one view: reached, conversion, loss, acceptance, rejection by rule, speed
//! to lead, velocity and revenue, by dimension (see the metrics in [`super`]).

use super::*;

impl Rollup<'_> {
    pub(super) fn kpi_rows(&self, version: &str, rows: &mut Vec<RollupRow>) {
        let currency = self
            .plans
            .get(version)
            .map_or("USD", |p| p.currency.as_str());
        let mut kpi = |grain: &str, metric: String, dim: &str, value, base, detail| {
            rows.push(RollupRow::new(
                format!("KPI#{version}#{grain}#{metric}#{dim}"),
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
        let empty_stage = StageTally::default();
        let empty_sales = SalesTally::default();
        let dims: BTreeSet<&String> = self
            .stage
            .keys()
            .filter(|(v, _)| v == version)
            .map(|(_, d)| d)
            .chain(self.sales.keys())
            .collect();
        for dim in dims {
            let st = self
                .stage
                .get(&(version.to_owned(), dim.clone()))
                .unwrap_or(&empty_stage);
            let sa = self.sales.get(dim).unwrap_or(&empty_sales);
            let mut reached = st.reached.clone();
            for (k, v) in &sa.reached {
                *reached.entry(k).or_default() += v;
            }
            let n = |s: &str| reached.get(s).copied().unwrap_or(0);
            for (step, count) in &reached {
                kpi(
                    "month",
                    format!("reached#{step}"),
                    dim,
                    *count,
                    0,
                    BTreeMap::new(),
                );
            }
            for pair in FUNNEL.windows(2) {
                let (from, to) = (pair[0], pair[1]);
                if n(from) > 0 || n(to) > 0 {
                    kpi(
                        "month",
                        format!("conversion#{from}>{to}"),
                        dim,
                        n(to),
                        n(from),
                        BTreeMap::new(),
                    );
                }
            }
            for (from, (lost, reasons)) in &st.lost {
                kpi(
                    "month",
                    format!("loss#{from}"),
                    dim,
                    *lost,
                    st.exits.get(from).copied().unwrap_or(0),
                    reasons.clone(),
                );
            }
            if sa.closed > 0 {
                kpi(
                    "month",
                    "loss#opportunity".into(),
                    dim,
                    sa.lost.0,
                    sa.closed,
                    sa.lost.1.clone(),
                );
            }
            if sa.accepted + sa.rejected > 0 {
                kpi(
                    "month",
                    "acceptance".into(),
                    dim,
                    sa.accepted,
                    sa.accepted + sa.rejected,
                    sa.rejection_reasons.clone(),
                );
                for (code, (rejected, judged)) in &sa.by_rule {
                    kpi(
                        "month",
                        format!("rejection_by_rule#{code}"),
                        dim,
                        *rejected,
                        *judged,
                        BTreeMap::new(),
                    );
                }
            }
            if !sa.speed_minutes.is_empty() {
                let mut m = sa.speed_minutes.clone();
                m.sort_unstable();
                let median = if m.len() % 2 == 1 {
                    m[m.len() / 2]
                } else {
                    (m[m.len() / 2 - 1] + m[m.len() / 2]) / 2
                };
                kpi(
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
                .get(&(version.to_owned(), dim.clone()))
                .copied()
                .unwrap_or(0);
            if st.reached.get("mql").copied().unwrap_or(0) > 0 || before > 0 {
                kpi(
                    "month",
                    "velocity#mql".into(),
                    dim,
                    st.reached.get("mql").copied().unwrap_or(0) - before,
                    before,
                    BTreeMap::new(),
                );
            }
            let mut revenue: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
            for (cur, (cents, deals)) in &sa.revenue {
                let r = revenue
                    .entry(cur.as_deref().unwrap_or(currency))
                    .or_default();
                r.0 += cents;
                r.1 += deals;
            }
            for (cur, (cents, deals)) in revenue {
                kpi(
                    "month",
                    format!("revenue_won#{cur}"),
                    dim,
                    cents,
                    deals,
                    BTreeMap::new(),
                );
            }
        }
        let mut days: BTreeMap<&str, BTreeMap<String, i64>> = BTreeMap::new();
        for ((v, day, step), n) in &self.stage_days {
            if v == version {
                *days
                    .entry(step)
                    .or_default()
                    .entry(day.clone())
                    .or_default() += n;
            }
        }
        for ((day, step), n) in &self.sales_days {
            *days
                .entry(step)
                .or_default()
                .entry(day.clone())
                .or_default() += n;
        }
        for (step, series) in days {
            kpi(
                DAILY,
                format!("reached#{step}"),
                "all",
                series.values().sum(),
                0,
                series,
            );
        }
    }
}
