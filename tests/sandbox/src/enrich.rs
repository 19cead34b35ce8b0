//! A People Data Labs–shaped company enrichment endpoint over the sandbox's companies:
//! `GET /v5/company/enrich?website=acme.com` with `X-Api-Key`. 200 with the company and a
//! likelihood (billed: one credit), 404 when there is no match (not billed), 401 on a bad key.

use crate::data::Record;
use serde_json::{Value, json};

/// The key the sandbox's enrichment endpoint accepts.
pub const API_KEY: &str = "sandbox-pdl-key";

fn size_range(employees: u64) -> &'static str {
    match employees {
        0..=10 => "1-10",
        11..=50 => "11-50",
        51..=200 => "51-200",
        201..=500 => "201-500",
        501..=1000 => "501-1000",
        1001..=5000 => "1001-5000",
        5001..=10000 => "5001-10000",
        _ => "10001+",
    }
}

fn revenue_range(revenue: u64) -> &'static str {
    match revenue {
        0..=999_999 => "$0-$1M",
        1_000_000..=9_999_999 => "$1M-$10M",
        10_000_000..=24_999_999 => "$10M-$25M",
        25_000_000..=49_999_999 => "$25M-$50M",
        50_000_000..=99_999_999 => "$50M-$100M",
        100_000_000..=249_999_999 => "$100M-$250M",
        250_000_000..=499_999_999 => "$250M-$500M",
        500_000_000..=999_999_999 => "$500M-$1B",
        _ => "$1B-$10B",
    }
}

/// The PDL answer for a company: its own fields, in PDL's vocabulary (lowercase industry,
/// ranges for size and revenue). The likelihood is derived from the id (deterministic).
pub fn company_answer(company: &Record) -> Value {
    let p = &company.properties;
    let employees = p
        .get("numberofemployees")
        .and_then(|v| v.parse::<u64>().ok());
    let revenue = p.get("annualrevenue").and_then(|v| v.parse::<u64>().ok());
    let types = ["private", "public", "private", "private", "nonprofit"];
    json!({
        "status": 200,
        "likelihood": 4 + (company.id % 7),
        "name": p.get("name").map(|n| n.to_lowercase()),
        "website": p.get("domain"),
        "size": employees.map(size_range),
        "employee_count": employees,
        "industry": p.get("industry").map(|i| i.to_lowercase().replace('_', " ")),
        "inferred_revenue": revenue.map(revenue_range),
        "location": { "country": p.get("country").map(|c| c.to_lowercase()), "region": null, "locality": null },
        "type": types[(company.id % types.len() as u64) as usize],
        "tags": [],
        "linkedin_url": p.get("domain").map(|d| format!("linkedin.com/company/{}", d.split('.').next().unwrap_or_default())),
    })
}

/// The provider plan's rate limit (PDL: 10 per minute free, 1,000 paid). Unlimited unless a
/// test sets one; requests over it get PDL's 429 and are counted as violations.
#[derive(Debug)]
pub struct PlanLimit {
    pub per_window: u32,
    pub window: std::time::Duration,
    admitted: std::collections::VecDeque<std::time::Instant>,
    /// Requests that arrived while the window was already full.
    pub violations: u64,
}

impl Default for PlanLimit {
    fn default() -> Self {
        Self::new(u32::MAX, std::time::Duration::from_secs(60))
    }
}

impl PlanLimit {
    pub fn new(per_window: u32, window: std::time::Duration) -> Self {
        Self {
            per_window,
            window,
            admitted: std::collections::VecDeque::new(),
            violations: 0,
        }
    }

    /// Admit a request arriving at `now`, or count a violation and refuse it.
    pub fn admit(&mut self, now: std::time::Instant) -> bool {
        while self
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() as u64 >= u64::from(self.per_window) {
            self.violations += 1;
            return false;
        }
        self.admitted.push_back(now);
        true
    }
}

/// PDL's 429 body.
pub fn rate_limited() -> Value {
    json!({"status": 429, "error": {"type": "rate_limit_error", "message": "An error occurred due to requests hitting the API rate limit."}})
}
