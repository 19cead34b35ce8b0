//! The shared dashboard (seed 001: "a common interface where sales and marketing can view
//! metrics"): one self-contained HTML page per period — no CDN, no external font or script,
//! charts as inline SVG — rendered from what the rollups say and nothing else.
//!
//! It shows the criteria version and its sign-off, when it was computed, the funnel reality
//! check with losses and their reasons and the priced sensitivity, KPI trends per day, speed
//! to lead, acceptance and rejection by rule, incentives per team and owner with control
//! totals and each owner's statement, and which leads were left out and why. Every figure is
//! formatted for people and carries its raw value (`data-figure`, `data-value`) so a test can
//! hold the page against the rows it came from; every figure's definition is one hover
//! (`title`) or click (`#def-…`) away.
//!
//! Pure: the caller gathers the inputs ([`Dashboard`]); [`render`] returns the page.

use chrono::{DateTime, Utc};
use leadsync_domain::funnel::FunnelReport;
use leadsync_domain::incentives::{Agreement, Team};
use leadsync_domain::ports::PeriodStatus;
use leadsync_domain::rollup::{Kpi, RollupRow, RowBody, StatementLine, incentive_rows};
use std::collections::BTreeMap;
use std::fmt::Write as _;

mod finance;
mod format;
use finance::{incentives, left_out, statements};
pub use format::{money, pct, thousands};

/// Leads a period does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub what: String,
    pub count: u64,
    pub why: String,
}

/// Everything the page shows.
#[derive(Debug, Clone, Copy)]
pub struct Dashboard<'a> {
    pub period: &'a str,
    pub version: &'a str,
    pub currency: &'a str,
    pub agreement: Option<&'a Agreement>,
    pub computed_at: DateTime<Utc>,
    pub closed: Option<&'a PeriodStatus>,
    pub rows: &'a [RollupRow],
    pub funnel: &'a FunnelReport,
    pub statements: &'a [StatementLine],
    pub left_out: &'a [LeftOut],
}

/// Every definition the page links to: (anchor, name, text).
pub const DEFINITIONS: &[(&str, &str, &str)] = &[
    (
        "credits",
        "Credits",
        "What the signed plan pays for the period's outcomes: fixed amounts per outcome plus basis points of won revenue in the plan's currency; marketing per lead source, sales per owner. A deal counts once: sales credit to the deal's owner, marketing's split among its contacts' sources.",
    ),
    (
        "control-totals",
        "Control totals",
        "Rows, credits, facts and outcomes of the reported criteria version, and the corrections posted here for closed periods. The statement lines of a row add up to its credits exactly.",
    ),
    (
        "entered",
        "Entered",
        "Leads that entered the step in the period (cohort), by the CRM's clock. A lead reaching a later step passes every earlier one.",
    ),
    (
        "advanced",
        "Advanced",
        "Leads of the cohort that reached a later step first.",
    ),
    (
        "lost",
        "Lost",
        "Leads of the cohort that left the funnel first: disqualified, recycled (handed back for nurture), rejected by sales, fell back (score dropped, e.g. decay) or closed lost.",
    ),
    (
        "still",
        "Still in step",
        "Leads of the cohort that neither advanced nor were lost yet; stalled: in the step longer than the stall limit.",
    ),
    (
        "gain",
        "Worth of one point",
        "entered × points / 100 × downstream conversion × the period's average won deal. Young cohorts have not converted downstream yet: a floor.",
    ),
    (
        "reached",
        "Reached",
        "Leads reaching a stage, sales verdicts and deals that occurred in the period; a count.",
    ),
    (
        "acceptance",
        "Acceptance",
        "Leads sales accepted ÷ leads sales judged in the period; the rest were rejected, with their reasons.",
    ),
    (
        "rejection-by-rule",
        "Rejection by rule",
        "Among judged leads whose scoring matched the rule: rejected ÷ judged.",
    ),
    (
        "speed-to-lead",
        "Speed to lead",
        "Median minutes from a lead's first MQL to its first sales verdict, over the verdicts of the period.",
    ),
    (
        "velocity",
        "Lead velocity",
        "MQLs this month minus last month's, over last month's.",
    ),
    (
        "revenue",
        "Revenue won",
        "Cents of deals won in the period, in their own currency, over the number of deals.",
    ),
    (
        "left-out",
        "Left out",
        "Contacts merged into another (counted as the one they joined) or deleted in the CRM (no longer counted), and revenue not converted for want of an exchange rate.",
    ),
];

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn definition(anchor: &str) -> &'static str {
    DEFINITIONS
        .iter()
        .find(|(a, _, _)| *a == anchor)
        .map_or("", |(_, _, text)| text)
}

/// A column header with its definition one hover or click away.
fn th(label: &str, anchor: &str) -> String {
    format!(
        "<th><a class=\"def\" href=\"#def-{anchor}\" title=\"{}\">{}</a></th>",
        esc(definition(anchor)),
        esc(label)
    )
}

/// A figure: the formatted text, the raw value beside it.
fn fig(id: &str, raw: i64, text: &str) -> String {
    format!(
        "<span data-figure=\"{}\" data-value=\"{raw}\">{}</span>",
        esc(id),
        esc(text)
    )
}

fn count(id: &str, n: i64) -> String {
    fig(id, n, &thousands(n))
}

fn cents(id: &str, currency: &str, c: i64) -> String {
    fig(id, c, &format!("{currency} {}", money(c)))
}

const STYLE: &str = "
:root{--ink:#1d2430;--muted:#5b6575;--line:#e3e7ee;--accent:#2f6fdd;--good:#1f9d6b;--bad:#d2453b;--warn:#d68b1a;--bg:#f6f8fb}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#fff;border-bottom:1px solid var(--line);padding:16px 20px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0 0 10px}
.meta{color:var(--muted);font-size:13px}.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;font-weight:600}
.open{background:#e4f4ec;color:var(--good)}.closed{background:#fde9e7;color:var(--bad)}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr));gap:16px;padding:16px 20px;max-width:1400px;margin:0 auto}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;overflow-x:auto}
section.wide{grid-column:1/-1}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child,td.l,th.l{text-align:left}th{color:var(--muted);font-weight:600}td.reasons{text-align:left;white-space:normal;min-width:220px}
a.def{color:inherit;text-decoration:underline dotted}a.def:hover{color:var(--accent)}
tr.total td{font-weight:700;border-top:2px solid var(--ink)}
.tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{flex:1 1 140px;border:1px solid var(--line);border-radius:6px;padding:8px 10px}
.tile .v{font-size:20px;font-weight:700}.tile .l{color:var(--muted);font-size:12px}
details{border-top:1px solid var(--line);padding:6px 0}summary{cursor:pointer}
svg text{font-size:11px;fill:var(--muted)}dl dt{font-weight:600;margin-top:8px}dl dd{margin:2px 0 0 0;color:var(--muted)}
.legend span{display:inline-block;margin-right:12px;font-size:12px}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:middle}
@media (max-width:600px){main{padding:10px;gap:10px}section{padding:10px}h1{font-size:17px}}
";

/// The page.
pub fn render(d: &Dashboard<'_>) -> String {
    let mut kpis: BTreeMap<String, Kpi> = BTreeMap::new();
    let mut days: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for row in d.rows {
        if let Ok(RowBody::Kpi(k)) = row.parse()
            && k.criteria_version == d.version
            && k.dimension == "all"
        {
            if k.grain == "month" {
                kpis.insert(k.metric.clone(), k);
            } else {
                let series = days.entry(k.metric.clone()).or_default();
                for (day, n) in k.days() {
                    series.insert(day.to_owned(), n);
                }
            }
        }
    }
    let mut out = String::with_capacity(64 * 1024);
    let status = match d.closed {
        Some(c) => format!(
            "<span class=\"badge closed\" id=\"status\">closed</span> by {} at {}",
            esc(&c.closed_by),
            c.closed_at.format("%Y-%m-%d %H:%M UTC")
        ),
        None => "<span class=\"badge open\" id=\"status\">open</span>".to_owned(),
    };
    let sign_off = d.agreement.map_or_else(
        || "sign-off not recorded".to_owned(),
        |a| {
            let who = |s: &Option<leadsync_domain::criteria::SignOff>| {
                s.as_ref().map_or("not signed".to_owned(), |s| {
                    format!("{} ({})", esc(&s.name), esc(&s.date))
                })
            };
            format!(
                "{} effective {} — signed for sales by {}, for marketing by {}",
                esc(&a.criteria_id),
                esc(&a.effective),
                who(&a.sales),
                who(&a.marketing)
            )
        },
    );
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>leadsync — {period}</title><style>{STYLE}</style></head><body>\
<header><h1>Sales &amp; marketing — {period} {status}</h1>\
<div class=\"meta\">Criteria <strong id=\"criteria-version\">{version}</strong>: {sign_off}. Computed {computed} from the rollups; funnel cohorts followed to {as_of}. Amounts in {currency}.</div></header><main>",
        period = esc(d.period),
        version = esc(d.version),
        computed = d.computed_at.format("%Y-%m-%d %H:%M UTC"),
        as_of = d.funnel.as_of.format("%Y-%m-%d %H:%M UTC"),
        currency = esc(d.currency),
    );
    headline(&mut out, d, &kpis);
    funnel(&mut out, d);
    trends(&mut out, &days);
    sales_feedback(&mut out, &kpis, d);
    incentives(&mut out, d);
    statements(&mut out, d);
    left_out(&mut out, d);
    out.push_str("<section class=\"wide\" id=\"definitions\"><h2>Definitions</h2><dl>");
    for (anchor, name, text) in DEFINITIONS {
        let _ = write!(
            out,
            "<dt id=\"def-{anchor}\">{}</dt><dd>{}</dd>",
            esc(name),
            esc(text)
        );
    }
    out.push_str("</dl></section></main></body></html>\n");
    out
}

fn headline(out: &mut String, d: &Dashboard<'_>, kpis: &BTreeMap<String, Kpi>) {
    let (_, totals) = incentive_rows(d.rows, d.version);
    let tile = |label: &str, anchor: &str, value: String| {
        format!(
            "<div class=\"tile\"><div class=\"v\">{value}</div><div class=\"l\"><a class=\"def\" href=\"#def-{anchor}\" title=\"{}\">{}</a></div></div>",
            esc(definition(anchor)),
            esc(label)
        )
    };
    let k = |m: &str| kpis.get(m).map_or(0, |k| k.value);
    let mut tiles = vec![
        tile(
            "MQLs reached",
            "reached",
            count("kpi:reached#mql", k("reached#mql")),
        ),
        tile(
            "SQLs reached",
            "reached",
            count("kpi:reached#sql", k("reached#sql")),
        ),
        tile(
            "Deals won",
            "reached",
            count("kpi:reached#won", k("reached#won")),
        ),
        tile(
            "Credits, both teams",
            "credits",
            cents("total:credits", d.currency, totals.credits_cents),
        ),
    ];
    if let Some(s) = kpis.get("speed_to_lead") {
        tiles.push(tile(
            "Speed to lead (median)",
            "speed-to-lead",
            format!(
                "{} min",
                fig("kpi:speed_to_lead", s.value, &thousands(s.value))
            ),
        ));
    }
    if let Some(a) = kpis.get("acceptance") {
        tiles.push(tile(
            "Accepted by sales",
            "acceptance",
            format!(
                "{} of {}",
                count("kpi:acceptance", a.value),
                count("kpi:acceptance:base", a.base)
            ),
        ));
    }
    let _ = write!(
        out,
        "<section class=\"wide\" id=\"headline\"><div class=\"tiles\">{}</div></section>",
        tiles.concat()
    );
}

fn funnel(out: &mut String, d: &Dashboard<'_>) {
    let r = d.funnel;
    out.push_str("<section class=\"wide\" id=\"funnel\"><h2>Funnel reality check — where leads die, and what a point is worth</h2>");
    // Stacked bars: advanced / lost / still per step, scaled to the largest cohort.
    let max = r.steps.iter().map(|s| s.entered).max().unwrap_or(0).max(1);
    let (w, row_h) = (640.0, 26.0);
    let h = row_h * r.steps.len() as f64 + 8.0;
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {w} {h}\" width=\"100%\" style=\"max-width:760px\" role=\"img\" aria-label=\"funnel\">"
    );
    for (i, s) in r.steps.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let scale = |n: i64| (w - 170.0) * n as f64 / max as f64;
        let mut x = 160.0;
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\">{} → {}</text>",
            y + 15.0,
            esc(&s.step),
            esc(&s.next)
        );
        for (n, color) in [
            (s.advanced, "#1f9d6b"),
            (s.lost_total, "#d2453b"),
            (s.still_in_stage, "#c8d0dc"),
        ] {
            let bw = scale(n);
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{}\" fill=\"{color}\"><title>{}</title></rect>",
                row_h - 8.0,
                thousands(n)
            );
            x += bw;
        }
    }
    out.push_str("</svg><div class=\"legend\"><span><i class=\"sw\" style=\"background:#1f9d6b\"></i>advanced</span><span><i class=\"sw\" style=\"background:#d2453b\"></i>lost</span><span><i class=\"sw\" style=\"background:#c8d0dc\"></i>still in step</span></div>");
    let _ = write!(
        out,
        "<table><thead><tr><th>step</th>{}{}<th>conversion</th>{}<th>disqualified</th><th>recycled</th><th>rejected by sales</th><th>fell back</th><th>closed lost</th>{}<th>top loss reasons</th>{}</tr></thead><tbody>",
        th("entered", "entered"),
        th("advanced", "advanced"),
        th("lost", "lost"),
        th("still (stalled)", "still"),
        th(&format!("+{} pt is worth", r.points), "gain"),
    );
    for s in &r.steps {
        let id = |what: &str| format!("funnel:{}:{what}", s.step);
        let lost = |k: &str| count(&id(k), s.lost.get(k).copied().unwrap_or(0));
        let reasons: Vec<String> = s
            .top_loss_reasons
            .iter()
            .take(3)
            .map(|l| {
                format!(
                    "{} {} ({:.0}%)",
                    esc(&l.reason),
                    thousands(l.count),
                    l.share_pct
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{} → {}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td class=\"reasons\">{}</td><td>{}</td></tr>",
            esc(&s.step),
            esc(&s.next),
            count(&id("entered"), s.entered),
            count(&id("advanced"), s.advanced),
            pct(s.conversion_pct),
            count(&id("lost"), s.lost_total),
            pct(s.loss_pct),
            lost("disqualified"),
            lost("recycled"),
            lost("rejected_by_sales"),
            lost("fell_back"),
            lost("closed_lost"),
            count(&id("still"), s.still_in_stage),
            count(&id("stalled"), s.stalled),
            if reasons.is_empty() {
                "–".to_owned()
            } else {
                reasons.join(", ")
            },
            s.revenue_gain_cents
                .map_or("–".to_owned(), |c| cents(&id("gain"), &r.currency, c)),
        );
    }
    out.push_str("</tbody></table>");
    let _ = write!(
        out,
        "<p class=\"meta\">Cohorts: the leads that entered each step in {}; stalled: more than {} days in the step. {}</p></section>",
        esc(&r.period),
        r.stall_days,
        match r.average_won_cents {
            Some(avg) => format!(
                "Priced at the period's average won deal, {} {} over {} deals.",
                esc(&r.currency),
                money(avg),
                thousands(r.won_deals - r.won_deals_unconverted)
            ),
            None => "No deal was won in the period: the sensitivity has no price.".to_owned(),
        }
    );
}

/// Small multiples of the steps reached per day.
fn trends(out: &mut String, days: &BTreeMap<String, BTreeMap<String, i64>>) {
    out.push_str("<section id=\"trends\"><h2><a class=\"def\" href=\"#def-reached\" title=\"");
    out.push_str(&esc(definition("reached")));
    out.push_str("\">KPI trends per day</a></h2>");
    let all_days: Vec<&String> = {
        let mut d: Vec<&String> = days.values().flat_map(BTreeMap::keys).collect();
        d.sort();
        d.dedup();
        d
    };
    if all_days.is_empty() {
        out.push_str("<p class=\"meta\">No daily facts in this period.</p></section>");
        return;
    }
    for (metric, label, color) in [
        ("reached#mql", "MQLs", "#2f6fdd"),
        ("reached#sql", "SQLs", "#7a4fd6"),
        ("reached#sales_accepted", "accepted by sales", "#1f9d6b"),
        ("reached#won", "deals won", "#d68b1a"),
    ] {
        let series = days.get(metric);
        let value = |d: &String| series.and_then(|s| s.get(d)).copied().unwrap_or(0);
        let max = all_days.iter().map(|d| value(d)).max().unwrap_or(0).max(1);
        let total: i64 = all_days.iter().map(|d| value(d)).sum();
        let (w, h) = (300.0, 60.0);
        let step = w / (all_days.len().max(2) - 1) as f64;
        let points: Vec<String> = all_days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                format!(
                    "{:.1},{:.1}",
                    i as f64 * step,
                    h - 4.0 - (h - 8.0) * value(d) as f64 / max as f64
                )
            })
            .collect();
        let _ = write!(
            out,
            "<div><div class=\"meta\">{label}: {} in the month, at most {} a day</div><svg viewBox=\"0 0 {w} {h}\" width=\"100%\" height=\"60\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{label} per day\"><polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/></svg></div>",
            count(&format!("trend:{metric}:total"), total),
            thousands(max),
            points.join(" ")
        );
    }
    out.push_str("</section>");
}

fn sales_feedback(out: &mut String, kpis: &BTreeMap<String, Kpi>, d: &Dashboard<'_>) {
    let _ = write!(
        out,
        "<section id=\"feedback\"><h2>What sales said, and why — by criteria rule</h2><table><thead><tr><th>KPI</th><th>value</th><th>of</th><th>rate</th></tr></thead><tbody>"
    );
    let anchor = |m: &str| {
        if m.starts_with("rejection_by_rule") {
            "rejection-by-rule"
        } else if m.starts_with("revenue_won") {
            "revenue"
        } else if m.starts_with("velocity") {
            "velocity"
        } else if m == "speed_to_lead" {
            "speed-to-lead"
        } else if m == "acceptance" {
            "acceptance"
        } else if m.starts_with("reached") {
            "reached"
        } else {
            "lost"
        }
    };
    for (metric, k) in kpis {
        if metric.starts_with("conversion#") {
            continue;
        }
        let is_rate = metric == "acceptance"
            || metric.starts_with("loss#")
            || metric.starts_with("rejection_by_rule#")
            || metric.starts_with("velocity#");
        let rate = if k.base > 0 && is_rate {
            format!("{:.1}%", 100.0 * k.value as f64 / k.base as f64)
        } else {
            "–".to_owned()
        };
        let value = if let Some(cur) = metric.strip_prefix("revenue_won#") {
            cents(&format!("kpi:{metric}"), cur, k.value)
        } else {
            count(&format!("kpi:{metric}"), k.value)
        };
        let base = if metric.starts_with("reached") {
            "–".to_owned()
        } else {
            count(&format!("kpi:{metric}:base"), k.base)
        };
        let _ = write!(
            out,
            "<tr><td><a class=\"def\" href=\"#def-{a}\" title=\"{t}\">{m}</a></td><td>{value}</td><td>{base}</td><td>{rate}</td></tr>",
            a = anchor(metric),
            t = esc(definition(anchor(metric))),
            m = esc(metric)
        );
    }
    if let Some(a) = kpis.get("acceptance")
        && !a.detail.is_empty()
    {
        let reasons: Vec<String> = a
            .detail
            .iter()
            .map(|(r, n)| format!("{} {}", esc(r), thousands(*n)))
            .collect();
        let _ = write!(
            out,
            "<tr><td>rejection reasons</td><td class=\"reasons\" colspan=\"3\">{}</td></tr>",
            reasons.join(", ")
        );
    }
    let _ = d;
    out.push_str("</tbody></table></section>");
}

#[cfg(test)]
mod tests;
