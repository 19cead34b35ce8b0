//! The pull walk: keyset paging on `hs_object_id` in lanes (id ranges searched at once), the
//! cursor that resumes it, and the search producer that keeps every lane's next search queued
//! under the governor while pull pages are assembled from what it found.
//!
//! HubSpot allows 5 searches a second, and a first sync is mostly searches: a walk's searches
//! must never wait for anything but the governor. So a walk, once started, has a producer
//! task with one loop per lane — search, hand the page over, search again — feeding a bounded
//! buffer; a pull page takes found pages from it (in each lane's order) until its company
//! batch reads are nearly full. The cursor is what the pages *taken* have reached, never what
//! the producer has searched, so a walk resumed from a cursor (another invocation, a retry)
//! reads exactly what is left.
//!
//! Lanes do not end together (a search 429 idles one lane for a second, ids are not evenly
//! spread), and a walk's last seconds with one lane left search at a fraction of the limit. So
//! a lane that ends takes the upper half of the lane with the most left ([`steal`]): the lane
//! split is handed over with the page that ended the thief, so the cursor — every lane the
//! pages taken have not finished — carries the split, and a resumed walk reads each id once.

use crate::client::BATCH_LIMIT;
use crate::client::HashSet;
use crate::client::HubSpotCrm;
use crate::mapping::{self, HubSpotObject};
use crate::object::ObjectInto;
use leadsync_domain::criteria::CrmReads;
use leadsync_domain::ports::{Crm, CrmError, Rejected};
use leadsync_domain::runs::{PullScope, ScopeKey};
use leadsync_domain::{Lead, LeadId};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One id range of a pull walk: the contacts with `after < id ≤ through` (`None`: no upper
/// bound), searched as a keyset walk of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lane {
    pub(crate) after: u64,
    pub(crate) through: Option<u64>,
}

/// Lanes of one walk at most.
const MAX_LANES: u32 = 8;
/// A walk is split only into lanes of at least this many search pages each, so the lanes'
/// partial last pages (and the census an open-ended walk needs) stay a few percent of its
/// searches.
const MIN_PAGES_PER_LANE: u64 = 10;

/// Search pages a walk's producer keeps found and not yet taken, at most (plus one per lane
/// waiting to be handed over): two pull pages' worth, so the searches go on while the caller
/// scores, records and pushes — about 4,000 contacts held at 200 a page.
const BUFFER_PAGES: usize = 20;

/// Search pages are gathered until the unseen company ids pending fill their batch reads
/// (at least one batch, and the last one at least 80% full)…
pub(crate) fn batches_nearly_full(pending: usize) -> bool {
    pending >= BATCH_LIMIT
        && (pending % BATCH_LIMIT == 0 || pending % BATCH_LIMIT >= BATCH_LIMIT * 4 / 5)
}
/// …but never more contacts than this in one pull page (memory stays bounded).
const MAX_CONTACTS_PER_PULL: usize = 2_000;

/// A contact as a walk hands it on: mapped to its lead (without the company) as soon as its
/// search answer is read, while the record is still in the cache, and the record dropped.
/// The lead is boxed: a contact is moved from answer to buffer to page, and a lead is near a
/// kilobyte.
#[derive(Debug)]
pub(crate) struct Contact {
    pub(crate) id: String,
    pub(crate) lead: Result<Box<Lead>, Rejected>,
    /// `associatedcompanyid` of a contact that did not map (a lead holds its own).
    unmapped_company_id: Option<String>,
}

impl Contact {
    /// `associatedcompanyid`, whether or not the contact maps (its company is read either way).
    pub(crate) fn company_id(&self) -> Option<&str> {
        match &self.lead {
            Ok(lead) => lead.company_id.as_deref(),
            Err(_) => self.unmapped_company_id.as_deref(),
        }
    }
}

/// One search page a lane's loop found: which lane, its contacts, whether the lane has more,
/// and the lane's position past them.
#[derive(Debug)]
struct Found {
    lane: usize,
    results: Vec<Contact>,
    more: bool,
    after: u64,
    /// The lane ended and took the upper part of another ([`Split`]).
    split: Option<Split>,
}

/// A lane that ended takes the ids above `at` from lane `victim` (which now ends at `at`): a
/// new lane, the next index of the walk's lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Split {
    victim: usize,
    at: u64,
}

/// One lane as the producer has searched it: its position and bound (lowered when another
/// lane takes its upper part), whether it has more, and how many ids its last full page
/// spanned (how far a page reaches in this part of the id space).
#[derive(Debug, Clone, Copy)]
struct Searching {
    lane: Lane,
    open: bool,
    page_span: Option<u64>,
}

/// A lane is split only when at least this many of its pages are left (each part gets two).
const MIN_PAGES_TO_STEAL: u64 = 4;

/// The lane whose upper half a lane that ended takes, and where it is split: the open lane
/// with the most pages left (its id span left ÷ the span of its last full page), if that is at
/// least [`MIN_PAGES_TO_STEAL`]. An open-ended lane's span reaches to `top` (the census' last
/// id); without it, the lane is not split. The split point is the middle of the span, so the
/// open-ended upper part stays with the thief and still reads contacts created mid-walk.
fn steal(lanes: &[Searching], top: Option<u64>) -> Option<Split> {
    lanes
        .iter()
        .enumerate()
        .filter(|(_, s)| s.open)
        .filter_map(|(i, s)| {
            let end = s.lane.through.or(top)?;
            let span = end.checked_sub(s.lane.after)?;
            let pages = span / s.page_span?.max(1);
            (pages >= MIN_PAGES_TO_STEAL).then_some((pages, i, s.lane.after + span / 2))
        })
        .max_by_key(|&(pages, i, _)| (pages, std::cmp::Reverse(i)))
        .map(|(_, victim, at)| Split { victim, at })
}

/// The part of a search answer inside `lane` (a search sent before the lane was split may
/// reach past its new bound: what lies past it is the new lane's to read) and whether the lane
/// has more — not when the answer reached past the bound, as the results are ascending and
/// hold every id up to it.
fn within(lane: Lane, mut results: Vec<Contact>, more: bool) -> (Vec<Contact>, bool) {
    let Some(through) = lane.through else {
        return (results, more);
    };
    let before = results.len();
    results.retain(|c| c.id.parse::<u64>().map_or(true, |id| id <= through));
    let crossed = results.len() < before;
    (results, more && !crossed)
}

/// A walk in progress: its lanes as far as pull pages have taken them (the cursor of its next
/// page; a finished lane is `None`) and the producer searching ahead of them. Dropping it stops
/// the producer.
#[derive(Debug)]
pub(crate) struct Walk {
    scope: PullScope,
    lanes: Vec<Option<Lane>>,
    found: mpsc::Receiver<Result<Found, CrmError>>,
    producer: tokio::task::JoinHandle<()>,
    /// Places for pages read ahead of the caller ([`PAGES_AHEAD`]): a page read in the
    /// background holds one until the caller takes it.
    pub(crate) ahead: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Pull pages a walk reads ahead of its caller at most, each with its companies and deals: a
/// page whose reads wait out a 429 does not hold back the reads of the page after it.
pub(crate) const PAGES_AHEAD: usize = 2;

impl Drop for Walk {
    fn drop(&mut self) {
        self.producer.abort();
    }
}

impl Walk {
    /// The lanes with more to read.
    fn open(&self) -> Vec<Lane> {
        self.lanes.iter().flatten().copied().collect()
    }

    /// Every lane has ended.
    pub(crate) fn is_done(&self) -> bool {
        self.lanes.iter().all(Option::is_none)
    }

    /// The cursor of the walk's next page.
    pub(crate) fn cursor(&self) -> String {
        encode_cursor(&self.open())
    }

    /// This walk's next page is `(scope, cursor)`.
    pub(crate) fn resumes(&self, scope: &PullScope, cursor: &str) -> bool {
        self.scope == *scope && self.cursor() == cursor
    }

    pub(crate) fn scope(&self) -> &PullScope {
        &self.scope
    }
}

/// The contacts of one pull page (each already mapped when its search answer was read: see
/// [`Contact`]) and the company ids they reference that are not cached, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    pub(crate) contacts: Vec<Contact>,
    pub(crate) pending: Vec<String>,
}

/// `lane` past `results` (the highest id they hold). A search that says there is more but
/// returned no readable id would loop forever: an error.
fn advance(mut lane: Lane, results: &[Contact], more: bool) -> Result<Lane, CrmError> {
    let before = lane.after;
    for contact in results {
        if let Ok(id) = contact.id.parse::<u64>() {
            lane.after = lane.after.max(id);
        }
    }
    if more && lane.after == before {
        return Err(CrmError::Decode(
            "search says there is more but returned no readable id".into(),
        ));
    }
    Ok(lane)
}

/// A search answer of the walk, its contacts mapped as they are read: one pass over the text,
/// each record mapped while it is still in the cache, and dropped.
struct Answer {
    total: Option<u64>,
    results: Vec<Contact>,
    /// HubSpot's `paging.next` is there.
    more: bool,
}

/// Reads an [`Answer`], mapping each record with the properties the criteria ask for.
struct AnswerSeed<'a>(&'a CrmReads);

/// The fields of a search answer the walk reads; the rest are skipped.
#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum AnswerField {
    Total,
    Results,
    Paging,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for AnswerSeed<'_> {
    type Value = Answer;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Answer, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for AnswerSeed<'_> {
    type Value = Answer;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a search answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Answer, A::Error> {
        let mut answer = Answer {
            total: None,
            results: Vec::new(),
            more: false,
        };
        while let Some(field) = map.next_key()? {
            match field {
                AnswerField::Total => answer.total = map.next_value()?,
                AnswerField::Results => {
                    answer.results = map.next_value_seed(ResultsSeed(self.0))?
                }
                AnswerField::Paging => {
                    let paging: Option<Value> = map.next_value()?;
                    answer.more = paging.as_ref().and_then(|p| p.get("next")).is_some();
                }
                AnswerField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(answer)
    }
}

/// Reads a search answer's `results`, mapping each record as it is read.
struct ResultsSeed<'a>(&'a CrmReads);

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = Vec<Contact>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Contact>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = Vec<Contact>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Vec<Contact>, S::Error> {
        let mut contacts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1_000));
        // Each contact is read into the same object, mapped, and the next one read over it.
        let mut object = HubSpotObject::default();
        while seq.next_element_seed(ObjectInto(&mut object))?.is_some() {
            let lead = mapping::contact_lead(&object, self.0).map(Box::new);
            contacts.push(Contact {
                unmapped_company_id: lead
                    .is_err()
                    .then(|| object.owned("associatedcompanyid"))
                    .flatten(),
                lead,
                id: object.id.clone(),
            });
        }
        Ok(contacts)
    }
}

impl HubSpotCrm {
    /// One search page of a lane's contacts (ids above `lane.after`): the results, whether the
    /// lane has more, and what the query matches (HubSpot's `total`).
    async fn search_page(
        &self,
        scope: &PullScope,
        lane: Lane,
    ) -> Result<(Vec<Contact>, bool, Option<u64>), CrmError> {
        let (scope_after, _) = id_bounds(scope)?;
        let reads = self.reads();
        let body = json!({
            "filterGroups": [{ "filters": scope_filters(scope, lane.after.max(scope_after), lane.through) }],
            "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
            "properties": reads.contact,
            "limit": self.page_size(),
        });
        const PATH: &str = "/crm/v3/objects/contacts/search";
        let decode = |e: serde_json::Error| CrmError::Decode(format!("{PATH}: {e}"));
        self.send_read(reqwest::Method::POST, PATH, Some(&body), |_, text| {
            let answer = AnswerSeed(&reads.asked)
                .deserialize(&mut serde_json::Deserializer::from_str(text))
                .map_err(decode)?;
            Ok((answer.results, answer.more, answer.total))
        })
        .await
    }

    /// Start a walk of `scope`: one search, then — when its `total` says the walk is worth
    /// it — the rest split into lanes, and their producer started. Returns the walk and the
    /// first search's contacts.
    pub(crate) async fn start_walk(
        &self,
        scope: &PullScope,
    ) -> Result<(Walk, Vec<Contact>), CrmError> {
        let (after, through) = id_bounds(scope)?;
        let whole = Lane { after, through };
        let (results, more, total) = self.search_page(scope, whole).await?;
        let lane = advance(whole, &results, more)?;
        let (lanes, top) = if more {
            self.split_walk(scope, lane, total, results.len() as u64)
                .await?
        } else {
            (Vec::new(), None)
        };
        Ok((self.walk_from(scope, lanes, top), results))
    }

    /// Split the rest of a walk's one lane into several when the first search's `total` says
    /// it is worth it (and the client is configured for lanes). The upper end of the range is
    /// the lane's bound, or — open-ended — a census (one search). Returns the lanes and that
    /// upper end (where lanes ending early may still take from the open-ended one: [`steal`]).
    async fn split_walk(
        &self,
        scope: &PullScope,
        lane: Lane,
        total: Option<u64>,
        seen: u64,
    ) -> Result<(Vec<Lane>, Option<u64>), CrmError> {
        let page_size = u64::from(self.page_size());
        let Some(total) = total else {
            return Ok((vec![lane], None));
        };
        let remaining = total.saturating_sub(seen);
        if self.config.pull_lanes <= 1
            || !scope.only.is_empty()
            || remaining < page_size * MIN_PAGES_PER_LANE * 2
        {
            return Ok((vec![lane], None));
        }
        let top = match lane.through {
            Some(through) => through,
            None => match self
                .count(scope)
                .await?
                .last
                .map(|k| k.as_str().parse::<u64>())
            {
                Some(Ok(top)) => top,
                _ => return Ok((vec![lane], None)),
            },
        };
        let lanes = split_lane(lane, top, remaining, self.config.pull_lanes, page_size);
        Ok((lanes, Some(top)))
    }

    /// A walk of `scope` at `lanes` (a cursor's, or a new walk's, whose census found `top`):
    /// its producer starts searching now, one loop per lane, each page handed over in the
    /// lane's order; a loop whose lane ends goes on with what it takes from another
    /// ([`steal`]). A lane whose search fails past its retries hands over the error and stops;
    /// the page that takes it fails, and the walk is resumed from its cursor by whoever asks
    /// again.
    pub(crate) fn walk_from(&self, scope: &PullScope, lanes: Vec<Lane>, top: Option<u64>) -> Walk {
        let (tx, found) = mpsc::channel(BUFFER_PAGES);
        let this = self.clone();
        let searched = scope.clone();
        let state: Vec<Searching> = lanes
            .iter()
            .map(|&lane| Searching {
                lane,
                open: true,
                page_span: None,
            })
            .collect();
        let producer = tokio::spawn(async move {
            let (this, scope) = (&this, &searched);
            // The loops run on this one task: the lock is never held across an await.
            let state = std::sync::Mutex::new(state);
            let lock = || {
                state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            };
            let count = lock().len();
            let loops = (0..count).map(|first| {
                let (tx, lock) = (tx.clone(), &lock);
                async move {
                    let mut i = first;
                    loop {
                        let asked = lock()[i].lane;
                        let answer = this.search_page(scope, asked).await;
                        // The place in the buffer first; then, with no await between, the
                        // lane's bound as it is now, the page, and any split it hands over,
                        // so the pages are handed over in the order the lanes changed.
                        let Ok(place) = tx.reserve().await else { break };
                        let mut lanes = lock();
                        let page = answer.and_then(|(results, more, _)| {
                            let lane = lanes[i].lane;
                            let (results, more) = within(lane, results, more);
                            let next = advance(lane, &results, more)?;
                            if more {
                                let span = next.after - lane.after;
                                lanes[i].page_span = Some(span);
                            }
                            lanes[i].lane = next;
                            lanes[i].open = more;
                            Ok(Found {
                                lane: i,
                                results,
                                more,
                                after: next.after,
                                split: None,
                            })
                        });
                        let page = match page {
                            Err(e) => {
                                lanes[i].open = false;
                                Err(e)
                            }
                            Ok(mut found) if !found.more => {
                                found.split = steal(&lanes, top);
                                if let Some(Split { victim, at }) = found.split {
                                    let taken = lanes[victim];
                                    lanes[victim].lane.through = Some(at);
                                    i = lanes.len();
                                    lanes.push(Searching {
                                        lane: Lane {
                                            after: at,
                                            through: taken.lane.through,
                                        },
                                        open: true,
                                        page_span: taken.page_span,
                                    });
                                }
                                Ok(found)
                            }
                            found => found,
                        };
                        let go_on = page.as_ref().is_ok_and(|f| f.more || f.split.is_some());
                        drop(lanes);
                        place.send(page);
                        if !go_on {
                            break;
                        }
                    }
                }
            });
            futures::future::join_all(loops).await;
        });
        Walk {
            scope: scope.clone(),
            lanes: lanes.into_iter().map(Some).collect(),
            found,
            producer,
            ahead: std::sync::Arc::new(tokio::sync::Semaphore::new(PAGES_AHEAD)),
        }
    }

    /// One pull page's contacts: `first` (a new walk's first search) and then found pages
    /// taken from the walk until the unseen companies pending nearly fill batch reads, another
    /// page would pass the page's limit, or every lane has ended.
    pub(crate) async fn gather(
        &self,
        walk: &mut Walk,
        first: Vec<Contact>,
    ) -> Result<Gathered, CrmError> {
        let page_size = self.page_size() as usize;
        let mut gathered = Gathered::default();
        let mut seen: HashSet<String> = HashSet::default();
        let mut take = |gathered: &mut Gathered, results: Vec<Contact>| {
            let known = self.lock_companies();
            for id in results.iter().filter_map(Contact::company_id) {
                if !known.contains_key(id) && seen.insert(id.to_owned()) {
                    gathered.pending.push(id.to_owned());
                }
            }
            gathered.contacts.extend(results);
        };
        take(&mut gathered, first);
        while !walk.is_done()
            && !batches_nearly_full(gathered.pending.len())
            && gathered.contacts.len() + page_size <= MAX_CONTACTS_PER_PULL
        {
            let found = walk.found.recv().await.ok_or_else(|| {
                CrmError::Transport("the walk's searches stopped before its lanes ended".into())
            })??;
            let slot = &mut walk.lanes[found.lane];
            match slot {
                Some(lane) if found.more => lane.after = found.after,
                _ => *slot = None,
            }
            if let Some(Split { victim, at }) = found.split {
                let victim = walk.lanes[victim].as_mut().ok_or_else(|| {
                    CrmError::Transport("a lane ended before the split that took from it".into())
                })?;
                let through = victim.through.replace(at);
                walk.lanes.push(Some(Lane { after: at, through }));
            }
            take(&mut gathered, found.results);
        }
        Ok(gathered)
    }
}

/// A pull walk is keyset paging on `hs_object_id`: each lane of the walk asks for ids above
/// the last one it returned (its cursor is every unfinished lane's `after-through`, see
/// [`encode_cursor`]). Unlike `after` offsets it cannot shift when records start matching
/// mid-walk, and it never meets the search's 10,000-result ceiling.
///
/// HubSpot's scope keys are contact ids (`hs_object_id`) in decimal: the bounds of `scope` as
/// numbers (`after` 0: from the start).
pub(crate) fn id_bounds(scope: &PullScope) -> Result<(u64, Option<u64>), CrmError> {
    let parse = |key: &ScopeKey| {
        key.as_str().parse::<u64>().map_err(|_| CrmError::Rejected {
            status: 0,
            message: format!("scope key {key:?} is not a HubSpot contact id"),
        })
    };
    Ok((
        scope.after.as_ref().map(parse).transpose()?.unwrap_or(0),
        scope.through.as_ref().map(parse).transpose()?,
    ))
}

/// The most ids one search's `IN` filter takes.
pub(crate) const MAX_IN_VALUES: usize = 100;

/// The search filters (one AND group) selecting `scope` past `after_id`.
pub(crate) fn scope_filters(
    scope: &PullScope,
    after_id: u64,
    through_id: Option<u64>,
) -> Vec<Value> {
    let mut filters = Vec::with_capacity(3);
    if scope.only.is_empty() {
        filters.push(json!({
            "propertyName": "lastmodifieddate",
            "operator": "GTE",
            "value": scope.since.timestamp_millis().to_string(),
        }));
    } else {
        filters.push(json!({
            "propertyName": "hs_object_id",
            "operator": "IN",
            "values": scope.only.iter().take(MAX_IN_VALUES).map(LeadId::as_str).collect::<Vec<_>>(),
        }));
    }
    if after_id > 0 {
        filters.push(json!({"propertyName": "hs_object_id", "operator": "GT", "value": after_id.to_string()}));
    }
    if let Some(through) = through_id {
        filters.push(json!({"propertyName": "hs_object_id", "operator": "LTE", "value": through.to_string()}));
    }
    filters
}

/// A walk's cursor: its unfinished lanes as `after-through` (`after-` without an upper bound),
/// comma-joined.
fn encode_cursor(lanes: &[Lane]) -> String {
    let mut out = String::new();
    for (i, lane) in lanes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&lane.after.to_string());
        out.push('-');
        if let Some(through) = lane.through {
            out.push_str(&through.to_string());
        }
    }
    out
}

/// The lanes of a cursor. A bare number (a cursor of a one-lane walk from an earlier version)
/// is one lane bounded by the scope. A lane never reaches past the scope's own bounds.
pub(crate) fn parse_cursor(raw: &str, scope: &PullScope) -> Result<Vec<Lane>, CrmError> {
    let bad = || CrmError::Rejected {
        status: 0,
        message: format!("invalid pull cursor {raw:?}"),
    };
    let (scope_after, scope_through) = id_bounds(scope)?;
    if let Ok(after) = raw.parse::<u64>() {
        return Ok(vec![Lane {
            after,
            through: scope_through,
        }]);
    }
    raw.split(',')
        .map(|part| {
            let (after, through) = part.split_once('-').ok_or_else(bad)?;
            let after = after.parse::<u64>().map_err(|_| bad())?;
            let through = match through {
                "" => None,
                t => Some(t.parse::<u64>().map_err(|_| bad())?),
            };
            let within = match (through, scope_through) {
                (Some(t), Some(limit)) => t <= limit,
                (None, Some(_)) => false,
                (_, None) => true,
            };
            if after < scope_after || !within || through.is_some_and(|t| t <= after) {
                return Err(bad());
            }
            Ok(Lane { after, through })
        })
        .collect()
}

/// Split what is left of `lane` — ids in `(lane.after, top]`, `remaining` contacts — into at
/// most `lanes` id ranges of equal width, each worth at least [`MIN_PAGES_PER_LANE`] pages;
/// the last keeps the lane's own upper bound (`None` also reaches contacts created after the
/// census).
fn split_lane(lane: Lane, top: u64, remaining: u64, lanes: u32, page_size: u64) -> Vec<Lane> {
    let span = top.saturating_sub(lane.after);
    let k = u64::from(lanes.clamp(1, MAX_LANES))
        .min(remaining.div_ceil(page_size.max(1)) / MIN_PAGES_PER_LANE)
        .min(span);
    if k <= 1 {
        return vec![lane];
    }
    let step = span.div_ceil(k);
    (0..k)
        .map(|i| Lane {
            after: lane.after + i * step,
            through: if i + 1 == k {
                lane.through
            } else {
                Some(lane.after + (i + 1) * step)
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_reads_wait_for_nearly_full_batches() {
        assert!(!batches_nearly_full(0));
        assert!(!batches_nearly_full(99));
        assert!(batches_nearly_full(100));
        assert!(!batches_nearly_full(150));
        assert!(batches_nearly_full(185));
        assert!(batches_nearly_full(200));
    }

    fn lane(after: u64, through: Option<u64>) -> Lane {
        Lane { after, through }
    }

    #[test]
    fn a_cursor_is_the_lanes_left_and_reads_back() {
        let scope = PullScope::since(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);
        let lanes = vec![lane(120, Some(500)), lane(730, None)];
        let cursor = encode_cursor(&lanes);
        assert_eq!(cursor, "120-500,730-");
        assert_eq!(parse_cursor(&cursor, &scope).unwrap(), lanes);
        // An earlier version's cursor: one lane bounded by the scope.
        let mut bounded = scope.clone();
        bounded.through = Some(ScopeKey::new("9000"));
        assert_eq!(
            parse_cursor("1000123", &scope).unwrap(),
            [lane(1_000_123, None)]
        );
        assert_eq!(
            parse_cursor("10", &bounded).unwrap(),
            [lane(10, Some(9_000))]
        );
        for bad in ["x", "", "5-x", "5-3", "1-2,", "-4"] {
            assert!(parse_cursor(bad, &scope).is_err(), "{bad:?}");
        }
        // No lane may reach past the scope's bounds.
        assert!(parse_cursor("10-", &bounded).is_err());
        assert!(parse_cursor("10-9001", &bounded).is_err());
        bounded.after = Some(ScopeKey::new("50"));
        assert!(parse_cursor("10-900", &bounded).is_err());
    }

    fn searching(after: u64, through: Option<u64>, page_span: Option<u64>) -> Searching {
        Searching {
            lane: lane(after, through),
            open: true,
            page_span,
        }
    }

    #[test]
    fn a_lane_that_ends_takes_the_upper_half_of_the_lane_with_most_pages_left() {
        let mut lanes = vec![
            // Ended.
            Searching {
                open: false,
                ..searching(1_000, Some(2_000), Some(10))
            },
            // 300 ids left at 100 a page: 3 pages, not worth splitting.
            searching(2_700, Some(3_000), Some(100)),
            // 800 ids left at 50 a page: 16 pages.
            searching(3_200, Some(4_000), Some(50)),
            // Open-ended, 1,000 ids below the census' top at 100 a page: 10 pages.
            searching(5_000, None, Some(100)),
        ];
        assert_eq!(
            steal(&lanes, Some(6_000)),
            Some(Split {
                victim: 2,
                at: 3_600
            })
        );
        // Without its census the open-ended lane is never split.
        lanes[2].open = false;
        assert_eq!(
            steal(&lanes, Some(6_000)),
            Some(Split {
                victim: 3,
                at: 5_500
            })
        );
        assert_eq!(steal(&lanes, None), None);
        // A lane that has not read a full page yet says nothing of its density: not split.
        assert_eq!(steal(&[searching(0, Some(1_000_000), None)], None), None);
        // Four pages are split; three are not.
        assert!(steal(&[searching(0, Some(400), Some(100))], None).is_some());
        assert!(steal(&[searching(0, Some(399), Some(100))], None).is_none());
    }

    fn contacts(ids: &[u64]) -> Vec<Contact> {
        ids.iter()
            .map(|id| Contact {
                id: id.to_string(),
                unmapped_company_id: None,
                lead: Err(Rejected {
                    lead_id: Some(id.to_string()),
                    reason: "test".into(),
                    raw: String::new(),
                }),
            })
            .collect()
    }

    #[test]
    fn an_answer_past_a_lanes_new_bound_is_cut_there_and_ends_the_lane() {
        let ids = |c: &[Contact]| c.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        // Searched before the split: 3 of the 5 ids lie past the lane's new bound (20).
        let (kept, more) = within(lane(0, Some(20)), contacts(&[5, 10, 20, 21, 30]), true);
        assert_eq!(ids(&kept), ["5", "10", "20"]);
        assert!(!more, "every id up to the bound was in the answer");
        // Within the bound: unchanged.
        let (kept, more) = within(lane(0, Some(100)), contacts(&[5, 10]), true);
        assert_eq!((kept.len(), more), (2, true));
        let (kept, more) = within(lane(0, None), contacts(&[5, 10_000]), true);
        assert_eq!((kept.len(), more), (2, true));
    }

    #[test]
    fn lanes_split_the_rest_of_a_walk_evenly_and_the_last_keeps_its_bound() {
        let open = lane(1_000, None);
        assert_eq!(
            split_lane(open, 2_000, 9_000, 4, 200),
            [
                lane(1_000, Some(1_250)),
                lane(1_250, Some(1_500)),
                lane(1_500, Some(1_750)),
                lane(1_750, None),
            ]
        );
        // Each lane is worth ten pages at least: 45 pages make four lanes, 39 three, 19 one.
        assert_eq!(split_lane(open, 2_000, 7_700, 4, 200).len(), 3);
        assert_eq!(split_lane(open, 2_000, 3_800, 4, 200), [open]);
        // A bounded lane: the last part ends at its bound, never past.
        let bounded = lane(1_000, Some(5_000));
        let lanes = split_lane(bounded, 5_000, 100_000, 8, 200);
        assert_eq!(lanes.len(), 8);
        assert_eq!(lanes[0].after, 1_000);
        assert_eq!(lanes[7].through, Some(5_000));
        assert!(lanes.windows(2).all(|w| w[0].through == Some(w[1].after)));
        // Fewer ids than lanes.
        assert_eq!(split_lane(bounded, 1_002, 100_000, 8, 200).len(), 2);
    }
}
