//! The finance export of a period under one criteria version: the incentive and statement
//! CSVs (RFC 4180, control totals last), the same as Parquet with the KPI table, and each
//! file's SHA-256.

use super::{RollupError, statements, store};
use leadsync_domain::ports::RollupStore;
use leadsync_domain::rollup::{ControlTotals, RollupRow, StatementLine, incentive_rows};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// One file of a period's finance export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// Under `exports/<period>/`.
    pub name: String,
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub content_type: &'static str,
    /// Also under `athena/<table>/period=<period>/<version>.parquet`, where the Glue tables
    /// read (Parquet only: Athena must not meet the CSVs beside them).
    pub athena_table: Option<&'static str>,
}

/// Every file of a period's finance export under one criteria version: the incentive CSV
/// (corrections, then the control-totals row) and the statements CSV, and the same as Parquet
/// with the KPI table — each with its SHA-256. The incentive [`Export`] (control totals) too.
///
/// # Errors
/// [`RollupError`].
pub async fn export_files<S: RollupStore>(
    store: &S,
    period: &str,
    version: &str,
    currency: &str,
) -> Result<(Export, Vec<ExportFile>), RollupError> {
    let rows = store
        .rows(period)
        .await
        .map_err(self::store("reading rows", period))?;
    let incentives = export(period, version, currency, &rows)?;
    let lines = statements(store, period, version).await?;
    let csv = |name: String, bytes: Vec<u8>| ExportFile {
        name,
        sha256: sha256_hex(&bytes),
        bytes,
        content_type: "text/csv; charset=utf-8; header=present",
        athena_table: None,
    };
    let parquet = |name: String, bytes: Vec<u8>, table| ExportFile {
        name,
        sha256: sha256_hex(&bytes),
        bytes,
        content_type: "application/vnd.apache.parquet",
        athena_table: Some(table),
    };
    let files = vec![
        csv(format!("incentives-{version}.csv"), incentives.csv.clone()),
        csv(
            format!("statements-{version}.csv"),
            statements_csv(period, currency, &lines)?,
        ),
        parquet(
            format!("incentives-{version}.parquet"),
            crate::parquet_export::incentives(period, version, currency, &rows)?,
            "incentives",
        ),
        parquet(
            format!("statements-{version}.parquet"),
            crate::parquet_export::statements(period, currency, &lines)?,
            "statements",
        ),
        parquet(
            format!("kpis-{version}.parquet"),
            crate::parquet_export::kpis(period, version, &rows)?,
            "kpis",
        ),
    ];
    Ok((incentives, files))
}

/// Statement lines as RFC 4180 CSV (one line per credited item, a total per owner last).
///
/// # Errors
/// [`RollupError::Csv`].
pub fn statements_csv(
    period: &str,
    currency: &str,
    lines: &[StatementLine],
) -> Result<Vec<u8>, RollupError> {
    let csv_err = |e: csv::Error| RollupError::Csv(e.to_string());
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record([
        "period",
        "criteria_version",
        "team",
        "owner",
        "outcome",
        "occurred_at",
        "leads",
        "deal_id",
        "deal_amount",
        "deal_currency",
        "share",
        "currency",
        "credit",
        "reasons",
        "note",
        "facts",
    ])
    .map_err(csv_err)?;
    let mut totals: BTreeMap<(String, String), i64> = BTreeMap::new();
    for l in lines {
        *totals
            .entry((l.team.as_str().to_owned(), l.owner.clone()))
            .or_default() += l.credit_cents;
        w.write_record([
            period,
            &l.criteria_version,
            l.team.as_str(),
            &l.owner,
            l.outcome.as_str(),
            &l.occurred_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            &l.leads.join(" "),
            l.deal_id.as_deref().unwrap_or(""),
            &l.amount_cents.map(money).unwrap_or_default(),
            l.currency.as_deref().unwrap_or(""),
            &format!("{}/{}", l.share[0], l.share[1]),
            currency,
            &money(l.credit_cents),
            &l.reasons.join(" "),
            l.note.as_deref().unwrap_or(""),
            &l.facts.join(" "),
        ])
        .map_err(csv_err)?;
    }
    for ((team, owner), cents) in totals {
        w.write_record([
            period,
            "",
            &team,
            &owner,
            "TOTAL",
            "",
            "",
            "",
            "",
            "",
            "",
            currency,
            &money(cents),
            "",
            "",
            "",
        ])
        .map_err(csv_err)?;
    }
    w.into_inner().map_err(|e| RollupError::Csv(e.to_string()))
}

/// Hex SHA-256 of bytes (what an export's `.sha256` holds).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `1234` cents → `"12.34"`; `-5` → `"-0.05"`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A finance export: RFC 4180 CSV of a period's incentive rows under one criteria version,
/// a control-totals row last, and the SHA-256 of the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub csv: Vec<u8>,
    pub sha256: String,
    pub totals: ControlTotals,
}

/// The outcomes exported as columns, in order.
const OUTCOME_COLUMNS: [&str; 5] = [
    "sql",
    "sales_accepted",
    "sales_rejected",
    "opportunity",
    "won",
];

/// Render the export.
///
/// # Errors
/// [`RollupError::Csv`] if the writer fails (it writes to memory).
pub fn export(
    period: &str,
    version: &str,
    currency: &str,
    rows: &[RollupRow],
) -> Result<Export, RollupError> {
    let (incentives, totals) = incentive_rows(rows, version);
    let csv_err = |e: csv::Error| RollupError::Csv(e.to_string());
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let mut header = vec![
        "period",
        "criteria_version",
        "team",
        "owner",
        "currency",
        "credits",
    ];
    header.extend(OUTCOME_COLUMNS);
    header.extend(["facts", "lineage"]);
    w.write_record(&header).map_err(csv_err)?;
    for i in &incentives {
        let mut record = vec![
            period.to_owned(),
            i.criteria_version.clone(),
            i.team.as_str().to_owned(),
            i.owner.clone(),
            currency.to_owned(),
            money(i.credits_cents),
        ];
        record.extend(
            OUTCOME_COLUMNS
                .iter()
                .map(|o| i.outcomes.get(*o).copied().unwrap_or(0).to_string()),
        );
        record.extend([i.facts.to_string(), i.lineage.clone()]);
        w.write_record(&record).map_err(csv_err)?;
    }
    // Corrections posted here for closed periods: what finance pays on top of (or back from)
    // what it paid when it closed them.
    for c in leadsync_domain::rollup::correction_rows(rows) {
        if c.delta_credits_cents == 0 && !c.row.starts_with("INC#") {
            continue;
        }
        let mut record = vec![
            period.to_owned(),
            version.to_owned(),
            "correction".to_owned(),
            format!("{} {}", c.closed_period, c.row),
            currency.to_owned(),
            money(c.delta_credits_cents),
        ];
        record.extend(OUTCOME_COLUMNS.iter().map(|_| String::new()));
        record.extend([String::new(), c.lineage.clone()]);
        w.write_record(&record).map_err(csv_err)?;
    }
    let mut total = vec![
        period.to_owned(),
        version.to_owned(),
        "TOTAL".to_owned(),
        format!("{} rows", totals.rows),
        currency.to_owned(),
        money(totals.credits_cents),
    ];
    total.extend(
        OUTCOME_COLUMNS
            .iter()
            .map(|o| totals.outcomes.get(*o).copied().unwrap_or(0).to_string()),
    );
    total.extend([
        totals.facts.to_string(),
        format!("corrections {}", money(totals.corrections_cents)),
    ]);
    w.write_record(&total).map_err(csv_err)?;
    let csv = w
        .into_inner()
        .map_err(|e| RollupError::Csv(e.to_string()))?;
    let sha256 = sha256_hex(&csv);
    Ok(Export {
        csv,
        sha256,
        totals,
    })
}
