//! Firmographic enrichment of a batch of leads, the use case: fill what the CRM's company
//! record left unknown from providers tried in order (a waterfall), looking each company domain
//! up once per run however many leads share it, within the run's credit budget, recording
//! per-field provenance and a reason on every lead left without data (`not_enriched`: budget
//! spent, or a provider failed). The providers are adapters (`leadsync-enrich`).
//!
//! Must not: fail a batch because a provider failed (the lead is scored without that data and
//! the failure is counted), or log an email address.

use futures::future::join_all;
use leadsync_domain::domain_name::registrable_domain;
use leadsync_domain::ports::{FirmographicProvider, Lookup, Origin};
use leadsync_domain::{Firmographics, Lead};
use std::collections::{BTreeSet, HashMap};

/// What one enrichment pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnrichStats {
    /// Leads that had firmographics (from any source) after the pass.
    pub with_firmographics: u64,
    /// Leads that needed data and had a company domain to look up.
    pub looked_up: u64,
    /// Provider calls made (one per provider per distinct domain at most; cache hits are not
    /// calls).
    pub provider_calls: u64,
    /// Answers found in the cache (no call, no cost).
    pub cache_hits: u64,
    /// Fields filled from providers.
    pub fields_filled: u64,
    /// Provider calls that failed; those leads are scored without that provider's data.
    pub provider_errors: u64,
    /// Credits billed, as each provider reports its answers.
    pub credits: u64,
    /// Matches returned by providers.
    pub matches: u64,
    /// Leads left unenriched because the run's credit budget was spent (marked on the lead).
    pub skipped_for_budget: u64,
    /// Leads left without some provider's data because it failed (rate limited, down, timed
    /// out after its retries) — marked on the lead, scored with what was known.
    pub unavailable: u64,
}

/// The domain to look up for a lead: the registrable domain of its email address, unless
/// free-mail or unusable.
fn lookup_domain(lead: &Lead) -> Option<String> {
    lead.email
        .as_deref()
        .and_then(|e| registrable_domain(e).ok())
}

fn incomplete(f: &Firmographics) -> bool {
    f.industry.is_none()
        || f.employees.is_none()
        || f.annual_revenue.is_none()
        || f.country.is_none()
}

/// Lookups in flight at once, per provider.
pub const CONCURRENCY: usize = 8;

/// What the run has learnt about one domain.
#[derive(Debug, Default)]
struct Known {
    firmographics: Firmographics,
    /// How many providers of the waterfall have been asked (in order).
    asked: usize,
    /// The last provider failure for this domain, if any: said on its leads.
    failed: Option<String>,
    /// Whether that failure may pass (rate limited, unavailable, timed out) — not a refusal.
    failed_for_now: bool,
}

/// Enrichment for one run: every domain's answers are remembered (matches, no-matches and
/// failures alike), so each domain is asked of each provider at most once per run, however many
/// pages and leads share it. Providers are asked in waterfall order, a later one only for what
/// earlier ones left unknown.
#[derive(Debug)]
pub struct Enricher<'a, P> {
    providers: &'a [P],
    /// Credits the run may spend; `None` for no limit.
    budget: Option<u64>,
    known: HashMap<String, Known>,
    /// Totals over the run so far.
    pub stats: EnrichStats,
}

impl<'a, P: FirmographicProvider> Enricher<'a, P> {
    pub fn new(providers: &'a [P]) -> Self {
        Self {
            providers,
            budget: None,
            known: HashMap::new(),
            stats: EnrichStats::default(),
        }
    }

    /// Spend at most `credits` this run: no more lookups are in flight than credits left (any
    /// of them might bill), so at most `credits` calls are ever billed. Cache hits are free.
    pub fn with_budget(mut self, credits: u64) -> Self {
        self.budget = Some(credits);
        self
    }

    fn credits_left(&self, this_call: u64) -> u64 {
        self.budget.map_or(u64::MAX, |b| {
            b.saturating_sub(self.stats.credits + this_call)
        })
    }

    /// Whether `lead` still lacks data a provider could not give this run for a passing reason
    /// (rate limited, down, timed out after its retries) — a lead worth holding for the next
    /// run rather than scoring without. False for a refusal, a spent budget or no match.
    pub fn failed_for_now(&self, lead: &Lead) -> bool {
        incomplete(&lead.firmographics)
            && lookup_domain(lead)
                .and_then(|d| self.known.get(&d))
                .is_some_and(|k| k.failed.is_some() && k.failed_for_now)
    }

    /// Enrich `leads` in place; returns what this call did (also added to `self.stats`).
    pub async fn enrich(&mut self, leads: &mut [Lead]) -> EnrichStats {
        let mut stats = EnrichStats::default();
        let wanted: BTreeSet<String> = leads
            .iter()
            .filter(|l| incomplete(&l.firmographics))
            .filter_map(lookup_domain)
            .collect();
        stats.looked_up = leads
            .iter()
            .filter(|l| incomplete(&l.firmographics) && lookup_domain(l).is_some())
            .count() as u64;
        for (index, provider) in self.providers.iter().enumerate() {
            let ask: Vec<String> = wanted
                .iter()
                .filter(|d| {
                    self.known
                        .get(*d)
                        .is_none_or(|k| k.asked <= index && incomplete(&k.firmographics))
                })
                .cloned()
                .collect();
            // What the provider's cache holds, in as few reads as its store allows; only the
            // rest is asked, one call each.
            let hits = if ask.is_empty() {
                HashMap::new()
            } else {
                provider.cached(&ask).await
            };
            let ask: Vec<String> = ask.into_iter().filter(|d| !hits.contains_key(d)).collect();
            for (domain, firmographics) in hits {
                let known = self.known.entry(domain).or_default();
                known.asked = index + 1;
                stats.cache_hits += 1;
                if let Some(firmo) = firmographics {
                    stats.matches += 1;
                    known.firmographics.fill_from(&firmo);
                }
            }
            let mut pending: &[String] = &ask;
            while !pending.is_empty() {
                // Never more calls in flight than credits left.
                let room = usize::try_from(self.credits_left(stats.credits))
                    .unwrap_or(usize::MAX)
                    .min(CONCURRENCY);
                if room == 0 {
                    break;
                }
                let (chunk, rest) = pending.split_at(room.min(pending.len()));
                pending = rest;
                let answers = join_all(chunk.iter().map(|d| provider.lookup_uncached(d))).await;
                for (domain, answer) in chunk.iter().zip(answers) {
                    let known = self.known.entry(domain.clone()).or_default();
                    known.asked = index + 1;
                    match answer {
                        Ok(Lookup {
                            firmographics,
                            origin,
                            cacheable,
                        }) => {
                            match origin {
                                Origin::Cache => stats.cache_hits += 1,
                                Origin::Call { billed } => {
                                    stats.provider_calls += 1;
                                    stats.credits += u64::from(billed);
                                }
                            }
                            if let Some(firmo) = firmographics {
                                stats.matches += 1;
                                known.firmographics.fill_from(&firmo);
                            } else if !cacheable {
                                // An answer that gave no verdict (a body cut short in transit):
                                // a passing failure, not a "no match" — its leads may be held.
                                known.failed =
                                    Some(format!("{}: unreadable answer", provider.name()));
                                known.failed_for_now = true;
                            }
                        }
                        Err(error) => {
                            stats.provider_calls += 1;
                            stats.provider_errors += 1;
                            tracing::warn!(provider = provider.name(), %error, "Firmographic lookup failed; leads scored without it.");
                            known.failed = Some(error.to_string());
                            known.failed_for_now = error.is_retryable();
                        }
                    }
                }
            }
            // What this page learnt, remembered in as few writes as the cache allows.
            provider.flush().await;
        }
        for lead in leads.iter_mut() {
            let domain = lookup_domain(lead);
            match domain.as_ref().map(|d| (d, self.known.get(d))) {
                // A lead the CRM already told enough about is left as it is: had it taken a
                // provider's extras (company type, technologies) whenever another lead of its
                // company on the same page needed a lookup, its inputs — and so its facts —
                // would depend on which leads it was pulled with (found by the storms bench).
                Some((_, Some(_))) if !incomplete(&lead.firmographics) => {}
                Some((_, Some(known))) => {
                    stats.fields_filled +=
                        lead.firmographics.fill_from(&known.firmographics) as u64;
                    if let Some(why) = &known.failed
                        && incomplete(&lead.firmographics)
                    {
                        lead.not_enriched = Some(format!("provider failed: {why}"));
                        stats.unavailable += 1;
                    }
                }
                // Needed data, had a domain, was never asked: the budget ran out first.
                Some((_, None))
                    if incomplete(&lead.firmographics) && !self.providers.is_empty() =>
                {
                    lead.not_enriched = Some("credit budget spent".to_owned());
                    stats.skipped_for_budget += 1;
                }
                _ => {}
            }
            if !lead.firmographics.is_empty() {
                stats.with_firmographics += 1;
            }
        }
        self.stats.looked_up += stats.looked_up;
        self.stats.provider_calls += stats.provider_calls;
        self.stats.fields_filled += stats.fields_filled;
        self.stats.provider_errors += stats.provider_errors;
        self.stats.with_firmographics += stats.with_firmographics;
        self.stats.credits += stats.credits;
        self.stats.matches += stats.matches;
        self.stats.skipped_for_budget += stats.skipped_for_budget;
        self.stats.cache_hits += stats.cache_hits;
        self.stats.unavailable += stats.unavailable;
        stats
    }
}

/// Enrich one batch on its own (a fresh [`Enricher`]).
pub async fn enrich_leads<P: FirmographicProvider>(
    leads: &mut [Lead],
    providers: &[P],
) -> EnrichStats {
    Enricher::new(providers).enrich(leads).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use leadsync_domain::fakes::FakeProvider;
    use leadsync_domain::ports::{NoProvider, ProviderError};
    use leadsync_domain::{LeadId, Provenance, Sourced};
    use std::sync::atomic::Ordering;

    fn lead(id: u32, email: &str) -> Lead {
        let mut l = Lead::new(
            LeadId::new(id.to_string()).unwrap(),
            DateTime::<Utc>::UNIX_EPOCH,
        );
        l.email = Some(email.to_owned());
        l
    }

    fn firmo(provider: &str, industry: Option<&str>, employees: Option<u64>) -> Firmographics {
        let p = Provenance {
            provider: provider.to_owned().into(),
            likelihood: Some(8),
            fetched_at: None,
        };
        Firmographics {
            industry: industry.map(|i| Sourced::new(i.into(), p.clone())),
            employees: employees.map(|e| Sourced::new(e, p.clone())),
            ..Firmographics::default()
        }
    }

    /// Found by the storms bench: a lead the CRM told enough about took a provider's extras
    /// only when another lead of its company, on the same page, needed a lookup — so its inputs
    /// (and the facts recorded from them) depended on which leads it was pulled with.
    #[tokio::test]
    async fn a_leads_enrichment_does_not_depend_on_the_leads_pulled_with_it() {
        let mut rich = firmo("pdl", Some("SOFTWARE"), Some(400));
        rich.company_type = Some(Sourced::new("private".into(), Provenance::crm()));
        let provider = FakeProvider::new("pdl", [("acme.com".to_owned(), rich)]);
        let complete = || {
            let mut l = lead(1, "a@acme.com");
            let crm = Provenance::crm();
            l.firmographics = Firmographics {
                industry: Some(Sourced::new("INTERNET".into(), crm.clone())),
                employees: Some(Sourced::new(300, crm.clone())),
                annual_revenue: Some(Sourced::new(30_000_000, crm.clone())),
                country: Some(Sourced::new("US".into(), crm)),
                ..Firmographics::default()
            };
            l
        };
        let mut alone = vec![complete()];
        enrich_leads(&mut alone, std::slice::from_ref(&provider)).await;
        let mut together = vec![complete(), lead(2, "b@acme.com")];
        enrich_leads(&mut together, std::slice::from_ref(&provider)).await;
        assert_eq!(alone[0].firmographics, together[0].firmographics);
        assert!(together[0].firmographics.company_type.is_none());
        assert_eq!(
            together[1]
                .firmographics
                .industry
                .as_ref()
                .map(|i| i.value.as_str()),
            Some("SOFTWARE"),
            "the lead that needed data got it"
        );
    }

    #[tokio::test]
    async fn one_call_per_domain_and_waterfall_fills_gaps_in_order() {
        let first = FakeProvider::new(
            "first",
            [(
                "acme.com".to_owned(),
                firmo("first", Some("INTERNET"), None),
            )],
        );
        let second = FakeProvider::new(
            "second",
            [(
                "acme.com".to_owned(),
                firmo("second", Some("RETAIL"), Some(300)),
            )],
        );
        let mut leads = vec![
            lead(1, "a@acme.com"),
            lead(2, "b@ACME.com"),
            lead(3, "c@gmail.com"),
            lead(4, "d@other.io"),
        ];
        let stats = enrich_leads(&mut leads, &[first, second]).await;
        assert_eq!(
            stats.provider_calls, 4,
            "acme.com and other.io, each asked of both providers once"
        );
        let f = &leads[1].firmographics;
        assert_eq!(
            f.industry
                .as_ref()
                .map(|s| (s.value.as_str(), s.source.provider.as_ref())),
            Some(("INTERNET", "first"))
        );
        assert_eq!(
            f.employees
                .as_ref()
                .map(|s| (s.value, s.source.provider.as_ref())),
            Some((300, "second"))
        );
        assert!(
            leads[2].firmographics.is_empty(),
            "free-mail is never looked up"
        );
        assert_eq!(stats.with_firmographics, 2);
    }

    #[tokio::test]
    async fn provider_failure_leaves_lead_unenriched_not_lost() {
        let provider = FakeProvider::new(
            "p",
            [(
                "acme.com".to_owned(),
                firmo("p", Some("INTERNET"), Some(10)),
            )],
        );
        provider.fail_next(
            1,
            ProviderError::RateLimited {
                provider: "p".into(),
            },
        );
        let mut leads = vec![lead(1, "a@acme.com")];
        let stats = enrich_leads(&mut leads, std::slice::from_ref(&provider)).await;
        assert_eq!((stats.provider_errors, stats.with_firmographics), (1, 0));
        assert_eq!(leads.len(), 1);
        assert_eq!(stats.unavailable, 1);
        assert!(
            leads[0]
                .not_enriched
                .as_deref()
                .is_some_and(|why| why.starts_with("provider failed: ")),
            "{:?}",
            leads[0].not_enriched
        );
        assert_eq!(provider.calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn no_provider_is_a_pass_through() {
        let mut leads = vec![lead(1, "a@acme.com")];
        leads[0].firmographics = firmo("crm", Some("INTERNET"), None);
        let before = leads.clone();
        let stats = enrich_leads::<NoProvider>(&mut leads, &[]).await;
        assert_eq!(leads, before);
        assert_eq!((stats.provider_calls, stats.with_firmographics), (0, 1));
    }
}
