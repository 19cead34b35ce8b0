//! Scoring throughput on a realistic 28-rule document over 10,000 varied leads.
//!
//! `cargo bench -p leadsync-domain --bench evaluate` — criterion reports elements (leads) per
//! second for one core.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadsync_domain::{Criteria, Engagement, Firmographics, Lead, LeadId, Provenance, Sourced};
use std::hint::black_box;

const DOCUMENT: &str = include_str!("../../../infra/criteria/enterprise-saas.toml");

/// Deterministic, varied leads: free-mail and work domains, missing and present firmographics,
/// engagement of all sizes and ages.
fn leads(n: u64, now: DateTime<Utc>) -> Vec<Lead> {
    const INDUSTRIES: &[&str] = &[
        "COMPUTER_SOFTWARE",
        "BANKING",
        "INTERNET",
        "RETAIL",
        "EDUCATION_MANAGEMENT",
        "CONSTRUCTION",
    ];
    const COUNTRIES: &[&str] = &[
        "United States",
        "Germany",
        "France",
        "Brazil",
        "India",
        "Ireland",
    ];
    const TITLES: &[&str] = &[
        "CTO",
        "Marketing Manager",
        "Student",
        "VP Engineering",
        "Analyst",
        "Founder",
    ];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let mut l = Lead::new(LeadId::new(i.to_string()).unwrap(), now);
            let r = next();
            l.email = match r % 10 {
                0 => None,
                1 | 2 => Some(format!("person{i}@gmail.com")),
                _ => Some(format!("person{i}@company{}.com", r % 997)),
            };
            l.job_title = Some(TITLES[(r >> 8) as usize % TITLES.len()].to_owned());
            l.source = Some(
                if r % 7 == 0 {
                    "REFERRALS"
                } else {
                    "ORGANIC_SEARCH"
                }
                .to_owned(),
            );
            let crm = Provenance::crm();
            if r % 5 != 0 {
                l.firmographics = Firmographics {
                    industry: Some(Sourced::new(
                        INDUSTRIES[(r >> 16) as usize % INDUSTRIES.len()].to_owned(),
                        crm.clone(),
                    )),
                    employees: Some(Sourced::new(
                        10u64.pow(((r >> 20) % 5) as u32) * ((r >> 24) % 9 + 1),
                        crm.clone(),
                    )),
                    annual_revenue: (r % 3 != 0)
                        .then(|| Sourced::new((r >> 28) % 500_000_000, crm.clone())),
                    country: Some(Sourced::new(
                        COUNTRIES[(r >> 32) as usize % COUNTRIES.len()].to_owned(),
                        crm.clone(),
                    )),
                    company_type: (r % 4 != 0).then(|| {
                        Sourced::new(
                            ["private", "public", "nonprofit"][(r >> 52) as usize % 3].to_owned(),
                            crm.clone(),
                        )
                    }),
                    technologies: Some(Sourced::new(
                        ["salesforce", "zendesk", "aws", "shopify"]
                            .iter()
                            .take((r >> 56) as usize % 4 + 1)
                            .map(|t| (*t).to_owned())
                            .collect(),
                        crm,
                    )),
                };
            }
            let ago = |shift: u32| Some(now - Duration::hours(((r >> shift) % (24 * 120)) as i64));
            l.engagement = Engagement {
                page_views: ((r >> 36) % 40) as u32,
                email_opens: ((r >> 40) % 12) as u32,
                email_clicks: ((r >> 44) % 6) as u32,
                form_submissions: ((r >> 48) % 3) as u32,
                last_page_view_at: ago(3),
                last_email_open_at: ago(5),
                last_email_click_at: ago(7),
                last_form_submission_at: ago(9),
            };
            l
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let criteria = Criteria::parse("enterprise-saas.toml", DOCUMENT).unwrap();
    let now = DateTime::parse_from_rfc3339("2026-12-10T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let leads = leads(10_000, now);
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(leads.len() as u64));
    group.bench_function("28 rules, full explanation", |b| {
        b.iter(|| {
            for lead in &leads {
                black_box(criteria.evaluate(black_box(lead), now));
            }
        });
    });
    group.bench_function("28 rules, stage and score", |b| {
        b.iter(|| {
            for lead in &leads {
                black_box(criteria.score(black_box(lead), now));
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
