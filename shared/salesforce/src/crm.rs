//! `SalesforceCrm`: the [`Crm`] port over one org.
//!
//! # The pull
//! A scope's people are its Contacts, then its unconverted Leads (Contact Ids sort first).
//! Each object is walked by keyset on `Id` — `WHERE SystemModstamp >= since AND Id > last
//! ORDER BY Id LIMIT n`, never `OFFSET` — as the HubSpot walk goes by `hs_object_id`. Keying
//! on `(SystemModstamp, Id)` instead would read again every record changed during the walk —
//! the run's own write-backs first (measured: 2,292 records pulled for 1,200 people) — while
//! the Id walk reads each once; a record changed after it was read is newer than the run's
//! start, so the watermark (never past the run's start less the index lag) brings it next
//! run, and a record created during the walk has a higher Id and comes at the end. The
//! scope's key bounds are Id bounds (`Id > after AND Id <= through`), so slices of a
//! fanned-out run are disjoint. The cursor is `<C|L>|<last Id>`.
//!
//! A first sync of a scope holding at least `bulk_threshold` unconverted Leads reads them
//! through one Bulk API 2.0 query job instead (the same filter, no `ORDER BY`: the job's
//! records are the org's at its creation, later edits come next run by the watermark), a
//! results page per call; the cursor is then `J|<job id>|<locator>`. Contacts are always read
//! by keyset: each contact page brings its contact roles by Id range, which a job's
//! unordered pages cannot.
//!
//! A page of contacts brings their opportunities through `OpportunityContactRole` (one
//! query). The first page of a walk over changes also asks who was merged or converted since
//! (`queryAll … MasterRecordId != null`, `Lead … IsConverted = true`), so a merged or
//! converted person is one lead: the survivor (the master, the contact) lists the others in
//! `merged_ids` and their facts count once, as the survivor's.
//!
//! # Fields
//! Every field read or written is checked against `describe` once per client: a field the
//! integration user cannot see is named in the error, never read as empty.

use crate::client::{SalesforceConfig, Transport};
use crate::keys;
use crate::mapping::{self, CONTACT_FIELDS, LEAD_FIELDS, OPPORTUNITY_FIELDS, PERSON_FIELDS};
use chrono::{DateTime, Utc};
use leadsync_domain::ports::{
    Crm, CrmError, PropertyKind, PropertySpec, PropertyUpdate, PullPage, PushFailure, PushOutcome,
};
use leadsync_domain::runs::{Census, PullScope, ScopeKey};
use leadsync_domain::{Lead, LeadId};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use tokio::sync::OnceCell;

/// Ids one `IN` list carries (a scope of chosen leads, a page's contacts).
pub const MAX_IN_IDS: usize = 200;
/// Records one collection update carries.
pub const COLLECTION_LIMIT: usize = 200;

/// The two people objects, in key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum People {
    Contact,
    Lead,
}

impl People {
    fn name(self) -> &'static str {
        match self {
            People::Contact => "Contact",
            People::Lead => "Lead",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            People::Contact => "C",
            People::Lead => "L",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            People::Contact => "003",
            People::Lead => "00Q",
        }
    }

    fn of_id(id: &str) -> Option<Self> {
        [People::Contact, People::Lead]
            .into_iter()
            .find(|p| id.starts_with(p.prefix()))
    }

    fn fields(self) -> Vec<&'static str> {
        let own = match self {
            People::Contact => CONTACT_FIELDS,
            People::Lead => LEAD_FIELDS,
        };
        PERSON_FIELDS.iter().chain(own).copied().collect()
    }
}

/// What the org's describe said, once per client.
#[derive(Debug, Default)]
struct Described {
    /// Object → field name → type.
    fields: BTreeMap<String, BTreeMap<String, String>>,
}

impl Described {
    fn has(&self, object: &str, field: &str) -> bool {
        self.fields
            .get(object)
            .is_some_and(|f| f.contains_key(field))
    }
}

/// The Salesforce adapter.
#[derive(Debug)]
pub struct SalesforceCrm {
    transport: Transport,
    described: OnceCell<Described>,
    /// Survivor → the people merged or converted into it, learnt at the start of walks.
    absorbed: Mutex<HashMap<String, BTreeSet<String>>>,
    /// `(object, field)` → type of the result fields `ensure_properties` found or created
    /// (created after the describe was cached).
    result_fields: Mutex<HashMap<(String, String), String>>,
}

fn quote(id: &str) -> String {
    format!("'{}'", id.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn id_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    ids.into_iter().map(quote).collect::<Vec<_>>().join(", ")
}

fn bad_cursor(raw: &str) -> CrmError {
    CrmError::Rejected {
        status: 0,
        message: format!("invalid pull cursor {raw:?}"),
    }
}

/// Where a walk stands: the object, and the last Id read of it — or, for Leads read by a
/// Bulk API 2.0 job, the job and the locator of its next results page.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    object: People,
    after: Option<String>,
    bulk: Option<(String, Option<String>)>,
}

impl Cursor {
    fn at(object: People, after: Option<String>) -> Self {
        Self {
            object,
            after,
            bulk: None,
        }
    }

    fn encode(&self) -> String {
        if let Some((job, locator)) = &self.bulk {
            return format!("J|{job}|{}", locator.as_deref().unwrap_or(""));
        }
        format!(
            "{}|{}",
            self.object.tag(),
            self.after.as_deref().unwrap_or("")
        )
    }

    fn decode(raw: &str) -> Result<Self, CrmError> {
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
    /// # Errors
    /// [`CrmError::Transport`] when the HTTP client cannot be built.
    pub fn new(config: SalesforceConfig) -> Result<Self, CrmError> {
        Ok(Self {
            transport: Transport::new(config)?,
            described: OnceCell::new(),
            absorbed: Mutex::default(),
            result_fields: Mutex::default(),
        })
    }

    /// Requests made so far, and the org's `(used, allocation)` as it last said.
    pub fn requests(&self) -> u64 {
        self.transport
            .usage
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn api_usage(&self) -> (u64, u64) {
        self.transport.usage.api_usage()
    }

    /// Log in and check every field leadsync reads against the objects' describes (what a
    /// run does before it pulls) — `leadsync doctor`'s first check.
    ///
    /// # Errors
    /// [`CrmError::Unauthorized`] when the login is refused; [`CrmError::Rejected`] naming the
    /// fields that are missing or hidden from the integration user.
    pub async fn check_reads(&self) -> Result<(), CrmError> {
        self.described().await.map(|_| ())
    }

    async fn describe(&self, object: &str) -> Result<BTreeMap<String, String>, CrmError> {
        let answer = self
            .transport
            .data_call(Method::GET, &format!("/sobjects/{object}/describe"), None)
            .await?;
        Ok(answer
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some((
                    f.get("name")?.as_str()?.to_owned(),
                    f.get("type")?.as_str()?.to_owned(),
                ))
            })
            .collect())
    }

    /// Every object's describe, and every field leadsync reads checked against it.
    async fn described(&self) -> Result<&Described, CrmError> {
        self.described
            .get_or_try_init(|| async {
                let mut d = Described::default();
                for object in ["Lead", "Contact", "Account", "Opportunity"] {
                    d.fields
                        .insert(object.to_owned(), self.describe(object).await?);
                }
                let mut missing = Vec::new();
                let mut need = |object: &str, field: &str| {
                    let (object, field) = match field.split_once('.') {
                        Some((_, f)) => ("Account", f),
                        None => (object, field),
                    };
                    let optional = mapping::OPTIONAL_FIELDS.contains(&(object, field));
                    if !d.has(object, field) && !optional {
                        missing.push(format!("{object}.{field}"));
                    }
                };
                for p in [People::Contact, People::Lead] {
                    for f in p.fields() {
                        need(p.name(), f);
                    }
                }
                for f in OPPORTUNITY_FIELDS {
                    need("Opportunity", f);
                }
                missing.sort();
                missing.dedup();
                if !missing.is_empty() {
                    return Err(CrmError::Rejected {
                        status: 0,
                        message: format!(
                            "Salesforce fields leadsync reads are missing or hidden from the \
                             integration user: {} — create them or grant the user read access \
                             (field-level security); see the README's Salesforce section",
                            missing.join(", ")
                        ),
                    });
                }
                Ok(d)
            })
            .await
    }

    /// The `WHERE` of a scope on one object (without the cursor).
    fn scope_filter(scope: &PullScope, object: People) -> Option<String> {
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

    async fn fields_of(&self, object: People) -> Result<Vec<&'static str>, CrmError> {
        let d = self.described().await?;
        Ok(object
            .fields()
            .into_iter()
            .filter(|f| {
                let (o, name) = match f.split_once('.') {
                    Some((_, n)) => ("Account", n),
                    None => (object.name(), *f),
                };
                d.has(o, name)
            })
            .collect())
    }

    /// Who was merged or converted into whom since `since` (the start of a walk).
    async fn learn_absorbed(&self, since: DateTime<Utc>) -> Result<(), CrmError> {
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
    async fn deals_of(
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
    fn bulk_candidate(&self, scope: &PullScope) -> bool {
        self.transport.config.bulk_threshold > 0
            && scope.only.is_empty()
            && scope.since == DateTime::<Utc>::UNIX_EPOCH
    }

    /// The first page of a first sync's Leads, asked without `LIMIT` so that the answer's
    /// `totalSize` says how many there are (no extra request): from `bulk_threshold` on, the
    /// rest (`Id` past this page) is read through one Bulk API 2.0 job, else by keyset.
    async fn first_lead_page(&self, filter: &str) -> Result<PullPage, CrmError> {
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
    async fn bulk_page(&self, job: &str, locator: Option<&str>) -> Result<PullPage, CrmError> {
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
    async fn people_page(&self, records: &[Value], object: People) -> Result<PullPage, CrmError> {
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

    fn page_size(&self) -> usize {
        self.transport.config.page_size.clamp(200, 2_000) as usize
    }
}

impl Crm for SalesforceCrm {
    // `describe_properties` and `set_reads` keep the port's defaults for now: a document with
    // `[fields]` is refused by name on Salesforce rather than scored as if every value were
    // missing.
    fn name(&self) -> &'static str {
        "Salesforce"
    }

    fn max_ids(&self) -> usize {
        MAX_IN_IDS
    }

    fn split_keys(&self, after: Option<&ScopeKey>, through: &ScopeKey) -> Option<ScopeKey> {
        keys::split(after.map(ScopeKey::as_str), through.as_str()).map(ScopeKey::new)
    }

    async fn pull_page(
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

    async fn count(&self, scope: &PullScope) -> Result<Census, CrmError> {
        let mut total = 0;
        let (mut first, mut last) = (None, None);
        for object in [People::Contact, People::Lead] {
            let Some(filter) = Self::scope_filter(scope, object) else {
                continue;
            };
            let n = self
                .transport
                .count(&format!(
                    "SELECT COUNT() FROM {} WHERE {filter}",
                    object.name()
                ))
                .await?;
            total += n;
            if n > 0 {
                let end = |order: &'static str| {
                    let soql = format!(
                        "SELECT Id FROM {} WHERE {filter} ORDER BY Id {order} LIMIT 1",
                        object.name()
                    );
                    async move {
                        let top = self.transport.query(&soql, false).await?;
                        Ok::<_, CrmError>(
                            top.first()
                                .and_then(|r| r.get("Id"))
                                .and_then(Value::as_str)
                                .map(ScopeKey::new),
                        )
                    }
                };
                if first.is_none() {
                    first = end("ASC").await?;
                }
                last = end("DESC").await?.or(last);
            }
        }
        Ok(Census { total, first, last })
    }

    async fn contacts_touched_since(&self, since: DateTime<Utc>) -> Result<Vec<LeadId>, CrmError> {
        let at = mapping::literal(since);
        let mut ids = BTreeSet::new();
        let roles = self
            .transport
            .query(
                &format!(
                    "SELECT ContactId FROM OpportunityContactRole WHERE \
                     Opportunity.SystemModstamp >= {at}"
                ),
                false,
            )
            .await?;
        let accounts = self
            .transport
            .query(
                &format!("SELECT Id FROM Contact WHERE Account.SystemModstamp >= {at}"),
                false,
            )
            .await?;
        for r in roles {
            if let Some(id) = r.get("ContactId").and_then(Value::as_str) {
                ids.insert(id.to_owned());
            }
        }
        for r in accounts {
            if let Some(id) = r.get("Id").and_then(Value::as_str) {
                ids.insert(id.to_owned());
            }
        }
        Ok(ids.iter().filter_map(|id| LeadId::new(id).ok()).collect())
    }

    async fn deleted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(LeadId, DateTime<Utc>)>, CrmError> {
        let at = mapping::literal(since);
        let mut out = Vec::new();
        for object in ["Contact", "Lead"] {
            let rows = self
                .transport
                .query(
                    &format!(
                        "SELECT Id, SystemModstamp FROM {object} WHERE IsDeleted = true AND \
                         SystemModstamp >= {at}"
                    ),
                    true,
                )
                .await?;
            for r in rows {
                let id = r
                    .get("Id")
                    .and_then(Value::as_str)
                    .and_then(|i| LeadId::new(i).ok());
                let t = r
                    .get("SystemModstamp")
                    .and_then(Value::as_str)
                    .and_then(mapping::parse_time);
                match (id, t) {
                    (Some(id), Some(t)) => out.push((id, t)),
                    _ => tracing::warn!("A deleted record without a readable Id or time; skipped."),
                }
            }
        }
        Ok(out)
    }

    async fn push(&self, updates: &[PropertyUpdate]) -> Result<PushOutcome, CrmError> {
        let d = self.described().await?;
        let mut outcome = PushOutcome::default();
        let mut pending: Vec<&PropertyUpdate> = updates.iter().collect();
        // Records refused as locked go again after the policy's next wait, until it is spent.
        let mut waits = self.transport.config.retry.backoff();
        let mut next_wait = waits.next();
        while !pending.is_empty() {
            let mut retry = Vec::new();
            for chunk in pending.chunks(COLLECTION_LIMIT) {
                let mut records = Vec::with_capacity(chunk.len());
                let mut sent = Vec::with_capacity(chunk.len());
                for u in chunk {
                    let Some(object) = People::of_id(u.lead_id.as_str()) else {
                        outcome.failed.push(PushFailure {
                            lead_id: u.lead_id.clone(),
                            message: "not a Lead or Contact Id".into(),
                            retryable: false,
                        });
                        continue;
                    };
                    let mut r = serde_json::Map::new();
                    r.insert("attributes".into(), json!({"type": object.name()}));
                    r.insert("id".into(), json!(u.lead_id.as_str()));
                    for (property, value) in &u.properties {
                        let field = mapping::field_for(property);
                        let created = self
                            .result_fields
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get(&(object.name().to_owned(), field.clone()))
                            .cloned();
                        let kind = created.as_deref().or_else(|| {
                            d.fields
                                .get(object.name())
                                .and_then(|f| f.get(&field))
                                .map(String::as_str)
                        });
                        let v = match kind {
                            _ if value.is_empty() => Value::Null,
                            Some("double" | "int" | "currency" | "percent") => value
                                .parse::<f64>()
                                .map_or_else(|_| json!(value), |n| json!(n)),
                            _ => json!(value),
                        };
                        r.insert(field, v);
                    }
                    records.push(Value::Object(r));
                    sent.push(*u);
                }
                if records.is_empty() {
                    continue;
                }
                let answer = self
                    .transport
                    .data_call(
                        Method::PATCH,
                        "/composite/sobjects",
                        Some(&json!({"allOrNone": false, "records": records})),
                    )
                    .await?;
                outcome.requests += 1;
                let results = answer.as_array().cloned().unwrap_or_default();
                for (i, u) in sent.iter().enumerate() {
                    let result = results.get(i);
                    if result.and_then(|r| r.get("success")) == Some(&Value::Bool(true)) {
                        outcome.written.push(u.lead_id.clone());
                        continue;
                    }
                    let error = result
                        .and_then(|r| r.pointer("/errors/0"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let code = error
                        .get("statusCode")
                        .and_then(Value::as_str)
                        .unwrap_or("NO_ANSWER");
                    let message = format!(
                        "{code}: {}{}",
                        error.get("message").and_then(Value::as_str).unwrap_or(""),
                        error
                            .get("fields")
                            .and_then(Value::as_array)
                            .filter(|f| !f.is_empty())
                            .map(|f| format!(" (fields {})", Value::Array(f.clone())))
                            .unwrap_or_default()
                    );
                    let retryable = matches!(code, "UNABLE_TO_LOCK_ROW" | "NO_ANSWER");
                    if retryable && next_wait.is_some() {
                        retry.push(*u);
                    } else {
                        outcome.failed.push(PushFailure {
                            lead_id: u.lead_id.clone(),
                            message,
                            retryable,
                        });
                    }
                }
            }
            if let (false, Some(wait)) = (retry.is_empty(), next_wait) {
                tokio::time::sleep(wait).await;
                next_wait = waits.next();
            }
            pending = retry;
        }
        Ok(outcome)
    }

    async fn missing_properties(&self, specs: &[PropertySpec]) -> Result<Vec<String>, CrmError> {
        let mut missing = Vec::new();
        for object in ["Lead", "Contact"] {
            let existing = self.describe(object).await?;
            for spec in specs.iter().filter(|s| !s.read_only) {
                let field = mapping::field_for(&spec.name);
                if !existing.contains_key(&field) {
                    missing.push(format!("{object}.{field}"));
                }
            }
        }
        Ok(missing)
    }

    async fn ensure_properties(&self, specs: &[PropertySpec]) -> Result<u32, CrmError> {
        // Known from an earlier call on this client (every slice of a warm function asks).
        let known = {
            let fields = self
                .result_fields
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            specs.iter().filter(|s| !s.read_only).all(|s| {
                ["Lead", "Contact"]
                    .iter()
                    .all(|o| fields.contains_key(&((*o).to_owned(), mapping::field_for(&s.name))))
            })
        };
        if known {
            return Ok(0);
        }
        let mut created = 0;
        for object in ["Lead", "Contact"] {
            let existing = self.describe(object).await?;
            // The inputs leadsync reads are the org's own fields (see `mapping`), never created.
            for spec in specs.iter().filter(|s| !s.read_only) {
                let field = mapping::field_for(&spec.name);
                let kind = match spec.kind {
                    PropertyKind::Number => "double",
                    PropertyKind::Text | PropertyKind::Enumeration => "string",
                    PropertyKind::LongText => "textarea",
                };
                let known = existing.get(&field).cloned();
                self.result_fields
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(
                        (object.to_owned(), field.clone()),
                        known.clone().unwrap_or_else(|| kind.to_owned()),
                    );
                if known.is_some() {
                    continue;
                }
                let metadata = match spec.kind {
                    PropertyKind::Number => {
                        json!({"type": "Number", "label": spec.label, "precision": 18, "scale": 2})
                    }
                    // Picklists need a value set and field-level security per value; results
                    // are written as text the criteria document defines.
                    PropertyKind::Text | PropertyKind::Enumeration => {
                        json!({"type": "Text", "label": spec.label, "length": 255})
                    }
                    PropertyKind::LongText => json!({
                        "type": "LongTextArea",
                        "label": spec.label,
                        "length": leadsync_domain::criteria::SUMMARY_LIMIT,
                        "visibleLines": 6
                    }),
                };
                let answer = self
                    .transport
                    .data_call(
                        Method::POST,
                        "/tooling/sobjects/CustomField",
                        Some(
                            &json!({"FullName": format!("{object}.{field}"), "Metadata": metadata}),
                        ),
                    )
                    .await;
                match answer {
                    Ok(_) => created += 1,
                    // Created concurrently (another slice): not an error.
                    Err(CrmError::Rejected { message, .. })
                        if message.starts_with("DUPLICATE_DEVELOPER_NAME") => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(head: &str) -> String {
        keys::from_value(keys::value(head).unwrap())
    }

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = Cursor::at(People::Lead, Some(id("00Q5g0000000001")));
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            Cursor::decode("C|").unwrap(),
            Cursor::at(People::Contact, None)
        );
        let job = Cursor {
            object: People::Lead,
            after: None,
            bulk: Some((id("7505g0000000001"), Some("L2s".into()))),
        };
        assert_eq!(Cursor::decode(&job.encode()).unwrap(), job);
        let contact_in_lead_walk = format!("L|{}", id("0035g0000000001"));
        let not_a_job = format!("J|{}|", id("0035g0000000001"));
        for bad in [
            "",
            "X|",
            "C|yesterday",
            "L|x'--",
            "J|",
            "J|750|",
            contact_in_lead_walk.as_str(),
            not_a_job.as_str(),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_scope_reaches_only_the_objects_its_bounds_cover() {
        let mut scope = PullScope::since(DateTime::<Utc>::UNIX_EPOCH);
        let bound = id("0035g0000000100");
        scope.through = Some(ScopeKey::new(&bound));
        assert!(
            SalesforceCrm::scope_filter(&scope, People::Contact)
                .unwrap()
                .contains(&format!("Id <= '{bound}'"))
        );
        assert_eq!(SalesforceCrm::scope_filter(&scope, People::Lead), None);
        let mut later = PullScope::since(DateTime::<Utc>::UNIX_EPOCH);
        let lead = id("00Q5g0000000100");
        later.after = Some(ScopeKey::new(&lead));
        assert_eq!(SalesforceCrm::scope_filter(&later, People::Contact), None);
        let f = SalesforceCrm::scope_filter(&later, People::Lead).unwrap();
        assert!(f.contains("IsConverted = false") && f.contains(&format!("Id > '{lead}'")));
        // Chosen people go to their own object's query; junk ids to none.
        let chosen = PullScope::chosen(
            &[
                LeadId::new(id("0035g0000000001")).unwrap(),
                LeadId::new("x'OR'1'='1").unwrap(),
            ],
            200,
        );
        assert!(
            SalesforceCrm::scope_filter(&chosen[0], People::Contact)
                .unwrap()
                .contains(&format!("Id IN ('{}')", id("0035g0000000001")))
        );
        assert_eq!(SalesforceCrm::scope_filter(&chosen[0], People::Lead), None);
    }
}
