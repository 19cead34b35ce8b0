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
//!
//! # Layout
//! This file holds the client, its describe cache and the [`Crm`] impl (thin); the jobs are
//! `pull` (cursor, keyset walk, Bulk job, opportunities, merges), `push` (collections) and
//! `properties` (the Tooling API field bootstrap). Transport and retries are
//! [`crate::client`], Bulk API 2.0 [`crate::bulk`], records → leads [`crate::mapping`].

mod properties;
mod pull;
mod push;

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
        self.read_pull_page(scope, cursor).await
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
        self.push_updates(updates).await
    }

    async fn missing_properties(&self, specs: &[PropertySpec]) -> Result<Vec<String>, CrmError> {
        self.missing_fields(specs).await
    }

    async fn ensure_properties(&self, specs: &[PropertySpec]) -> Result<u32, CrmError> {
        self.ensure_fields(specs).await
    }
}

#[cfg(test)]
mod tests {
    use super::pull::*;
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
