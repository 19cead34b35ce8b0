//! SOQL over REST: `query`, `queryAll` and `queryMore` paging, and evaluating a parsed query
//! against the org's records.

use super::*;

#[derive(serde::Deserialize)]
pub(super) struct Q {
    pub(super) q: Option<String>,
}

pub(super) async fn query(
    state: State<Arc<AppState>>,
    version: UrlPath<String>,
    headers: HeaderMap,
    q: UrlQuery<Q>,
) -> Response {
    run_query(state, version, headers, q, false).await
}

pub(super) async fn query_all(
    state: State<Arc<AppState>>,
    version: UrlPath<String>,
    headers: HeaderMap,
    q: UrlQuery<Q>,
) -> Response {
    run_query(state, version, headers, q, true).await
}

pub(super) fn batch_size(headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().strip_prefix("batchSize="))
                .and_then(|n| n.trim().parse::<usize>().ok())
        })
        .map_or(2_000, |n| n.clamp(200, 2_000))
}

pub(super) async fn run_query(
    State(state): State<Arc<AppState>>,
    UrlPath(version): UrlPath<String>,
    headers: HeaderMap,
    UrlQuery(q): UrlQuery<Q>,
    all: bool,
) -> Response {
    if !version_ok(&version) {
        return not_found().await;
    }
    state.count(|c| c.queries += 1);
    let Some(text) = q.q.filter(|t| !t.trim().is_empty()) else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        );
    };
    let parsed = match parse_soql(&text) {
        Ok(p) => p,
        Err(e) => return *e,
    };
    let records = match execute(&state, &version, &parsed, all) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(records) = records else {
        // COUNT()
        let n = count(&state, &parsed, all);
        return json_response(
            StatusCode::OK,
            &json!({"totalSize": n, "done": true, "records": []}),
        );
    };
    page(
        &state,
        &version,
        Arc::new(records),
        0,
        batch_size(&headers),
        all,
    )
}

pub(super) fn page(
    state: &AppState,
    version: &str,
    records: Arc<Vec<Value>>,
    from: usize,
    batch: usize,
    all: bool,
) -> Response {
    let end = (from + batch).min(records.len());
    let mut body = json!({
        "totalSize": records.len(),
        "done": end >= records.len(),
        "records": records[from.min(end)..end].to_vec(),
    });
    if end < records.len() {
        let n = state.next_id.fetch_add(1, AtomicOrdering::Relaxed);
        let locator = ids::id("01g", n)[..15].to_owned();
        lock(&state.cursors).insert(locator.clone(), records.clone());
        let kind = if all { "queryAll" } else { "query" };
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/{kind}/{locator}-{end}"));
    }
    json_response(StatusCode::OK, &body)
}

pub(super) async fn query_more(
    State(state): State<Arc<AppState>>,
    UrlPath((version, locator)): UrlPath<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    state.count(|c| c.query_more += 1);
    let all = request.uri().path().contains("/queryAll/");
    let Some((cursor, from)) = locator
        .rsplit_once('-')
        .and_then(|(c, n)| Some((c.to_owned(), n.parse::<usize>().ok()?)))
    else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
    };
    let Some(records) = lock(&state.cursors).get(&cursor).cloned() else {
        return sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
    };
    page(&state, &version, records, from, batch_size(&headers), all)
}

/// The canonical name of a field the integration user can see.
pub(super) fn field_name(org: &Org, kind: &str, name: &str) -> Option<String> {
    org.schema
        .get(kind)?
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
        .filter(|f| !org.hidden.contains(&(kind.to_owned(), f.name.clone())))
        .map(|f| f.name.clone())
}

pub(super) fn resolve(org: &Org, kind: &'static str, path: &Path) -> Result<Resolved, String> {
    let no_column = |name: &str, on: &str| {
        format!(
            "No such column '{name}' on entity '{on}'. If you are attempting to use a custom \
             field, be sure to append the '__c' after the custom field name."
        )
    };
    match path.0.as_slice() {
        [field] => field_name(org, kind, field)
            .map(|f| (None, f))
            .ok_or_else(|| no_column(field, kind)),
        [rel, field] => {
            let (fk, target) = world::relationship(kind, rel)
                .ok_or_else(|| format!("Didn't understand relationship '{rel}' in field path."))?;
            let name = field_name(org, target, field).ok_or_else(|| no_column(field, target))?;
            let rel_name = fk.trim_end_matches("Id").to_owned();
            Ok((Some((fk.to_owned(), target, rel_name)), name))
        }
        _ => Err(format!(
            "Didn't understand relationship in field path '{}'.",
            path.text()
        )),
    }
}

pub(super) fn value_of(org: &Org, record: &SObject, resolved: &Resolved) -> Value {
    match &resolved.0 {
        None => record
            .fields
            .get(&resolved.1)
            .cloned()
            .unwrap_or(Value::Null),
        Some((fk, _, _)) => record
            .text(fk)
            .and_then(|id| org.records.get(id))
            .and_then(|p| p.fields.get(&resolved.1).cloned())
            .unwrap_or(Value::Null),
    }
}

pub(super) fn is_id_field(org: &Org, kind: &str, resolved: &Resolved) -> bool {
    let on = resolved.0.as_ref().map_or(kind, |(_, k, _)| k);
    org.schema
        .get(on)
        .and_then(|fs| fs.iter().find(|f| f.name == resolved.1))
        .is_some_and(|f| f.kind == "id" || f.kind == "reference")
}

pub(super) fn matches(
    org: &Org,
    kind: &'static str,
    record: &SObject,
    cond: &Cond,
) -> Result<bool, String> {
    Ok(match cond {
        Cond::And(a, b) => matches(org, kind, record, a)? && matches(org, kind, record, b)?,
        Cond::Or(a, b) => matches(org, kind, record, a)? || matches(org, kind, record, b)?,
        Cond::Not(a) => !matches(org, kind, record, a)?,
        Cond::Compare(path, op, lit) => {
            let r = resolve(org, kind, path)?;
            let value = value_of(org, record, &r);
            let ord = soql::compare(&value, lit, is_id_field(org, kind, &r));
            match op {
                Op::Eq => ord == Some(Ordering::Equal),
                Op::Ne => ord != Some(Ordering::Equal),
                Op::Lt => ord == Some(Ordering::Less),
                Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                Op::Gt => ord == Some(Ordering::Greater),
                Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            }
        }
        Cond::In(path, values, negated) => {
            let r = resolve(org, kind, path)?;
            let value = value_of(org, record, &r);
            let id = is_id_field(org, kind, &r);
            let found = values.iter().any(|lit| {
                // An 18-character Id matches its 15-character form.
                let lit = match (lit, id) {
                    (Literal::Text(t), true) if t.len() == 15 => {
                        Literal::Text(format!("{t}{}", ids::checksum(t)))
                    }
                    _ => lit.clone(),
                };
                soql::compare(&value, &lit, id) == Some(Ordering::Equal)
            });
            found != *negated
        }
        Cond::Like(path, pattern) => {
            let r = resolve(org, kind, path)?;
            value_of(org, record, &r)
                .as_str()
                .is_some_and(|v| soql::like(v, pattern))
        }
    })
}

pub(super) fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => {
            match (soql::parse_datetime(x), soql::parse_datetime(y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => x.cmp(y),
            }
        }
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

pub(super) fn invalid_field(message: String) -> Box<Response> {
    Box::new(sf_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", message))
}

pub(super) fn selected(
    state: &AppState,
    q: &Query,
    all: bool,
) -> Answer<(&'static str, Vec<SObject>)> {
    let Some(kind) = world::object(&q.from) else {
        return Err(Box::new(sf_error(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!(
                "sObject type '{}' is not supported. If you are attempting to use a custom \
                 object, be sure to append the '__c' after the entity name.",
                q.from
            ),
        )));
    };
    if q.offset.is_some_and(|o| o > 2_000) {
        return Err(Box::new(sf_error(
            StatusCode::BAD_REQUEST,
            "NUMBER_OUTSIDE_VALID_RANGE",
            "Maximum SOQL offset allowed is 2000",
        )));
    }
    let org = state.org();
    let mut out = Vec::new();
    for r in org.records.values().filter(|r| r.kind == kind) {
        if !all && r.flag("IsDeleted") {
            continue;
        }
        if let Some(cond) = &q.filter {
            if !matches(&org, kind, r, cond).map_err(invalid_field)? {
                continue;
            }
        }
        out.push(r.clone());
    }
    if !q.order.is_empty() {
        let keys: Vec<(Resolved, bool, Option<bool>)> = q
            .order
            .iter()
            .map(|(p, asc, nulls)| Ok((resolve(&org, kind, p)?, *asc, *nulls)))
            .collect::<Result<_, String>>()
            .map_err(invalid_field)?;
        out.sort_by(|a, b| {
            for (r, asc, nulls) in &keys {
                let (x, y) = (value_of(&org, a, r), value_of(&org, b, r));
                // Nulls first ascending, last descending, unless said otherwise.
                let nulls_first = nulls.unwrap_or(*asc);
                let ord = match (x.is_null(), y.is_null()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => {
                        if nulls_first {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if nulls_first {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    _ => {
                        let o = cmp_values(&x, &y);
                        if *asc { o } else { o.reverse() }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let skip = q.offset.unwrap_or(0);
    let out: Vec<SObject> = out
        .into_iter()
        .skip(skip)
        .take(q.limit.unwrap_or(usize::MAX))
        .collect();
    Ok((kind, out))
}

pub(super) fn count(state: &AppState, q: &Query, all: bool) -> usize {
    selected(state, q, all).map_or(0, |(_, r)| r.len())
}
