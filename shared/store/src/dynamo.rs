//! `DynamoLeadStore`: lead states, transitions, watermarks and run records in the single table.

use crate::keys::{self, GSI1_PK, GSI1_SK, PK, SK, STATE_SK, WATERMARK_SK};
use crate::sdk_error;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use chrono::Datelike as _;
use chrono::{DateTime, Utc};
use leadsync_domain::ports::{LeadStore, RecordOutcome, RunReport, StoreError};
use leadsync_domain::{LeadId, LeadState, Stage, Transition};
use std::collections::HashMap;

mod batch;

pub(crate) use batch::{Read, batch_get, batch_put};
use batch::{batch_write, unbuildable};

pub(crate) type Item = HashMap<String, AttributeValue>;

/// The most items DynamoDB takes in one `BatchWriteItem`.
pub const MAX_BATCH_WRITE: usize = 25;
/// The most keys DynamoDB takes in one `BatchGetItem`.
pub const MAX_BATCH_GET: usize = 100;

/// The DynamoDB adapter of the [`LeadStore`] port.
#[derive(Debug, Clone)]
pub struct DynamoLeadStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    /// The CRM's name in keys (`hubspot`).
    pub(crate) crm: String,
}

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn corrupt(key: &str, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl DynamoLeadStore {
    pub fn new(client: Client, table: impl Into<String>, crm: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            crm: crm.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn state_key(&self, id: &LeadId) -> Item {
        HashMap::from([
            (PK.to_owned(), s(keys::lead_pk(&self.crm, id))),
            (SK.to_owned(), s(STATE_SK)),
        ])
    }

    fn state_item(&self, state: &LeadState) -> Item {
        let mut item = self.state_key(&state.lead_id);
        item.insert("lead_id".into(), s(state.lead_id.as_str()));
        item.insert("stage".into(), s(state.stage.as_str()));
        item.insert("fit".into(), n(state.fit));
        item.insert("engagement".into(), n(state.engagement));
        item.insert("total".into(), n(state.total));
        item.insert("band".into(), s(&state.band));
        item.insert(
            "reasons".into(),
            AttributeValue::L(state.reasons.iter().map(s).collect()),
        );
        item.insert("criteria_version".into(), s(&state.criteria_version));
        item.insert("input_hash".into(), s(&state.input_hash));
        if let Some(hash) = &state.pushed_hash {
            item.insert("pushed_hash".into(), s(hash));
        }
        if let Some(owner) = &state.owner_id {
            item.insert("owner_id".into(), s(owner));
        }
        item.insert("updated_at".into(), s(state.updated_at.to_rfc3339()));
        item.insert("run_id".into(), s(&state.run_id));
        if let Some(since) = state.stage_since {
            item.insert("stage_since".into(), s(since.to_rfc3339()));
        }
        if !state.announced.is_empty() {
            item.insert(
                "announced".into(),
                AttributeValue::L(state.announced.iter().map(s).collect()),
            );
        }
        if let Some(due) = state.rescore_at {
            // Leads whose score time alone will change are indexed by the day it does, so a
            // nightly run finds the ones due with one Query per day.
            let at = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            item.insert("rescore_at".into(), s(&at));
            item.insert(GSI1_PK.into(), s(keys::due_pk(&self.crm, due.date_naive())));
            item.insert(GSI1_SK.into(), s(format!("{at}#{}", state.lead_id)));
        }
        item
    }

    pub(crate) fn transition_item(&self, t: &Transition) -> Item {
        let observed = t
            .observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut item = HashMap::from([
            (PK.to_owned(), s(keys::lead_pk(&self.crm, &t.lead_id))),
            (
                SK.to_owned(),
                s(keys::transition_sk(t.to, &t.criteria_version)),
            ),
            (
                GSI1_PK.to_owned(),
                s(keys::facts_period_pk(&leadsync_domain::facts::period_of(
                    t.occurred_at.unwrap_or(t.observed_at),
                ))),
            ),
            (GSI1_SK.to_owned(), s(format!("{observed}#{}", t.lead_id))),
            ("lead_id".to_owned(), s(t.lead_id.as_str())),
            ("to".to_owned(), s(t.to.as_str())),
            ("criteria_version".to_owned(), s(&t.criteria_version)),
            ("observed_at".to_owned(), s(observed)),
            ("run_id".to_owned(), s(&t.run_id)),
            (
                "fact".to_owned(),
                s(
                    serde_json::to_string(&leadsync_domain::facts::Fact::Stage(t.clone()))
                        .unwrap_or_default(),
                ),
            ),
        ]);
        if let Some(from) = t.from {
            item.insert("from".into(), s(from.as_str()));
        }
        if let Some(owner) = &t.owner_id {
            item.insert("owner_id".into(), s(owner));
        }
        item
    }

    /// When each stored transition of these keys says its lead got there (`occurred_at`, else
    /// `observed_at`): one `BatchGetItem` per 100, the fact bodies only.
    async fn transition_times(
        &self,
        transitions: &[Transition],
    ) -> Result<HashMap<LeadId, DateTime<Utc>>, StoreError> {
        let keys: Vec<Item> = transitions
            .iter()
            .map(|t| {
                HashMap::from([
                    (PK.to_owned(), s(keys::lead_pk(&self.crm, &t.lead_id))),
                    (
                        SK.to_owned(),
                        s(keys::transition_sk(t.to, &t.criteria_version)),
                    ),
                ])
            })
            .collect();
        let found = batch_get(
            &self.client,
            &self.table,
            keys,
            Read::Whole,
            "BatchGetItem transitions",
        )
        .await?;
        let runs: HashMap<&LeadId, &str> = transitions
            .iter()
            .map(|t| (&t.lead_id, t.run_id.as_str()))
            .collect();
        let mut times = HashMap::with_capacity(found.len());
        for item in &found {
            let Some(body) = get_s(item, "fact") else {
                continue;
            };
            // Only this run's own facts (an attempt of it was cut short): a lead back at a
            // stage it reached in an earlier run got there again now.
            if let Ok(leadsync_domain::facts::Fact::Stage(t)) = serde_json::from_str(body)
                && runs.get(&t.lead_id) == Some(&t.run_id.as_str())
            {
                times.insert(t.lead_id.clone(), t.occurred_at.unwrap_or(t.observed_at));
            }
        }
        Ok(times)
    }

    /// Put each transition unless its key exists. Returns (new, existing).
    async fn put_transitions(&self, transitions: &[Transition]) -> Result<(u64, u64), StoreError> {
        self.put_absent(
            transitions
                .iter()
                .map(|t| self.transition_item(t))
                .collect(),
        )
        .await
    }

    /// Put each fact item (keyed `pk`/`sk`) unless its key exists, so a fact, once written,
    /// never changes: the keys are read in `BatchGetItem`s of 100 and only the absent items
    /// are written, in `BatchWriteItem`s of 25 — some 50 requests per 1,000 new facts where a
    /// conditional `PutItem` each took 1,000. Check and write are not one atomic step; the
    /// lease makes that safe, since only its holder writes facts. (`TransactWriteItems` with a
    /// condition per put would make it atomic at 10 requests per 1,000, but moto copies every
    /// table for each item of a transaction, which no test of a real-sized run survives.)
    /// Returns (new, existing).
    pub(crate) async fn put_absent(&self, facts: Vec<Item>) -> Result<(u64, u64), StoreError> {
        let mut seen = std::collections::HashSet::new();
        let mut unique: Vec<Item> = Vec::with_capacity(facts.len());
        let mut existing = 0u64;
        for item in facts {
            let key = (
                get_s(&item, PK).unwrap_or_default().to_owned(),
                get_s(&item, SK).unwrap_or_default().to_owned(),
            );
            if seen.insert(key) {
                unique.push(item);
            } else {
                existing += 1; // the same fact twice in one batch: written once
            }
        }
        let keys: Vec<Item> = unique
            .iter()
            .map(|item| {
                item.iter()
                    .filter(|(k, _)| *k == PK || *k == SK)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect();
        let present = self.present_keys(keys).await?;
        let absent: Vec<Item> = unique
            .into_iter()
            .filter(|item| {
                let key = (
                    get_s(item, PK).unwrap_or_default().to_owned(),
                    get_s(item, SK).unwrap_or_default().to_owned(),
                );
                if present.contains(&key) {
                    existing += 1;
                    false
                } else {
                    true
                }
            })
            .collect();
        let new = self.batch_put(absent).await?;
        Ok((new, existing))
    }

    /// Which of these keys exist (`BatchGetItem`, 100 keys a request, only the keys read).
    async fn present_keys(
        &self,
        keys: Vec<Item>,
    ) -> Result<std::collections::HashSet<(String, String)>, StoreError> {
        let found = batch_get(
            &self.client,
            &self.table,
            keys,
            Read::KeysOnly,
            "BatchGetItem facts",
        )
        .await?;
        Ok(found
            .iter()
            .map(|item| {
                (
                    get_s(item, PK).unwrap_or_default().to_owned(),
                    get_s(item, SK).unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// Write items 25 at a time, retrying unprocessed items with backoff.
    pub(crate) async fn batch_put(&self, items: Vec<Item>) -> Result<u64, StoreError> {
        batch_put(&self.client, &self.table, items).await
    }

    /// Delete items by key (`pk`, `sk`) 25 at a time, retrying unprocessed ones with backoff.
    pub(crate) async fn batch_delete(&self, keys: Vec<Item>) -> Result<u64, StoreError> {
        let requests = keys
            .into_iter()
            .map(|key| {
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map(|delete| WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(unbuildable)?;
        self.batch_write(requests).await
    }

    /// `BatchWriteItem`s of 25 requests, unprocessed ones retried on the AWS policy.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<u64, StoreError> {
        batch_write(&self.client, &self.table, requests).await
    }
}

fn state_from_item(item: &Item) -> Result<LeadState, StoreError> {
    let key = get_s(item, PK).unwrap_or("?").to_owned();
    let text = |name: &str| {
        get_s(item, name)
            .map(str::to_owned)
            .ok_or_else(|| corrupt(&key, format!("missing {name}")))
    };
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| corrupt(&key, format!("missing or bad number {name}")))
    };
    Ok(LeadState {
        lead_id: LeadId::new(text("lead_id")?).map_err(|e| corrupt(&key, e.to_string()))?,
        stage: text("stage")?
            .parse::<Stage>()
            .map_err(|e| corrupt(&key, e.to_string()))?,
        fit: number("fit")?,
        engagement: number("engagement")?,
        total: number("total")?,
        band: text("band")?,
        reasons: item
            .get("reasons")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        criteria_version: text("criteria_version")?,
        input_hash: text("input_hash")?,
        pushed_hash: get_s(item, "pushed_hash").map(str::to_owned),
        owner_id: get_s(item, "owner_id").map(str::to_owned),
        updated_at: DateTime::parse_from_rfc3339(&text("updated_at")?)
            .map_err(|e| corrupt(&key, format!("updated_at: {e}")))?
            .with_timezone(&Utc),
        run_id: text("run_id")?,
        stage_since: time(item, "stage_since", &key)?,
        rescore_at: time(item, "rescore_at", &key)?,
        announced: item
            .get("announced")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
    })
}

/// An optional RFC 3339 attribute; present but unreadable is corrupt.
fn time(item: &Item, name: &str, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get_s(item, name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| corrupt(key, format!("{name}: {e}")))
        })
        .transpose()
}

impl LeadStore for DynamoLeadStore {
    async fn due_leads(
        &self,
        through: DateTime<Utc>,
        months: u32,
        limit: usize,
    ) -> Result<Vec<LeadId>, StoreError> {
        let upper = format!(
            "{}~",
            through.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        let mut month = through
            .date_naive()
            .with_day(1)
            .unwrap_or(through.date_naive());
        let mut due = Vec::new();
        for _ in 0..months.max(1) {
            let mut start: Option<Item> = None;
            loop {
                let out = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(keys::GSI1)
                    .key_condition_expression("#pk = :pk AND #sk <= :upper")
                    .expression_attribute_names("#pk", GSI1_PK)
                    .expression_attribute_names("#sk", GSI1_SK)
                    .expression_attribute_values(":pk", s(keys::due_pk(&self.crm, month)))
                    .expression_attribute_values(":upper", s(&upper))
                    .projection_expression("lead_id")
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("Query due leads", e))?;
                for item in out.items.unwrap_or_default() {
                    if let Some(id) = get_s(&item, "lead_id") {
                        due.push(LeadId::new(id).map_err(|e| corrupt(id, e.to_string()))?);
                    }
                }
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
            match month.checked_sub_months(chrono::Months::new(1)) {
                Some(m) => month = m,
                None => break,
            }
        }
        due.sort();
        due.dedup();
        due.truncate(limit);
        Ok(due)
    }

    async fn load_states(&self, ids: &[LeadId]) -> Result<HashMap<LeadId, LeadState>, StoreError> {
        let mut unique: Vec<&LeadId> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique.iter().map(|id| self.state_key(id)).collect();
        let items = batch_get(&self.client, &self.table, keys, Read::Whole, "BatchGetItem").await?;
        let mut found = HashMap::with_capacity(items.len());
        for item in &items {
            let state = state_from_item(item)?;
            found.insert(state.lead_id.clone(), state);
        }
        Ok(found)
    }

    async fn append_transitions(
        &self,
        transitions: &[Transition],
    ) -> Result<RecordOutcome, StoreError> {
        let (transitions_new, transitions_existing) = self.put_transitions(transitions).await?;
        // Only a re-run meets existing facts: read when they say their leads got there.
        let existing_since = if transitions_existing > 0 {
            self.transition_times(transitions).await?
        } else {
            HashMap::new()
        };
        Ok(RecordOutcome {
            states_written: 0,
            transitions_new,
            transitions_existing,
            existing_since,
        })
    }

    async fn save_states(&self, states: &[LeadState]) -> Result<u64, StoreError> {
        self.batch_put(states.iter().map(|s| self.state_item(s)).collect())
            .await
    }

    async fn watermark(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let key = keys::watermark_pk(source);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(&key))
            .key(SK, s(WATERMARK_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem watermark", e))?;
        match out.item.as_ref().and_then(|i| get_s(i, "at")) {
            None => Ok(None),
            Some(at) => DateTime::parse_from_rfc3339(at)
                .map(|d| Some(d.with_timezone(&Utc)))
                .map_err(|e| corrupt(&key, format!("at: {e}"))),
        }
    }

    async fn set_watermark(&self, source: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(keys::watermark_pk(source)))
            .item(SK, s(WATERMARK_SK))
            .item(
                "at",
                s(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("PutItem watermark", e))
    }

    async fn save_run(&self, report: &RunReport) -> Result<(), StoreError> {
        let body = serde_json::to_string(report).map_err(|e| StoreError::Rejected {
            operation: "PutItem run",
            message: e.to_string(),
        })?;
        let count = |v: u64| n(i64::try_from(v).unwrap_or(i64::MAX));
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(keys::run_pk(&report.run_id)))
            .item(SK, s(keys::slice_sk(report.slice)))
            .item("pulled", count(report.pulled))
            .item("scored", count(report.scored))
            .item("quarantined", count(report.quarantined))
            .item("pushed", count(report.pushed))
            .item("report", s(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("PutItem run", e))
    }
}
