//! The [`Crm`] port for HubSpot, over the client's transport and the modules beside this one.

use super::*;

impl Crm for HubSpotCrm {
    fn name(&self) -> &'static str {
        "HubSpot"
    }

    async fn describe_properties(&self, object: CrmObject) -> Result<Vec<CrmProperty>, CrmError> {
        self.describe_object(object).await
    }

    fn forward_properties(&self) -> Option<leadsync_domain::criteria::ForwardProperties> {
        Some(leadsync_domain::criteria::ForwardProperties {
            lifecycle_stage: "lifecyclestage".to_owned(),
            lead_status: self
                .reads
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .asked
                .lead_status
                .clone()
                .unwrap_or_else(|| "hs_lead_status".to_owned()),
        })
    }

    fn forget_properties(&self) {
        self.described
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn set_reads(&self, reads: &CrmReads) -> Result<(), CrmError> {
        let mut current = self
            .reads
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.asked != *reads {
            *current = Arc::new(Reads::new(reads));
            // Walks, pages read ahead and companies read before asked for other properties.
            self.lock_walks().clear();
            for (_, handle) in self.lock_pages_ahead().drain(..) {
                handle.abort();
            }
            self.companies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
        }
        Ok(())
    }

    fn max_ids(&self) -> usize {
        MAX_IN_VALUES
    }

    /// Contact ids are numbers: the midpoint, when one lies strictly between.
    fn split_keys(&self, after: Option<&ScopeKey>, through: &ScopeKey) -> Option<ScopeKey> {
        let after = match after {
            Some(key) => key.as_str().parse::<u64>().ok()?,
            None => 0,
        };
        let through = through.as_str().parse::<u64>().ok()?;
        (through > after.saturating_add(1))
            .then(|| ScopeKey::new((after + (through - after) / 2).to_string()))
    }

    /// Deals and companies modified since `since` (search), then their contacts (v4
    /// associations, 1,000 a call).
    async fn contacts_touched_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<LeadId>, CrmError> {
        let mut contacts = std::collections::BTreeSet::new();
        for object in ["deals", "companies"] {
            let ids = self.changed_ids(object, since).await?;
            if ids.is_empty() {
                continue;
            }
            let bodies = ids
                .chunks(ASSOCIATION_BATCH_LIMIT)
                .map(BatchReadBody::associations)
                .collect();
            let answers: Vec<AssociationsResponse> = self
                .post_all(
                    &format!("/crm/v4/associations/{object}/contacts/batch/read"),
                    bodies,
                )
                .await?;
            for result in answers.into_iter().flat_map(|a| a.results) {
                contacts.extend(result.to.into_iter().map(|to| to.to_object_id));
            }
        }
        Ok(contacts
            .into_iter()
            .filter_map(|id| LeadId::new(id).ok())
            .collect())
    }

    /// HubSpot lists archived contacts (100 a page, id order) but cannot filter them by when:
    /// the walk reads them all and keeps those archived since `since`. HubSpot keeps archived
    /// records 90 days, which bounds the walk.
    async fn deleted_since(
        &self,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(LeadId, chrono::DateTime<chrono::Utc>)>, CrmError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                None => "/crm/v3/objects/contacts?archived=true&limit=100".to_owned(),
                Some(a) => format!("/crm/v3/objects/contacts?archived=true&limit=100&after={a}"),
            };
            let (_, page): (_, ArchivedPage) = self.get_parsed(&path).await?;
            for c in page.results {
                let at = c
                    .archived_at
                    .as_deref()
                    .or(c.updated_at.as_deref())
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc));
                match (LeadId::new(c.id.as_str()), at) {
                    (Ok(id), Some(at)) if at >= since => out.push((id, at)),
                    (Ok(_), Some(_)) => {}
                    (id, _) => {
                        tracing::warn!(contact = %c.id, valid_id = id.is_ok(), "An archived contact without a readable id or archive time; skipped.");
                    }
                }
            }
            match page.paging.and_then(|p| p.next) {
                Some(next) => after = Some(next.after),
                None => return Ok(out),
            }
        }
    }

    async fn count(&self, scope: &PullScope) -> Result<Census, CrmError> {
        // One result, highest id first: the response's `total` counts the scope.
        let (after_id, through_id) = id_bounds(scope)?;
        let body = json!({
            "filterGroups": [{ "filters": scope_filters(scope, after_id, through_id) }],
            "sorts": [{ "propertyName": "hs_object_id", "direction": "DESCENDING" }],
            "properties": ["hs_object_id"],
            "limit": 1,
        });
        let (_, parsed): (_, SearchResponse) = self
            .post_parsed("/crm/v3/objects/contacts/search", &body)
            .await?;
        let last_id = parsed
            .results
            .first()
            .and_then(|o| o.id.parse::<u64>().ok());
        let total = parsed
            .total
            .unwrap_or(parsed.results.len() as u64)
            .max(u64::from(last_id.is_some()));
        Ok(Census {
            first: None,
            total,
            last: last_id.map(|id| ScopeKey::new(id.to_string())),
        })
    }

    async fn pull_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let ahead = cursor.and_then(|c| self.take_page_ahead(scope, c));
        let page = match ahead {
            // The page's place among those read ahead is free once it is taken.
            Some(handle) => match handle.await.map(|(_place, page)| page) {
                Ok(Ok(page)) => page,
                // The read ahead failed past its retries (or its task died): read the page
                // here, with a retry budget of its own.
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "Page read ahead failed; reading it again.");
                    self.read_page(scope, cursor).await?
                }
                Err(e) => {
                    tracing::debug!(error = %e, "Page read ahead ended abnormally; reading it again.");
                    self.read_page(scope, cursor).await?
                }
            },
            None => self.read_page(scope, cursor).await?,
        };
        if let Some(next) = &page.next {
            self.spawn_page_ahead(scope, next);
        }
        Ok(page)
    }

    async fn ensure_properties(&self, specs: &[PropertySpec]) -> Result<u32, CrmError> {
        self.ensure_leadsync_properties(specs).await
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        self.push_all(updates).await
    }
}
