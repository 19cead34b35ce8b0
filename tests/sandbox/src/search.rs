//! The CRM search endpoint's semantics: filter groups, one sort, `limit`, string `after`, and
//! the 10,000-result ceiling, as HubSpot documents them.

use crate::data::Record;
use serde::Deserialize;
use serde_json::Value;
use std::cmp::Ordering;

/// The most results one search query can page through.
pub const MAX_RESULTS: usize = 10_000;
pub const MAX_LIMIT: i64 = 200;
pub const MAX_BODY_CHARS: usize = 3_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    #[serde(default)]
    pub filter_groups: Vec<FilterGroup>,
    /// One AND group given directly (accepted by HubSpot, sent by some clients).
    #[serde(default)]
    pub filters: Vec<Filter>,
    #[serde(default)]
    pub sorts: Vec<Value>,
    #[serde(default)]
    pub properties: Vec<String>,
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub after: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct FilterGroup {
    #[serde(default)]
    pub filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub high_value: Option<Value>,
    #[serde(default)]
    pub values: Option<Vec<Value>>,
}

/// A request HubSpot would answer with 400, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

/// The page a valid search returns.
#[derive(Debug)]
pub struct Page<'a> {
    pub total: usize,
    pub results: Vec<&'a Record>,
    pub next_after: Option<usize>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form the sandbox writes, as epoch milliseconds — without
/// the general RFC 3339 parser, which a search would otherwise run once per record and filter.
fn fixed_iso_millis(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() != 24 || b[23] != b'Z' {
        return None;
    }
    let mut n = [0u32; 7];
    let fields = [(0, 4), (5, 2), (8, 2), (11, 2), (14, 2), (17, 2), (20, 3)];
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if separators.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    for (slot, &(start, len)) in n.iter_mut().zip(&fields) {
        for &c in &b[start..start + len] {
            if !c.is_ascii_digit() {
                return None;
            }
            *slot = *slot * 10 + u32::from(c - b'0');
        }
    }
    let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(n[0]).ok()?, n[1], n[2])?;
    let time = chrono::NaiveTime::from_hms_milli_opt(n[3], n[4], n[5], n[6])?;
    Some(date.and_time(time).and_utc().timestamp_millis() as f64)
}

/// A property value as a number: numbers as they are, ISO dates as epoch milliseconds.
fn as_number(s: &str) -> Option<f64> {
    fixed_iso_millis(s)
        .or_else(|| s.parse::<f64>().ok())
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.timestamp_millis() as f64)
        })
}

/// A filter's value, read once per search rather than once per record.
struct Wanted {
    lower: String,
    number: Option<f64>,
}

impl Wanted {
    fn new(v: &Value) -> Self {
        let text = text(v);
        Self {
            lower: text.to_lowercase(),
            number: text.parse::<f64>().ok(),
        }
    }
}

fn compare(stored: &str, wanted: &Wanted) -> Ordering {
    match (wanted.number.and_then(|_| as_number(stored)), wanted.number) {
        (Some(a), Some(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        _ => stored.to_lowercase().cmp(&wanted.lower),
    }
}

/// A filter with its values read.
struct Compiled<'f> {
    filter: &'f Filter,
    value: Wanted,
    high: Wanted,
    values: Vec<Wanted>,
}

impl<'f> Compiled<'f> {
    fn new(filter: &'f Filter) -> Self {
        let wanted = |v: Option<&Value>| Wanted::new(v.unwrap_or(&Value::String(String::new())));
        Self {
            filter,
            value: wanted(filter.value.as_ref()),
            high: wanted(filter.high_value.as_ref()),
            values: filter
                .values
                .as_deref()
                .unwrap_or_default()
                .iter()
                .map(Wanted::new)
                .collect(),
        }
    }
}

/// The lowest contact id a search can match when its only filter group bounds `hs_object_id`
/// from below (`GT` / `GTE`): the server then walks its id-ordered table from there.
pub fn id_lower_bound(req: &SearchRequest) -> Option<u64> {
    let [group] = req.filter_groups.as_slice() else {
        return None;
    };
    group
        .filters
        .iter()
        .filter(|f| f.property_name == "hs_object_id")
        .filter_map(|f| {
            let v = f.value.as_ref().map(text)?.parse::<f64>().ok()?;
            match f.operator.as_str() {
                "GT" if v >= 0.0 => Some(v.floor() as u64 + 1),
                "GTE" if v >= 0.0 => Some(v.ceil() as u64),
                _ => None,
            }
        })
        .max()
}

fn check_filter(f: &Filter) -> Result<(), Invalid> {
    let needs_value = [
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    ];
    let op = f.operator.as_str();
    if needs_value.contains(&op) && f.value.is_none() {
        return Err(Invalid(format!(
            "filter on {} with operator {op} needs a value",
            f.property_name
        )));
    }
    match op {
        "BETWEEN" if f.high_value.is_none() => Err(Invalid("BETWEEN needs highValue".into())),
        "IN" | "NOT_IN" if f.values.is_none() => Err(Invalid(format!("{op} needs values"))),
        "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" | "BETWEEN" | "IN" | "NOT_IN"
        | "HAS_PROPERTY" | "NOT_HAS_PROPERTY" | "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => Ok(()),
        other => Err(Invalid(format!("Unsupported operator {other}"))),
    }
}

fn matches(record: &Record, c: &Compiled<'_>) -> bool {
    let f = c.filter;
    let stored = record
        .properties
        .get(&f.property_name)
        .filter(|v| !v.is_empty());
    let cmp = |s: &String| compare(s, &c.value);
    match f.operator.as_str() {
        "HAS_PROPERTY" => stored.is_some(),
        "NOT_HAS_PROPERTY" => stored.is_none(),
        "NEQ" => stored.is_none_or(|s| cmp(s) != Ordering::Equal),
        "NOT_IN" => {
            stored.is_none_or(|s| c.values.iter().all(|v| compare(s, v) != Ordering::Equal))
        }
        op => {
            let Some(s) = stored else { return false };
            match op {
                "EQ" => cmp(s) == Ordering::Equal,
                "LT" => cmp(s) == Ordering::Less,
                "LTE" => cmp(s) != Ordering::Greater,
                "GT" => cmp(s) == Ordering::Greater,
                "GTE" => cmp(s) != Ordering::Less,
                "BETWEEN" => cmp(s) != Ordering::Less && compare(s, &c.high) != Ordering::Greater,
                "IN" => c.values.iter().any(|v| compare(s, v) == Ordering::Equal),
                "CONTAINS_TOKEN" => s.to_lowercase().contains(&c.value.lower.replace('*', "")),
                "NOT_CONTAINS_TOKEN" => !s.to_lowercase().contains(&c.value.lower.replace('*', "")),
                _ => false,
            }
        }
    }
}

/// A valid request's paging and sort.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub after: usize,
    pub limit: usize,
    pub sort_property: String,
    pub descending: bool,
}

/// Check a request as HubSpot does.
///
/// # Errors
/// [`Invalid`] for what HubSpot rejects with 400: too many groups or filters, more than one
/// sort, `limit` over 200, a non-integer `after`, or paging past 10,000 results.
pub fn validate(req: &SearchRequest) -> Result<Params, Invalid> {
    if req.filter_groups.len() > 5 {
        return Err(Invalid(format!(
            "Too many filter groups ({}); the limit is 5",
            req.filter_groups.len()
        )));
    }
    let total_filters: usize = req.filter_groups.iter().map(|g| g.filters.len()).sum();
    if req.filter_groups.iter().any(|g| g.filters.len() > 6) || total_filters > 18 {
        return Err(Invalid(
            "Too many filters: at most 6 per group and 18 in total".into(),
        ));
    }
    for f in req.filter_groups.iter().flat_map(|g| &g.filters) {
        check_filter(f)?;
    }
    if req.sorts.len() > 1 {
        return Err(Invalid("Only one sort is supported".into()));
    }
    let limit = req.limit.unwrap_or(10);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}; got {limit}"
        )));
    }
    let limit = usize::try_from(limit).unwrap_or(10);
    let after = match &req.after {
        None => 0,
        Some(v) => text(v)
            .parse::<usize>()
            .map_err(|_| Invalid(format!("after must be an integer string; got {v}")))?,
    };
    if after >= MAX_RESULTS {
        return Err(Invalid(format!(
            "There was a problem with the request: paging past {MAX_RESULTS} results is not allowed (after={after})"
        )));
    }
    let (sort_property, descending) = match req.sorts.first() {
        None => ("hs_object_id".to_owned(), false),
        Some(Value::String(s)) => (s.trim_start_matches('-').to_owned(), s.starts_with('-')),
        Some(obj) => (
            obj.get("propertyName")
                .map(text)
                .unwrap_or_else(|| "hs_object_id".into()),
            obj.get("direction")
                .map(text)
                .is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")),
        ),
    };
    Ok(Params {
        after,
        limit,
        sort_property,
        descending,
    })
}

/// Whether a filter is one of the `hs_object_id` lower bounds [`id_lower_bound`] reads.
fn is_id_floor(f: &Filter) -> bool {
    f.property_name == "hs_object_id" && matches!(f.operator.as_str(), "GT" | "GTE")
}

/// The walk by id ascending with its floor taken out: the matches of what remains are the same
/// for every page of the walk, so the server can keep them and cut each page by the floor.
/// `None` when the request is not such a walk.
pub fn floor_walk(req: &SearchRequest, params: &Params) -> Option<u64> {
    (params.sort_property == "hs_object_id" && !params.descending)
        .then(|| id_lower_bound(req))
        .flatten()
}

/// A group's filters, less the id floor when the request is a walk.
fn kept_filters(group: &FilterGroup, walk: bool) -> impl Iterator<Item = &Filter> {
    group
        .filters
        .iter()
        .filter(move |f| !(walk && is_id_floor(f)))
}

/// What a request's matches depend on besides the data: its filters (less the id floor of a
/// walk) and sort. Equal keys over unchanged data have equal matches.
pub fn matches_key(req: &SearchRequest, params: &Params, walk: bool) -> String {
    let groups: Vec<Vec<&Filter>> = req
        .filter_groups
        .iter()
        .map(|g| kept_filters(g, walk).collect())
        .collect();
    format!("{groups:?}|{}|{}", params.sort_property, params.descending)
}

/// Every record of `records` the request matches, in its sort order — without paging. With
/// `walk`, the id floor filters are left out (the caller cuts by the floor).
pub fn matching<'a>(
    records: impl Iterator<Item = &'a Record>,
    req: &SearchRequest,
    params: &Params,
    walk: bool,
) -> Vec<&'a Record> {
    let groups: Vec<Vec<Compiled<'_>>> = req
        .filter_groups
        .iter()
        .map(|g| kept_filters(g, walk).map(Compiled::new).collect())
        .collect();
    let mut hits: Vec<&Record> = records
        .filter(|r| !r.archived)
        .filter(|r| groups.is_empty() || groups.iter().any(|g| g.iter().all(|c| matches(r, c))))
        .collect();
    let sort_property = params.sort_property.as_str();
    if sort_property == "hs_object_id" {
        // The usual walk: by id. The stable sort finds an id-ordered table already sorted in
        // one pass, where comparing property text would cost O(n log n) string copies.
        hits.sort_by_key(|r| r.id);
        if params.descending {
            hits.reverse();
        }
    } else {
        // Each record's sort key is read once, not once per comparison.
        let empty = String::new();
        let mut keyed: Vec<(Option<f64>, &str, &Record)> = hits
            .iter()
            .map(|r| {
                let k = r.properties.get(sort_property).unwrap_or(&empty).as_str();
                (as_number(k), k, *r)
            })
            .collect();
        keyed.sort_by(|(na, ka, a), (nb, kb, b)| {
            let ord = match (na, nb) {
                (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
                _ => ka.cmp(kb),
            };
            let ord = if params.descending {
                ord.reverse()
            } else {
                ord
            };
            ord.then(a.id.cmp(&b.id))
        });
        hits = keyed.into_iter().map(|(_, _, r)| r).collect();
    }
    hits
}

/// One page of `hits` (all matches, in order).
pub fn page<'a>(hits: &[&'a Record], params: &Params) -> Page<'a> {
    let total = hits.len();
    let results: Vec<&Record> = hits
        .iter()
        .skip(params.after)
        .take(params.limit)
        .copied()
        .collect();
    let end = params.after + results.len();
    Page {
        total,
        results,
        next_after: (end < total).then_some(end),
    }
}

/// Run a search over `records` (already restricted to the object type).
///
/// # Errors
/// As [`validate`].
pub fn search<'a>(
    records: impl Iterator<Item = &'a Record>,
    req: &SearchRequest,
) -> Result<Page<'a>, Invalid> {
    let params = validate(req)?;
    let hits = matching(records, req, &params, false);
    Ok(page(&hits, &params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataSpec, generate};
    use serde_json::json;

    fn req(v: Value) -> SearchRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_fixed_iso_form_reads_as_the_general_parser_does() {
        for t in [
            "2026-09-20T13:38:00.000Z",
            "1970-01-01T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
        ] {
            let general = chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_millis() as f64;
            assert_eq!(fixed_iso_millis(t), Some(general), "{t}");
        }
        for t in [
            "2026-02-30T00:00:00.000Z",
            "2026-09-20T13:38:00Z",
            "2026-09-20 13:38:00.000Z",
            "12345",
        ] {
            assert_eq!(fixed_iso_millis(t), None, "{t}");
        }
        assert_eq!(as_number("2026-09-20T13:38:00Z"), Some(1_789_911_480_000.0));
        assert_eq!(as_number("42"), Some(42.0));
    }

    #[test]
    fn an_id_floor_is_read_only_from_a_single_group() {
        let one = req(json!({"filterGroups":[{"filters":[
            {"propertyName":"hs_object_id","operator":"GT","value":"41"},
            {"propertyName":"hs_object_id","operator":"GTE","value":40}]}]}));
        assert_eq!(id_lower_bound(&one), Some(42));
        let two = req(json!({"filterGroups":[
            {"filters":[{"propertyName":"hs_object_id","operator":"GT","value":"41"}]},
            {"filters":[{"propertyName":"email","operator":"EQ","value":"a@b.c"}]}]}));
        assert_eq!(id_lower_bound(&two), None);
        let lt = req(
            json!({"filterGroups":[{"filters":[{"propertyName":"hs_object_id","operator":"LT","value":"41"}]}]}),
        );
        assert_eq!(id_lower_bound(&lt), None);
    }

    #[test]
    fn gte_on_dates_takes_epoch_millis() {
        let (_, contacts) = generate(DataSpec::new(1, 300));
        let cut = contacts[10].updated_at;
        let r = req(
            json!({"filterGroups":[{"filters":[{"propertyName":"lastmodifieddate","operator":"GTE","value":cut.timestamp_millis().to_string()}]}],"limit":200}),
        );
        let page = search(contacts.iter(), &r).unwrap();
        let want = contacts.iter().filter(|c| c.updated_at >= cut).count();
        assert_eq!(page.total, want);
        assert!(want > 0 && want < 300);
    }

    #[test]
    fn pages_in_id_order_and_stops() {
        let (_, contacts) = generate(DataSpec::new(1, 25));
        let mut seen = vec![];
        let mut after: Option<String> = None;
        loop {
            let r = req(
                json!({"sorts":[{"propertyName":"hs_object_id","direction":"ASCENDING"}],"limit":10,"after":after}),
            );
            let page = search(contacts.iter(), &r).unwrap();
            seen.extend(page.results.iter().map(|r| r.id));
            match page.next_after {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        let mut want: Vec<u64> = contacts.iter().map(|c| c.id).collect();
        want.sort_unstable();
        assert_eq!(seen, want);
    }

    #[test]
    fn rejects_what_hubspot_rejects() {
        let (_, contacts) = generate(DataSpec::new(1, 5));
        for bad in [
            json!({"limit": 201}),
            json!({"after": "10000"}),
            json!({"after": "abc"}),
            json!({"sorts": ["a", "b"]}),
            json!({"filterGroups":[{"filters":[{"propertyName":"x","operator":"LIKE","value":"1"}]}]}),
            json!({"filterGroups":[{},{},{},{},{},{}]}),
        ] {
            assert!(search(contacts.iter(), &req(bad.clone())).is_err(), "{bad}");
        }
    }
}
