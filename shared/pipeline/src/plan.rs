//! Planning a run's slices: cut the contacts in scope into key ranges of about `target`
//! contacts each, by counting (one cheap request per count) and bisecting ranges that hold too
//! many at a key the adapter picks ([`Crm::split_keys`]). Record keys grow with creation time
//! in the CRMs we serve, so changed contacts cluster unevenly; bisection follows the clusters
//! instead of assuming an even spread.
//!
//! The last range is open-ended: a contact created after the census (with a later key) still
//! belongs to a slice.

use leadsync_domain::ports::{Crm, CrmError};
use leadsync_domain::runs::{Census, PullScope, ScopeKey};

/// The slices of a run, and what planning cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePlan {
    pub scopes: Vec<PullScope>,
    /// Contacts counted in scope at planning time.
    pub contacts: u64,
    /// Count requests made.
    pub requests: u32,
}

/// Plan slices of about `target` contacts over everything modified since `base.since` (the
/// id bounds of `base` are ignored), at most `max_slices`.
///
/// # Errors
/// [`CrmError`] when a count fails.
pub async fn plan_slices<C: Crm>(
    crm: &C,
    base: &PullScope,
    target: u64,
    max_slices: usize,
) -> Result<SlicePlan, CrmError> {
    let target = target.max(1);
    let whole = PullScope::since(base.since);
    let census = crm.count(&whole).await?;
    let mut requests = 1;
    let Some(last) = census.last.filter(|_| census.total > target) else {
        return Ok(SlicePlan {
            scopes: vec![whole],
            contacts: census.total,
            requests,
        });
    };
    // Ranges (after, through] with their counts, the first and last keys a census saw in
    // them (when the adapter reports them), and a key between those; split the largest
    // first until each fits.
    struct Range {
        after: Option<ScopeKey>,
        through: ScopeKey,
        n: u64,
        mid: Option<ScopeKey>,
    }
    // Splitting between the keys a census saw, not the range's ends, skips the empty key
    // space around the records (sparse in CRMs whose keys are wide, as Salesforce Ids are).
    let range = |after: Option<ScopeKey>,
                 through: ScopeKey,
                 n,
                 seen: (Option<ScopeKey>, Option<ScopeKey>)| {
        let (first, last) = seen;
        let low = first.as_ref().or(after.as_ref());
        let high = last.as_ref().unwrap_or(&through);
        let mid = if first.is_some() && first == last {
            None
        } else {
            crm.split_keys(low, high)
        };
        Range {
            after,
            through,
            n,
            mid,
        }
    };
    // Adapters that report first keys get both halves counted (tight bounds on each side).
    let both_sides = census.first.is_some();
    let mut ranges = vec![range(
        None,
        last.clone(),
        census.total,
        (census.first.clone(), Some(last)),
    )];
    while ranges.len() < max_slices {
        let Some(at) = ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.n > target && r.mid.is_some())
            .max_by_key(|(_, r)| r.n)
            .map(|(i, _)| i)
        else {
            break;
        };
        let Range {
            after,
            through,
            n,
            mid,
        } = ranges.remove(at);
        let Some(mid) = mid else { break };
        let left = crm
            .count(&PullScope {
                after: after.clone(),
                through: Some(mid.clone()),
                ..whole.clone()
            })
            .await?;
        requests += 1;
        let right = if both_sides {
            requests += 1;
            crm.count(&PullScope {
                after: Some(mid.clone()),
                through: Some(through.clone()),
                ..whole.clone()
            })
            .await?
        } else {
            Census {
                total: n.saturating_sub(left.total),
                first: None,
                last: None,
            }
        };
        ranges.insert(
            at,
            range(
                Some(mid.clone()),
                through,
                right.total,
                (right.first, right.last),
            ),
        );
        ranges.insert(at, range(after, mid, left.total, (left.first, left.last)));
    }
    // Neighbours that fit together become one slice again.
    let mut merged: Vec<(Option<ScopeKey>, ScopeKey, u64)> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if last.2 + r.n <= target => {
                last.1 = r.through;
                last.2 += r.n;
            }
            _ => merged.push((r.after, r.through, r.n)),
        }
    }
    let count = merged.len();
    let scopes = merged
        .into_iter()
        .enumerate()
        .map(|(i, (after, through, _))| PullScope {
            after,
            through: (i + 1 < count).then_some(through),
            ..whole.clone()
        })
        .collect();
    Ok(SlicePlan {
        scopes,
        contacts: census.total,
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use leadsync_domain::fakes::FakeCrm;
    use leadsync_domain::{Lead, LeadId};

    fn crm(ids: impl IntoIterator<Item = u64>) -> FakeCrm {
        FakeCrm::new(ids.into_iter().map(|i| {
            Lead::new(
                LeadId::new(i.to_string()).unwrap(),
                DateTime::<Utc>::UNIX_EPOCH,
            )
        }))
    }

    async fn walk(crm: &FakeCrm, scope: &PullScope) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page = crm.pull_page(scope, cursor.as_deref()).await.unwrap();
            ids.extend(page.leads.iter().map(|l| l.id.to_string()));
            match page.next {
                Some(n) => cursor = Some(n),
                None => return ids,
            }
        }
    }

    #[tokio::test]
    async fn small_runs_are_one_slice() {
        let crm = crm(1..=50);
        let plan = plan_slices(&crm, &PullScope::default(), 100, 64)
            .await
            .unwrap();
        assert_eq!(plan.scopes.len(), 1);
        assert_eq!((plan.contacts, plan.requests), (50, 1));
        assert_eq!(plan.scopes[0].through, None);
    }

    #[tokio::test]
    async fn slices_cover_every_contact_once_even_when_ids_cluster() {
        // A dense block of old ids, a gap, and a dense block of new ones.
        let ids: Vec<u64> = (1..=700)
            .chain(1_000_000..1_000_300)
            .chain([5_000_000_000])
            .collect();
        let crm = crm(ids.clone());
        let plan = plan_slices(&crm, &PullScope::default(), 120, 64)
            .await
            .unwrap();
        assert!(plan.scopes.len() >= 9, "{} slices", plan.scopes.len());
        assert_eq!(plan.contacts, ids.len() as u64);
        assert_eq!(plan.scopes.last().unwrap().through, None);
        let mut seen = Vec::new();
        for scope in &plan.scopes {
            let got = walk(&crm, scope).await;
            assert!(got.len() as u64 <= 120, "a slice of {} contacts", got.len());
            seen.extend(got);
        }
        let mut want: Vec<String> = ids.iter().map(u64::to_string).collect();
        seen.sort();
        want.sort();
        assert_eq!(seen, want, "every contact in exactly one slice");
        assert!(
            plan.requests as usize <= 3 * plan.scopes.len() + 40,
            "{} count requests",
            plan.requests
        );
    }

    #[tokio::test]
    async fn a_contact_created_after_the_census_still_has_a_slice() {
        let crm = crm(1..=300);
        let plan = plan_slices(&crm, &PullScope::default(), 100, 64)
            .await
            .unwrap();
        crm.upsert(Lead::new(
            LeadId::new("999999").unwrap(),
            DateTime::<Utc>::UNIX_EPOCH,
        ));
        let last = walk(&crm, plan.scopes.last().unwrap()).await;
        assert!(last.contains(&"999999".to_owned()));
    }

    #[tokio::test]
    async fn max_slices_bounds_the_plan() {
        let crm = crm(1..=1000);
        let plan = plan_slices(&crm, &PullScope::default(), 10, 8)
            .await
            .unwrap();
        assert!(plan.scopes.len() <= 8);
    }
}
