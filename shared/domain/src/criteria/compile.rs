//! The compiled form (conditions, rules, groups) and the compiler: a read document checked
//! for meaning (fields, codes, stages, bands) and turned into a [`Criteria`].

use super::*;

// ---------------------------------------------------------------------------------------------
// The compiled form.

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Condition {
    AnyOf(HashSet<String>),
    NoneOf(HashSet<String>),
    /// Lowercased needles: the value contains one of them.
    Contains(Vec<String>),
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
    Missing,
    PointsEach {
        each: i64,
        cap: Option<i64>,
    },
    Is(bool),
    /// The date lies at most this many days before now (and not after it).
    Within(u32),
    /// The date lies more than this many days before now.
    OlderThan(u32),
    /// The date lies now or at most this many days ahead.
    DueWithin(u32),
}

impl Condition {
    /// The instants after `date` at which a date condition on it changes its verdict.
    pub(super) fn flips(&self, date: DateTime<Utc>) -> [Option<DateTime<Utc>>; 2] {
        let days = |d: u32| chrono::Duration::days(i64::from(d));
        match *self {
            Condition::Within(d) => [Some(date), date.checked_add_signed(days(d))],
            Condition::OlderThan(d) => [date.checked_add_signed(days(d)), None],
            Condition::DueWithin(d) => [date.checked_sub_signed(days(d)), Some(date)],
            _ => [None, None],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rule {
    pub(super) code: String,
    pub(super) label: String,
    pub(super) field: Field,
    pub(super) condition: Condition,
    pub(super) points: i64,
    pub(super) recency: Option<Recency>,
}

/// Time window and decay of an engagement rule, measured from the channel's last activity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Recency {
    pub(super) within_days: Option<u32>,
    pub(super) half_life_days: Option<f64>,
}

impl Field {
    /// The last-activity time of a count field, for windows and decay.
    pub(super) fn last_activity(self, lead: &Lead) -> Option<Option<DateTime<Utc>>> {
        let e = &lead.engagement;
        match self {
            Field::PageViews => Some(e.last_page_view_at),
            Field::EmailOpens => Some(e.last_email_open_at),
            Field::EmailClicks => Some(e.last_email_click_at),
            Field::FormSubmissions => Some(e.last_form_submission_at),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Group {
    Fit,
    Engagement,
    Disqualify,
}

pub(super) fn compile(doc: Document, text: &str) -> Result<Criteria, Vec<CriteriaIssue>> {
    let mut issues = Vec::new();
    let mut issue_at = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        issues.push(CriteriaIssue {
            line,
            column,
            message,
        });
    };

    for (name, value) in [("id", &doc.id), ("version", &doc.version)] {
        if value.trim().is_empty() {
            issue_at(0, format!("`{name}` must not be empty"));
        }
    }
    if chrono::NaiveDate::parse_from_str(&doc.effective, "%Y-%m-%d").is_err() {
        issue_at(
            0,
            format!("`effective` {:?} is not a date (YYYY-MM-DD)", doc.effective),
        );
    }
    let (sales_sign_off, marketing_sign_off) = match &doc.approved_by {
        Some(approved) => {
            let at = approved.span().start;
            let inner = approved.get_ref();
            for (team, sign) in [("sales", &inner.sales), ("marketing", &inner.marketing)] {
                if let Some(sign) = sign {
                    if sign.name.trim().is_empty() {
                        issue_at(at, format!("approved_by.{team}.name must not be empty"));
                    }
                    if chrono::NaiveDate::parse_from_str(&sign.date, "%Y-%m-%d").is_err() {
                        issue_at(
                            at,
                            format!(
                                "approved_by.{team}.date {:?} is not a date (YYYY-MM-DD)",
                                sign.date
                            ),
                        );
                    }
                }
            }
            (inner.sales.clone(), inner.marketing.clone())
        }
        None => (None, None),
    };

    let caps = doc.caps;
    if caps.fit < 0 || caps.engagement < 0 || caps.total < 0 {
        issue_at(0, "caps must not be negative".to_owned());
    }
    let (mql, sql) = (*doc.stages.mql.get_ref(), *doc.stages.sql.get_ref());
    for (name, threshold, at) in [
        ("mql", mql, doc.stages.mql.span().start),
        ("sql", sql, doc.stages.sql.span().start),
    ] {
        if threshold.min_fit > caps.fit || threshold.min_total > caps.total {
            issue_at(
                at,
                format!(
                    "stage {name} is unreachable: min_fit {} / min_total {} exceed the caps fit {} / total {}",
                    threshold.min_fit, threshold.min_total, caps.fit, caps.total
                ),
            );
        }
        if threshold.min_total < 0 || threshold.min_fit < 0 {
            issue_at(at, format!("stage {name}: thresholds must not be negative"));
        }
    }
    if sql.min_fit < mql.min_fit || sql.min_total < mql.min_total || sql == mql {
        issue_at(
            doc.stages.sql.span().start,
            format!(
                "stage sql (min_fit {}, min_total {}) overlaps mql (min_fit {}, min_total {}): sql must ask for at least as much as mql on both, and more on one",
                sql.min_fit, sql.min_total, mql.min_fit, mql.min_total
            ),
        );
    }

    let mut bands = Vec::new();
    let mut band_names = HashSet::new();
    for band in &doc.bands {
        let b = band.get_ref();
        if !band_names.insert(b.name.clone()) {
            issue_at(
                band.span().start,
                format!("band {:?} is defined twice", b.name),
            );
        }
        if let Some((prev_name, prev_min)) = bands.last() {
            if b.min_total >= *prev_min {
                issue_at(
                    band.span().start,
                    format!(
                        "band {:?} (min_total {}) must come after bands with a higher min_total; {prev_name:?} has {prev_min}",
                        b.name, b.min_total
                    ),
                );
            }
        }
        bands.push((b.name.clone(), b.min_total));
    }
    if bands.is_empty() {
        issue_at(
            0,
            "at least one band is required (e.g. [[bands]] name = \"D\", min_total = 0)".to_owned(),
        );
    }

    // `[fields]`: names of their own, or inputs moved to other contact properties.
    let mut mapped: Vec<MappedField> = Vec::new();
    for (name, at, f) in &doc.fields {
        let (line, column) = line_col(text, *at);
        let built_in = BUILT_IN.iter().any(|(n, _)| n == name);
        let input = INPUTS.contains(&name.as_str());
        let problem = if name.is_empty()
            || !name.starts_with(|c: char| c.is_ascii_lowercase())
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            Some(format!(
                "fields.{name}: a field name is lower_snake_case (a-z, 0-9, _), starting with a letter"
            ))
        } else if built_in && !input {
            Some(format!(
                "fields.{name}: `{name}` is built in (read from the CRM's standard properties, then enrichment); give the field a name of your own to read another property. Of the built-in fields only the inputs sales records may be moved: {}",
                INPUTS.join(", ")
            ))
        } else if input && f.object != CrmObject::Contact {
            Some(format!(
                "fields.{name}: `{name}` is recorded on the contact; object must be \"contact\", not {:?}",
                f.object.as_str()
            ))
        } else if input && !matches!(f.kind, FieldType::Text | FieldType::Enumeration) {
            Some(format!(
                "fields.{name}: `{name}` is read as text; type must be \"text\" or \"enumeration\", not {:?}",
                f.kind.as_str()
            ))
        } else if f.property.trim().is_empty() || f.property.contains(char::is_whitespace) {
            Some(format!(
                "fields.{name}: property {:?} is not a property name",
                f.property
            ))
        } else {
            None
        };
        match problem {
            Some(message) => issue_at(*at, message),
            None => mapped.push(MappedField {
                name: name.clone(),
                object: f.object,
                property: f.property.clone(),
                kind: f.kind,
                key: match f.object {
                    CrmObject::Deal => f.property.clone(),
                    object => object.key(&f.property),
                },
                line,
                column,
            }),
        }
    }
    if mapped.len() > usize::from(u16::MAX) {
        issue_at(0, "too many [fields] entries".to_owned());
    }
    let resolve = |name: &str| -> Option<Field> {
        // A mapped input keeps its built-in meaning: the adapter reads it from the new property.
        match mapped
            .iter()
            .position(|f| f.name == name && !INPUTS.contains(&name))
        {
            Some(i) => u16::try_from(i).ok().map(Field::Mapped),
            None => BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, f)| *f),
        }
    };
    let mut input_values: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();

    let mut rules = Vec::new();
    let mut codes = HashSet::new();
    for (group, list) in [
        (Group::Disqualify, &doc.disqualify),
        (Group::Fit, &doc.fit),
        (Group::Engagement, &doc.engagement),
    ] {
        for spanned in list {
            let at = spanned.span().start;
            let r = spanned.get_ref();
            if !codes.insert(r.code.clone()) {
                issue_at(
                    at,
                    format!(
                        "rule code {:?} is used twice: codes must be unique and stable",
                        r.code
                    ),
                );
            }
            if r.code.is_empty()
                || !r
                    .code
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                issue_at(
                    at,
                    format!(
                        "rule code {:?} must be UPPER_SNAKE_CASE (A-Z, 0-9, _)",
                        r.code
                    ),
                );
            }
            let Some(field) = resolve(&r.field) else {
                let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                issue_at(
                    key_in_table(text, at, "field"),
                    format!(
                        "rule {}: unknown field `{}`: not built in ({}) and not under [fields]",
                        r.code,
                        r.field,
                        names.join(", ")
                    ),
                );
                continue;
            };
            if let Some(input) = INPUTS.iter().find(|i| **i == r.field) {
                let values = input_values.entry(input).or_default();
                for v in r.any_of.iter().chain(&r.none_of).flatten() {
                    if !values.contains(v) {
                        values.push(v.clone());
                    }
                }
            }
            match compile_rule(group, r, field, &mapped) {
                Ok(rule) => rules.push((group, rule)),
                Err(message) => issue_at(at, format!("rule {}: {message}", r.code)),
            }
        }
    }

    let mut require = |stage: &str, codes: &[String], at: usize| -> u128 {
        let mut mask = 0u128;
        for code in codes {
            match rules
                .iter()
                .position(|(_, r): &(Group, Rule)| &r.code == code)
            {
                Some(i) if i < MAX_RULES => mask |= 1 << i,
                Some(_) => {}
                None => issue_at(
                    at,
                    format!(
                        "stage {stage} requires rule {code:?}, which the document does not define"
                    ),
                ),
            }
        }
        mask
    };
    let mql_require = require("mql", &doc.stages.mql_require, doc.stages.mql.span().start);
    let sql_require = require("sql", &doc.stages.sql_require, doc.stages.sql.span().start);
    let incentives = match doc.incentives {
        None => None,
        Some((plan, at)) => match crate::incentives::IncentivePlan::from_doc(plan) {
            Ok(plan) => Some(plan),
            Err(problems) => {
                for problem in problems {
                    issue_at(at, problem);
                }
                None
            }
        },
    };
    {
        let mut verdicts: Vec<&str> = doc.stages.recycled.iter().map(String::as_str).collect();
        if let Some(plan) = &incentives {
            verdicts.extend(plan.accepted_statuses.iter().map(String::as_str));
            verdicts.extend(plan.rejected_statuses.iter().map(String::as_str));
        }
        for (path, message) in doc.crm.forward.problems(&verdicts) {
            let at = doc
                .forward_at
                .get(&path)
                .or_else(|| doc.forward_at.get(""))
                .copied()
                .unwrap_or(0);
            issue_at(at, message);
        }
    }
    if rules.len() > MAX_RULES {
        issue_at(
            0,
            format!(
                "the document has {} rules; at most {MAX_RULES} are supported",
                rules.len()
            ),
        );
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(Criteria {
        fields: mapped,
        source_name: String::new(),
        input_values,
        id: doc.id,
        version: doc.version,
        effective: doc.effective,
        sales_sign_off,
        marketing_sign_off,
        mql,
        sql,
        mql_require,
        sql_require,
        recycled_statuses: doc
            .stages
            .recycled
            .iter()
            .map(|s| s.trim().to_lowercase())
            .collect(),
        caps,
        bands,
        rules,
        crm: doc.crm,
        incentives,
    })
}

pub(super) fn compile_rule(
    group: Group,
    r: &RuleDoc,
    field: Field,
    mapped: &[MappedField],
) -> Result<Rule, String> {
    let kind = field.kind(mapped);
    let name = r.field.as_str();
    let is_date = kind == FieldType::Date;
    let kinds = [
        r.any_of.is_some(),
        r.none_of.is_some(),
        r.contains.is_some(),
        r.min.is_some() || r.max.is_some(),
        r.missing.is_some(),
        r.points_each.is_some(),
        r.is.is_some(),
        is_date && r.within_days.is_some(),
        r.older_than_days.is_some(),
        r.due_within_days.is_some(),
    ]
    .into_iter()
    .filter(|k| *k)
    .count();
    if kinds != 1 {
        return Err(format!(
            "needs exactly one condition (any_of, none_of, contains, min/max, points_each, is, within_days/older_than_days/due_within_days on a date, missing = true); found {kinds}"
        ));
    }
    let text_like = matches!(
        kind,
        FieldType::Text | FieldType::Enumeration | FieldType::MultiSelect
    );
    let instead = match kind {
        FieldType::Number => "use min/max or points_each",
        FieldType::Date => "use within_days, older_than_days or due_within_days",
        FieldType::Boolean => "use is = true or is = false",
        _ => "use any_of, none_of or contains",
    };
    let wrong = |what: &str, needs: &str| {
        format!(
            "{what} needs {needs}; {name} is {} ({instead})",
            match kind {
                FieldType::Number => "a number".to_owned(),
                FieldType::Text => "text".to_owned(),
                other => format!("a {}", other.as_str()),
            }
        )
    };
    let lower = |list: &Vec<String>| {
        list.iter()
            .map(|s| s.trim().to_lowercase())
            .collect::<HashSet<_>>()
    };
    let condition = if let Some(list) = &r.any_of {
        if !text_like {
            return Err(wrong("any_of", "a text field"));
        }
        Condition::AnyOf(lower(list))
    } else if let Some(list) = &r.none_of {
        if !text_like {
            return Err(wrong("none_of", "a text field"));
        }
        Condition::NoneOf(lower(list))
    } else if let Some(list) = &r.contains {
        if !text_like {
            return Err(wrong("contains", "a text field"));
        }
        let needles: Vec<String> = list
            .iter()
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if needles.is_empty() {
            return Err("contains needs at least one non-empty text".to_owned());
        }
        Condition::Contains(needles)
    } else if r.min.is_some() || r.max.is_some() {
        if kind != FieldType::Number {
            return Err(if text_like {
                format!("min/max need a numeric field; {name} is text (use any_of)")
            } else {
                wrong("min/max", "a numeric field")
            });
        }
        if let (Some(min), Some(max)) = (r.min, r.max) {
            if min > max {
                return Err(format!("min ({min}) is greater than max ({max})"));
            }
        }
        if r.min.is_some_and(|v| !v.is_finite()) || r.max.is_some_and(|v| !v.is_finite()) {
            return Err("min and max must be finite numbers".to_owned());
        }
        Condition::Range {
            min: r.min,
            max: r.max,
        }
    } else if r.missing == Some(true) {
        Condition::Missing
    } else if let Some(each) = r.points_each {
        if kind != FieldType::Number {
            return Err(format!(
                "points_each needs a numeric field; {name} is {}",
                if text_like { "text" } else { kind.as_str() }
            ));
        }
        if r.points.is_some() {
            return Err("points_each and points exclude each other".to_owned());
        }
        if r.cap.is_some_and(|c| c < 0) {
            return Err("cap must not be negative".to_owned());
        }
        Condition::PointsEach { each, cap: r.cap }
    } else if let Some(want) = r.is {
        if kind != FieldType::Boolean {
            return Err(wrong("is", "a boolean field"));
        }
        Condition::Is(want)
    } else if let (true, Some(days)) = (is_date, r.within_days) {
        if days == 0 {
            return Err("within_days must be at least 1".to_owned());
        }
        Condition::Within(days)
    } else if let Some(days) = r.older_than_days {
        if !is_date {
            return Err(wrong("older_than_days", "a date field"));
        }
        Condition::OlderThan(days)
    } else if let Some(days) = r.due_within_days {
        if !is_date {
            return Err(wrong("due_within_days", "a date field"));
        }
        Condition::DueWithin(days)
    } else {
        return Err(
            "missing = false is not a condition; remove it or set missing = true".to_owned(),
        );
    };
    let window = if is_date { None } else { r.within_days };
    let recency = match (window, r.half_life_days) {
        (None, None) => None,
        (within_days, half_life_days) => {
            if group != Group::Engagement || !field.is_counter() {
                return Err("within_days and half_life_days apply to engagement rules on page_views, email_opens, email_clicks or form_submissions (and within_days, as the condition, to date fields)".to_owned());
            }
            if within_days == Some(0) {
                return Err("within_days must be at least 1".to_owned());
            }
            if half_life_days.is_some_and(|h| !(h.is_finite() && h > 0.0)) {
                return Err("half_life_days must be a positive number of days".to_owned());
            }
            Some(Recency {
                within_days,
                half_life_days,
            })
        }
    };
    if r.cap.is_some() && !matches!(condition, Condition::PointsEach { .. }) {
        return Err("cap only applies to points_each rules".to_owned());
    }
    let points = match (group, &condition) {
        (_, Condition::PointsEach { .. }) => 0,
        (Group::Disqualify, _) => {
            if r.points.is_some() {
                return Err("disqualifiers carry no points".to_owned());
            }
            0
        }
        (_, _) => r.points.ok_or("needs `points`")?,
    };
    if group == Group::Disqualify && matches!(condition, Condition::PointsEach { .. }) {
        return Err("a disqualifier cannot use points_each".to_owned());
    }
    Ok(Rule {
        code: r.code.clone(),
        label: r.label.clone(),
        field,
        condition,
        points,
        recency,
    })
}
