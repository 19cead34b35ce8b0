//! One pull page: its contacts from the walk ([`crate::walk`]), their companies (cached across
//! a run's walks) and deals, mapped to leads — and the next page read in the background.

use super::*;

/// A whole pull page being read in the background, and its place among the walk's pages read
/// ahead (released when the caller takes the page).
pub(super) type PageAhead = tokio::task::JoinHandle<(
    Option<tokio::sync::OwnedSemaphorePermit>,
    Result<PullPage, CrmError>,
)>;

/// The query a page read ahead answers (scope, cursor), and the task reading it.
pub(super) type Ahead = ((PullScope, String), PageAhead);

/// Walks and read-ahead pages kept at most (a walk in progress on this client keeps one walk
/// and up to [`crate::walk::PAGES_AHEAD`] + 1 pages; more only if a caller abandons walks, and
/// the oldest is dropped).
pub(super) const PREFETCH_SLOTS: usize = 8;

/// The company cache stops growing here.
pub(super) const COMPANY_CACHE_LIMIT: usize = 50_000;

/// Company data at most this old is reused by a new walk: the walks of one invocation (a
/// Lambda runs ≤ 15 minutes) share it, as do a warm container's invocations within that time
/// (the slices of a fan-out, a re-score soon after); the next night's run reads afresh.
pub(super) const COMPANY_CACHE_MAX_AGE: Duration = Duration::from_secs(15 * 60);

impl HubSpotCrm {
    /// Empty the company cache if it is older than [`COMPANY_CACHE_MAX_AGE`] (a walk starts).
    pub(super) fn expire_company_cache(&self) {
        let mut since = self
            .companies_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if since.is_none_or(|t| t.elapsed() > COMPANY_CACHE_MAX_AGE) {
            self.lock_companies().clear();
            *since = Some(std::time::Instant::now());
        }
    }

    /// One pull page, read here (see [`Crm::pull_page`]): its contacts from the walk (a new
    /// one without a cursor; the one kept for this cursor, else one resumed from it), then
    /// their companies and deals, read at once.
    pub(super) async fn read_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let (mut walk, first) = match cursor {
            Some(raw) => (self.resume_walk(scope, raw)?, Vec::new()),
            None => {
                self.expire_company_cache();
                self.lock_walks().retain(|w| w.scope() != scope);
                self.lock_pages_ahead().retain(|((s, _), handle)| {
                    let keep = s != scope;
                    if !keep {
                        handle.abort();
                    }
                    keep
                });
                self.start_walk(scope).await?
            }
        };
        let gathered = self.gather(&mut walk, first).await?;
        let next = self.walk_on(walk);
        self.read_gathered(gathered, next).await
    }

    /// The walk kept for `cursor`, else one resumed from it.
    fn resume_walk(&self, scope: &PullScope, cursor: &str) -> Result<Walk, CrmError> {
        let lanes = parse_cursor(cursor, scope)?;
        Ok(self
            .take_walk(scope, cursor)
            .unwrap_or_else(|| self.walk_from(scope, lanes, None)))
    }

    /// The walk's next cursor after a page's contacts are gathered, the walk kept for it.
    fn walk_on(&self, walk: Walk) -> Option<String> {
        let next = (!walk.is_done()).then(|| walk.cursor());
        if next.is_some() {
            self.keep_walk(walk);
        }
        next
    }

    /// A page read ahead (see [`HubSpotCrm::spawn_page_ahead`]): a place among the walk's pages
    /// ahead, its contacts, the page after it started in turn, then its companies and deals.
    async fn read_page_ahead(
        &self,
        scope: &PullScope,
        cursor: &str,
    ) -> (
        Option<tokio::sync::OwnedSemaphorePermit>,
        Result<PullPage, CrmError>,
    ) {
        let mut walk = match self.resume_walk(scope, cursor) {
            Ok(walk) => walk,
            Err(e) => return (None, Err(e)),
        };
        let place = Arc::clone(&walk.ahead).acquire_owned().await.ok();
        let gathered = match self.gather(&mut walk, Vec::new()).await {
            Ok(gathered) => gathered,
            Err(e) => return (place, Err(e)),
        };
        let next = self.walk_on(walk);
        if let Some(next) = &next {
            self.spawn_page_ahead(scope, next);
        }
        (place, self.read_gathered(gathered, next).await)
    }

    /// A page's companies (those not cached) and deals, read at once, and its contacts mapped
    /// to leads.
    async fn read_gathered(
        &self,
        Gathered { contacts, pending }: Gathered,
        next: Option<String>,
    ) -> Result<PullPage, CrmError> {
        // Companies and deals are independent reads: overlap them.
        let companies_read = async {
            if pending.is_empty() {
                Ok(HashMap::default())
            } else {
                self.read_companies(&pending).await
            }
        };
        let ids: Vec<&str> = contacts.iter().map(|c| c.id.as_str()).collect();
        let (fetched, deals) = tokio::join!(companies_read, self.read_contact_deals(&ids));
        let (fetched, mut deals) = (fetched?, deals?);
        let mut page = PullPage::default();
        page.leads.reserve(contacts.len());
        let mut cache = self.lock_companies();
        for contact in contacts {
            match contact.lead {
                Ok(mut lead) => {
                    // The company just fetched or from earlier in the walk (shared, not copied:
                    // a company's properties are read by every contact of it).
                    if let Some(company) = lead
                        .company_id
                        .as_deref()
                        .and_then(|id| fetched.get(id).or_else(|| cache.get(id)))
                    {
                        mapping::add_company(&mut lead, company);
                    }
                    lead.deals = deals.remove(lead.id.as_str()).unwrap_or_default();
                    page.leads.push(*lead);
                }
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        for (id, company) in fetched {
            if cache.len() < COMPANY_CACHE_LIMIT {
                cache.insert(id, company);
            }
        }
        drop(cache);
        page.next = next;
        Ok(page)
    }

    /// The whole next page (searches, companies, deals), read in the background while the
    /// caller works on this one — scoring, recording and pushing it — so the walk's searches
    /// (5 a second at most) never wait for a push, and the rate limit is used by both at once.
    /// Once its contacts are gathered it starts the page after it, up to
    /// [`crate::walk::PAGES_AHEAD`] pages not yet taken. Every request still passes the one
    /// governor. A page already being read is not started again.
    pub(super) fn spawn_page_ahead(&self, scope: &PullScope, cursor: &str) {
        let key = (scope.clone(), cursor.to_owned());
        let mut ahead = self.lock_pages_ahead();
        if ahead.iter().any(|(k, _)| *k == key) {
            return;
        }
        let this = self.clone();
        let (scope, cursor) = key.clone();
        let handle = tokio::spawn(async move { this.read_page_ahead(&scope, &cursor).await });
        if ahead.len() >= PREFETCH_SLOTS {
            let (_, oldest) = ahead.remove(0);
            oldest.abort();
        }
        ahead.push((key, handle));
    }

    /// The walk whose next page is `(scope, cursor)`, if this client has it.
    pub(super) fn take_walk(&self, scope: &PullScope, cursor: &str) -> Option<Walk> {
        let mut walks = self.lock_walks();
        let i = walks.iter().position(|w| w.resumes(scope, cursor))?;
        Some(walks.remove(i))
    }

    /// Keep a walk for the call that asks for its next page (the oldest kept is dropped past
    /// [`PREFETCH_SLOTS`], and with it its producer).
    pub(super) fn keep_walk(&self, walk: Walk) {
        let mut walks = self.lock_walks();
        if walks.len() >= PREFETCH_SLOTS {
            walks.remove(0);
        }
        walks.push(walk);
    }

    pub(super) fn lock_walks(&self) -> std::sync::MutexGuard<'_, Vec<Walk>> {
        self.walks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The page read ahead for `(scope, cursor)`, if the previous call started it.
    pub(super) fn take_page_ahead(&self, scope: &PullScope, cursor: &str) -> Option<PageAhead> {
        let mut ahead = self.lock_pages_ahead();
        let i = ahead
            .iter()
            .position(|((s, c), _)| c == cursor && s == scope)?;
        Some(ahead.remove(i).1)
    }

    pub(super) fn lock_pages_ahead(&self) -> std::sync::MutexGuard<'_, Vec<Ahead>> {
        self.pages_ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The search page size, within HubSpot's 1–200.
    pub(crate) fn page_size(&self) -> u32 {
        self.config.page_size.clamp(1, 200)
    }

    pub(crate) fn lock_companies(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CompanyFacts>>> {
        self.companies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
