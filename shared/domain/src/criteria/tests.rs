use super::*;
use crate::lead::{Deal, Engagement, Firmographics, LeadId, Provenance, Sourced};
use chrono::{DateTime, Utc};

const EXAMPLE: &str = include_str!("../../../../infra/criteria/b2b-saas.toml");

/// The instant every test scores at.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn criteria() -> Criteria {
    Criteria::parse("b2b-saas.toml", EXAMPLE).unwrap()
}

fn lead(
    email: &str,
    industry: Option<&str>,
    employees: Option<u64>,
    engagement: Engagement,
) -> Lead {
    let mut lead = Lead::new(LeadId::new("42").unwrap(), DateTime::<Utc>::UNIX_EPOCH);
    lead.email = Some(email.to_owned());
    // Active today unless a test says otherwise: windows and decay leave the points whole.
    lead.engagement = Engagement {
        last_page_view_at: Some(now()),
        last_email_open_at: Some(now()),
        last_email_click_at: Some(now()),
        last_form_submission_at: Some(now()),
        ..engagement
    };
    lead.firmographics = Firmographics {
        industry: industry.map(|i| Sourced::new(i.to_owned(), Provenance::crm())),
        employees: employees.map(|e| Sourced::new(e, Provenance::crm())),
        ..Firmographics::default()
    };
    lead
}

fn reason<'a>(card: &'a Scorecard, code: &str) -> &'a Reason {
    card.reasons.iter().find(|r| r.code == code).unwrap()
}

#[test]
fn example_document_is_valid_and_signed() {
    let c = criteria();
    assert_eq!(c.version, "2026.11.1");
    assert!(c.is_signed());
}

#[test]
fn stage_table() {
    let c = criteria();
    let none = Engagement::default();
    let hot = Engagement {
        page_views: 30,
        email_opens: 5,
        email_clicks: 4,
        form_submissions: 2,
        ..Engagement::default()
    };
    let warm = Engagement {
        page_views: 10,
        email_opens: 0,
        email_clicks: 2,
        form_submissions: 0,
        ..Engagement::default()
    };
    let cases = [
        // email, industry, employees, engagement, expected stage, expected total
        (
            "a@gmail.com",
            Some("COMPUTER_SOFTWARE"),
            Some(200),
            hot,
            Stage::Disqualified,
            87,
        ),
        (
            "a@acme.com",
            Some("COMPUTER_SOFTWARE"),
            Some(200),
            hot,
            Stage::Sql,
            87,
        ),
        (
            "a@acme.com",
            Some("COMPUTER_SOFTWARE"),
            Some(200),
            warm,
            Stage::Mql,
            56,
        ),
        ("a@acme.com", Some("RETAIL"), Some(200), hot, Stage::Mql, 67),
        ("a@acme.com", Some("RETAIL"), Some(20), hot, Stage::Iql, 47),
        ("a@acme.com", None, None, none, Stage::Iql, 0),
    ];
    for (email, industry, employees, engagement, stage, total) in cases {
        let card = c.evaluate(&lead(email, industry, employees, engagement), now());
        assert_eq!(
            (card.stage, card.total),
            (stage, total),
            "{email} {industry:?} {employees:?} {engagement:?}"
        );
    }
}

#[test]
fn every_rule_gives_exactly_one_reason_with_value_and_source() {
    let c = criteria();
    let card = c.evaluate(
        &lead(
            "a@acme.com",
            Some("COMPUTER_SOFTWARE"),
            None,
            Engagement::default(),
        ),
        now(),
    );
    assert_eq!(card.reasons.len(), c.rules.len());
    let industry = reason(&card, "FIT_INDUSTRY_CORE");
    assert_eq!(industry.outcome, ReasonOutcome::Matched);
    assert_eq!(industry.value.as_deref(), Some("COMPUTER_SOFTWARE"));
    assert_eq!(industry.source.as_deref(), Some("crm"));
    assert_eq!(industry.points, 20);
    assert_eq!(
        reason(&card, "FIT_SIZE_MIDMARKET").outcome,
        ReasonOutcome::Missing
    );
    assert_eq!(
        reason(&card, "ENG_PAGE_VIEWS").outcome,
        ReasonOutcome::NotMatched
    );
    // The address is never copied into a reason.
    assert_eq!(
        reason(&card, "DQ_NO_EMAIL").value.as_deref(),
        Some("present")
    );
}

#[test]
fn time_windows_and_decay_follow_the_last_activity() {
    let c = criteria();
    let busy = Engagement {
        page_views: 30,
        email_clicks: 5,
        form_submissions: 1,
        ..Engagement::default()
    };
    let mut l = lead("a@acme.com", None, None, busy);
    let days_ago = |d: i64| Some(now() - chrono::Duration::days(d));
    l.engagement.last_page_view_at = days_ago(14); // one half-life: 15 → 7.5 → 8
    l.engagement.last_email_click_at = days_ago(60); // two half-lives: 15 → 3.75 → 4
    l.engagement.last_form_submission_at = days_ago(91); // outside the 90-day window
    let card = c.evaluate(&l, now());
    let page = reason(&card, "ENG_PAGE_VIEWS");
    assert_eq!((page.outcome, page.points), (ReasonOutcome::Matched, 8));
    assert_eq!(page.value.as_deref(), Some("30, last 2026-11-06"));
    assert_eq!(reason(&card, "ENG_EMAIL_CLICKS").points, 4);
    let form = reason(&card, "ENG_FORM_SUBMISSIONS");
    assert_eq!((form.outcome, form.points), (ReasonOutcome::NotMatched, 0));
    assert_eq!(card.engagement, 12);

    // No activity date where a rule needs one: the rule says so and earns nothing.
    l.engagement.last_page_view_at = None;
    let page = reason(&c.evaluate(&l, now()), "ENG_PAGE_VIEWS").clone();
    assert_eq!((page.outcome, page.points), (ReasonOutcome::Missing, 0));
    assert!(page.value.unwrap().contains("no activity date"));

    // The same lead scored later decays further: `now` is an input, never the clock.
    l.engagement.last_page_view_at = days_ago(14);
    let later = c.evaluate(&l, now() + chrono::Duration::days(14));
    assert_eq!(reason(&later, "ENG_PAGE_VIEWS").points, 4);
}

#[test]
fn recency_is_only_for_engagement_counts() {
    let text = EXAMPLE.replace(
        "field = \"employees\"\nmin = 50",
        "field = \"employees\"\nhalf_life_days = 3.0\nmin = 50",
    );
    let err = Criteria::parse("c.toml", &text).unwrap_err();
    assert!(
        err.to_string()
            .contains("within_days and half_life_days apply to engagement rules"),
        "{err}"
    );
    let text = EXAMPLE.replace("half_life_days = 14", "half_life_days = -1.0");
    assert!(
        Criteria::parse("c.toml", &text)
            .unwrap_err()
            .to_string()
            .contains("positive")
    );
    let text = EXAMPLE.replace("within_days = 90", "within_days = 0");
    assert!(
        Criteria::parse("c.toml", &text)
            .unwrap_err()
            .to_string()
            .contains("at least 1")
    );
}

#[test]
fn caps_bound_each_group() {
    let c = criteria();
    let flood = Engagement {
        page_views: 10_000,
        email_opens: 0,
        email_clicks: 10_000,
        form_submissions: u32::MAX,
        ..Engagement::default()
    };
    let card = c.evaluate(&lead("a@acme.com", None, None, flood), now());
    assert_eq!(card.engagement, 50);
    assert_eq!(reason(&card, "ENG_FORM_SUBMISSIONS").points, 30);
    assert_eq!(
        card.stage,
        Stage::Iql,
        "engagement alone must not make an MQL"
    );
}

#[test]
fn crm_properties_follow_mapping() {
    let c = criteria();
    let card = c.evaluate(
        &lead(
            "a@acme.com",
            Some("INTERNET"),
            Some(60),
            Engagement {
                form_submissions: 1,
                ..Engagement::default()
            },
        ),
        now(),
    );
    let props = card.crm_properties(&c.crm);
    assert_eq!(props["leadsync_stage"], "mql");
    assert_eq!(props["leadsync_score"], "50");
    assert_eq!(props["leadsync_band"], "B");
    assert_eq!(
        props["leadsync_reasons"],
        "FIT_INDUSTRY_CORE;FIT_SIZE_MIDMARKET;ENG_FORM_SUBMISSIONS"
    );
    assert_eq!(props["leadsync_criteria_version"], "2026.11.1");
    assert_eq!(props["leadsync_fit_score"], card.fit.to_string());
    assert_eq!(
        props["leadsync_engagement_score"],
        card.engagement.to_string()
    );
    let summary = &props["leadsync_summary"];
    let lines: Vec<&str> = summary.lines().collect();
    // The biggest points first, each with what was seen; what could not be judged last.
    assert!(
        lines[0].starts_with("+20 Core industry") && lines[0].ends_with("[INTERNET]"),
        "{summary}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('+') && l.contains("[60]")),
        "{summary}"
    );
    let points: Vec<i64> = lines
        .iter()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        points.windows(2).all(|w| w[0].abs() >= w[1].abs()),
        "{summary}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Unknown: ")),
        "{summary}"
    );
    assert!(!summary.contains("Disqualified"), "{summary}");
}

#[test]
fn the_summary_names_disqualifiers_first_and_stays_inside_the_limit() {
    let c = criteria();
    let card = c.evaluate(
        &lead(
            "a@gmail.com",
            Some("INTERNET"),
            Some(60),
            Engagement::default(),
        ),
        now(),
    );
    let summary = card.summary();
    assert!(
        summary.starts_with("Disqualified: Personal free-mail address")
            && summary.lines().next().unwrap().ends_with("[gmail.com]"),
        "{summary}"
    );
    // Many long reasons: whole lines up to the limit, the rest counted.
    let mut long = card.clone();
    long.reasons = (0..200)
        .map(|i| Reason {
            code: format!("R{i}"),
            label: "x".repeat(90),
            outcome: ReasonOutcome::Matched,
            value: Some(format!("{i}")),
            points: 1,
            source: None,
            disqualifier: false,
        })
        .collect();
    let s = long.summary();
    assert!(s.chars().count() <= SUMMARY_LIMIT, "{}", s.chars().count());
    let last = s.lines().last().unwrap();
    assert!(
        last.starts_with("… and ") && last.ends_with(" more"),
        "{last}"
    );
    let shown = s.lines().count() - 1;
    assert_eq!(last, format!("… and {} more", 200 - shown));
}

#[test]
fn syntax_and_unknown_keys_are_located() {
    let text = EXAMPLE.replace("min_fit = 20", "min_fit = 20\nmin_fitt = 3");
    let err = Criteria::parse("c.toml", &text).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.starts_with("min_fitt"))
        .unwrap()
        + 1;
    assert_eq!(err.issues.len(), 1);
    assert_eq!(err.issues[0].line, line, "{err}");
    assert!(
        err.to_string().starts_with(&format!("c.toml:{line}:")),
        "{err}"
    );
    assert!(err.to_string().contains("min_fitt"), "{err}");

    let err = Criteria::parse(
        "c.toml",
        &EXAMPLE.replace("field = \"employees\"", "field = \"headcount\""),
    )
    .unwrap_err();
    assert!(err.to_string().contains("headcount"), "{err}");
}

#[test]
fn semantic_errors_are_all_reported_with_lines() {
    let text = EXAMPLE
        .replace("min = 50\nmax = 5000", "min = 5000\nmax = 50")
        .replace("code = \"ENG_PAGE_VIEWS\"", "code = \"ENG_EMAIL_CLICKS\"")
        .replace("min_fit = 35", "min_fit = 10");
    let err = Criteria::parse("c.toml", &text).unwrap_err();
    let text_err = err.to_string();
    assert_eq!(err.issues.len(), 3, "{text_err}");
    assert!(
        text_err.contains("min (5000) is greater than max (50)"),
        "{text_err}"
    );
    assert!(text_err.contains("used twice"), "{text_err}");
    assert!(text_err.contains("overlaps mql"), "{text_err}");
    let size_line = text
        .lines()
        .position(|l| l.contains("FIT_SIZE_MIDMARKET"))
        .unwrap();
    assert!(
        err.issues.iter().any(|i| i.line == size_line),
        "{text_err}: rule error should point at its [[fit]] table"
    );
}

#[test]
fn unsigned_document_parses_but_is_not_signed() {
    let start = EXAMPLE.find("[approved_by.sales]").unwrap();
    let end = EXAMPLE.find("# Stages.").unwrap();
    let text = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
    let c = Criteria::parse("c.toml", &text).unwrap();
    assert!(!c.is_signed());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn any_lead() -> impl Strategy<Value = Lead> {
        (
            proptest::option::of("[a-z]{0,6}@[a-z.]{0,12}"),
            proptest::option::of(proptest::sample::select(vec![
                "COMPUTER_SOFTWARE",
                "RETAIL",
                "INTERNET",
                "",
            ])),
            proptest::option::of(any::<u64>()),
            proptest::option::of(any::<u64>()),
            any::<(u32, u32, u32, u32)>(),
        )
            .prop_map(|(email, industry, employees, revenue, (a, b, c, d))| {
                let mut l = lead(
                    "x@y.z",
                    industry,
                    employees,
                    Engagement {
                        page_views: a,
                        email_opens: b,
                        email_clicks: c,
                        form_submissions: d,
                        ..Engagement::default()
                    },
                );
                l.email = email;
                l.firmographics.annual_revenue =
                    revenue.map(|r| Sourced::new(r, Provenance::crm()));
                l
            })
    }

    proptest! {
        #[test]
        fn evaluation_is_deterministic_bounded_and_complete(l in any_lead()) {
            let c = criteria();
            let a = c.evaluate(&l, now());
            prop_assert_eq!(&a, &c.evaluate(&l, now()));
            prop_assert!((0..=c.caps.fit).contains(&a.fit));
            prop_assert!((0..=c.caps.engagement).contains(&a.engagement));
            prop_assert!((0..=c.caps.total).contains(&a.total));
            prop_assert_eq!(a.reasons.len(), c.rules.len());
        }

        #[test]
        fn score_and_evaluate_agree(l in any_lead(), days in 0i64..400) {
            let c = criteria();
            let at = now() + chrono::Duration::days(days);
            let (score, card) = (c.score(&l, at), c.evaluate(&l, at));
            prop_assert_eq!((score.stage, score.fit, score.engagement, score.total), (card.stage, card.fit, card.engagement, card.total));
            prop_assert_eq!(c.band_name(score.band), card.band.as_str());
            prop_assert_eq!(c.matched_codes(&score).collect::<Vec<_>>(), card.matched_codes().collect::<Vec<_>>());
        }

        #[test]
        fn more_engagement_never_lowers_the_score(l in any_lead(), extra in 0u32..1000) {
            let c = criteria();
            let mut more = l.clone();
            more.engagement.page_views = more.engagement.page_views.saturating_add(extra);
            prop_assert!(c.evaluate(&more, now()).total >= c.evaluate(&l, now()).total);
        }
    }
}

#[test]
fn three_mistakes_of_three_kinds_are_all_reported_with_their_lines() {
    let text = EXAMPLE
        .replacen("min_fit = 20\n", "min_fitt = 20\n", 1) // unknown key in [stages.mql]
        .replace(
            "min = 10000000\npoints = 10",
            "min = 10000000\npoints = \"ten\"",
        ) // wrong type
        .replace("min = 50\nmax = 5000", "min = 5000\nmax = 50"); // semantic: min > max
    let err = Criteria::parse("c.toml", &text).unwrap_err();
    assert_eq!(err.issues.len(), 3, "{err}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(err.issues[0].line, line_of("min_fitt"), "{err}");
    assert!(err.issues[0].message.contains("min_fitt"), "{err}");
    let size = line_of("FIT_SIZE_MIDMARKET");
    assert!(
        err.issues.iter().any(
            |i| i.message.contains("min (5000) is greater than max (50)")
                && (size - 2..=size).contains(&i.line)
        ),
        "{err}"
    );
    let revenue = line_of("FIT_REVENUE_10M_PLUS");
    assert!(
        err.issues.iter().any(|i| i.message.contains("fit rule")
            && i.message.contains("ten")
            && (revenue - 2..=revenue + 5).contains(&i.line)),
        "{err}"
    );
    // Each line of the report is `file:line:col: message`.
    for line in err.to_string().lines() {
        let mut parts = line.splitn(4, ':');
        assert_eq!(parts.next(), Some("c.toml"));
        assert!(
            parts.next().unwrap().parse::<usize>().is_ok()
                && parts.next().unwrap().parse::<usize>().is_ok(),
            "{line}"
        );
    }
}

/// Golden: each validation error, its message.
#[test]
fn every_validation_error_has_a_clear_message() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "id = \"northwind-lead-criteria\"",
            "id = \"\"",
            "`id` must not be empty",
        ),
        (
            "effective = \"2026-11-01\"",
            "effective = \"November\"",
            "is not a date",
        ),
        (
            "date = \"2026-10-28\"",
            "date = \"yesterday\"",
            "approved_by.sales.date",
        ),
        (
            "min_fit = 35\nmin_total = 70",
            "min_fit = 35\nmin_total = 170",
            "stage sql is unreachable",
        ),
        ("min_fit = 35", "min_fit = 10", "overlaps mql"),
        (
            "name = \"B\"\nmin_total = 45",
            "name = \"B\"\nmin_total = 95",
            "must come after bands",
        ),
        ("name = \"C\"", "name = \"B\"", "defined twice"),
        (
            "code = \"DQ_STUDENT\"",
            "code = \"dq-student\"",
            "UPPER_SNAKE_CASE",
        ),
        (
            "code = \"ENG_PAGE_VIEWS\"",
            "code = \"ENG_EMAIL_CLICKS\"",
            "used twice",
        ),
        ("field = \"industry\"", "field = \"headcount\"", "headcount"),
        (
            "any_of = [\"COMPUTER_SOFTWARE\"",
            "min = 3\nany_of = [\"COMPUTER_SOFTWARE\"",
            "needs exactly one condition",
        ),
        (
            "field = \"employees\"\nmin = 50",
            "field = \"industry\"\nmin = 50",
            "min/max need a numeric field",
        ),
        (
            "field = \"page_views\"",
            "field = \"country\"",
            "points_each needs a numeric field",
        ),
        (
            "missing = true",
            "missing = true\npoints = 5",
            "disqualifiers carry no points",
        ),
        (
            "points = 20\n\n[[fit]]\ncode = \"FIT_SIZE",
            "\n\n[[fit]]\ncode = \"FIT_SIZE",
            "needs `points`",
        ),
        ("cap = 30", "cap = -1", "cap must not be negative"),
        ("[caps]\nfit = 60", "[caps]\nfit = 60\nbonus = 3", "bonus"),
        (
            "version = \"2026.11.1\"",
            "version = \"2026.11.1\"\nowner = \"ops\"",
            "unknown key `owner`",
        ),
    ];
    for (from, to, want) in cases {
        assert!(EXAMPLE.contains(from), "fixture drifted: {from:?}");
        let err = Criteria::parse("c.toml", &EXAMPLE.replacen(from, to, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(want),
            "{from:?} → {to:?}: expected {want:?} in:\n{err}"
        );
    }
}

/// Golden: one lead per rule kind, the reason each produces.
#[test]
fn every_rule_kind_explains_itself() {
    let c = criteria();
    let mut l = lead(
        "ana@acme.com",
        Some("INTERNET"),
        Some(20),
        Engagement {
            email_clicks: 2,
            ..Engagement::default()
        },
    );
    l.job_title = Some("Student".into());
    l.firmographics.country = Some(Sourced::new(
        "Brazil".into(),
        Provenance {
            provider: "pdl".into(),
            likelihood: Some(7),
            fetched_at: None,
        },
    ));
    let card = c.evaluate(&l, now());
    let got = |code: &str| {
        let r = reason(&card, code);
        (r.outcome, r.points, r.value.clone(), r.source.clone())
    };
    use ReasonOutcome::{Matched, Missing, NotMatched};
    // any_of on text (matched), with provenance
    assert_eq!(
        got("FIT_INDUSTRY_CORE"),
        (Matched, 20, Some("INTERNET".into()), Some("crm".into()))
    );
    // min/max range (not matched)
    assert_eq!(
        got("FIT_SIZE_MIDMARKET"),
        (NotMatched, 0, Some("20".into()), Some("crm".into()))
    );
    // min only, value missing
    assert_eq!(got("FIT_REVENUE_10M_PLUS"), (Missing, 0, None, None));
    // any_of against an enriched value, not matched, provenance kept
    assert_eq!(
        got("FIT_COUNTRY_SERVED"),
        (NotMatched, 0, Some("Brazil".into()), Some("pdl".into()))
    );
    // missing = true (not matched: there is an email)
    assert_eq!(
        got("DQ_NO_EMAIL"),
        (NotMatched, 0, Some("present".into()), None)
    );
    // any_of on the email domain (not matched)
    assert_eq!(
        got("DQ_FREE_MAIL"),
        (NotMatched, 0, Some("acme.com".into()), None)
    );
    // any_of on job title (matched: disqualifies)
    assert_eq!(got("DQ_STUDENT").0, Matched);
    assert_eq!(card.stage, Stage::Disqualified);
    // points_each with cap and decay (active today: 2 × 3)
    assert_eq!(
        got("ENG_EMAIL_CLICKS"),
        (Matched, 6, Some("2, last 2026-11-20".into()), None)
    );
    // points_each with a zero count
    assert_eq!(got("ENG_FORM_SUBMISSIONS").0, NotMatched);
}

#[test]
fn enterprise_example_is_valid_signed_and_has_at_least_20_rules() {
    let c = Criteria::parse(
        "enterprise-saas.toml",
        include_str!("../../../../infra/criteria/enterprise-saas.toml"),
    )
    .unwrap();
    assert!(c.is_signed());
    assert!(c.rules.len() >= 20, "{}", c.rules.len());
    assert_eq!(c.rules.len(), 28);
}

#[test]
fn sql_can_require_bant_confirmations() {
    let c = Criteria::parse(
        "enterprise-saas.toml",
        include_str!("../../../../infra/criteria/enterprise-saas.toml"),
    )
    .unwrap();
    let hot = Engagement {
        page_views: 30,
        email_opens: 10,
        email_clicks: 6,
        form_submissions: 2,
        ..Engagement::default()
    };
    let mut l = lead("cto@bank.example", Some("BANKING"), Some(5000), hot);
    l.job_title = Some("CTO".into());
    l.firmographics.country = Some(Sourced::new("Germany".into(), Provenance::crm()));
    l.firmographics.annual_revenue = Some(Sourced::new(500_000_000, Provenance::crm()));
    let without = c.evaluate(&l, now());
    assert!(
        without.fit >= c.sql.min_fit && without.total >= c.sql.min_total,
        "{without:?}"
    );
    assert_eq!(
        without.stage,
        Stage::Mql,
        "over the SQL bar, but budget and authority unconfirmed"
    );
    l.bant.budget = Some("confirmed".into());
    assert_eq!(
        c.evaluate(&l, now()).stage,
        Stage::Mql,
        "authority still missing"
    );
    l.bant.authority = Some("DECISION_MAKER".into());
    let with = c.evaluate(&l, now());
    assert_eq!(with.stage, Stage::Sql);
    assert_eq!(c.score(&l, now()).stage, Stage::Sql);
    assert_eq!(
        reason(&with, "BANT_BUDGET_CONFIRMED").value.as_deref(),
        Some("confirmed")
    );
}

#[test]
fn a_stage_cannot_require_an_undefined_rule() {
    let text = include_str!("../../../../infra/criteria/enterprise-saas.toml")
        .replace("\"BANT_AUTHORITY_DECISION_MAKER\"]", "\"BANT_AUTHORITY\"]");
    let err = Criteria::parse("e.toml", &text).unwrap_err();
    assert!(
        err.to_string()
            .contains("stage sql requires rule \"BANT_AUTHORITY\""),
        "{err}"
    );
}

#[test]
fn sales_status_recycles_a_lead_but_never_over_a_disqualifier() {
    let c = criteria();
    let hot = Engagement {
        page_views: 30,
        email_clicks: 5,
        form_submissions: 2,
        ..Engagement::default()
    };
    let mut l = lead("a@acme.com", Some("COMPUTER_SOFTWARE"), Some(200), hot);
    assert_eq!(c.evaluate(&l, now()).stage, Stage::Sql);
    l.lead_status = Some("bad_timing".into());
    let card = c.evaluate(&l, now());
    assert_eq!(
        card.stage,
        Stage::Recycled,
        "sales sent it back: the score stays, the stage says so"
    );
    assert_eq!(card.total, 90);
    assert_eq!(c.score(&l, now()).stage, Stage::Recycled);
    l.email = Some("a@gmail.com".into());
    assert_eq!(c.evaluate(&l, now()).stage, Stage::Disqualified);
    let err = Criteria::parse(
        "c.toml",
        &EXAMPLE.replace(
            "lead_status = [\"BAD_TIMING\"]",
            "statuses = [\"BAD_TIMING\"]",
        ),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("stages.recycled") && err.to_string().contains("statuses"),
        "{err}"
    );
}

#[test]
fn technology_lists_and_company_type_match_any_entry() {
    let c = Criteria::parse(
        "enterprise-saas.toml",
        include_str!("../../../../infra/criteria/enterprise-saas.toml"),
    )
    .unwrap();
    let mut l = lead("a@acme.com", None, None, Engagement::default());
    let pdl = Provenance {
        provider: "pdl".into(),
        likelihood: Some(9),
        fetched_at: None,
    };
    l.firmographics.technologies = Some(Sourced::new(
        vec!["zendesk".into(), "Snowflake".into()].into(),
        Provenance::crm(),
    ));
    l.firmographics.company_type = Some(Sourced::new("Private".into(), pdl));
    let card = c.evaluate(&l, now());
    let tech = reason(&card, "FIT_TECH_STACK");
    assert_eq!(
        (tech.outcome, tech.points, tech.value.as_deref()),
        (ReasonOutcome::Matched, 5, Some("zendesk;Snowflake"))
    );
    let kind = reason(&card, "FIT_COMPANY_TYPE");
    assert_eq!(
        (kind.outcome, kind.source.as_deref()),
        (ReasonOutcome::Matched, Some("pdl"))
    );
    l.firmographics.technologies = Some(Sourced::new(
        vec!["zendesk".into()].into(),
        Provenance::crm(),
    ));
    assert_eq!(
        reason(&c.evaluate(&l, now()), "FIT_TECH_STACK").outcome,
        ReasonOutcome::NotMatched
    );
    l.firmographics.technologies = None;
    assert_eq!(
        reason(&c.evaluate(&l, now()), "FIT_TECH_STACK").outcome,
        ReasonOutcome::Missing
    );
    assert_eq!(c.score(&l, now()), c.score(&l.clone(), now()));
}

#[test]
fn next_change_is_the_first_hour_time_alone_moves_the_stage_or_band() {
    let c = criteria();
    // An MQL on fit 40 (core industry, mid-market) and engagement that decays: clicks and views.
    let busy = Engagement {
        page_views: 10,
        email_clicks: 3,
        ..Engagement::default()
    };
    let l = lead("a@acme.com", Some("COMPUTER_SOFTWARE"), Some(200), busy);
    let card = c.evaluate(&l, now());
    assert_eq!(card.stage, Stage::Mql, "{card:#?}");
    let due = c.next_change(&l, now()).expect("decay moves this lead");
    assert!(due > now());
    let before = c.score(&l, due - chrono::Duration::hours(1));
    let after = c.score(&l, due);
    assert_eq!(
        (before.stage, before.band),
        (card.stage, c.band_index(&card.band))
    );
    assert_ne!((after.stage, after.band), (before.stage, before.band));
    // The same answer from any `now` before it: storing it rewrites nothing night after night.
    assert_eq!(
        c.next_change(&l, now() + chrono::Duration::hours(30)),
        Some(due)
    );
    // A lead with no time-dependent points never changes by time alone.
    let quiet = lead(
        "b@acme.com",
        Some("COMPUTER_SOFTWARE"),
        Some(200),
        Engagement::default(),
    );
    assert_eq!(c.next_change(&quiet, now()), None);
}

/// The example with `insert` placed as the last line of the table whose header is on line
/// `header` (1-based), and the inserted line's number.
fn with_line_in_table(header: usize, insert: &str) -> (String, usize) {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let mut end = lines
        .iter()
        .enumerate()
        .skip(header)
        .find(|(_, l)| l.trim_start().starts_with('['))
        .map_or(lines.len(), |(i, _)| i);
    // Before the blank lines and comments that lead into the next table.
    while end > header
        && (lines[end - 1].trim().is_empty() || lines[end - 1].trim_start().starts_with('#'))
    {
        end -= 1;
    }
    let mut out: Vec<&str> = lines[..end].to_vec();
    out.push(insert);
    out.extend(&lines[end..]);
    (out.join("\n") + "\n", end + 1)
}

fn headers() -> Vec<(usize, &'static str)> {
    EXAMPLE
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with('['))
        .map(|(i, l)| (i + 1, l))
        .collect()
}

#[test]
fn a_misspelt_key_in_any_table_is_reported_at_its_own_line() {
    let mut checked = 0;
    for (header, name) in headers() {
        // `[incentives.fx]` maps any currency code to a rate: a key there is data.
        if name == "[incentives.fx]" {
            continue;
        }
        let (text, line) = with_line_in_table(header, "misspelt_key = 1");
        let err = Criteria::parse("c.toml", &text).unwrap_err();
        let issue = err
            .issues
            .iter()
            .find(|i| i.message.contains("misspelt_key"))
            .unwrap_or_else(|| panic!("{name}: {err}"));
        assert_eq!(
            (issue.line, issue.column),
            (line, 1),
            "{name} (header on line {header}): {err}"
        );
        checked += 1;
    }
    assert!(checked >= 25, "{checked} tables");
    // At the top, and a stage that does not exist.
    for (insert, after) in [
        ("misspelt_key = 1", "effective"),
        ("[stages.mqll]\nmin_fit = 1", "[caps]"),
    ] {
        let at = EXAMPLE.lines().position(|l| l.starts_with(after)).unwrap();
        let mut lines: Vec<&str> = EXAMPLE.lines().collect();
        lines.insert(if after.starts_with('[') { at } else { at + 1 }, insert);
        let text = lines.join("\n") + "\n";
        let line = text
            .lines()
            .position(|l| l.contains("misspelt_key") || l.contains("mqll"))
            .unwrap()
            + 1;
        let err = Criteria::parse("c.toml", &text).unwrap_err();
        assert!(
            err.issues.iter().any(|i| i.line == line),
            "`{insert}` on line {line}: {err}"
        );
    }
}

#[test]
fn a_wrong_type_or_bad_value_in_any_table_is_reported_at_its_value() {
    let mut checked = 0;
    for (header, name) in headers() {
        // The first `key = value` line of the table, its value replaced by a wrong type.
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let Some((at, line)) = lines
            .iter()
            .enumerate()
            .skip(header)
            .take_while(|(_, l)| !l.starts_with('['))
            .find(|(_, l)| l.contains(" = ") && !l.trim_start().starts_with('#'))
        else {
            continue;
        };
        let key = line.split(" = ").next().unwrap();
        let broken = format!("{key} = {{ nested = {{ deeper = true }} }}");
        let mut out = lines.clone();
        out[at] = &broken;
        let text = out.join("\n") + "\n";
        let err = Criteria::parse("c.toml", &text).unwrap_err();
        assert!(
            err.issues.iter().any(|i| i.line == at + 1),
            "{name}: `{broken}` on line {}: {err}",
            at + 1
        );
        assert!(
            err.issues.iter().all(|i| i.line == at + 1),
            "{name}: every issue on line {}: {err}",
            at + 1
        );
        checked += 1;
    }
    assert!(checked >= 25, "{checked} tables");
}

/// A document reading properties of its own on each object.
const MAPPED: &str = r#"
id = "mapped"
version = "1"
effective = "2026-11-01"

[fields]
plan_tier = { object = "company", property = "plan_tier", type = "enumeration" }
deal_amount = { object = "deal", property = "amount", type = "number" }
demo_at = { object = "contact", property = "demo_requested_at", type = "date" }
renewal = { object = "company", property = "contract_end", type = "date" }
partner = { object = "contact", property = "is_partner", type = "boolean" }
tools = { object = "company", property = "tools", type = "multi_select" }
budget = { object = "contact", property = "budget_confirmed", type = "enumeration" }

[stages.mql]
min_fit = 10
min_total = 20

[stages.sql]
min_fit = 30
min_total = 50

[[bands]]
name = "A"
min_total = 50

[[bands]]
name = "B"
min_total = 0

[[disqualify]]
code = "DQ_PARTNER"
label = "A partner, not a buyer"
field = "partner"
is = true

[[fit]]
code = "FIT_ENTERPRISE"
label = "Enterprise plan"
field = "plan_tier"
any_of = ["enterprise"]
points = 30

[[fit]]
code = "FIT_BIG_DEAL"
label = "A deal of 10,000 or more"
field = "deal_amount"
min = 10000
points = 20

[[fit]]
code = "FIT_VP"
label = "A VP or director"
field = "job_title"
contains = ["vp", "director"]
points = 10

[[fit]]
code = "FIT_USES_RIVAL"
label = "Uses a rival's tool"
field = "tools"
any_of = ["rivalsoft"]
points = -15

[[fit]]
code = "FIT_BUDGET"
label = "Budget confirmed"
field = "budget"
any_of = ["YES"]
points = 5

[[engagement]]
code = "ENG_DEMO_RECENT"
label = "Asked for a demo in the last 30 days"
field = "demo_at"
within_days = 30
points = 25

[[engagement]]
code = "ENG_RENEWAL_SOON"
label = "Contract ends within 90 days"
field = "renewal"
due_within_days = 90
points = 10

[[engagement]]
code = "ENG_QUIET"
label = "No email click in 30 days"
field = "last_email_click"
older_than_days = 30
points = -10
"#;

fn mapped() -> Criteria {
    Criteria::parse("mapped.toml", MAPPED).unwrap()
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - chrono::Duration::days(days)
}

#[test]
fn mapped_fields_are_read_where_the_document_says() {
    let c = mapped();
    let reads = c.crm_reads();
    assert_eq!(reads.contact, ["demo_requested_at", "is_partner"]);
    assert_eq!(reads.company, ["plan_tier", "contract_end", "tools"]);
    assert_eq!(reads.deal, ["amount"]);
    assert_eq!(reads.budget.as_deref(), Some("budget_confirmed"));
    assert_eq!(reads.authority, None);
    assert_eq!(
        c.objects_read(),
        [CrmObject::Contact, CrmObject::Company, CrmObject::Deal]
    );
    // The moved input is the account's: not created. The others leadsync owns.
    let owned: Vec<String> = c
        .crm_property_specs()
        .into_iter()
        .filter(|s| s.read_only)
        .map(|s| s.name)
        .collect();
    assert_eq!(
        owned,
        [
            "bant_authority",
            "bant_need",
            "bant_timeline",
            "lead_rejection_reason"
        ]
    );
}

#[test]
fn mapped_rules_score_with_negative_points_and_dates() {
    let c = mapped();
    let mut l = Lead::new(LeadId::new("7").unwrap(), DateTime::<Utc>::UNIX_EPOCH);
    l.email = Some("a@acme.com".into());
    l.job_title = Some("Regional VP of Sales".into());
    l.bant.budget = Some("yes".into());
    let props = [
        ("company.plan_tier", "Enterprise"),
        ("contact.demo_requested_at", "2026-11-05"),
        // HubSpot gives dates as epoch milliseconds too: 60 days ahead.
        (
            "company.contract_end",
            &(now() + chrono::Duration::days(60))
                .timestamp_millis()
                .to_string(),
        ),
        ("contact.is_partner", "false"),
        ("company.tools", "hubspot;RivalSoft"),
    ];
    for (k, v) in props {
        l.properties.insert(k.to_owned(), v.to_owned());
    }
    l.engagement.last_email_click_at = Some(days_ago(45));
    // Two deals: the most recently created one with an amount counts.
    l.deals = vec![
        Deal {
            id: "1".into(),
            created_at: Some(days_ago(100)),
            properties: [("amount".to_owned(), "50000".to_owned())].into(),
            ..Deal::default()
        },
        Deal {
            id: "2".into(),
            created_at: Some(days_ago(10)),
            properties: [("amount".to_owned(), "2500.50".to_owned())].into(),
            ..Deal::default()
        },
        Deal {
            id: "3".into(),
            created_at: Some(days_ago(1)),
            ..Deal::default()
        },
    ];
    let card = c.evaluate(&l, now());
    let got = |code: &str| {
        let r = reason(&card, code);
        (r.outcome, r.points, r.value.clone())
    };
    use ReasonOutcome::{Matched, NotMatched};
    assert_eq!(
        got("FIT_ENTERPRISE"),
        (Matched, 30, Some("Enterprise".into()))
    );
    assert_eq!(got("FIT_BIG_DEAL"), (NotMatched, 0, Some("2500.5".into())));
    assert_eq!(got("FIT_VP").0, Matched);
    assert_eq!(
        got("FIT_USES_RIVAL"),
        (Matched, -15, Some("hubspot;RivalSoft".into()))
    );
    assert_eq!(got("FIT_BUDGET"), (Matched, 5, Some("yes".into())));
    assert_eq!(
        got("ENG_DEMO_RECENT"),
        (Matched, 25, Some("2026-11-05".into()))
    );
    assert_eq!(got("ENG_RENEWAL_SOON").0, Matched);
    assert_eq!(got("ENG_QUIET").1, -10);
    assert_eq!(got("DQ_PARTNER").0, NotMatched);
    assert_eq!(
        (card.fit, card.engagement),
        (30 + 10 - 15 + 5, 25 + 10 - 10)
    );
    assert_eq!(card.stage, Stage::Sql);
    assert!(
        card.summary()
            .contains("-15 Uses a rival's tool [hubspot;RivalSoft]")
    );

    // A partner is out, whatever it scores; an unreadable value is missing, and says why.
    l.properties
        .insert("contact.is_partner".into(), "TRUE".into());
    l.deals[1].properties.insert("amount".into(), "lots".into());
    let card = c.evaluate(&l, now());
    assert_eq!(card.stage, Stage::Disqualified);
    assert_eq!(
        (
            reason(&card, "FIT_BIG_DEAL").outcome,
            reason(&card, "FIT_BIG_DEAL").value.as_deref()
        ),
        (ReasonOutcome::Missing, Some("lots (not a number)"))
    );

    // Time alone: the demo leaves its 30-day window on 2026-12-05; the stage changes then.
    l.properties
        .insert("contact.is_partner".into(), "no".into());
    let change = c.next_change(&l, now()).unwrap();
    assert!(
        change <= DateTime::parse_from_rfc3339("2026-12-05T01:00:00Z").unwrap(),
        "{change}"
    );
    assert_ne!(c.score(&l, change).stage, c.score(&l, now()).stage);
}

#[test]
fn mapping_mistakes_are_reported_where_they_stand() {
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases = [
        (
            "tools = { object = \"company\", property = \"tools\", type = \"multi_select\" }",
            "tools = { object = \"company\", property = \"tools\", kind = \"multi_select\" }",
            "tools = {",
            "unknown field `kind`",
        ),
        (
            "tools = { object = \"company\", property = \"tools\", type = \"multi_select\" }",
            "tools = { object = \"account\", property = \"tools\", type = \"multi_select\" }",
            "tools = {",
            "account",
        ),
        (
            "tools = { object = \"company\", property = \"tools\", type = \"multi_select\" }",
            "industry = { object = \"company\", property = \"sector\", type = \"text\" }",
            "industry = {",
            "`industry` is built in",
        ),
        (
            "budget = { object = \"contact\", property = \"budget_confirmed\", type = \"enumeration\" }",
            "budget = { object = \"deal\", property = \"budget_confirmed\", type = \"enumeration\" }",
            "budget = {",
            "recorded on the contact",
        ),
        (
            "field = \"plan_tier\"",
            "field = \"plan_teir\"",
            "field = \"plan_teir\"",
            "unknown field `plan_teir`",
        ),
        (
            "field = \"demo_at\"\nwithin_days = 30",
            "field = \"demo_at\"\nany_of = [\"x\"]",
            "^code = \"ENG_DEMO_RECENT\"",
            "any_of needs a text field; demo_at is a date (use within_days",
        ),
        (
            "field = \"partner\"\nis = true",
            "field = \"plan_tier\"\nis = true",
            "^code = \"DQ_PARTNER\"",
            "is needs a boolean field",
        ),
    ];
    for (from, to, at, message) in cases {
        assert!(MAPPED.contains(from), "{from}");
        let text = MAPPED.replacen(from, to, 1);
        let err = Criteria::parse("mapped.toml", &text).unwrap_err();
        let issue = err
            .issues
            .iter()
            .find(|i| i.message.contains(message))
            .unwrap_or_else(|| panic!("{message:?} not in:\n{err}"));
        // `^`: a rule's own problem, at its table's header (the line above its code).
        let want = match at.strip_prefix('^') {
            Some(code) => line_of(&text, code) - 1,
            None => line_of(&text, at),
        };
        assert_eq!(issue.line, want, "{message}: {err}");
    }
}

#[test]
fn the_crm_s_definitions_decide_whether_a_mapping_holds() {
    let c = mapped();
    let p = |name: &str, kind: Option<FieldType>| CrmProperty {
        name: name.to_owned(),
        kind,
        crm_type: "t".into(),
    };
    let mut described = Described::from([
        (
            CrmObject::Contact,
            vec![
                p("demo_requested_at", Some(FieldType::Date)),
                p("is_partner", Some(FieldType::Boolean)),
                p("budget_confirmed", Some(FieldType::Enumeration)),
            ],
        ),
        (
            CrmObject::Company,
            vec![
                p("plan_tier", Some(FieldType::Enumeration)),
                p("contract_end", Some(FieldType::Date)),
                p("Tools", Some(FieldType::MultiSelect)),
            ],
        ),
        (CrmObject::Deal, vec![p("amount", Some(FieldType::Number))]),
    ]);
    c.check_properties(&described, "HubSpot").unwrap();
    described.get_mut(&CrmObject::Deal).unwrap().clear();
    described.get_mut(&CrmObject::Company).unwrap()[0].kind = Some(FieldType::Number);
    let err = c.check_properties(&described, "HubSpot").unwrap_err();
    let text = err.to_string();
    assert_eq!(err.issues.len(), 2, "{text}");
    assert!(
        text.contains("fields.deal_amount: HubSpot has no deal property `amount`"),
        "{text}"
    );
    assert!(
        text.contains(
            "fields.plan_tier: the company property `plan_tier` is number in HubSpot (t), the document says enumeration"
        ),
        "{text}"
    );
    let at = MAPPED
        .lines()
        .position(|l| l.starts_with("deal_amount"))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!("mapped.toml:{at}:1: fields.deal_amount")),
        "{text}"
    );
}

/// Hostile criteria documents (issue 19): both example agreements garbled in every way the
/// generator knows. Parsing never panics; a refusal names at least one place, and every place
/// it names is inside the document; a document that does parse evaluates a lead.
#[test]
fn hostile_documents_are_refused_at_a_place_in_them_and_never_panic() {
    const ENTERPRISE: &str = include_str!("../../../../infra/criteria/enterprise-saas.toml");
    crate::hostile::check(
        "criteria TOML",
        3_000,
        crate::hostile::text(&[EXAMPLE, ENTERPRISE]),
        |text| {
            match Criteria::parse("c.toml", &text) {
                Ok(c) => {
                    let l = lead(
                        "a@b.com",
                        Some("COMPUTER_SOFTWARE"),
                        Some(50),
                        Engagement::default(),
                    );
                    let _ = c.evaluate(&l, now());
                }
                Err(e) => {
                    proptest::prop_assert!(!e.issues.is_empty(), "a refusal says why");
                    let lines = text.matches('\n').count() + 1;
                    for issue in &e.issues {
                        proptest::prop_assert!(
                            (1..=lines).contains(&issue.line) && issue.column >= 1,
                            "{}:{} outside a {lines}-line document: {}",
                            issue.line,
                            issue.column,
                            issue.message
                        );
                    }
                }
            }
            Ok(())
        },
    );
}
