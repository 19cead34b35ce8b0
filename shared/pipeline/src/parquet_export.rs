//! Finance's exports as Parquet, for Athena: the incentive rows with their corrections, every
//! statement line, and the month's KPI rows — typed columns (money as `DECIMAL(18,2)` over
//! integer cents, exact; times as UTC millisecond timestamps; currencies as ISO codes).
//!
//! One row group per file (a period's exports are small); no compression codec (none is built).

use crate::rollups::RollupError;
use leadsync_domain::rollup::{
    DAILY, Kpi, RollupRow, RowBody, StatementLine, correction_rows, incentive_rows,
};
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One column of a table: its schema line and its values (`None`: null, for optional ones).
enum Column {
    Text(&'static str, bool, Vec<Option<String>>),
    /// `logical`: `DECIMAL(18,2)`, `TIMESTAMP(MILLIS,true)` or empty for a plain integer.
    Int(&'static str, bool, &'static str, Vec<Option<i64>>),
}

impl Column {
    fn schema(&self) -> String {
        let (name, optional) = match self {
            Column::Text(n, o, _) | Column::Int(n, o, _, _) => (n, o),
        };
        let rep = if *optional { "OPTIONAL" } else { "REQUIRED" };
        match self {
            Column::Text(..) => format!("{rep} BYTE_ARRAY {name} (STRING);"),
            Column::Int(_, _, "", _) => format!("{rep} INT64 {name};"),
            Column::Int(_, _, logical, _) => format!("{rep} INT64 {name} ({logical});"),
        }
    }
}

fn parquet_err(e: parquet::errors::ParquetError) -> RollupError {
    RollupError::Csv(format!("writing Parquet: {e}"))
}

/// Values and definition levels of an optional column (only present values are written).
fn split<T: Clone>(values: &[Option<T>]) -> (Vec<T>, Vec<i16>) {
    let present = values.iter().flatten().cloned().collect();
    let levels = values.iter().map(|v| i16::from(v.is_some())).collect();
    (present, levels)
}

fn write(columns: &[Column]) -> Result<Vec<u8>, RollupError> {
    let message = format!(
        "message leadsync {{ {} }}",
        columns
            .iter()
            .map(Column::schema)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let schema = Arc::new(parse_message_type(&message).map_err(parquet_err)?);
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(Vec::new(), schema, props).map_err(parquet_err)?;
    let mut group = writer.next_row_group().map_err(parquet_err)?;
    for column in columns {
        let Some(mut w) = group.next_column().map_err(parquet_err)? else {
            break;
        };
        match column {
            Column::Text(_, optional, values) => {
                let (present, levels) = split(values);
                let bytes: Vec<ByteArray> = present
                    .iter()
                    .map(|s| ByteArray::from(s.as_str()))
                    .collect();
                w.typed::<ByteArrayType>()
                    .write_batch(&bytes, optional.then_some(levels.as_slice()), None)
                    .map_err(parquet_err)?;
            }
            Column::Int(_, optional, _, values) => {
                let (present, levels) = split(values);
                w.typed::<Int64Type>()
                    .write_batch(&present, optional.then_some(levels.as_slice()), None)
                    .map_err(parquet_err)?;
            }
        }
        w.close().map_err(parquet_err)?;
    }
    group.close().map_err(parquet_err)?;
    writer.into_inner().map_err(parquet_err)
}

/// The columns of a Parquet file as Athena reads them (Hive types: `string`, `bigint`,
/// `decimal(p,s)`, `timestamp`), in file order — what the template's Glue tables must declare.
///
/// # Errors
/// [`RollupError::Csv`] when the bytes are not Parquet or a column has a type these exports
/// never write.
pub fn athena_columns(file: &[u8]) -> Result<Vec<(String, String)>, RollupError> {
    use parquet::basic::{ConvertedType, LogicalType, Type};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader =
        SerializedFileReader::new(bytes::Bytes::copy_from_slice(file)).map_err(parquet_err)?;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    schema
        .columns()
        .iter()
        .map(|c| {
            // The logical type where the writer set one, else the legacy converted type.
            let hive = match (c.physical_type(), c.logical_type_ref(), c.converted_type()) {
                (Type::BYTE_ARRAY, Some(LogicalType::String), _)
                | (Type::BYTE_ARRAY, None, ConvertedType::UTF8) => "string".to_owned(),
                (Type::INT64, None, ConvertedType::NONE) => "bigint".to_owned(),
                (Type::INT64, Some(LogicalType::Decimal { scale, precision }), _) => {
                    format!("decimal({precision},{scale})")
                }
                (Type::INT64, None, ConvertedType::DECIMAL) => {
                    format!("decimal({},{})", c.type_precision(), c.type_scale())
                }
                (Type::INT64, Some(LogicalType::Timestamp { .. }), _)
                | (Type::INT64, None, ConvertedType::TIMESTAMP_MILLIS) => "timestamp".to_owned(),
                (physical, logical, converted) => {
                    return Err(RollupError::Csv(format!(
                        "Parquet column {} is {physical:?} {logical:?} {converted:?}, which no \
                         export writes",
                        c.name()
                    )));
                }
            };
            Ok((c.name().to_owned(), hive))
        })
        .collect()
}

fn text(v: impl Into<String>) -> Option<String> {
    Some(v.into())
}

/// Incentive rows of `version`, then the corrections posted to the period (`kind` tells them
/// apart): what the CSV holds, typed.
///
/// # Errors
/// [`RollupError::Csv`] when the writer fails.
pub fn incentives(
    period: &str,
    version: &str,
    currency: &str,
    rows: &[RollupRow],
) -> Result<Vec<u8>, RollupError> {
    let (incentives, _) = incentive_rows(rows, version);
    let corrections = correction_rows(rows);
    let n = incentives.len() + corrections.len();
    let mut kind = Vec::with_capacity(n);
    let (mut team, mut owner, mut closed, mut credits, mut lineage, mut facts) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut outcomes: [Vec<Option<i64>>; 4] = Default::default();
    const OUTCOMES: [&str; 4] = ["sql", "sales_accepted", "opportunity", "won"];
    for i in &incentives {
        kind.push(text("row"));
        team.push(text(i.team.as_str()));
        owner.push(text(i.owner.clone()));
        closed.push(None);
        credits.push(Some(i.credits_cents));
        facts.push(Some(i64::try_from(i.facts).unwrap_or(i64::MAX)));
        lineage.push(text(i.lineage.clone()));
        for (k, o) in OUTCOMES.iter().enumerate() {
            outcomes[k].push(Some(i.outcomes.get(*o).copied().unwrap_or(0)));
        }
    }
    for c in &corrections {
        kind.push(text("correction"));
        team.push(None);
        owner.push(text(c.row.clone()));
        closed.push(text(c.closed_period.clone()));
        credits.push(Some(c.delta_credits_cents));
        facts.push(None);
        lineage.push(text(c.lineage.clone()));
        for o in &mut outcomes {
            o.push(None);
        }
    }
    let [sql, accepted, opportunity, won] = outcomes;
    write(&[
        Column::Text("period", false, vec![text(period); n]),
        Column::Text("criteria_version", false, vec![text(version); n]),
        Column::Text("kind", false, kind),
        Column::Text("team", true, team),
        Column::Text("owner", false, owner),
        Column::Text("closed_period", true, closed),
        Column::Text("currency", false, vec![text(currency); n]),
        Column::Int("credits", false, "DECIMAL(18,2)", credits),
        Column::Int("sql", true, "", sql),
        Column::Int("sales_accepted", true, "", accepted),
        Column::Int("opportunity", true, "", opportunity),
        Column::Int("won", true, "", won),
        Column::Int("facts", true, "", facts),
        Column::Text("lineage", false, lineage),
    ])
}

/// Every statement line.
///
/// # Errors
/// [`RollupError::Csv`] when the writer fails.
pub fn statements(
    period: &str,
    currency: &str,
    lines: &[StatementLine],
) -> Result<Vec<u8>, RollupError> {
    let n = lines.len();
    let col = |f: &dyn Fn(&StatementLine) -> Option<String>| lines.iter().map(f).collect();
    let int = |f: &dyn Fn(&StatementLine) -> Option<i64>| lines.iter().map(f).collect();
    write(&[
        Column::Text("period", false, vec![text(period); n]),
        Column::Text(
            "criteria_version",
            false,
            col(&|l| text(l.criteria_version.clone())),
        ),
        Column::Text("team", false, col(&|l| text(l.team.as_str()))),
        Column::Text("owner", false, col(&|l| text(l.owner.clone()))),
        Column::Text("outcome", false, col(&|l| text(l.outcome.as_str()))),
        Column::Int(
            "occurred_at",
            false,
            "TIMESTAMP(MILLIS,true)",
            int(&|l| Some(l.occurred_at.timestamp_millis())),
        ),
        Column::Text("leads", false, col(&|l| text(l.leads.join(" ")))),
        Column::Text("deal_id", true, col(&|l| l.deal_id.clone())),
        Column::Int(
            "deal_amount",
            true,
            "DECIMAL(18,2)",
            int(&|l| l.amount_cents),
        ),
        Column::Text("deal_currency", true, col(&|l| l.currency.clone())),
        Column::Int("share", false, "", int(&|l| Some(i64::from(l.share[0])))),
        Column::Int("share_of", false, "", int(&|l| Some(i64::from(l.share[1])))),
        Column::Text("currency", false, vec![text(currency); n]),
        Column::Int(
            "credit",
            false,
            "DECIMAL(18,2)",
            int(&|l| Some(l.credit_cents)),
        ),
        Column::Text("reasons", false, col(&|l| text(l.reasons.join(" ")))),
        Column::Text("note", true, col(&|l| l.note.clone())),
    ])
}

/// The period's KPI rows of `version` (every grain and dimension).
///
/// # Errors
/// [`RollupError::Csv`] when the writer fails.
pub fn kpis(period: &str, version: &str, rows: &[RollupRow]) -> Result<Vec<u8>, RollupError> {
    // A `daily` row (a month's series in one stored row) is exported a row a day, grain
    // `day:<YYYY-MM-DD>`, so the file reads the same however the rows are stored.
    let kpis: Vec<Kpi> = rows
        .iter()
        .filter_map(|r| match r.parse() {
            Ok(RowBody::Kpi(k)) if k.criteria_version == version => Some(k),
            _ => None,
        })
        .flat_map(|k| {
            if k.grain == DAILY {
                k.days()
                    .map(|(day, n)| Kpi {
                        grain: format!("day:{day}"),
                        value: n,
                        base: 0,
                        detail: BTreeMap::new(),
                        ..k.clone()
                    })
                    .collect()
            } else {
                vec![k]
            }
        })
        .collect();
    let n = kpis.len();
    write(&[
        Column::Text("period", false, vec![text(period); n]),
        Column::Text("criteria_version", false, vec![text(version); n]),
        Column::Text(
            "grain",
            false,
            kpis.iter().map(|k| text(k.grain.clone())).collect(),
        ),
        Column::Text(
            "metric",
            false,
            kpis.iter().map(|k| text(k.metric.clone())).collect(),
        ),
        Column::Text(
            "dimension",
            false,
            kpis.iter().map(|k| text(k.dimension.clone())).collect(),
        ),
        Column::Int(
            "value",
            false,
            "",
            kpis.iter().map(|k| Some(k.value)).collect(),
        ),
        Column::Int(
            "base",
            false,
            "",
            kpis.iter().map(|k| Some(k.base)).collect(),
        ),
    ])
}
