//! Reading a document piece by piece so that every problem is reported at once — unknown
//! keys, wrong types, each located at `line:col` — and the errors that carry them.

use super::*;

// ---------------------------------------------------------------------------------------------
// Reading the document piece by piece, so that every problem is reported at once.

/// The top-level keys a document may have.
pub(super) const TOP_KEYS: &[&str] = &[
    "id",
    "fields",
    "version",
    "effective",
    "approved_by",
    "stages",
    "caps",
    "bands",
    "fit",
    "engagement",
    "disqualify",
    "crm",
    "incentives",
];

/// The array-of-tables sections, each entry with its span.
#[derive(Debug, Deserialize)]
pub(super) struct Lists {
    #[serde(default)]
    pub(super) bands: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) fit: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) engagement: Vec<toml::Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) disqualify: Vec<toml::Spanned<toml::Value>>,
}

/// Where in `text[span]` a key named in an error message stands; the span's start otherwise.
pub(super) fn locate(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let key = message.split('`').nth(1).filter(|k| !k.is_empty());
    let start = span.start.min(text.len());
    let end = span.end.clamp(start, text.len());
    key.and_then(|k| text.get(start..end)?.find(k).map(|at| start + at))
        .unwrap_or(start)
}

/// Where `key = …` stands in the table whose header is at `from`: the first line after it that
/// assigns the key, before the next header; `from` when there is none.
pub(super) fn key_in_table(text: &str, from: usize, key: &str) -> usize {
    let mut offset = from.min(text.len());
    let mut lines = text[offset..].split_inclusive('\n');
    // The header line itself.
    if let Some(first) = lines.next() {
        offset += first.len();
    }
    for line in lines {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return offset + (line.len() - trimmed.len());
        }
        offset += line.len();
    }
    from
}

/// One step of the path to a piece of the document: a key, or an entry of an array.
#[derive(Debug, Clone, Copy)]
pub(super) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The document's value at `path`, with the spans of everything inside it.
pub(super) fn find<'d, 'i>(
    root: &'d toml::de::DeTable<'i>,
    path: &[Step<'_>],
) -> Option<&'d toml::Spanned<toml::de::DeValue<'i>>> {
    let (first, rest) = path.split_first()?;
    let Step::Key(key) = first else {
        return None;
    };
    let mut at = root
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == *key)
        .map(|(_, v)| v)?;
    for step in rest {
        at = match step {
            Step::Key(key) => at
                .get_ref()
                .as_table()?
                .iter()
                .find(|(k, _)| k.get_ref().as_ref() == *key)
                .map(|(_, v)| v)?,
            Step::Index(i) => at.get_ref().as_array()?.get(*i)?,
        };
    }
    Some(at)
}

pub(super) struct Reader<'t> {
    pub(super) text: &'t str,
    /// The document as parsed, spans kept down to every key and value.
    pub(super) spanned: toml::de::DeTable<'t>,
    pub(super) issues: Vec<(usize, String)>,
}

impl Reader<'_> {
    /// Deserialize one piece; on failure record the problem where it stands — the offending
    /// key or value itself, read again from the spanned document at `path` — and give `None`.
    pub(super) fn piece<T: serde::de::DeserializeOwned>(
        &mut self,
        what: &str,
        path: &[Step<'_>],
        value: &toml::Value,
        span: std::ops::Range<usize>,
    ) -> Option<T> {
        match value.clone().try_into::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.message().to_owned();
                let precise = find(&self.spanned, path).and_then(|v| {
                    T::deserialize(toml::de::ValueDeserializer::from(v.clone()))
                        .err()
                        .and_then(|e| e.span())
                });
                let at = precise.map_or_else(|| locate(self.text, span, &message), |s| s.start);
                self.issues.push((at, format!("{what}: {message}")));
                None
            }
        }
    }
}

/// Read the document: syntax errors stop here (one issue); every other problem — unknown keys,
/// wrong types, then the semantic checks of `compile` — is collected and reported together.
pub(super) fn read_document(text: &str) -> Result<(Document, Vec<(usize, String)>), CriteriaIssue> {
    let syntax = |e: toml::de::Error| {
        let (line, column) = e.span().map_or((1, 1), |span| line_col(text, span.start));
        CriteriaIssue {
            line,
            column,
            message: e.message().to_owned(),
        }
    };
    let top: BTreeMap<String, toml::Spanned<toml::Value>> = toml::from_str(text).map_err(syntax)?;
    let lists: Lists = toml::from_str(text).map_err(syntax)?;
    let mut r = Reader {
        text,
        spanned: toml::de::DeTable::parse(text).map_err(syntax)?.into_inner(),
        issues: Vec::new(),
    };
    for (key, value) in &top {
        if !TOP_KEYS.contains(&key.as_str()) {
            let at = r
                .spanned
                .keys()
                .find(|k| k.get_ref().as_ref() == key.as_str())
                .map_or_else(
                    || locate(text, 0..text.len(), &format!("`{key}`")).min(value.span().start),
                    |k| k.span().start,
                );
            r.issues.push((
                at,
                format!(
                    "unknown key `{key}`, expected one of {}",
                    TOP_KEYS.join(", ")
                ),
            ));
        }
    }
    let required =
        |r: &mut Reader<'_>, key: &str| -> Option<(toml::Value, std::ops::Range<usize>)> {
            match top.get(key) {
                Some(v) => Some((v.get_ref().clone(), v.span())),
                None => {
                    r.issues.push((0, format!("missing key `{key}`")));
                    None
                }
            }
        };
    let text_field = |r: &mut Reader<'_>, key: &str, placeholder: &str| -> String {
        required(r, key)
            .and_then(|(v, span)| r.piece::<String>(key, &[Step::Key(key)], &v, span))
            .unwrap_or_else(|| placeholder.to_owned())
    };
    let id = text_field(&mut r, "id", "?");
    let version = text_field(&mut r, "version", "?");
    let effective = text_field(&mut r, "effective", "2000-01-01");
    let optional = |key: &str| top.get(key).map(|v| (v.get_ref().clone(), v.span()));
    let approved_by = optional("approved_by").and_then(|(v, span)| {
        r.piece::<ApprovedBy>("approved_by", &[Step::Key("approved_by")], &v, span.clone())
            .map(|a| toml::Spanned::new(span, a))
    });
    let caps = optional("caps")
        .and_then(|(v, span)| r.piece::<Caps>("caps", &[Step::Key("caps")], &v, span))
        .unwrap_or_default();
    let crm = optional("crm")
        .and_then(|(v, span)| r.piece::<CrmMapping>("crm", &[Step::Key("crm")], &v, span))
        .unwrap_or_default();
    let mut forward_at = BTreeMap::new();
    if let Some(table) = find(&r.spanned, &[Step::Key("crm"), Step::Key("forward")]) {
        forward_at.insert(String::new(), table.span().start);
        for (key, value) in table.get_ref().as_table().into_iter().flatten() {
            forward_at.insert(key.get_ref().to_string(), key.span().start);
            for (inner, _) in value.get_ref().as_table().into_iter().flatten() {
                forward_at.insert(
                    format!("{}.{}", key.get_ref(), inner.get_ref()),
                    inner.span().start,
                );
            }
        }
    }
    let incentives = optional("incentives").and_then(|(v, span)| {
        r.piece::<crate::incentives::IncentivesDoc>(
            "incentives",
            &[Step::Key("incentives")],
            &v,
            span.clone(),
        )
        .map(|doc| (doc, span.start))
    });

    let mut mapped = Vec::new();
    if let Some((value, span)) = optional("fields") {
        match value {
            toml::Value::Table(table) => {
                for (name, entry) in &table {
                    let at = find(&r.spanned, &[Step::Key("fields")])
                        .and_then(|v| v.get_ref().as_table())
                        .and_then(|t| t.keys().find(|k| k.get_ref().as_ref() == name.as_str()))
                        .map_or(span.start, |k| k.span().start);
                    if let Some(doc) = r.piece::<fields::FieldDoc>(
                        &format!("fields.{name}"),
                        &[Step::Key("fields"), Step::Key(name)],
                        entry,
                        span.clone(),
                    ) {
                        mapped.push((name.clone(), at, doc));
                    }
                }
            }
            _ => r.issues.push((
                span.start,
                "fields: must be a table ([fields], one entry per field: name = { object = \"contact\", property = \"…\", type = \"text\" })".to_owned(),
            )),
        }
    }

    // Stages: each threshold on its own, with a neutral placeholder when unreadable (so no
    // follow-on error is reported about it).
    let placeholder = (
        Threshold {
            min_fit: 0,
            min_total: 0,
        },
        Threshold {
            min_fit: 0,
            min_total: 1,
        },
    );
    let stages = match top.get("stages") {
        None => {
            r.issues.push((
                0,
                "missing key `stages` (with [stages.mql] and [stages.sql])".to_owned(),
            ));
            None
        }
        Some(spanned) => match spanned.get_ref() {
            toml::Value::Table(table) => {
                for key in table
                    .keys()
                    .filter(|k| !["mql", "sql", "recycled"].contains(&k.as_str()))
                {
                    let at = find(&r.spanned, &[Step::Key("stages")])
                        .and_then(|v| v.get_ref().as_table())
                        .and_then(|t| t.keys().find(|k| k.get_ref().as_ref() == key.as_str()))
                        .map_or_else(
                            || locate(text, spanned.span(), &format!("`{key}`")),
                            |k| k.span().start,
                        );
                    r.issues.push((
                        at,
                        format!("stages: unknown stage `{key}`, expected mql and sql"),
                    ));
                }
                let mut threshold =
                    |name: &str| -> Option<(toml::Spanned<Threshold>, Vec<String>)> {
                        let at = locate(text, 0..text.len(), &format!("`stages.{name}`"));
                        let span = at..text.len();
                        match table.get(name) {
                            None => {
                                r.issues.push((
                                    spanned.span().start,
                                    format!("stages: missing `{name}`"),
                                ));
                                None
                            }
                            Some(v) => r
                                .piece::<StageDoc>(
                                    &format!("stages.{name}"),
                                    &[Step::Key("stages"), Step::Key(name)],
                                    v,
                                    span.clone(),
                                )
                                .map(|d| {
                                    (
                                        toml::Spanned::new(
                                            span,
                                            Threshold {
                                                min_fit: d.min_fit,
                                                min_total: d.min_total,
                                            },
                                        ),
                                        d.require,
                                    )
                                }),
                        }
                    };
                match (threshold("mql"), threshold("sql")) {
                    (Some((mql, mql_require)), Some((sql, sql_require))) => {
                        let at = locate(text, 0..text.len(), "`stages.recycled`");
                        let recycled = table
                            .get("recycled")
                            .and_then(|v| {
                                r.piece::<RecycledDoc>(
                                    "stages.recycled",
                                    &[Step::Key("stages"), Step::Key("recycled")],
                                    v,
                                    at..text.len(),
                                )
                            })
                            .map(|d| d.lead_status)
                            .unwrap_or_default();
                        Some(Stages {
                            mql,
                            sql,
                            mql_require,
                            sql_require,
                            recycled,
                        })
                    }
                    _ => None,
                }
            }
            _ => {
                r.issues.push((
                    spanned.span().start,
                    "stages: must be a table ([stages.mql], [stages.sql])".to_owned(),
                ));
                None
            }
        },
    };
    let stages = stages.unwrap_or_else(|| Stages {
        mql: toml::Spanned::new(0..0, placeholder.0),
        sql: toml::Spanned::new(0..0, placeholder.1),
        mql_require: Vec::new(),
        sql_require: Vec::new(),
        recycled: Vec::new(),
    });
    let entries = |r: &mut Reader<'_>,
                   what: &str,
                   key: &str,
                   list: &[toml::Spanned<toml::Value>]|
     -> Vec<toml::Spanned<RuleDoc>> {
        list.iter()
            .enumerate()
            .filter_map(|(i, e)| {
                r.piece::<RuleDoc>(
                    what,
                    &[Step::Key(key), Step::Index(i)],
                    e.get_ref(),
                    e.span(),
                )
                .map(|rule| toml::Spanned::new(e.span(), rule))
            })
            .collect()
    };
    let fit = entries(&mut r, "fit rule", "fit", &lists.fit);
    let engagement = entries(&mut r, "engagement rule", "engagement", &lists.engagement);
    let disqualify = entries(&mut r, "disqualifier", "disqualify", &lists.disqualify);
    let mut bands: Vec<toml::Spanned<BandDoc>> = lists
        .bands
        .iter()
        .enumerate()
        .filter_map(|(i, e)| {
            r.piece::<BandDoc>(
                "band",
                &[Step::Key("bands"), Step::Index(i)],
                e.get_ref(),
                e.span(),
            )
            .map(|b| toml::Spanned::new(e.span(), b))
        })
        .collect();
    if bands.is_empty() && !lists.bands.is_empty() {
        // Every band was unreadable (already reported): a placeholder avoids a second error.
        bands.push(toml::Spanned::new(
            0..0,
            BandDoc {
                name: "?".into(),
                min_total: 0,
            },
        ));
    }
    let doc = Document {
        id,
        version,
        effective,
        approved_by,
        stages,
        caps,
        bands,
        fit,
        engagement,
        disqualify,
        crm,
        incentives,
        fields: mapped,
        forward_at,
    };
    Ok((doc, r.issues))
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// One problem in a criteria document, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriteriaIssue {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A criteria document that cannot be used: every problem found, each with its location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CriteriaError {
    pub source_name: String,
    pub issues: Vec<CriteriaIssue>,
}

impl fmt::Display for CriteriaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.source_name, issue.line, issue.column, issue.message
            )?;
        }
        Ok(())
    }
}

pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}
