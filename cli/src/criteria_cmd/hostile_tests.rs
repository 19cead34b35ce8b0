#![allow(clippy::unwrap_used)]
use super::simulate::{Source, simulate_over};
use super::*;
use leadsync_domain::hostile;
use leadsync_domain::{Lead, LeadId};
use proptest::prelude::*;

const B2B: &str = include_str!("../../../infra/criteria/b2b-saas.toml");
const ENTERPRISE: &str = include_str!("../../../infra/criteria/enterprise-saas.toml");

/// Leads files as an operator may hand them to `criteria simulate` / `criteria score`: any
/// bytes, and real lead and snapshot lines garbled. Never a panic; a file that reads
/// accounts for every line (a lead, a repeat counted once, or skipped with its place);
/// a line that cannot be read at all stops the command naming file and line.
#[test]
fn hostile_leads_files_account_for_every_line() {
    let mut lead = Lead::new(LeadId::new("101").unwrap(), DateTime::<Utc>::UNIX_EPOCH);
    lead.email = Some("ana@acme.io".into());
    lead.source = Some("ORGANIC_SEARCH".into());
    let plain: &'static str =
        Box::leak(format!("{}\n", serde_json::to_string(&lead).unwrap()).into_boxed_str());
    let snapshot: &'static str = Box::leak(
        format!(
            "{}\n",
            serde_json::json!({"lead": lead, "scorecard": {"stage": "mql"}})
        )
        .into_boxed_str(),
    );
    let lines = proptest::collection::vec(
        prop_oneof![
            hostile::text(&[plain, snapshot]),
            Just(plain.to_owned()),
            Just(String::new())
        ],
        0..8,
    )
    .prop_map(|l| l.concat());
    let (a, b) = (
        Criteria::parse("a", B2B).unwrap(),
        Criteria::parse("b", ENTERPRISE).unwrap(),
    );
    let now = DateTime::<Utc>::UNIX_EPOCH;
    hostile::check("criteria simulate leads files", 1_500, lines, |text| {
        let source = Source {
            name: "leads.jsonl".into(),
            bytes: text.clone().into_bytes(),
        };
        let nonblank = BufReader::new(text.as_bytes())
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .count() as u64;
        match simulate_over(&a, &b, &[source], now) {
            Ok(sim) => prop_assert_eq!(sim.leads + sim.duplicates + sim.skipped, nonblank),
            Err(e) => prop_assert!(format!("{e:#}").contains("leads.jsonl:"), "{e:#}"),
        }
        Ok(())
    });
}

/// `--leads` / `--snapshot` arguments: anything is a path or an S3 prefix, never a panic;
/// an S3 prefix always names a bucket.
#[test]
fn hostile_leads_arguments_are_a_path_or_a_named_bucket() {
    hostile::check(
        "CLI --snapshot arguments",
        3_000,
        hostile::text(&["s3://leadsync-demo/snapshots/", "./snapshot.jsonl.gz"]),
        |text| {
            match text.parse::<LeadsInput>() {
                Ok(LeadsInput::S3 { bucket, .. }) => {
                    prop_assert!(!bucket.is_empty() && text.starts_with("s3://"))
                }
                Ok(LeadsInput::Local(path)) => {
                    prop_assert_eq!(path, std::path::PathBuf::from(&text))
                }
                Err(e) => prop_assert!(e.contains("no bucket")),
            }
            Ok(())
        },
    );
}
