//! Deterministic synthetic CRM data: the same seed, counts and anchor give the same records.
//!
//! The world is laid out backwards from the anchor (the run's `now` in the demo and
//! `leadsync sandbox`; a fixed instant in tests): contacts created over the 180 days before it
//! and modified within 30 days of their creation; sales verdicts that follow engagement (the
//! more a lead engages, the likelier sales has taken it, turned it down with a reason, or sent
//! it back for nurture); deals opened after sales took a lead, closed won or lost (with a
//! reason) when their cycle ended before the anchor, some on a custom pipeline whose stage ids
//! are numbers (only `hs_is_closed_won` says won), some owned by another rep than the contact's,
//! some in EUR, some shared by two contacts of one company.

use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One CRM object (contact or company), as HubSpot stores it: string properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub archived: bool,
}

impl Record {
    /// The property that holds the modification time for this object type.
    pub fn touch(&mut self, at: DateTime<Utc>, modified_property: &str) {
        self.updated_at = at;
        self.properties
            .insert(modified_property.to_owned(), iso(at));
    }
}

/// Millisecond ISO-8601, as HubSpot writes dates in properties.
pub fn iso(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSpec {
    pub seed: u64,
    pub contacts: u64,
    /// Records are created and modified within the 180 days before this instant.
    pub anchor: DateTime<Utc>,
}

impl DataSpec {
    /// Anchored at a fixed instant (2026-11-01): what tests use, identical on every machine.
    pub fn new(seed: u64, contacts: u64) -> Self {
        let anchor = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
            .map_or(DateTime::<Utc>::UNIX_EPOCH, |d| d.with_timezone(&Utc));
        Self::anchored(seed, contacts, anchor)
    }

    /// Anchored at `anchor` (the run's `now`): the world ends there.
    pub fn anchored(seed: u64, contacts: u64, anchor: DateTime<Utc>) -> Self {
        Self {
            seed,
            contacts,
            anchor,
        }
    }
}

/// A deterministic 0..100 roll from an id and a salt (the random stream is left untouched).
fn id_roll(id: u64, salt: u64) -> u64 {
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 29;
    x % 100
}

/// Sales' verdict on a contact, from how much it engaged and whether it is a business address:
/// sales works the engaged leads, so verdicts follow engagement.
fn sales_status(id: u64, engagement: u64, work_email: bool, student: bool) -> Option<&'static str> {
    let r = id_roll(id, 11);
    if student {
        // Sales turns students down when it looks at them at all.
        return (r < 30).then_some("UNQUALIFIED");
    }
    // (accepted, rejected, recycled, attempted) percentages per engagement tier.
    let (accepted, rejected, recycled, attempted) = match (work_email, engagement) {
        (false, _) => (0, 8, 0, 4),
        (true, 30..) => (42, 16, 10, 10),
        (true, 14..30) => (18, 12, 6, 10),
        (true, _) => (3, 5, 2, 6),
    };
    Some(if r < accepted {
        ["IN_PROGRESS", "CONNECTED", "OPEN_DEAL"][(id % 3) as usize]
    } else if r < accepted + rejected {
        "UNQUALIFIED"
    } else if r < accepted + rejected + recycled {
        "BAD_TIMING"
    } else if r < accepted + rejected + recycled + attempted {
        "ATTEMPTED_TO_CONTACT"
    } else if r < 90 {
        ["NEW", "OPEN"][(id % 2) as usize]
    } else {
        return None;
    })
}

const FIRST: &[&str] = &[
    "Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kai", "Lena",
    "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Uma", "Victor", "Wen",
    "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Almeida", "Brooks", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Quispe", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz",
];
const SYLLABLES: &[&str] = &[
    "acme", "north", "blue", "data", "nova", "peak", "bright", "iron", "swift", "terra", "quant",
    "loop", "sky", "vector", "core", "atlas", "cedar", "delta", "ember", "fable",
];
const SUFFIXES: &[&str] = &[
    "labs", "soft", "works", "systems", "cloud", "group", "hq", "ly", "io", "base",
];
const TLDS: &[&str] = &["com", "com", "com", "io", "co.uk", "de", "net"];
const INDUSTRIES: &[&str] = &[
    "COMPUTER_SOFTWARE",
    "COMPUTER_SOFTWARE",
    "INFORMATION_TECHNOLOGY_AND_SERVICES",
    "INTERNET",
    "FINANCIAL_SERVICES",
    "RETAIL",
    "HOSPITAL_HEALTH_CARE",
    "MARKETING_AND_ADVERTISING",
    "CONSTRUCTION",
    "EDUCATION_MANAGEMENT",
];
const COUNTRIES: &[&str] = &[
    "United States",
    "United States",
    "United States",
    "Canada",
    "United Kingdom",
    "Germany",
    "France",
    "Netherlands",
    "Brazil",
    "India",
    "Japan",
];
const FREE_MAIL: &[&str] = &["gmail.com", "yahoo.com", "hotmail.com", "outlook.com"];
const TITLES: &[&str] = &[
    "VP Marketing",
    "Head of Sales",
    "CTO",
    "Software Engineer",
    "Marketing Manager",
    "Operations Lead",
    "CFO",
    "Founder",
    "Data Analyst",
    "Student",
    "Procurement Manager",
    "IT Director",
];
const SOURCES: &[&str] = &[
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "EMAIL_MARKETING",
    "SOCIAL_MEDIA",
    "REFERRALS",
    "DIRECT_TRAFFIC",
    "OFFLINE",
];
const LIFECYCLE: &[&str] = &[
    "subscriber",
    "lead",
    "lead",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
];
const LEAD_STATUS: &[&str] = &[
    "NEW",
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "UNQUALIFIED",
    "BAD_TIMING",
];
const REJECTION_REASONS: &[&str] = &[
    "NO_BUDGET",
    "NOT_DECISION_MAKER",
    "BAD_FIT",
    "NO_RESPONSE",
    "CHOSE_COMPETITOR",
    "TIMING",
];
const TECHNOLOGIES: &[&str] = &[
    "salesforce",
    "hubspot",
    "google_analytics",
    "aws",
    "shopify",
    "zendesk",
    "snowflake",
];
const OWNERS: &[&str] = &["9100001", "9100002", "9100003", "9100004", "9100005"];

fn pick<'a>(rng: &mut ChaCha8Rng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

/// A count with a long tail: most leads engage little, a few a lot.
fn engagement(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let u: f64 = rng.random_range(0.0..1.0);
    // Geometric-like: floor(ln(1-u) / ln(p)) with p = mean / (mean + 1).
    let p = mean / (mean + 1.0);
    ((1.0 - u).ln() / p.ln()).floor().clamp(0.0, 10_000.0) as u32
}

/// Companies then contacts, ids starting at 1 for companies and 1001 for contacts' own range
/// offset so the two are easy to tell apart in logs.
pub fn generate(spec: DataSpec) -> (Vec<Record>, Vec<Record>) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let n_companies = (spec.contacts / 4).max(1);
    let mut companies = Vec::with_capacity(usize::try_from(n_companies).unwrap_or(0));
    let mut used_domains = std::collections::HashSet::new();
    for i in 0..n_companies {
        let id = 5_000_000 + i;
        let base = format!("{}{}", pick(&mut rng, SYLLABLES), pick(&mut rng, SUFFIXES));
        let mut domain = format!("{base}.{}", pick(&mut rng, TLDS));
        if !used_domains.insert(domain.clone()) {
            domain = format!("{base}{i}.{}", pick(&mut rng, TLDS));
            used_domains.insert(domain.clone());
        }
        let created =
            spec.anchor - Duration::minutes(rng.random_range(60 * 24 * 90..60 * 24 * 180));
        let modified = created + Duration::minutes(rng.random_range(0..60 * 24 * 90));
        let mut p = BTreeMap::new();
        p.insert("hs_object_id".into(), id.to_string());
        p.insert("name".into(), capitalise(&base));
        p.insert("domain".into(), domain);
        if rng.random_bool(0.9) {
            p.insert("industry".into(), pick(&mut rng, INDUSTRIES).into());
        }
        // Log-uniform headcount, 1 .. 50,000.
        let employees = 10f64.powf(rng.random_range(0.0..4.7)).round() as u64;
        if rng.random_bool(0.85) {
            p.insert("numberofemployees".into(), employees.to_string());
        }
        if rng.random_bool(0.75) {
            let revenue = employees.saturating_mul(rng.random_range(80_000..250_000));
            p.insert("annualrevenue".into(), revenue.to_string());
        }
        if rng.random_bool(0.9) {
            p.insert("country".into(), pick(&mut rng, COUNTRIES).into());
        }
        p.insert("createdate".into(), iso(created));
        p.insert("hs_lastmodifieddate".into(), iso(modified));
        // Technologies from the id's bits (the random stream is untouched): HubSpot's
        // `web_technologies`, a ';'-joined multi-select.
        let stack: Vec<&str> = TECHNOLOGIES
            .iter()
            .enumerate()
            .filter(|(bit, _)| (id >> bit) & 1 == 1)
            .map(|(_, t)| *t)
            .collect();
        if !stack.is_empty() {
            p.insert("web_technologies".into(), stack.join(";"));
        }
        companies.push(Record {
            id,
            properties: p,
            created_at: created,
            updated_at: modified,
            archived: false,
        });
    }

    let mut contacts = Vec::with_capacity(usize::try_from(spec.contacts).unwrap_or(0));
    for i in 0..spec.contacts {
        let id = 1_000_001 + i;
        let first = pick(&mut rng, FIRST);
        let last = pick(&mut rng, LAST);
        let company = &companies[rng.random_range(0..companies.len())];
        let created = spec.anchor - Duration::minutes(rng.random_range(0..60 * 24 * 180));
        let modified = created
            + Duration::minutes(rng.random_range(0..60 * 24 * 30)).min(spec.anchor - created);
        let mut p = BTreeMap::new();
        p.insert("hs_object_id".into(), id.to_string());
        p.insert("firstname".into(), first.into());
        p.insert("lastname".into(), last.into());
        let roll: f64 = rng.random_range(0.0..1.0);
        let work_email = roll < 0.78;
        if work_email {
            let domain = company
                .properties
                .get("domain")
                .cloned()
                .unwrap_or_default();
            p.insert(
                "email".into(),
                format!(
                    "{}.{}{}@{domain}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i % 97
                ),
            );
            if rng.random_bool(0.95) {
                p.insert("associatedcompanyid".into(), company.id.to_string());
                p.insert(
                    "company".into(),
                    company.properties.get("name").cloned().unwrap_or_default(),
                );
            }
        } else if roll < 0.94 {
            p.insert(
                "email".into(),
                format!(
                    "{}{}{}@{}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    i,
                    pick(&mut rng, FREE_MAIL)
                ),
            );
        } // else: no email at all
        p.insert("jobtitle".into(), pick(&mut rng, TITLES).into());
        if rng.random_bool(0.9) {
            p.insert("hubspot_owner_id".into(), pick(&mut rng, OWNERS).into());
        }
        p.insert("hs_analytics_source".into(), pick(&mut rng, SOURCES).into());
        p.insert("lifecyclestage".into(), pick(&mut rng, LIFECYCLE).into());
        let status = pick(&mut rng, LEAD_STATUS);
        p.insert("hs_lead_status".into(), status.into());
        if status == "UNQUALIFIED" || status == "BAD_TIMING" {
            p.insert(
                "lead_rejection_reason".into(),
                pick(&mut rng, REJECTION_REASONS).into(),
            );
        }
        p.insert(
            "hs_analytics_num_page_views".into(),
            engagement(&mut rng, 6.0).to_string(),
        );
        p.insert(
            "hs_email_open".into(),
            engagement(&mut rng, 4.0).to_string(),
        );
        p.insert(
            "hs_email_click".into(),
            engagement(&mut rng, 1.5).to_string(),
        );
        p.insert(
            "num_conversion_events".into(),
            engagement(&mut rng, 0.6).to_string(),
        );
        p.insert("createdate".into(), iso(created));
        p.insert("lastmodifieddate".into(), iso(modified));
        // Sales' verdict follows engagement (derived, so the random stream stays as it was).
        let count =
            |name: &str| -> u64 { p.get(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) };
        let engaged = count("hs_analytics_num_page_views")
            + 3 * count("hs_email_click")
            + 10 * count("num_conversion_events");
        p.remove("lead_rejection_reason");
        let student = p.get("jobtitle").is_some_and(|t| t == "Student");
        match sales_status(id, engaged, work_email, student) {
            Some(status) => {
                p.insert("hs_lead_status".into(), status.into());
                if status == "UNQUALIFIED" || status == "BAD_TIMING" {
                    let reason = if student {
                        "BAD_FIT"
                    } else {
                        REJECTION_REASONS[(id_roll(id, 13) as usize) % REJECTION_REASONS.len()]
                    };
                    p.insert("lead_rejection_reason".into(), reason.into());
                }
            }
            None => {
                p.remove("hs_lead_status");
            }
        }
        // BANT for leads sales is working, derived from the id (the random stream is untouched).
        if matches!(
            p.get("hs_lead_status").map(String::as_str),
            Some("IN_PROGRESS" | "CONNECTED" | "OPEN_DEAL")
        ) {
            p.insert(
                "bant_budget".into(),
                ["CONFIRMED", "UNKNOWN", "NONE"][(id % 3) as usize].into(),
            );
            p.insert(
                "bant_authority".into(),
                ["DECISION_MAKER", "INFLUENCER", "NONE"][(id / 3 % 3) as usize].into(),
            );
            p.insert(
                "bant_need".into(),
                ["CONFIRMED", "UNCLEAR"][(id / 9 % 2) as usize].into(),
            );
            p.insert(
                "bant_timeline".into(),
                ["THIS_QUARTER", "THIS_YEAR", "NONE"][(id / 18 % 3) as usize].into(),
            );
        }
        // Last activity per channel, derived (not drawn) so the random stream stays as it was:
        // a few hours to ~60 days before the last modification.
        for (count, property, salt) in [
            (
                "hs_analytics_num_page_views",
                "hs_analytics_last_visit_timestamp",
                37,
            ),
            ("hs_email_open", "hs_email_last_open_date", 53),
            ("hs_email_click", "hs_email_last_click_date", 71),
            ("num_conversion_events", "recent_conversion_date", 97),
        ] {
            if p.get(count).is_some_and(|n| n != "0") {
                let back = Duration::hours(((id * salt) % (24 * 60)) as i64);
                p.insert(property.into(), iso((modified - back).max(created)));
            }
        }
        contacts.push(Record {
            id,
            properties: p,
            created_at: created,
            updated_at: modified,
            archived: false,
        });
    }
    (companies, contacts)
}

const OPEN_STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
];
const LOST_REASONS: &[&str] = &[
    "Price",
    "Chose a competitor",
    "No decision",
    "Timing",
    "Missing feature",
];
/// A custom pipeline: HubSpot gives its stages numeric ids; only `hs_is_closed_won` says won.
const CUSTOM_PIPELINE: &str = "81234500";
const CUSTOM_OPEN: &str = "81234501";
const CUSTOM_WON: &str = "81234507";
const CUSTOM_LOST: &str = "81234508";

/// Deals, from a stream of their own so contacts and companies stay what they were for the
/// seed: most leads sales took get one (some two), opened days after the verdict and closed
/// won or lost when their cycle ended before the anchor (back-dated closes), open otherwise. A
/// quarter run on a custom pipeline, a fifth are owned by another rep than the contact's,
/// companies in the euro area deal in EUR, and a fifth are shared with a colleague at the same
/// company. Returns the deals and the contact → deal associations.
pub fn generate_deals(
    spec: DataSpec,
    contacts: &[Record],
    companies: &[Record],
) -> (Vec<Record>, BTreeMap<u64, Vec<u64>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xdea1_5eed);
    let country: BTreeMap<String, &str> = companies
        .iter()
        .filter_map(|c| Some((c.id.to_string(), c.properties.get("country")?.as_str())))
        .collect();
    // Colleagues: contacts with an email at each company, in id order.
    let mut colleagues: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for c in contacts {
        if let Some(company) = c.properties.get("associatedcompanyid") {
            colleagues.entry(company.as_str()).or_default().push(c.id);
        }
    }
    let mut deals = Vec::new();
    let mut links: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for contact in contacts {
        let Some(company) = contact.properties.get("associatedcompanyid") else {
            continue;
        };
        let taken = matches!(
            contact.properties.get("hs_lead_status").map(String::as_str),
            Some("IN_PROGRESS" | "CONNECTED" | "OPEN_DEAL")
        );
        if !taken || !rng.random_bool(0.75) {
            continue;
        }
        let count = if rng.random_bool(0.12) { 2 } else { 1 };
        for _ in 0..count {
            let id = 9_000_001 + deals.len() as u64;
            let created = (contact.updated_at + Duration::hours(rng.random_range(2..240)))
                .min(spec.anchor - Duration::hours(1));
            let cycle = Duration::days(rng.random_range(7..80));
            let closes = created + cycle;
            let won = rng.random_bool(0.45);
            let custom = rng.random_bool(0.25);
            let cents: u64 = rng.random_range(500_000..25_000_000);
            let other_owner = rng.random_bool(0.2);
            let shared = rng.random_bool(0.2);
            let lost_reason = pick(&mut rng, LOST_REASONS);
            let open_stage = pick(&mut rng, OPEN_STAGES);
            let closed = closes < spec.anchor;
            let stage = match (closed, won, custom) {
                (false, _, false) => open_stage,
                (false, _, true) => CUSTOM_OPEN,
                (true, true, false) => "closedwon",
                (true, false, false) => "closedlost",
                (true, true, true) => CUSTOM_WON,
                (true, false, true) => CUSTOM_LOST,
            };
            let mut p = BTreeMap::new();
            p.insert("hs_object_id".into(), id.to_string());
            let account = contact
                .properties
                .get("company")
                .map_or("Account", String::as_str);
            p.insert("dealname".into(), format!("{account} - deal {id}"));
            p.insert(
                "amount".into(),
                format!("{}.{:02}", cents / 100, cents % 100),
            );
            let euro = matches!(
                country.get(company.as_str()).copied(),
                Some("Germany" | "France" | "Netherlands")
            );
            p.insert(
                "deal_currency_code".into(),
                if euro { "EUR" } else { "USD" }.into(),
            );
            p.insert("dealstage".into(), stage.into());
            p.insert(
                "pipeline".into(),
                if custom { CUSTOM_PIPELINE } else { "default" }.into(),
            );
            p.insert("hs_is_closed".into(), closed.to_string());
            p.insert("hs_is_closed_won".into(), (closed && won).to_string());
            if closed && !won {
                p.insert("closed_lost_reason".into(), lost_reason.into());
            }
            if let Some(owner) = contact.properties.get("hubspot_owner_id") {
                let owner = if other_owner {
                    let i = OWNERS.iter().position(|o| o == owner).unwrap_or(0);
                    OWNERS[(i + 1) % OWNERS.len()]
                } else {
                    owner.as_str()
                };
                p.insert("hubspot_owner_id".into(), owner.into());
            }
            p.insert("closedate".into(), iso(closes));
            p.insert("createdate".into(), iso(created));
            let modified = if closed { closes } else { created };
            p.insert("hs_lastmodifieddate".into(), iso(modified));
            deals.push(Record {
                id,
                properties: p,
                created_at: created,
                updated_at: modified,
                archived: false,
            });
            links.entry(contact.id).or_default().push(id);
            if shared
                && let Some(colleague) = colleagues
                    .get(company.as_str())
                    .and_then(|c| c.iter().find(|c| **c != contact.id))
            {
                links.entry(*colleague).or_default().push(id);
            }
        }
    }
    (deals, links)
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = generate(DataSpec::new(7, 200));
        assert_eq!(a, generate(DataSpec::new(7, 200)));
        assert_ne!(a, generate(DataSpec::new(8, 200)));
        assert_eq!(a.1.len(), 200);
        assert_eq!(a.0.len(), 50);
    }

    #[test]
    fn data_has_the_mix_scoring_needs() {
        let (_, contacts) = generate(DataSpec::new(7, 1000));
        let emails: Vec<&str> = contacts
            .iter()
            .filter_map(|c| c.properties.get("email").map(String::as_str))
            .collect();
        let free = emails
            .iter()
            .filter(|e| FREE_MAIL.iter().any(|f| e.ends_with(f)))
            .count();
        assert!(
            emails.len() > 900 && emails.len() < 1000,
            "some contacts have no email"
        );
        assert!(free > 80 && free < 300, "free-mail share {free}");
        assert!(contacts.iter().all(|c| c.updated_at >= c.created_at));
    }
}
