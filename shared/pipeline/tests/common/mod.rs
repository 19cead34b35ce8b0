//! Test data shared by the pipeline's integration tests: leads across owners, sources and the
//! whole funnel.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use leadsync_domain::{Deal, Engagement, Firmographics, Lead, LeadId, Provenance, Sourced};

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// 120 leads across owners, sources and the funnel: fit and engagement vary, some have a sales
/// verdict, some deals, some closed-won.
pub fn leads(modified: DateTime<Utc>) -> Vec<Lead> {
    leads_n(modified, 120)
}

/// `n` leads like [`leads`], ids from 5000.
pub fn leads_n(modified: DateTime<Utc>, n: u32) -> Vec<Lead> {
    let statuses = [
        None,
        Some("IN_PROGRESS"),
        Some("UNQUALIFIED"),
        Some("CONNECTED"),
        Some("BAD_TIMING"),
    ];
    let sources = [
        "ORGANIC_SEARCH",
        "PAID_SEARCH",
        "EMAIL_MARKETING",
        "REFERRALS",
    ];
    (0..n)
        .map(|i| {
            let mut l = Lead::new(LeadId::new(format!("{}", 5000 + i)).unwrap(), modified);
            l.email = Some(if i % 7 == 0 {
                format!("p{i}@gmail.com")
            } else {
                format!("p{i}@co{i}.com")
            });
            l.owner_id = Some(format!("owner{}", i % 4));
            l.source = Some(sources[(i % 4) as usize].to_owned());
            l.lead_status = statuses[(i % 5) as usize].map(str::to_owned);
            if i % 5 == 2 {
                l.rejection_reason = Some(["NO_BUDGET", "WRONG_PERSON"][(i % 2) as usize].into());
            }
            l.engagement = Engagement {
                page_views: i % 25,
                email_opens: i % 6,
                email_clicks: i % 5,
                form_submissions: i % 4,
                last_page_view_at: Some(modified),
                last_email_open_at: Some(modified),
                last_email_click_at: Some(modified),
                last_form_submission_at: Some(modified),
            };
            if i % 3 != 0 {
                l.firmographics = Firmographics {
                    industry: Some(Sourced::new("COMPUTER_SOFTWARE".into(), Provenance::crm())),
                    employees: Some(Sourced::new(50 + u64::from(i) * 20, Provenance::crm())),
                    annual_revenue: Some(Sourced::new(20_000_000, Provenance::crm())),
                    country: Some(Sourced::new("United States".into(), Provenance::crm())),
                    ..Firmographics::default()
                };
            }
            if i % 6 == 1 {
                l.deals.push(Deal {
                    id: format!("d{i}"),
                    stage: Some(
                        if i % 12 == 1 {
                            "closedwon"
                        } else {
                            "appointmentscheduled"
                        }
                        .into(),
                    ),
                    amount_cents: Some(i64::from(i) * 100_000 + 12_345),
                    ..Deal::default()
                });
            }
            l
        })
        .collect()
}
