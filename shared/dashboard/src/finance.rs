//! The page's finance sections: incentives per team and owner with control totals, each
//! owner's statement (every credited lead or deal), and the leads the period left out.

use super::*;

pub(crate) fn incentives(out: &mut String, d: &Dashboard<'_>) {
    let (rows, totals) = incentive_rows(d.rows, d.version);
    let _ = write!(
        out,
        "<section class=\"wide\" id=\"incentives\"><h2>Shared incentives — both teams credited for the same outcomes</h2><table><thead><tr><th>team</th><th class=\"l\">owner</th>{}<th>SQL</th><th>accepted</th><th>opportunity</th><th>won</th><th>facts</th></tr></thead><tbody>",
        th("credits", "credits")
    );
    for i in &rows {
        let id = format!("inc:{}:{}", i.team.as_str(), i.owner);
        let n = |k: &str| {
            count(
                &format!("{id}:{k}"),
                i.outcomes.get(k).copied().unwrap_or(0),
            )
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i.team.as_str(),
            esc(&i.owner),
            cents(&format!("{id}:credits"), d.currency, i.credits_cents),
            n("sql"),
            n("sales_accepted"),
            n("opportunity"),
            n("won"),
            count(
                &format!("{id}:facts"),
                i64::try_from(i.facts).unwrap_or(i64::MAX)
            ),
        );
    }
    let t = |k: &str| {
        count(
            &format!("inc:total:{k}"),
            totals.outcomes.get(k).copied().unwrap_or(0),
        )
    };
    let _ = write!(
        out,
        "<tr class=\"total\"><td><a class=\"def\" href=\"#def-control-totals\" title=\"{}\">TOTAL</a></td><td class=\"l\">{} rows</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></tbody></table>",
        esc(definition("control-totals")),
        totals.rows,
        cents("inc:total:credits", d.currency, totals.credits_cents),
        t("sql"),
        t("sales_accepted"),
        t("opportunity"),
        t("won"),
        count(
            "inc:total:facts",
            i64::try_from(totals.facts).unwrap_or(i64::MAX)
        ),
    );
    if totals.corrections_cents != 0 {
        let _ = write!(
            out,
            "<p>Corrections posted here for closed periods: {}</p>",
            cents("inc:corrections", d.currency, totals.corrections_cents)
        );
    }
    out.push_str("</section>");
}

pub(crate) fn statements(out: &mut String, d: &Dashboard<'_>) {
    out.push_str("<section class=\"wide\" id=\"statements\"><h2>Statements — every credit, lead by lead</h2>");
    let mut by_owner: BTreeMap<(Team, &str), Vec<&StatementLine>> = BTreeMap::new();
    for l in d.statements {
        by_owner
            .entry((l.team, l.owner.as_str()))
            .or_default()
            .push(l);
    }
    for ((team, owner), lines) in by_owner {
        let total: i64 = lines.iter().map(|l| l.credit_cents).sum();
        let _ = write!(
            out,
            "<details><summary>{} <strong>{}</strong> — {} lines, {}</summary><table><thead><tr><th>date</th><th>outcome</th><th>leads</th><th>deal</th><th>amount</th><th>share</th><th>credit</th><th>reasons</th></tr></thead><tbody>",
            team.as_str(),
            esc(owner),
            thousands(lines.len() as i64),
            cents(
                &format!("statement:{}:{owner}:total", team.as_str()),
                d.currency,
                total
            )
        );
        for l in lines {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{} {}</td><td class=\"reasons\">{}{}</td></tr>",
                l.occurred_at.format("%Y-%m-%d"),
                l.outcome.as_str(),
                esc(&l.leads.join(" ")),
                esc(l.deal_id.as_deref().unwrap_or("–")),
                l.amount_cents.map_or("–".to_owned(), |a| format!(
                    "{} {}",
                    esc(l.currency.as_deref().unwrap_or(d.currency)),
                    money(a)
                )),
                l.share[0],
                l.share[1],
                esc(d.currency),
                money(l.credit_cents),
                esc(&l.reasons.join(" ")),
                l.note
                    .as_deref()
                    .map(|n| format!(" — {}", esc(n)))
                    .unwrap_or_default()
            );
        }
        out.push_str("</tbody></table></details>");
    }
    out.push_str("</section>");
}

pub(crate) fn left_out(out: &mut String, d: &Dashboard<'_>) {
    let _ = write!(
        out,
        "<section class=\"wide\" id=\"left-out\"><h2><a class=\"def\" href=\"#def-left-out\" title=\"{}\">Left out, and why</a></h2>",
        esc(definition("left-out"))
    );
    if d.left_out.is_empty() {
        out.push_str("<p class=\"meta\">Nothing: every lead recorded counts.</p>");
    } else {
        out.push_str("<table><tbody>");
        for l in d.left_out {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"reasons\">{}</td></tr>",
                esc(&l.what),
                count(
                    &format!("left-out:{}", l.what),
                    i64::try_from(l.count).unwrap_or(i64::MAX)
                ),
                esc(&l.why)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}
