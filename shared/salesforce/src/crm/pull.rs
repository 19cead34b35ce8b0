//! The pull: the cursor, the keyset walk of Contacts then Leads (or a Bulk API 2.0 job for a
//! first sync of many Leads), each page with its opportunities and who was merged or converted.

use super::*;

pub(super) fn bad_cursor(raw: &str) -> CrmError {
    CrmError::Rejected {
        status: 0,
        message: format!("invalid pull cursor {raw:?}"),
    }
}

/// Where a walk stands: the object, and the last Id read of it — or, for Leads read by a
/// Bulk API 2.0 job, the job and the locator of its next results page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cursor {
    pub(super) object: People,
    pub(super) after: Option<String>,
    pub(super) bulk: Option<(String, Option<String>)>,
}

impl Cursor {
    pub(super) fn at(object: People, after: Option<String>) -> Self {
        Self {
            object,
            after,
            bulk: None,
        }
    }

    pub(super) fn encode(&self) -> String {
        if let Some((job, locator)) = &self.bulk {
            return format!("J|{job}|{}", locator.as_deref().unwrap_or(""));
        }
        format!(
            "{}|{}",
            self.object.tag(),
            self.after.as_deref().unwrap_or("")
        )
    }

    pub(super) fn decode(raw: &str) -> Result<Self, CrmError> {
        let (tag, id) = raw.split_once('|').ok_or_else(|| bad_cursor(raw))?;
        let object = match tag {
            "C" => People::Contact,
            "L" => People::Lead,
            "J" => {
                let (job, locator) = id.split_once('|').ok_or_else(|| bad_cursor(raw))?;
                if !job.starts_with("750") || !keys::well_formed(job) {
                    return Err(bad_cursor(raw));
                }
                return Ok(Self {
                    object: People::Lead,
                    after: None,
                    bulk: Some((
                        job.to_owned(),
                        Some(locator.to_owned()).filter(|l| !l.is_empty()),
                    )),
                });
            }
            _ => return Err(bad_cursor(raw)),
        };
        let after = match id {
            "" => None,
            id if keys::well_formed(id) && People::of_id(id) == Some(object) => Some(id.to_owned()),
            _ => return Err(bad_cursor(raw)),
        };
        Ok(Self::at(object, after))
    }
}

impl SalesforceCrm {
    /// The `WHERE` of a scope on one object (without the cursor).
    pub(super) fn scope_filter(scope: &PullScope, object: People) -> Option<String> {
        let mut parts = Vec::new();
        if scope.only.is_empty() {
            parts.push(format!(
                "SystemModstamp >= {}",
                mapping::literal(scope.since)
            ));
        } else {
            let ids: Vec<&str> = scope
                .only
                .iter()
                .map(LeadId::as_str)
                .filter(|id| People::of_id(id) == Some(object) && keys::well_formed(id))
                .take(MAX_IN_IDS)
                .collect();
            if ids.is_empty() {
                return None;
            }
            parts.push(format!("Id IN ({})", id_list(ids)));
        }
        if object == People::Lead {
            parts.push("IsConverted = false".into());
        }
        // The scope's bounds, where they reach this object's key range.
        let (first, last) = keys::object_range(object.prefix());
        if let Some(after) = &scope.after {
            if after.as_str() >= last.as_str() {
                return None;
            }
            if after.as_str() >= first.as_str() {
                parts.push(format!("Id > {}", quote(after.as_str())));
            }
        }
        if let Some(through) = &scope.through {
            if through.as_str() < first.as_str() {
                return None;
            }
            if through.as_str() < last.as_str() {
                parts.push(format!("Id <= {}", quote(through.as_str())));
            }
        }
        Some(parts.join(" AND "))
    }

    /// Who was merged or converted into whom since `since` (the start of a walk).
    pub(super) async fn learn_absorbed(&self, since: DateTime<Utc>) -> Result<(), CrmError> {
        let at = mapping::literal(since);
        let mut found: Vec<(String, String)> = Vec::new();
        for object in ["Contact", "Lead"] {
            let merged = self
                .transport
                .query(
                    &format!(
                        "SELECT Id, MasterRecordId FROM {object} WHERE IsDeleted = true AND \
                         MasterRecordId != null AND SystemModstamp >= {at}"
                    ),
                    true,
                )
                .await?;
            for r in merged {
                if let (Some(id), Some(master)) = (
                    r.get("Id").and_then(Value::as_str),
                    r.get("MasterRecordId").and_then(Value::as_str),
                ) {
                    found.push((master.to_owned(), id.to_owned()));
                }
            }
        }
        let converted = self
            .transport
            .query(
                &format!(
                    "SELECT Id, ConvertedContactId FROM Lead WHERE IsConverted = true AND \
                     SystemModstamp >= {at}"
                ),
                false,
            )
            .await?;
        for r in converted {
            if let (Some(id), Some(contact)) = (
                r.get("Id").and_then(Value::as_str),
                r.get("ConvertedContactId").and_then(Value::as_str),
            ) {
                found.push((contact.to_owned(), id.to_owned()));
            }
        }
        let mut absorbed = self
            .absorbed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (survivor, gone) in found {
            absorbed.entry(survivor).or_default().insert(gone);
        }
        Ok(())
    }

    /// The deals of these contacts, through their contact roles.
    pub(super) async fn deals_of(
        &self,
        contacts: &[&str],
    ) -> Result<HashMap<String, Vec<leadsync_domain::Deal>>, CrmError> {
        let d = self.described().await?;
        let fields: Vec<String> = OPPORTUNITY_FIELDS
            .iter()
            .filter(|f| d.has("Opportunity", f))
            .map(|f| format!("Opportunity.{f}"))
            .collect();
        let mut out: HashMap<String, Vec<leadsync_domain::Deal>> = HashMap::new();
        // A page of up to 200 contacts names them (one request). A bigger page — a first sync
        // reads them 2,000 at a time, which no URL's IN list can hold — asks for the roles of
        // its Id range instead (one request per 2,000 roles) and keeps those of its contacts.
        let wanted: std::collections::HashSet<&str> = contacts.iter().copied().collect();
        let filters: Vec<String> = if contacts.len() <= MAX_IN_IDS {
            vec![format!(
                "ContactId IN ({})",
                id_list(contacts.iter().copied())
            )]
        } else {
            let (low, high) = contacts
                .iter()
                .fold((contacts[0], contacts[0]), |(lo, hi), id| {
                    (lo.min(id), hi.max(id))
                });
            vec![format!(
                "ContactId >= {} AND ContactId <= {}",
                quote(low),
                quote(high)
            )]
        };
        for filter in filters {
            let rows = self
                .transport
                .query(
                    &format!(
                        "SELECT ContactId, {} FROM OpportunityContactRole WHERE {filter}",
                        fields.join(", "),
                    ),
                    false,
                )
                .await?;
            for row in rows {
                let Some(contact) = row
                    .get("ContactId")
                    .and_then(Value::as_str)
                    .filter(|c| wanted.contains(c))
                else {
                    continue;
                };
                if let Some(deal) = row.get("Opportunity").and_then(mapping::opportunity) {
                    let deals = out.entry(contact.to_owned()).or_default();
                    if !deals.iter().any(|d| d.id == deal.id) {
                        deals.push(deal);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether this walk of Leads may go through a Bulk API 2.0 job: a first sync (nothing
    /// read before: `since` is the epoch) of a range of people, bulk allowed.
    pub(super) fn bulk_candidate(&self, scope: &PullScope) -> bool {
        self.transport.config.bulk_threshold > 0
            && scope.only.is_empty()
            && scope.since == DateTime::<Utc>::UNIX_EPOCH
    }

    /// The first page of a first sync's Leads, asked without `LIMIT` so that the answer's
    /// `totalSize` says how many there are (no extra request): from `bulk_threshold` on, the
    /// rest (`Id` past this page) is read through one Bulk API 2.0 job, else by keyset.
    pub(super) async fn first_lead_page(&self, filter: &str) -> Result<PullPage, CrmError> {
        let fields = self.fields_of(People::Lead).await?;
        let soql = format!(
            "SELECT {} FROM Lead WHERE {filter} ORDER BY Id ASC",
            fields.join(", ")
        );
        let (records, total) = self.transport.query_first_page(&soql).await?;
        let last = records
            .iter()
            .rev()
            .find_map(|r| r.get("Id").and_then(Value::as_str))
            .map(str::to_owned);
        let mut page = self.people_page(&records, People::Lead).await?;
        let threshold = self.transport.config.bulk_threshold;
        page.next = match last {
            Some(last) if (records.len() as u64) < total => {
                if total >= threshold {
                    tracing::info!(
                        leads = total,
                        threshold,
                        "First sync of many Leads: the rest through a Bulk API 2.0 query job."
                    );
                    let soql = format!(
                        "SELECT {} FROM Lead WHERE {filter} AND Id > {}",
                        fields.join(", "),
                        quote(&last)
                    );
                    let job = crate::bulk::run_job(
                        &self.transport,
                        &soql,
                        self.transport.config.bulk_polling,
                    )
                    .await?;
                    Some(
                        Cursor {
                            object: People::Lead,
                            after: None,
                            bulk: Some((job, None)),
                        }
                        .encode(),
                    )
                } else {
                    Some(Cursor::at(People::Lead, Some(last)).encode())
                }
            }
            _ => None,
        };
        Ok(page)
    }

    /// One results page of a Bulk API 2.0 job over Leads.
    pub(super) async fn bulk_page(
        &self,
        job: &str,
        locator: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let d = self.described().await?;
        let types = d.fields.get("Lead").cloned().unwrap_or_default();
        let (records, next) = crate::bulk::results_page(
            &self.transport,
            job,
            locator,
            self.transport.config.bulk_page_size.max(1),
            "Lead",
            &types,
        )
        .await?;
        let mut page = self.people_page(&records, People::Lead).await?;
        page.next = next.map(|l| {
            Cursor {
                object: People::Lead,
                after: None,
                bulk: Some((job.to_owned(), Some(l))),
            }
            .encode()
        });
        if page.next.is_none() {
            // Done with it: the org keeps jobs for a week otherwise.
            if let Err(error) = self
                .transport
                .data_call(Method::DELETE, &format!("/jobs/query/{job}"), None)
                .await
            {
                tracing::warn!(job, %error, "A finished bulk query job could not be deleted.");
            }
        }
        Ok(page)
    }

    /// Records of one people object as a page: mapped (or quarantined), contacts with their
    /// deals, survivors with the people merged or converted into them.
    pub(super) async fn people_page(
        &self,
        records: &[Value],
        object: People,
    ) -> Result<PullPage, CrmError> {
        let mut page = PullPage::default();
        let mut people: Vec<Lead> = Vec::with_capacity(records.len());
        for r in records {
            match mapping::person(r) {
                Ok(lead) => people.push(lead),
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        if object == People::Contact && !people.is_empty() {
            let ids: Vec<&str> = people.iter().map(|l| l.id.as_str()).collect();
            let mut deals = self.deals_of(&ids).await?;
            for lead in &mut people {
                if let Some(d) = deals.remove(lead.id.as_str()) {
                    lead.deals = d;
                }
            }
        }
        {
            let absorbed = self
                .absorbed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for lead in &mut people {
                if let Some(gone) = absorbed.get(lead.id.as_str()) {
                    lead.merged_ids = gone.iter().filter_map(|id| LeadId::new(id).ok()).collect();
                }
            }
        }
        page.leads = people;
        Ok(page)
    }

    pub(super) async fn read_pull_page(
        &self,
        scope: &PullScope,
        cursor: Option<&str>,
    ) -> Result<PullPage, CrmError> {
        let mut at = match cursor {
            Some(raw) => Cursor::decode(raw)?,
            None => {
                if scope.only.is_empty() {
                    self.learn_absorbed(scope.since).await?;
                }
                Cursor::at(People::Contact, None)
            }
        };
        if let Some((job, locator)) = at.bulk.clone() {
            return self.bulk_page(&job, locator.as_deref()).await;
        }
        // Skip objects the scope does not reach.
        let filter = loop {
            match Self::scope_filter(scope, at.object) {
                Some(f) => break f,
                None if at.object == People::Contact => at = Cursor::at(People::Lead, None),
                None => return Ok(PullPage::default()),
            }
        };
        if at.object == People::Lead && at.after.is_none() && self.bulk_candidate(scope) {
            return self.first_lead_page(&filter).await;
        }
        let keyset = at
            .after
            .as_ref()
            .map(|id| format!(" AND Id > {}", quote(id)));
        let limit = self.page_size();
        let fields = self.fields_of(at.object).await?;
        let soql = format!(
            "SELECT {} FROM {} WHERE {filter}{} ORDER BY Id ASC LIMIT {limit}",
            fields.join(", "),
            at.object.name(),
            keyset.unwrap_or_default()
        );
        let records = self.transport.query(&soql, false).await?;
        let last = records
            .iter()
            .rev()
            .find_map(|r| r.get("Id").and_then(Value::as_str))
            .map(str::to_owned);
        let mut page = self.people_page(&records, at.object).await?;
        let full = records.len() >= limit && scope.only.is_empty();
        page.next = match (full, at.object) {
            (true, object) => Some(Cursor::at(object, last).encode()),
            (false, People::Contact) => Some(Cursor::at(People::Lead, None).encode()),
            (false, People::Lead) => None,
        };
        Ok(page)
    }
}
