//! `leadsync rollups show|export|close|recompute`: finance's view of the KPI and incentive
//! rollups in DynamoDB (table and bucket from the environment or flags, like `criteria publish`).

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::{RowBody, incentive_rows};
use leadsync_pipeline::rollups;
use leadsync_store::{DynamoLeadStore, S3SnapshotStore};
use std::collections::BTreeSet;
use std::process::ExitCode;

/// Output format of `show`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Readable tables: incentives, KPIs of dimension `all`, the funnel check.
    Table,
    /// Every row as a JSON line (`sk`, `body`).
    Json,
    /// The finance export (incentive rows + control totals), RFC 4180.
    Csv,
}

pub struct Stores {
    pub store: DynamoLeadStore,
    pub exports: S3SnapshotStore,
}

pub async fn stores(table: &str, bucket: &str) -> Stores {
    let sdk = leadsync_store::sdk_config().await;
    let s3 = leadsync_store::s3_client(&sdk);
    // The CRM's namespace in the table, as the functions read it (CRM_KIND).
    let kind =
        leadsync_app::CrmKind::from_value(std::env::var(leadsync_app::config::CRM_KIND).ok())
            .unwrap_or(leadsync_app::CrmKind::HubSpot);
    Stores {
        store: DynamoLeadStore::new(aws_sdk_dynamodb::Client::new(&sdk), table, kind.name()),
        exports: S3SnapshotStore::new(s3, bucket),
    }
}

/// The criteria version to report: the one given, else the one scored most recently.
async fn version_of(
    store: &DynamoLeadStore,
    period: &str,
    rows: &[leadsync_domain::rollup::RollupRow],
    version: Option<String>,
) -> anyhow::Result<(String, String)> {
    let plans = store.plans().await?;
    let version = match version {
        Some(v) => v,
        None => match rollups::busiest_version(rows) {
            Some(v) => v,
            None => bail!("period {period} has no rollup rows (run a sync first?)"),
        },
    };
    let currency = plans
        .get(&version)
        .map_or_else(|| "USD".to_owned(), |p| p.currency.clone());
    Ok((version, currency))
}

/// How the funnel is read: the sensitivity's points, the stall limit, and the reader's now.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub points: f64,
    pub stall_days: u32,
    pub as_of: DateTime<Utc>,
}

// Numbers for people: the dashboard's formatting, so the CLI and the page read alike.
pub use leadsync_dashboard::{money, pct, thousands};

/// A KPI for people: counts as counts, rates with their base, minutes and cents as such.
fn kpi_line(k: &leadsync_domain::rollup::Kpi, currency: &str) -> (String, String, String) {
    let rate = |v: i64, b: i64| {
        if b > 0 {
            format!("{:.1}%", 100.0 * v as f64 / b as f64)
        } else {
            "–".to_owned()
        }
    };
    let m = k.metric.as_str();
    if m.starts_with("reached#") {
        (thousands(k.value), String::new(), String::new())
    } else if let Some(cur) = m.strip_prefix("revenue_won#") {
        (
            format!("{cur} {}", money(k.value)),
            format!("{} deals", thousands(k.base)),
            String::new(),
        )
    } else if m == "speed_to_lead" {
        (
            format!("{} min median", thousands(k.value)),
            format!("{} leads", thousands(k.base)),
            format!(
                "max {} min",
                thousands(k.detail.get("max_minutes").copied().unwrap_or(0))
            ),
        )
    } else if m == "velocity#mql" {
        (
            format!("{:+}", k.value),
            format!("{} last month", thousands(k.base)),
            rate(k.value, k.base),
        )
    } else {
        let _ = currency;
        (thousands(k.value), thousands(k.base), rate(k.value, k.base))
    }
}

pub async fn show(
    s: &Stores,
    period: &str,
    version: Option<String>,
    format: Format,
    view: &View,
) -> anyhow::Result<ExitCode> {
    let rows = s.store.rows(period).await?;
    match format {
        Format::Json => {
            for row in &rows {
                println!("{}", serde_json::to_string(row)?);
            }
        }
        Format::Csv => {
            let (version, currency) = version_of(&s.store, period, &rows, version).await?;
            let export = rollups::export(period, &version, &currency, &rows)?;
            use std::io::Write as _;
            std::io::stdout().write_all(&export.csv)?;
        }
        Format::Table => {
            let (version, currency) = version_of(&s.store, period, &rows, version).await?;
            let closed = s
                .store
                .closed_periods()
                .await?
                .into_iter()
                .find(|p| p.period == period);
            println!(
                "Period {period} — criteria {version} — {}",
                closed.map_or("open".to_owned(), |c| format!(
                    "closed by {} at {}",
                    c.closed_by, c.closed_at
                ))
            );
            println!();
            println!("Shared incentives ({currency}) — both teams credited for the same outcomes");
            println!("| team | owner | credits | sql | accepted | opportunity | won | facts |");
            println!("|---|---|---:|---:|---:|---:|---:|---:|");
            let (incentives, totals) = incentive_rows(&rows, &version);
            for i in &incentives {
                let n = |k: &str| thousands(i.outcomes.get(k).copied().unwrap_or(0));
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    i.team.as_str(),
                    i.owner,
                    money(i.credits_cents),
                    n("sql"),
                    n("sales_accepted"),
                    n("opportunity"),
                    n("won"),
                    thousands(i.facts as i64)
                );
            }
            let t = |k: &str| thousands(totals.outcomes.get(k).copied().unwrap_or(0));
            println!(
                "| TOTAL | {} rows | {} | {} | {} | {} | {} | {} |",
                totals.rows,
                money(totals.credits_cents),
                t("sql"),
                t("sales_accepted"),
                t("opportunity"),
                t("won"),
                thousands(totals.facts as i64)
            );
            if totals.corrections_cents != 0 {
                println!(
                    "Corrections posted here for closed periods: {currency} {}",
                    money(totals.corrections_cents)
                );
            }
            for (cur, cents) in &totals.unconverted {
                println!(
                    "Not credited: {cur} {} of won revenue — the plan has no {cur} rate ([incentives.fx])",
                    money(*cents)
                );
            }
            println!();
            println!(
                "KPIs (all leads, counts of the month; the flow conversions `conversion#…` are in the rows for trends — the cohort funnel below is the conversion to act on)"
            );
            println!("| metric | value | of | rate |");
            println!("|---|---:|---:|---:|");
            for row in &rows {
                if let Ok(RowBody::Kpi(k)) = row.parse()
                    && k.criteria_version == version
                    && k.grain == "month"
                    && k.dimension == "all"
                    && !k.metric.starts_with("conversion#")
                {
                    let (value, base, rate) = kpi_line(&k, &currency);
                    println!("| {} | {value} | {base} | {rate} |", k.metric);
                }
            }
            println!();
            let report = rollups::funnel_report(
                &s.store,
                period,
                &version,
                view.as_of,
                view.stall_days,
                view.points,
            )
            .await?;
            print_funnel(&report);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The funnel reality check as a table.
pub fn print_funnel(r: &leadsync_domain::funnel::FunnelReport) {
    println!(
        "Funnel reality check — cohorts: the leads that entered each step in {}, followed to {} (stalled: > {} days in the step)",
        r.period,
        r.as_of.format("%Y-%m-%d %H:%M UTC"),
        r.stall_days
    );
    println!(
        "| step | entered | advanced | conversion | lost | disqualified | recycled | rejected by sales | fell back | closed lost | still in step (stalled) | top loss reasons | +{} pt is worth |",
        r.points
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for s in &r.steps {
        let lost = |k: &str| thousands(s.lost.get(k).copied().unwrap_or(0));
        let reasons: Vec<String> = s
            .top_loss_reasons
            .iter()
            .take(3)
            .map(|l| format!("{} {} ({:.0}%)", l.reason, thousands(l.count), l.share_pct))
            .collect();
        println!(
            "| {} → {} | {} | {} | {} | {} ({}) | {} | {} | {} | {} | {} | {} ({}) | {} | {} |",
            s.step,
            s.next,
            thousands(s.entered),
            thousands(s.advanced),
            pct(s.conversion_pct),
            thousands(s.lost_total),
            pct(s.loss_pct),
            lost("disqualified"),
            lost("recycled"),
            lost("rejected_by_sales"),
            lost("fell_back"),
            lost("closed_lost"),
            thousands(s.still_in_stage),
            thousands(s.stalled),
            if reasons.is_empty() {
                "–".to_owned()
            } else {
                reasons.join(", ")
            },
            s.revenue_gain_cents.map_or("–".to_owned(), |c| format!(
                "{} {}",
                r.currency,
                money(c)
            ))
        );
    }
    match r.average_won_cents {
        Some(avg) => println!(
            "Priced at the period's average won deal, {} {} over {} deals{}, times each step's downstream conversion.",
            r.currency,
            money(avg),
            thousands(r.won_deals - r.won_deals_unconverted),
            if r.won_deals_unconverted > 0 {
                format!(
                    " ({} in a currency without a plan rate left out)",
                    r.won_deals_unconverted
                )
            } else {
                String::new()
            }
        ),
        None => println!(
            "No deal was won in {}: the sensitivity has no price.",
            r.period
        ),
    }
}

pub async fn statement(
    s: &Stores,
    period: &str,
    version: Option<String>,
    team: Option<&str>,
    owner: Option<&str>,
    csv: bool,
) -> anyhow::Result<ExitCode> {
    let rows = s.store.rows(period).await?;
    let (version, currency) = version_of(&s.store, period, &rows, version).await?;
    let mut lines = rollups::statements(&s.store, period, &version).await?;
    lines.retain(|l| {
        team.is_none_or(|t| l.team.as_str() == t) && owner.is_none_or(|o| l.owner == o)
    });
    if csv {
        use std::io::Write as _;
        std::io::stdout().write_all(&rollups::statements_csv(period, &currency, &lines)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_statement(&lines, &currency, usize::MAX);
    Ok(ExitCode::SUCCESS)
}

/// Statement lines as a table (at most `limit` lines, then the total of all of them).
pub fn print_statement(
    lines: &[leadsync_domain::rollup::StatementLine],
    currency: &str,
    limit: usize,
) {
    println!("| date | outcome | leads | deal | amount | share | credit | criteria | reasons |");
    println!("|---|---|---|---|---:|---:|---:|---|---|");
    for l in lines.iter().take(limit) {
        println!(
            "| {} | {} | {} | {} | {} | {}/{} | {currency} {} | {} | {}{} |",
            l.occurred_at.format("%Y-%m-%d"),
            l.outcome.as_str(),
            l.leads.join(" "),
            l.deal_id.as_deref().unwrap_or("–"),
            l.amount_cents.map_or("–".to_owned(), |a| format!(
                "{} {}",
                l.currency.as_deref().unwrap_or(currency),
                money(a)
            )),
            l.share[0],
            l.share[1],
            money(l.credit_cents),
            l.criteria_version,
            l.reasons.join(" "),
            l.note
                .as_deref()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default()
        );
    }
    if lines.len() > limit {
        println!(
            "| … {} more lines | | | | | | | | |",
            thousands((lines.len() - limit) as i64)
        );
    }
    let total: i64 = lines.iter().map(|l| l.credit_cents).sum();
    println!(
        "| TOTAL | {} lines | | | | | {currency} {} | | |",
        thousands(lines.len() as i64),
        money(total)
    );
}

pub async fn export(s: &Stores, period: &str, version: Option<String>) -> anyhow::Result<ExitCode> {
    let rows = s.store.rows(period).await?;
    let (version, currency) = version_of(&s.store, period, &rows, version).await?;
    let (export, files) = rollups::export_files(&s.store, period, &version, &currency).await?;
    println!(
        "incentives: {} rows, credits {currency} {}, corrections {}",
        export.totals.rows,
        money(export.totals.credits_cents),
        money(export.totals.corrections_cents),
    );
    let written = leadsync_app::rollups_api::write_export(&s.exports, period, &version, files)
        .await
        .context("writing the export to S3")?;
    for w in written {
        println!(
            "  s3://{}/{} ({} bytes, sha256 {}; checksum in {}.sha256)",
            s.exports.bucket(),
            w.key,
            thousands(w.size as i64),
            w.sha256,
            w.key
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn close(s: &Stores, period: &str, by: &str) -> anyhow::Result<ExitCode> {
    match rollups::close(&s.store, period, by, Utc::now()).await {
        Ok(status) => {
            println!(
                "{period} closed by {by} under criteria {}: {} rows frozen, credits {}, {} facts",
                status.criteria_version.as_deref().unwrap_or("-"),
                status.rows,
                money(status.credits_cents),
                status.facts
            );
            if !s.exports.bucket().is_empty() {
                for key in leadsync_pipeline::dashboard::publish(
                    &s.store,
                    &s.exports,
                    &[period.to_owned()],
                    Utc::now(),
                )
                .await?
                {
                    println!(
                        "dashboard, marked closed: s3://{}/{key}",
                        s.exports.bucket()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(
            e @ (rollups::RollupError::AlreadyClosed { .. } | rollups::RollupError::Busy { .. }),
        ) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// Write a period's dashboard page to `out`.
pub async fn dashboard(
    s: &Stores,
    period: &str,
    version: Option<String>,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let Some(html) =
        leadsync_pipeline::dashboard::page(&s.store, period, version.as_deref(), Utc::now())
            .await?
    else {
        bail!("period {period} has no rollup rows (run a sync first?)");
    };
    std::fs::write(out, html).with_context(|| format!("writing {}", out.display()))?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn recompute(s: &Stores, period: &str) -> anyhow::Result<ExitCode> {
    let report = match rollups::recompute(
        &s.store,
        &BTreeSet::from([period.to_owned()]),
        Utc::now(),
    )
    .await
    {
        Ok(report) => report,
        Err(e @ rollups::RollupError::Busy { .. }) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    for (p, w) in &report.periods {
        println!(
            "{p}: {} rows written, {} deleted, {} unchanged; {} corrections",
            w.written, w.deleted, w.unchanged, report.corrections
        );
    }
    Ok(ExitCode::SUCCESS)
}
