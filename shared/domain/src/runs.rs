//! Runs, slices and the lease: the plain data a run is planned, fanned out and finished with.
//!
//! A run pulls every contact changed since the watermark. Past one function's limits it is cut
//! into **slices** by contact id (the CRM walks contacts in id order), each pulled, scored,
//! recorded and pushed on its own — inline or through a queue. The run record counts finished
//! slices; whoever finishes the last one recomputes rollups and moves the watermark. The
//! **lease** keeps two runs (a nightly run and an on-demand re-score) from writing the same leads
//! at once. Nothing here does I/O: the ports are [`RunStore`](crate::ports::RunStore) and
//! [`SliceQueue`](crate::ports::SliceQueue).

use crate::lead::LeadId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One bound of a pull's key range: a record key in the CRM adapter's own encoding (HubSpot:
/// the decimal `hs_object_id`; Salesforce: the 18-character record Id), ordered as the adapter
/// orders it. Planning, slices, the lease and the run record only carry it; the adapter alone
/// compares, filters on and splits keys ([`Crm::split_keys`](crate::ports::Crm::split_keys)).
///
/// It reads back from a string or, as slice messages and run records written before keys were
/// opaque said it (`after_id`, `through_id`), a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScopeKey(#[serde(deserialize_with = "text_or_number")] String);

fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Key {
        Text(String),
        Number(u64),
    }
    Ok(match Key::deserialize(d)? {
        Key::Text(s) => s,
        Key::Number(n) => n.to_string(),
    })
}

impl ScopeKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ScopeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which contacts one pull walks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullScope {
    /// Contacts modified at or after this instant (ignored when `only` is set).
    pub since: DateTime<Utc>,
    /// Only records whose key comes after this one; `None`: from the start.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "after_id")]
    pub after: Option<ScopeKey>,
    /// Only records whose key is at most this one; `None`: no upper bound.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "through_id")]
    pub through: Option<ScopeKey>,
    /// Exactly these contacts, whenever they were modified (at most the adapter's
    /// [`Crm::max_ids`](crate::ports::Crm::max_ids)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<LeadId>,
    /// `only` holds leads re-scored though the CRM did not change their own record: time alone
    /// changes their stage or band (engagement decay, activity windows), or their deals or
    /// company changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub due: bool,
}

impl PullScope {
    /// The most leads one nightly run re-scores for time alone (the rest wait a night).
    pub const MAX_DUE: usize = 20_000;
    /// How many months of the due index a nightly run reads (overdue leads older than this
    /// were re-scored by any run that pulled them since).
    pub const DUE_MONTHS: u32 = 3;

    /// Scopes of exactly these leads, `per_scope` (the adapter's
    /// [`Crm::max_ids`](crate::ports::Crm::max_ids)) at most in each.
    pub fn chosen(ids: &[LeadId], per_scope: usize) -> Vec<PullScope> {
        ids.chunks(per_scope.max(1))
            .map(|chunk| PullScope {
                only: chunk.to_vec(),
                ..PullScope::default()
            })
            .collect()
    }

    /// Scopes of leads due for a re-score, `per_scope` at most in each.
    pub fn due(ids: &[LeadId], per_scope: usize) -> Vec<PullScope> {
        let mut scopes = Self::chosen(ids, per_scope);
        for scope in &mut scopes {
            scope.due = true;
        }
        scopes
    }

    /// Everything modified since `since`.
    pub fn since(since: DateTime<Utc>) -> Self {
        Self {
            since,
            ..Self::default()
        }
    }
}

/// How many contacts a scope holds, and the first and last keys among them (the adapter's
/// order). `first` is optional: an adapter whose key space is dense may leave it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub total: u64,
    pub first: Option<ScopeKey>,
    pub last: Option<ScopeKey>,
}

/// What kind of run a slice belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// Everything changed since the watermark; moves the watermark when it finishes.
    Nightly,
    /// Chosen leads (or everything since an instant) under the active criteria; leaves the
    /// watermark alone.
    Rescore,
}

/// One slice of a run: the message a slice worker receives. Everything it needs to run
/// exactly as planned — the run's `now`, the criteria version — travels with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceSpec {
    pub run_id: String,
    pub kind: RunKind,
    /// 0-based slice number, and how many slices the run has.
    pub slice: u32,
    pub slices: u32,
    pub scope: PullScope,
    /// The run's clock: every slice scores at the same instant.
    pub now: DateTime<Utc>,
    /// Watermark key, e.g. `hubspot#contacts`.
    pub source: String,
    pub criteria_id: String,
    pub criteria_version: String,
    /// Enrichment credits this slice may spend; `None`: no limit.
    #[serde(default)]
    pub enrich_budget: Option<u64>,
    /// Fail the slice above this share of quarantined records.
    pub max_reject_ratio: f64,
    /// Keep the watermark this far (seconds) behind `now`.
    pub index_lag_secs: i64,
    /// Hold leads a provider could not enrich for a passing reason while the slice reads from
    /// within this many seconds of `now` (or from the beginning); `None`: never hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrich_hold_secs: Option<i64>,
}

/// What a re-score covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RescoreTarget {
    /// These contacts (any number; cut into slices of 100 ids).
    Leads(Vec<LeadId>),
    /// Every contact modified since this instant (`UNIX_EPOCH`: every contact).
    Since(DateTime<Utc>),
}

/// A re-score waiting on the slice queue: one that found the lease held (a published criteria
/// version, an EventBridge request — their triggers do not retry a success), or a webhook's,
/// answered at once and run by the slice worker. The worker starts it, or, while the lease is
/// still held, puts it back with a longer delay until [`DeferredRescore::requested_at`] is too
/// old — then it fails, and the queue's redrive policy keeps it in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredRescore {
    /// The run id it will run as (stable across its attempts: a redelivery is the same run).
    pub run_id: String,
    pub target: RescoreTarget,
    /// Why it was asked for, for the log (`criteria b2b-saas 2026.11.2 published`).
    pub why: String,
    pub requested_at: DateTime<Utc>,
    /// How many times it found the lease held.
    #[serde(default)]
    pub attempts: u32,
}

impl DeferredRescore {
    /// The key that tells a deferred re-score from a slice on the queue: the message is
    /// `{"rescore": {…}}`.
    pub const MESSAGE_KEY: &'static str = "rescore";
}

/// People to erase (GDPR Art. 17: HubSpot's `contact.privacyDeletion` webhook), waiting on the
/// slice queue: the webhook is answered at once and the slice worker erases them, under the
/// lease — put back with a longer delay while a run holds it, for a day at most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredErase {
    pub lead_ids: Vec<LeadId>,
    pub requested_at: DateTime<Utc>,
    /// How many times it found the lease held.
    #[serde(default)]
    pub attempts: u32,
}

impl DeferredErase {
    /// The message is `{"erase": {…}}`.
    pub const MESSAGE_KEY: &'static str = "erase";
}

/// What a finished slice leaves in the run record for the finisher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceResult {
    pub slice: u32,
    pub report: RunReport,
    /// The newest modification time seen in the slice.
    pub max_seen: Option<DateTime<Utc>>,
    /// The oldest modification time of a lead whose push must be retried: the watermark
    /// must not pass it.
    pub hold_at: Option<DateTime<Utc>>,
    /// What the slice covered. A run started again under its id (a killed backfill, a retried
    /// invocation) does not run again a slice recorded with the same scope: this is its
    /// checkpoint. Absent in results recorded before it was kept.
    #[serde(default)]
    pub scope: Option<PullScope>,
}

/// A planned run, as recorded before any slice starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPlan {
    pub run_id: String,
    pub kind: RunKind,
    pub slices: u32,
    pub planned_at: DateTime<Utc>,
    pub criteria_version: String,
    /// The contacts the plan counted.
    pub contacts: u64,
    /// Slices run in the planning invocation (`true`) or sent to the queue.
    pub inline: bool,
}

/// Where a run stands, as the run record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunProgress {
    pub slices: u32,
    pub done: u32,
    /// The finisher completed (rollups, watermark, report).
    pub finished: bool,
}

impl RunProgress {
    pub fn all_done(&self) -> bool {
        self.done >= self.slices
    }
}

/// Who holds the sync lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    pub until: DateTime<Utc>,
}

/// Counts and costs of one run (or one slice of it), saved with the run record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub slice: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub criteria_version: String,
    pub since: Option<DateTime<Utc>>,
    pub watermark_after: Option<DateTime<Utc>>,
    pub pulled: u64,
    pub scored: u64,
    pub quarantined: u64,
    /// Scored leads per stage name.
    pub stages: BTreeMap<String, u64>,
    pub unchanged: u64,
    pub enriched_fields: u64,
    /// Enrichment cost ledger: provider calls, cache hits (free), matches, credits billed,
    /// leads left unenriched because the budget was spent or a provider failed.
    pub enrich_calls: u64,
    #[serde(default)]
    pub enrich_cache_hits: u64,
    pub enrich_matches: u64,
    pub enrich_credits: u64,
    pub enrich_skipped_budget: u64,
    #[serde(default)]
    pub enrich_unavailable: u64,
    /// Leads held for the next run because a provider could not enrich them for a passing
    /// reason (the pipeline's `SyncInput::enrich_hold`): not scored this run, pulled again
    /// next.
    #[serde(default)]
    pub enrich_held: u64,
    pub states_written: u64,
    pub transitions_new: u64,
    /// Sales milestones (accepted, rejected, opportunity, won) seen for the first time.
    #[serde(default)]
    pub milestones_new: u64,
    /// Rollup rows written or deleted, and corrections posted for closed periods.
    #[serde(default)]
    pub rollup_rows_written: u64,
    #[serde(default)]
    pub rollup_corrections: u64,
    pub transitions_existing: u64,
    pub push_candidates: u64,
    /// Leads whose new values the CRM already showed when pulled (an earlier attempt of the
    /// run pushed them): recorded as pushed without a write.
    #[serde(default)]
    pub already_in_crm: u64,
    pub pushed: u64,
    pub push_failed: u64,
    /// News sent to the event bus (a lead reached SQL, sales rejected one), and news the bus
    /// refused or could not take (sent again by the next run).
    #[serde(default)]
    pub events_sent: u64,
    #[serde(default)]
    pub events_failed: u64,
    pub crm_pull_pages: u64,
    pub crm_push_requests: u64,
    pub snapshot_key: Option<String>,
    pub quarantine_key: Option<String>,
    /// The months (`YYYY-MM`) the facts this run recorded occurred in: the periods whose
    /// rollups it recomputes (with the month of its `now`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub fact_periods: std::collections::BTreeSet<String>,
    /// Leads re-scored though the CRM did not change their own record: time alone (decay,
    /// activity windows) was due to change their stage or band, or their deals or company
    /// changed.
    #[serde(default)]
    pub rescored_due: u64,
    /// Contacts found merged into a pulled one, and contacts found deleted in the CRM.
    #[serde(default)]
    pub merged: u64,
    #[serde(default)]
    pub deleted: u64,
    /// Dashboard pages published when the run finished (object keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dashboards: Vec<String>,
}

impl RunReport {
    /// Add a slice's counts into a run's (identity fields — run id, times, keys — are kept).
    ///
    /// `other` is taken apart field by field, with no `..`: a field added to [`RunReport`] does
    /// not compile until it is placed here, summed or kept.
    pub fn absorb(&mut self, other: &RunReport) {
        let RunReport {
            // Identity, times and keys: the run's own, not a slice's.
            run_id: _,
            slice: _,
            started_at: _,
            finished_at: _,
            criteria_version: _,
            watermark_after: _,
            snapshot_key: _,
            quarantine_key: _,
            dashboards: _,
            // The earliest slice's.
            since,
            stages,
            fact_periods,
            pulled,
            scored,
            quarantined,
            unchanged,
            enriched_fields,
            enrich_calls,
            enrich_cache_hits,
            enrich_matches,
            enrich_credits,
            enrich_skipped_budget,
            enrich_unavailable,
            enrich_held,
            states_written,
            transitions_new,
            milestones_new,
            rollup_rows_written,
            rollup_corrections,
            transitions_existing,
            push_candidates,
            already_in_crm,
            pushed,
            push_failed,
            events_sent,
            events_failed,
            crm_pull_pages,
            crm_push_requests,
            rescored_due,
            merged,
            deleted,
        } = other;
        for (stage, n) in stages {
            *self.stages.entry(stage.clone()).or_default() += n;
        }
        self.fact_periods.extend(fact_periods.iter().cloned());
        if self.since.is_none() {
            self.since = *since;
        }
        self.pulled += pulled;
        self.scored += scored;
        self.quarantined += quarantined;
        self.unchanged += unchanged;
        self.enriched_fields += enriched_fields;
        self.enrich_calls += enrich_calls;
        self.enrich_cache_hits += enrich_cache_hits;
        self.enrich_matches += enrich_matches;
        self.enrich_credits += enrich_credits;
        self.enrich_skipped_budget += enrich_skipped_budget;
        self.enrich_unavailable += enrich_unavailable;
        self.enrich_held += enrich_held;
        self.states_written += states_written;
        self.transitions_new += transitions_new;
        self.milestones_new += milestones_new;
        self.rollup_rows_written += rollup_rows_written;
        self.rollup_corrections += rollup_corrections;
        self.transitions_existing += transitions_existing;
        self.push_candidates += push_candidates;
        self.already_in_crm += already_in_crm;
        self.pushed += pushed;
        self.push_failed += push_failed;
        self.events_sent += events_sent;
        self.events_failed += events_failed;
        self.crm_pull_pages += crm_pull_pages;
        self.crm_push_requests += crm_push_requests;
        self.rescored_due += rescored_due;
        self.merged += merged;
        self.deleted += deleted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_adds_every_count() {
        let mut a = RunReport {
            pulled: 3,
            scored: 2,
            quarantined: 1,
            ..RunReport::default()
        };
        a.stages.insert("mql".into(), 2);
        let mut b = RunReport {
            pulled: 5,
            scored: 5,
            pushed: 4,
            crm_pull_pages: 2,
            ..RunReport::default()
        };
        b.stages.insert("mql".into(), 1);
        b.stages.insert("sql".into(), 4);
        a.absorb(&b);
        assert_eq!((a.pulled, a.scored, a.quarantined, a.pushed), (8, 7, 1, 4));
        assert_eq!(a.crm_pull_pages, 2);
        assert_eq!(a.stages.get("mql"), Some(&3));
        assert_eq!(a.stages.get("sql"), Some(&4));
    }

    /// Every counter of the report, whatever its name: a slice's 1s absorbed twice make 2s.
    /// (The compiler already refuses a field `absorb` does not place; this checks the sums.)
    #[test]
    fn absorb_sums_every_counter_of_the_report() {
        let mut ones = serde_json::to_value(RunReport::default()).unwrap();
        let counters: Vec<String> = ones
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.is_u64())
            .map(|(k, _)| k.clone())
            .collect();
        assert!(counters.len() >= 29, "{counters:?}");
        for k in &counters {
            ones[k.as_str()] = serde_json::json!(1);
        }
        let slice: RunReport = serde_json::from_value(ones).unwrap();
        let mut run = RunReport::default();
        run.absorb(&slice);
        run.absorb(&slice);
        let summed = serde_json::to_value(&run).unwrap();
        let wrong: Vec<&String> = counters
            .iter()
            .filter(|k| k.as_str() != "slice" && summed[k.as_str()] != serde_json::json!(2))
            .collect();
        assert!(wrong.is_empty(), "not summed: {wrong:?}");
    }

    #[test]
    fn scopes_written_with_numeric_ids_read_back_as_keys() {
        let old = r#"{"since":"2026-11-01T00:00:00Z","after_id":1200,"through_id":4800}"#;
        let scope: PullScope = serde_json::from_str(old).unwrap();
        assert_eq!(scope.after, Some(ScopeKey::new("1200")));
        assert_eq!(scope.through, Some(ScopeKey::new("4800")));
        let open = r#"{"since":"2026-11-01T00:00:00Z","after_id":0,"through_id":null}"#;
        let scope: PullScope = serde_json::from_str(open).unwrap();
        assert_eq!(
            (scope.after, scope.through),
            (Some(ScopeKey::new("0")), None)
        );
        let new = serde_json::to_string(&PullScope {
            after: Some(ScopeKey::new("00Q000000000001AAA")),
            ..PullScope::default()
        })
        .unwrap();
        assert!(new.contains(r#""after":"00Q000000000001AAA""#), "{new}");
        assert!(!new.contains("through"), "{new}");
        assert_eq!(
            serde_json::from_str::<PullScope>(&new).unwrap().after,
            Some(ScopeKey::new("00Q000000000001AAA"))
        );
    }

    #[test]
    fn slice_spec_round_trips_as_a_queue_message() {
        let spec = SliceSpec {
            run_id: "r1".into(),
            kind: RunKind::Nightly,
            slice: 2,
            slices: 5,
            scope: PullScope {
                since: DateTime::<Utc>::UNIX_EPOCH,
                after: Some(ScopeKey::new("100")),
                through: Some(ScopeKey::new("200")),
                only: Vec::new(),
                due: false,
            },
            now: DateTime::<Utc>::UNIX_EPOCH,
            source: "hubspot#contacts".into(),
            criteria_id: "b2b".into(),
            criteria_version: "1.0".into(),
            enrich_budget: Some(10),
            max_reject_ratio: 0.2,
            index_lag_secs: 120,
            enrich_hold_secs: Some(48 * 3600),
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert!(
            !text.contains("only"),
            "empty id lists stay out of the message"
        );
        assert_eq!(serde_json::from_str::<SliceSpec>(&text).unwrap(), spec);
    }
}
