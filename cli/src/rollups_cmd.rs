//! `leadsync rollups show|export|close|recompute`: finance's view of the KPI and incentive
//! rollups in DynamoDB (table and bucket from the environment or flags, like `criteria publish`).

use anyhow::{Context as _, bail};
use chrono::Utc;
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::{RowBody, funnel, incentive_rows};
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
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build(),
    );
    Stores {
        store: DynamoLeadStore::new(aws_sdk_dynamodb::Client::new(&sdk), table, "hubspot"),
        exports: S3SnapshotStore::new(s3, bucket),
    }
}

/// The criteria version to report: the one given, else the one with the most incentive rows.
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
            None => bail!("period {period} has no incentive rows (run a sync first?)"),
        },
    };
    let currency = plans
        .get(&version)
        .map_or_else(|| "USD".to_owned(), |p| p.currency.clone());
    Ok((version, currency))
}

pub async fn show(
    s: &Stores,
    period: &str,
    version: Option<String>,
    format: Format,
    points: f64,
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
            println!("Shared incentives ({currency})");
            println!("| team | owner | credits | sql | accepted | opportunity | won | facts |");
            println!("|---|---|---|---|---|---|---|---|");
            let (incentives, totals) = incentive_rows(&rows, &version);
            for i in &incentives {
                let n = |k: &str| i.outcomes.get(k).copied().unwrap_or(0);
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} |",
                    i.team.as_str(),
                    i.owner,
                    rollups::money(i.credits_cents),
                    n("sql"),
                    n("sales_accepted"),
                    n("opportunity"),
                    n("won"),
                    i.facts
                );
            }
            println!(
                "| TOTAL | {} rows | {} | | | | | {} |",
                totals.rows,
                rollups::money(totals.credits_cents),
                totals.facts
            );
            if totals.corrections_cents != 0 {
                println!(
                    "corrections posted here for closed periods: {}",
                    rollups::money(totals.corrections_cents)
                );
            }
            println!();
            println!("KPIs (all leads)");
            println!("| metric | value | base | rate |");
            println!("|---|---|---|---|");
            for row in &rows {
                if let Ok(RowBody::Kpi(k)) = row.parse()
                    && k.criteria_version == version
                    && k.grain == "month"
                    && k.dimension == "all"
                {
                    let rate = if k.base > 0 && !k.metric.starts_with("reached") {
                        format!("{:.1}%", 100.0 * k.value as f64 / k.base as f64)
                    } else {
                        String::new()
                    };
                    println!("| {} | {} | {} | {rate} |", k.metric, k.value, k.base);
                }
            }
            println!();
            println!(
                "Funnel reality check: loss per stage, and revenue gained if a step converted {points} points better"
            );
            println!(
                "| step | entered | advanced | lost leaving | top loss reasons | revenue gain |"
            );
            println!("|---|---|---|---|---|---|");
            for step in funnel(&rows, &version, points) {
                println!(
                    "| {} → {} | {} | {} | {:.1}% | {} | {} |",
                    step.from,
                    step.to,
                    step.entered,
                    step.advanced,
                    step.loss_pct,
                    step.top_loss_reasons
                        .iter()
                        .map(|(r, n)| format!("{r} ({n})"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    step.revenue_gain_cents
                        .map_or("n/a".to_owned(), |c| format!(
                            "{currency} {}",
                            rollups::money(c)
                        ))
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(s: &Stores, period: &str, version: Option<String>) -> anyhow::Result<ExitCode> {
    let rows = s.store.rows(period).await?;
    let (version, currency) = version_of(&s.store, period, &rows, version).await?;
    let export = rollups::export(period, &version, &currency, &rows)?;
    let name = format!("incentives-{version}.csv");
    let key = s
        .exports
        .put_export(period, &name, export.csv, &export.sha256)
        .await
        .context("writing the export to S3")?;
    println!(
        "s3://{}/{key} ({} rows, credits {} {}, sha256 {}; checksum in {key}.sha256)",
        s.exports.bucket(),
        export.totals.rows,
        currency,
        rollups::money(export.totals.credits_cents),
        export.sha256
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn close(s: &Stores, period: &str, by: &str) -> anyhow::Result<ExitCode> {
    match rollups::close(&s.store, period, by, Utc::now()).await {
        Ok(status) => {
            println!(
                "{period} closed by {by}: {} rows frozen, credits {}, {} facts",
                status.rows,
                rollups::money(status.credits_cents),
                status.facts
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ rollups::RollupError::AlreadyClosed { .. }) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn recompute(s: &Stores, period: &str) -> anyhow::Result<ExitCode> {
    let report = rollups::refresh(&s.store, &BTreeSet::from([period.to_owned()])).await?;
    for (p, w) in &report.periods {
        println!(
            "{p}: {} rows written, {} deleted, {} unchanged; {} corrections",
            w.written, w.deleted, w.unchanged, report.corrections
        );
    }
    Ok(ExitCode::SUCCESS)
}
