//! `sync`: one slice of a run, end to end.
//!
//! Order matters for crash safety. Per page: facts (transitions, milestones) are recorded
//! *before* the CRM is written, and the leads' states — carrying the hash of what the CRM
//! accepted — *after*. A crash between the two leaves the states as they were; the re-run meets
//! the contacts our push modified, and where the adapter reads leadsync's own properties back
//! ([`leadsync_domain::Lead::crm_shows`]) it sees the values already there and writes nothing again (elsewhere it
//! re-pushes the same values). The watermark moves only at the end, only forward, and never past
//! a lead whose push failed for a reason worth retrying, so the next run pulls it again.
//!
//! A page's end — push, news, states ([`write_back`]) — runs while the next page is pulled,
//! enriched, scored and its facts recorded; the next page's end starts only once it is done, so
//! pushes and states go in page order, one page at a time. For each lead the order above holds.
//! A crash while both run is the crash above for the earlier page (its facts are in, its states
//! not) and leaves the later page's facts in, which a re-run finds and does not count again.

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use leadsync_domain::facts::{LeadLink, MilestoneFact, milestones_of, period_of};
use leadsync_domain::ports::{
    Crm, CrmError, FirmographicProvider, LeadStore, PropertyUpdate, Rejected, RollupStore,
    RunReport, SnapshotKey, SnapshotLine, SnapshotStore, SnapshotWriter, StoreError,
};
use leadsync_domain::runs::PullScope;
use leadsync_domain::transition::push_hash;
use leadsync_domain::{Criteria, LeadId, LeadState, Stage, Transition};
use std::collections::{BTreeSet, HashMap};

mod run_end;
mod scope;
mod write_back;

pub use run_end::finish;
pub use scope::{since_of, unchanged_to_rescore};

/// The ports and the criteria one sync runs with.
#[derive(Debug)]
pub struct SyncDeps<'a, C, S, N, P> {
    pub crm: &'a C,
    pub store: &'a S,
    pub snapshots: &'a N,
    /// Firmographic providers in waterfall order; empty means CRM company data only.
    pub providers: &'a [P],
    pub criteria: &'a Criteria,
    /// Where news goes (a lead reached SQL, sales rejected one); `None`: nowhere, and nothing
    /// is marked as sent.
    pub events: Option<&'a dyn leadsync_domain::ports::EventSink>,
}

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncInput {
    pub run_id: String,
    pub slice: u32,
    pub now: DateTime<Utc>,
    /// Watermark key, e.g. `hubspot#contacts`.
    pub source: String,
    /// Re-read this far behind the watermark: search indexing lags and timestamps repeat.
    pub lookback: Duration,
    /// The CRM's search index may lag this much behind writes; the watermark stays this far
    /// behind `now` so late-indexed records are picked up next time.
    pub index_lag: Duration,
    /// Pull everything modified since this instant instead of since the watermark (re-scoring);
    /// the watermark is then left alone.
    pub since_override: Option<DateTime<Utc>>,
    /// Fail the run when more than this share of pulled records had to be quarantined.
    pub max_reject_ratio: f64,
    /// Enrichment credits the run may spend; `None` for no limit.
    pub enrich_budget: Option<u64>,
    /// A nightly run reading from within this long of `now` (or from the beginning: a first
    /// sync) holds the leads a provider could not enrich for a passing reason (rate limited,
    /// down, timed out after its retries): not scored, recorded or pushed, and the watermark
    /// kept at or before them, so the next run scores them with their data. A run reading from
    /// further back — holds have kept it there, or it is catching up — scores them with what
    /// is known (and says so on the lead), so an outage delays scoring by about this long at
    /// most. `None`: never hold; re-scores never do.
    pub enrich_hold: Option<Duration>,
    /// The real clock, for the reports' `started_at` / `finished_at` (how long a slice or a
    /// run took) — never for scoring, which uses `now` throughout.
    pub wall: fn() -> DateTime<Utc>,
}

/// The system clock as a [`SyncInput::wall`].
#[must_use]
pub fn system_clock() -> DateTime<Utc> {
    std::time::SystemTime::now().into()
}

impl SyncInput {
    pub fn nightly(run_id: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            run_id: run_id.into(),
            slice: 0,
            now,
            source: "crm#contacts".into(),
            lookback: Duration::minutes(10),
            index_lag: Duration::minutes(2),
            since_override: None,
            max_reject_ratio: 0.2,
            enrich_budget: None,
            enrich_hold: None,
            wall: system_clock,
        }
    }
}

/// Why a sync stopped. Everything recorded before the error stays valid; re-running is safe.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("pulling from the CRM failed after {pages} pages")]
    Pull {
        pages: u64,
        #[source]
        source: CrmError,
    },
    #[error("pushing results to the CRM failed")]
    Push(#[source] CrmError),
    #[error("store failed during {step}")]
    Store {
        step: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("recomputing rollups failed")]
    Rollups(#[source] crate::rollups::RollupError),
    #[error("the slice was planned with criteria {planned} but this function loaded {loaded}")]
    CriteriaMismatch { planned: String, loaded: String },
    #[error("the criteria's [fields] do not match the CRM's properties:\n{0}")]
    Fields(#[source] leadsync_domain::CriteriaError),
    #[error("the CRM cannot read what the criteria's [fields] name")]
    Reads(#[source] CrmError),
    #[error("another run holds the lease ({} until {})", .0.holder, .0.until)]
    Busy(leadsync_domain::runs::Lease),
    #[error(
        "{quarantined} of {pulled} pulled records were quarantined, over the limit of {limit:.0}%; see {key}"
    )]
    TooManyRejected {
        quarantined: u64,
        pulled: u64,
        limit: f64,
        key: String,
    },
}

impl SyncError {
    /// Worth re-running as is (a dependency was down), as opposed to needing an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Pull { source, .. } | SyncError::Push(source) | SyncError::Reads(source) => {
                source.is_retryable()
            }
            SyncError::Fields(_) => false,
            SyncError::Store { source, .. } => source.is_retryable(),
            SyncError::Rollups(e) => e.is_retryable(),
            SyncError::TooManyRejected { .. } | SyncError::CriteriaMismatch { .. } => false,
            SyncError::Busy(_) => true,
        }
    }
}

/// Make the CRM read what the criteria's `[fields]` name, after checking every named property
/// exists on its object with a type the document can read (the adapter's definitions, cached
/// per cold start). A document without `[fields]` costs nothing here.
///
/// # Errors
/// [`SyncError::Fields`] naming each missing or mistyped property at its line;
/// [`SyncError::Reads`] when the definitions cannot be listed or the adapter cannot read them.
pub async fn prepare_reads<C: Crm>(crm: &C, criteria: &Criteria) -> Result<(), SyncError> {
    let reads = criteria.crm_reads();
    if !reads.is_default() {
        let check = async || {
            let mut described = leadsync_domain::criteria::Described::new();
            for object in criteria.objects_read() {
                described.insert(
                    object,
                    crm.describe_properties(object)
                        .await
                        .map_err(SyncError::Reads)?,
                );
            }
            criteria
                .check_properties(&described, crm.name())
                .map_err(SyncError::Fields)
        };
        match check().await {
            Err(SyncError::Fields(_)) => {
                // Definitions listed a while ago may predate the property: list them again.
                crm.forget_properties();
                check().await?;
            }
            other => other?,
        }
    }
    crm.set_reads(&reads).map_err(SyncError::Reads)?;
    if !criteria.crm.forward.is_empty() && crm.forward_properties().is_none() {
        return Err(SyncError::Reads(
            leadsync_domain::ports::CrmError::Rejected {
                status: 0,
                message: format!(
                    "{} does not move its own lifecycle stage or lead status yet: remove [crm.forward] from criteria {} {}",
                    crm.name(),
                    criteria.id,
                    criteria.version
                ),
            },
        ));
    }
    Ok(())
}

fn store_err(step: &'static str) -> impl FnOnce(StoreError) -> SyncError {
    move |source| SyncError::Store { step, source }
}

/// What one scope's pull left for the run's finish.
#[derive(Debug, Clone, Default)]
pub struct ScopeOutcome {
    pub report: RunReport,
    /// The newest modification time seen.
    pub max_seen: Option<DateTime<Utc>>,
    /// The oldest modification time of a lead whose push must be retried.
    pub hold_at: Option<DateTime<Utc>>,
}

/// Run a whole run in this process: one scope (everything since the watermark, or
/// `since_override`), then [`finish`]. Returns the run report (also saved in the store).
///
/// # Errors
/// [`SyncError`] when a dependency fails past its retries, or too many records are bad.
pub async fn sync<C, S, N, P>(
    deps: &SyncDeps<'_, C, S, N, P>,
    input: &SyncInput,
) -> Result<RunReport, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore,
    N: SnapshotStore,
    P: FirmographicProvider,
{
    let since = since_of(deps.store, input).await?;
    let mut outcome = sync_scope(deps, input, &PullScope::since(since)).await?;
    if input.since_override.is_none() {
        // Leads whose stage or band time alone has changed since they were scored, and leads
        // whose deals or company changed without their own record.
        let due = unchanged_to_rescore(deps, input.now, since).await?;
        for scope in PullScope::due(&due, deps.crm.max_ids()) {
            let more = sync_scope(deps, input, &scope).await?;
            outcome.report.absorb(&more.report);
            outcome.hold_at = match (outcome.hold_at, more.hold_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    finish(deps, input, outcome).await
}

/// Pull, enrich, score, record and push every contact in `scope`, then write the snapshot and
/// the quarantine file. Leaves rollups and the watermark to [`finish`].
///
/// # Errors
/// [`SyncError`] when a dependency fails past its retries, or too many records are bad (the
/// slice's report is saved first).
pub async fn sync_scope<C, S, N, P>(
    deps: &SyncDeps<'_, C, S, N, P>,
    input: &SyncInput,
    scope: &PullScope,
) -> Result<ScopeOutcome, SyncError>
where
    C: Crm,
    S: LeadStore + RollupStore,
    N: SnapshotStore,
    P: FirmographicProvider,
{
    let mut report = RunReport {
        run_id: input.run_id.clone(),
        slice: input.slice,
        started_at: Some((input.wall)()),
        criteria_version: deps.criteria.version.clone(),
        since: Some(scope.since),
        ..RunReport::default()
    };
    tracing::info!(run_id = %input.run_id, slice = input.slice, since = %scope.since, after = ?scope.after, through = ?scope.through, only = scope.only.len(), criteria_version = %deps.criteria.version, "Slice started.");

    // One enricher for the whole run: each company domain is looked up once, whatever page it is on.
    let mut enricher = crate::enrich::Enricher::new(deps.providers);
    if let Some(credits) = input.enrich_budget {
        enricher = enricher.with_budget(credits);
    }
    prepare_reads(deps.crm, deps.criteria).await?;
    let mut properties_ready = false;
    let key = SnapshotKey {
        date: input.now.date_naive(),
        run_id: input.run_id.clone(),
        slice: input.slice,
    };
    // Each page's scored leads are handed to the snapshot as the page ends, so a slice holds its
    // snapshot in the stored (compressed) form, not every scored lead until the end.
    let mut snapshot = deps.snapshots.snapshot_writer(&key);
    let mut quarantine: Vec<Rejected> = Vec::new();
    // Updates the CRM refused for good; written to the quarantine file with the unreadable records.
    let mut refused: Vec<Rejected> = Vec::new();
    let mut max_seen: Option<DateTime<Utc>> = None;
    let mut hold_watermark_at: Option<DateTime<Utc>> = None;
    let mut cursor: Option<String> = None;
    let hold_unenriched = input.since_override.is_none()
        && input.enrich_hold.is_some_and(|window| {
            scope.since == DateTime::<Utc>::UNIX_EPOCH || scope.since >= input.now - window
        });
    // `[crm.forward]`: where the CRM keeps its own lifecycle stage and sales status.
    let forward = (!deps.criteria.crm.forward.is_empty())
        .then(|| deps.crm.forward_properties())
        .flatten();
    // The ends of the pages before (their pushes, news and states) run while this page is
    // pulled, scored and recorded: reading the next page waits on the CRM as much as writing
    // the last one does, and neither should wait for the other. Up to
    // [`write_back::ENDS_IN_FLIGHT`] ends overlap, so one page's slowest push (a 429's wait)
    // does not leave the rate limit unused while the next page's updates are ready.
    let mut ends = futures::stream::FuturesOrdered::new();
    // The run's first push makes sure of the properties; no other end starts before it is done.
    let mut ensuring = false;
    loop {
        let page_work = async {
            let mut page =
                deps.crm
                    .pull_page(scope, cursor.as_deref())
                    .await
                    .map_err(|source| SyncError::Pull {
                        pages: report.crm_pull_pages,
                        source,
                    })?;
            report.crm_pull_pages += 1;
            report.pulled += (page.leads.len() + page.rejected.len()) as u64;
            report.quarantined += page.rejected.len() as u64;
            quarantine.append(&mut page.rejected);
            let mut leads = std::mem::take(&mut page.leads);
            max_seen = leads.iter().map(|l| l.modified_at).chain(max_seen).max();

            let enriched = enricher.enrich(&mut leads).await;

            if hold_unenriched {
                leads.retain(|lead| {
                    if !enricher.failed_for_now(lead) {
                        return true;
                    }
                    report.enrich_held += 1;
                    hold_watermark_at = Some(
                        hold_watermark_at.map_or(lead.modified_at, |h| h.min(lead.modified_at)),
                    );
                    false
                });
            }
            report.enriched_fields += enriched.fields_filled;
            report.enrich_calls += enriched.provider_calls;
            report.enrich_matches += enriched.matches;
            report.enrich_credits += enriched.credits;
            report.enrich_skipped_budget += enriched.skipped_for_budget;
            report.enrich_cache_hits += enriched.cache_hits;
            report.enrich_unavailable += enriched.unavailable;

            let ids: Vec<LeadId> = leads.iter().map(|l| l.id.clone()).collect();
            let previous = deps
                .store
                .load_states(&ids)
                .await
                .map_err(store_err("loading lead states"))?;

            let mut states = Vec::with_capacity(leads.len());
            let mut unchanged: HashMap<LeadId, LeadState> = HashMap::new();
            let mut transitions: Vec<Transition> = Vec::new();
            let mut milestones: Vec<MilestoneFact> = Vec::new();
            let mut links: Vec<(LeadId, LeadLink)> = Vec::new();
            let mut updates: Vec<(PropertyUpdate, String, DateTime<Utc>)> = Vec::new();
            let mut lines: Vec<SnapshotLine> = Vec::with_capacity(leads.len());
            let mut news: Vec<leadsync_domain::news::LeadEvent> = Vec::new();
            for lead in leads {
                let card = deps.criteria.evaluate(&lead, input.now);
                let prev = previous.get(&lead.id);
                // When the lead's data last changed. For a lead seen for the first time whose
                // engagement made it an MQL or SQL, its latest activity is when it got there (the
                // CRM's last modification may be a later sales edit): the funnel and speed to lead
                // start from it.
                let data_at = match (prev, card.stage) {
                    (None, Stage::Mql | Stage::Sql) => lead
                        .engagement
                        .last_activity_at()
                        .map_or(lead.modified_at, |a| a.min(lead.modified_at)),
                    _ => lead.modified_at,
                };
                let mut state = LeadState::from_scorecard(
                    lead.id.clone(),
                    lead.owner_id.clone(),
                    &card,
                    lead.input_hash(),
                    data_at,
                    prev,
                    input.now,
                    &input.run_id,
                );
                state.rescore_at = deps.criteria.next_change(&lead, input.now);
                *report
                    .stages
                    .entry(card.stage.as_str().to_owned())
                    .or_default() += 1;
                report.scored += 1;
                // Scored by an earlier attempt of this very run (cut short after it saved this
                // lead's state): the facts that attempt recorded are in the period its stage began,
                // and this attempt makes no transition to say so — the period must be recomputed
                // all the same, or a crash leaves its rollups unwritten.
                if let Some(since) = prev
                    .filter(|p| p.run_id == input.run_id)
                    .and_then(|p| p.stage_since)
                {
                    report.fact_periods.insert(period_of(since));
                }
                if let Some(mut t) = Transition::between(prev, &state) {
                    t.source = lead.source.clone();
                    t.loss_reasons = deps
                        .criteria
                        .loss_reasons(&card, lead.lead_status.as_deref());
                    transitions.push(t);
                }
                if let Some(plan) = &deps.criteria.incentives {
                    milestones.extend(milestones_of(&lead, &state, plan, input.now, &input.run_id));
                }
                if deps.events.is_some() {
                    news.extend(leadsync_domain::news::news(
                        &lead,
                        &card,
                        prev,
                        &deps.crm.name().to_lowercase(),
                        input.now,
                        &input.run_id,
                    ));
                }
                // Contacts merged into this one count as it from now on.
                links.extend(lead.merged_ids.iter().filter(|m| **m != lead.id).map(|m| {
                    (
                        m.clone(),
                        LeadLink::Merged {
                            into: lead.id.clone(),
                            seen_at: input.now,
                        },
                    )
                }));
                let mut properties = card.crm_properties(&deps.criteria.crm);
                // What the CRM's own fields should show is hashed whether or not it must be
                // written: a contact already there (or further along) costs no write.
                let mut hashed = properties.clone();
                for write in forward
                    .as_ref()
                    .map(|f| deps.criteria.forward_writes(&lead, card.stage, f))
                    .unwrap_or_default()
                {
                    if write.needed {
                        properties.insert(write.property.clone(), write.value.clone());
                    }
                    hashed.insert(write.property, write.value);
                }
                let hash = push_hash(&hashed);
                let mut hash_moved = false;
                if prev.and_then(|p| p.pushed_hash.as_deref()) != Some(hash.as_str()) {
                    if lead.crm_already_shows(&properties) {
                        // The CRM shows these values already — typically this run's earlier attempt
                        // pushed them and was cut short before it saved the states: recorded as
                        // pushed, not written again.
                        state.pushed_hash = Some(hash);
                        hash_moved = true;
                        report.already_in_crm += 1;
                    } else {
                        updates.push((
                            PropertyUpdate {
                                lead_id: lead.id.clone(),
                                properties,
                            },
                            hash,
                            lead.modified_at,
                        ));
                    }
                }
                match prev {
                    Some(p) if p.same_result(&state) && !hash_moved => {
                        report.unchanged += 1;
                        // Written only if a push below changes its pushed hash.
                        unchanged.insert(state.lead_id.clone(), state);
                    }
                    _ => states.push(state),
                }
                lines.push(SnapshotLine {
                    lead,
                    scorecard: card,
                });
            }
            snapshot
                .append(&lines)
                .map_err(store_err("writing the snapshot"))?;
            drop(lines);

            // Facts first (each written only if absent, so a retried page never double-counts);
            // the leads' states after the push, carrying the hash of what the CRM accepted — one
            // write per lead. A crash between the two leaves the states as they were: the re-run
            // pushes the same values again and then writes them.
            let page_periods: BTreeSet<String> = transitions
                .iter()
                .map(|t| period_of(t.occurred_at.unwrap_or(t.observed_at)))
                .chain(
                    milestones
                        .iter()
                        .map(|m| period_of(m.occurred_at.unwrap_or(m.observed_at))),
                )
                .collect();
            // Noted with the run before its facts are written: if this attempt is cut short, the
            // next one — meeting contacts our push has since modified — still recomputes them.
            if !page_periods.is_empty() {
                deps.store
                    .note_periods(&input.run_id, &page_periods)
                    .await
                    .map_err(store_err("noting the periods of the run's facts"))?;
            }
            report.fact_periods.extend(page_periods);
            let recorded = deps
                .store
                .append_transitions(&transitions)
                .await
                .map_err(store_err("recording transitions"))?;
            report.transitions_new += recorded.transitions_new;
            report.transitions_existing += recorded.transitions_existing;
            // A re-run of a page whose facts an earlier attempt recorded: the lead got to its stage
            // when that fact says, not when our own push (a moment ago) last modified the contact.
            for state in states.iter_mut().chain(unchanged.values_mut()) {
                if let Some(since) = recorded.existing_since.get(&state.lead_id) {
                    state.stage_since = Some(*since);
                }
            }
            if !links.is_empty() {
                let periods = deps
                    .store
                    .record_links(&links)
                    .await
                    .map_err(store_err("recording merged contacts"))?;
                report.merged += links.len() as u64;
                report.fact_periods.extend(periods);
            }
            if !milestones.is_empty() {
                report.milestones_new += deps
                    .store
                    .record_milestones(&milestones)
                    .await
                    .map_err(store_err("recording milestones"))?;
            }

            report.push_candidates += updates.len() as u64;
            // Before the first write of the run the properties must exist in the CRM: the
            // first page with updates makes sure of it, in its end.
            let ensure_properties = !updates.is_empty() && !properties_ready;
            properties_ready |= ensure_properties;
            Ok::<_, SyncError>((
                write_back::PageEnd {
                    states,
                    unchanged,
                    updates,
                    news,
                    ensure_properties,
                },
                page.next,
            ))
        };
        // Ends that finish while this page is worked on are counted after it, in page order;
        // had one failed, the run stops before this page's end starts.
        let mut ended: Vec<Result<write_back::PageEnded, SyncError>> = Vec::new();
        let worked = {
            let mut work = std::pin::pin!(page_work);
            loop {
                if ends.is_empty() {
                    break work.await;
                }
                match futures::future::select(ends.next(), work.as_mut()).await {
                    futures::future::Either::Left((Some(end), _)) => ended.push(end),
                    futures::future::Either::Left((None, _)) => {}
                    futures::future::Either::Right((worked, _)) => break worked,
                }
            }
        };
        for end in ended {
            end?.add_to(&mut report, &mut refused, &mut hold_watermark_at);
        }
        let (end, next) = worked?;
        if ensuring {
            while let Some(done) = ends.next().await {
                done?.add_to(&mut report, &mut refused, &mut hold_watermark_at);
            }
        }
        ensuring = end.ensure_properties;
        ends.push_back(write_back::end_page(deps, end));
        while ends.len() > write_back::ENDS_IN_FLIGHT {
            if let Some(done) = ends.next().await {
                done?.add_to(&mut report, &mut refused, &mut hold_watermark_at);
            }
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    while let Some(done) = ends.next().await {
        done?.add_to(&mut report, &mut refused, &mut hold_watermark_at);
    }

    quarantine.append(&mut refused);
    if !quarantine.is_empty() {
        let object = deps
            .snapshots
            .put_quarantine(&key, &quarantine)
            .await
            .map_err(store_err("writing quarantine"))?;
        tracing::warn!(quarantined = quarantine.len(), key = %object, "Records quarantined.");
        report.quarantine_key = Some(object);
    }
    report.snapshot_key = Some(
        snapshot
            .finish()
            .await
            .map_err(store_err("writing the snapshot"))?,
    );

    if report.pulled > 0
        && report.quarantined as f64 > report.pulled as f64 * input.max_reject_ratio
    {
        let error = SyncError::TooManyRejected {
            quarantined: report.quarantined,
            pulled: report.pulled,
            limit: input.max_reject_ratio * 100.0,
            key: report.quarantine_key.clone().unwrap_or_default(),
        };
        deps.store
            .save_run(&report)
            .await
            .map_err(store_err("saving the run report"))?;
        return Err(error);
    }

    if scope.due {
        report.rescored_due = report.scored;
    }
    report.finished_at = Some((input.wall)());
    deps.store
        .save_run(&report)
        .await
        .map_err(store_err("saving the slice report"))?;
    Ok(ScopeOutcome {
        report,
        max_seen,
        hold_at: hold_watermark_at,
    })
}

#[cfg(test)]
mod tests;
