//! The DynamoDB adapter of the [`RollupStore`] port on [`DynamoLeadStore`]: milestone facts
//! (conditional, append-only, beside the lead's transitions), the period index of facts
//! (`FACTS#<yyyy-mm>` on `gsi1`), rollup rows (`ROLLUP#<yyyy-mm>` / row key, one partition
//! per period so reading a period is one Query), incentive plans (`PLANS` / version),
//! closed periods (`PERIODS` / period) and merged or deleted leads (`LINKS#<crm>` / lead id).
//!
//! A closed period's rows carry `frozen`; every write and delete of a row is conditional on
//! its absence, so nothing — not even a writer racing the close — changes a closed row.

use crate::dynamo::{DynamoLeadStore, Item, get_s, s};
use crate::keys::{self, FROZEN, GSI1, GSI1_PK, GSI1_SK, PERIODS_PK, PK, PLANS_PK, SK};
use crate::sdk_error;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt, TryStreamExt};
use leadsync_domain::LeadId;
use leadsync_domain::facts::{Fact, LeadLink, LeadLinks, MilestoneFact};
use leadsync_domain::incentives::IncentivePlan;
use leadsync_domain::ports::{LeadErased, PeriodStatus, RollupStore, RowsWritten, StoreError};
use leadsync_domain::rollup::RollupRow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

const CONCURRENCY: usize = 16;

/// Query pages made by [`RollupStore::rows`] since the process started (for the "one Query"
/// check of tests and benchmarks).
pub static ROW_QUERY_PAGES: AtomicU64 = AtomicU64::new(0);

/// Under a run (`RUN#<id>`): the periods it noted it records facts in.
const NOTED_PERIODS_SK: &str = "PERIODS";

/// Under a lead being erased: the pseudonym chosen, until the erasure is complete.
const ERASING_SK: &str = "ERASING";

fn corrupt(key: &str, message: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn json<T: serde::Serialize>(operation: &'static str, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Rejected {
        operation,
        message: e.to_string(),
    })
}

impl DynamoLeadStore {
    /// Every item of one partition (table or `gsi1`), all pages.
    async fn query_all(
        &self,
        index: Option<&str>,
        pk_name: &str,
        pk: &str,
        pages: Option<&AtomicU64>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        // Boxed: the nested futures of a finance call otherwise overflow rustc's layout depth
        // limit in release builds.
        Box::pin(self.query_pages(index, pk_name, pk, pages, |page| {
            items.extend(page);
            Ok(())
        }))
        .await?;
        Ok(items)
    }

    /// Every item of one partition (table or `gsi1`), handed to `each` one page (≤ 1 MB) at
    /// a time.
    async fn query_pages(
        &self,
        index: Option<&str>,
        pk_name: &str,
        pk: &str,
        pages: Option<&AtomicU64>,
        mut each: impl FnMut(Vec<Item>) -> Result<(), StoreError> + Send,
    ) -> Result<(), StoreError> {
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", pk_name)
                .expression_attribute_values(":pk", s(pk))
                .set_consistent_read(index.is_none().then_some(true))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            if let Some(p) = pages {
                p.fetch_add(1, Ordering::Relaxed);
            }
            each(out.items.unwrap_or_default())?;
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    fn milestone_item(&self, m: &MilestoneFact) -> Result<Item, StoreError> {
        let fact = Fact::Milestone(m.clone());
        let observed = m
            .observed_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        Ok(HashMap::from([
            (PK.to_owned(), s(keys::lead_pk(&self.crm, &m.lead_id))),
            (
                SK.to_owned(),
                s(keys::milestone_sk(m.outcome.as_str(), &m.reference)),
            ),
            (GSI1_PK.to_owned(), s(keys::facts_period_pk(&fact.period()))),
            (GSI1_SK.to_owned(), s(format!("{observed}#{}", fact.key()))),
            ("fact".to_owned(), s(json("PutItem milestone", &fact)?)),
        ]))
    }

    /// Every item of a registry partition (`PLANS`, `PERIODS`) as (sort key, parsed body),
    /// in sort-key order.
    async fn bodies<T: serde::de::DeserializeOwned>(
        &self,
        pk: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        self.query_all(None, PK, pk, None)
            .await?
            .iter()
            .map(|item| {
                let sk = get_s(item, SK).unwrap_or("?").to_owned();
                let body = get_s(item, "body")
                    .ok_or_else(|| corrupt(&format!("{pk}/{sk}"), "missing body"))
                    .and_then(|b| {
                        serde_json::from_str(b)
                            .map_err(|e| corrupt(&format!("{pk}/{sk}"), e.to_string()))
                    })?;
                Ok((sk, body))
            })
            .collect()
    }

    async fn freeze_row(&self, period: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(keys::rollup_pk(period)))
            .key(SK, s(sk))
            .update_expression("SET #frozen = :t")
            .expression_attribute_names("#frozen", FROZEN)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("UpdateItem freeze row", e))
    }

    async fn is_closed(&self, period: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(PERIODS_PK))
            .key(SK, s(period))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem period", e))?;
        Ok(out.item.is_some())
    }
}

impl RollupStore for DynamoLeadStore {
    async fn record_links(
        &self,
        links: &[(LeadId, LeadLink)],
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut periods = BTreeSet::new();
        for (id, link) in links {
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PK, s(keys::links_pk(&self.crm)))
                .item(SK, s(id.as_str()))
                .item("body", s(json("PutItem link", link)?));
            if matches!(link, LeadLink::Deleted { .. }) {
                // A merge is never overwritten by the deletion that comes with it.
                put = put
                    .condition_expression("attribute_not_exists(pk) OR NOT contains(body, :merged)")
                    .expression_attribute_values(":merged", s("\"merged\""));
            }
            match put.send().await {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(sdk_error("PutItem link", e)),
            }
            // The periods the lead's facts occurred in: their rollups change.
            let items = self
                .query_all(None, PK, &keys::lead_pk(&self.crm, id), None)
                .await?;
            for item in items {
                if let Some(body) = get_s(&item, "fact")
                    && let Ok(fact) = serde_json::from_str::<Fact>(body)
                {
                    periods.insert(fact.period());
                }
            }
        }
        Ok(periods)
    }

    async fn links(&self) -> Result<LeadLinks, StoreError> {
        let items = self
            .query_all(None, PK, &keys::links_pk(&self.crm), None)
            .await?;
        items
            .iter()
            .map(|item| {
                let sk = get_s(item, SK).unwrap_or("?");
                let id = LeadId::new(sk).map_err(|e| corrupt(sk, e.to_string()))?;
                let body = get_s(item, "body").ok_or_else(|| corrupt(sk, "missing body"))?;
                let link = serde_json::from_str(body).map_err(|e| corrupt(sk, e.to_string()))?;
                Ok((id, link))
            })
            .collect()
    }

    async fn erase_lead(
        &self,
        id: &LeadId,
        pseudonym: &LeadId,
        closed: &BTreeSet<String>,
    ) -> Result<LeadErased, StoreError> {
        let pk = keys::lead_pk(&self.crm, id);
        let items = self.query_all(None, PK, &pk, None).await?;
        // An erasure interrupted earlier chose its pseudonym already: finish with that one, so
        // no fact is ever copied under two.
        let pseudonym = match items
            .iter()
            .find(|i| get_s(i, SK) == Some(ERASING_SK))
            .and_then(|i| get_s(i, "pseudonym"))
        {
            Some(chosen) => LeadId::new(chosen).map_err(|e| corrupt(&pk, e.to_string()))?,
            None => {
                self.batch_put(vec![HashMap::from([
                    (PK.to_owned(), s(&pk)),
                    (SK.to_owned(), s(ERASING_SK)),
                    ("pseudonym".to_owned(), s(pseudonym.as_str())),
                ])])
                .await?;
                pseudonym.clone()
            }
        };
        let mut erased = LeadErased {
            pseudonym: pseudonym.as_str().to_owned(),
            ..LeadErased::default()
        };
        let key_of = |item: &Item| -> Item {
            item.iter()
                .filter(|(k, _)| *k == PK || *k == SK)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let (mut copies, mut gone) = (Vec::new(), Vec::new());
        for item in &items {
            let sk = get_s(item, SK).unwrap_or_default();
            if sk == ERASING_SK {
                continue;
            }
            let Some(body) = get_s(item, "fact") else {
                erased.state_deleted |= sk == keys::STATE_SK;
                gone.push(key_of(item));
                continue;
            };
            let fact: Fact = serde_json::from_str(body)
                .map_err(|e| corrupt(&format!("{pk}/{sk}"), e.to_string()))?;
            let period = fact.period();
            if closed.contains(&period) {
                erased.facts_kept += 1;
                erased.closed_periods.insert(period);
                continue;
            }
            copies.push(match fact.anonymised(&pseudonym) {
                Fact::Stage(t) => self.transition_item(&t),
                Fact::Milestone(m) => self.milestone_item(&m)?,
            });
            erased.facts_anonymised += 1;
            erased.periods.insert(period);
            gone.push(key_of(item));
        }
        // Copies first: a crash between the two leaves both, and the next attempt deletes.
        self.put_absent(copies).await?;
        // Merge and deletion records: the lead's own moves to the pseudonym (its facts still
        // count, or not, as before); merges into it now point at the pseudonym.
        let mut links: Vec<Item> = Vec::new();
        for (other, link) in self.links().await? {
            let moved = match link {
                _ if &other == id => Some((pseudonym.clone(), link)),
                LeadLink::Merged { into, seen_at } if &into == id => Some((
                    other,
                    LeadLink::Merged {
                        into: pseudonym.clone(),
                        seen_at,
                    },
                )),
                _ => None,
            };
            if let Some((at, link)) = moved {
                links.push(HashMap::from([
                    (PK.to_owned(), s(keys::links_pk(&self.crm))),
                    (SK.to_owned(), s(at.as_str())),
                    ("body".to_owned(), s(json("PutItem link", &link)?)),
                ]));
                erased.links += 1;
            }
        }
        self.batch_put(links).await?;
        gone.push(HashMap::from([
            (PK.to_owned(), s(keys::links_pk(&self.crm))),
            (SK.to_owned(), s(id.as_str())),
        ]));
        gone.push(HashMap::from([
            (PK.to_owned(), s(&pk)),
            (SK.to_owned(), s(ERASING_SK)),
        ]));
        // The marker goes last (its own batch): until then a retry knows the pseudonym.
        let marker = gone.pop().into_iter().collect::<Vec<_>>();
        self.batch_delete(gone).await?;
        self.batch_delete(marker).await?;
        Ok(erased)
    }

    async fn note_periods(
        &self,
        run_id: &str,
        periods: &BTreeSet<String>,
    ) -> Result<(), StoreError> {
        if periods.is_empty() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(keys::run_pk(run_id)))
            .key(SK, s(NOTED_PERIODS_SK))
            .update_expression("ADD periods :p")
            .expression_attribute_values(
                ":p",
                AttributeValue::Ss(periods.iter().cloned().collect()),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("UpdateItem noted periods", e))
    }

    async fn noted_periods(&self, run_id: &str) -> Result<BTreeSet<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(keys::run_pk(run_id)))
            .key(SK, s(NOTED_PERIODS_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem noted periods", e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| i.get("periods"))
            .and_then(|v| v.as_ss().ok())
            .map(|ss| ss.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn record_milestones(&self, facts: &[MilestoneFact]) -> Result<u64, StoreError> {
        let items = facts
            .iter()
            .map(|m| self.milestone_item(m))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.put_absent(items).await?.0)
    }

    async fn visit_facts<F>(&self, period: &str, mut visit: F) -> Result<u64, StoreError>
    where
        F: FnMut(Fact) + Send,
    {
        let mut n = 0u64;
        // Boxed, as in `query_all`.
        Box::pin(self.query_pages(
            Some(GSI1),
            GSI1_PK,
            &keys::facts_period_pk(period),
            None,
            |page| {
                for item in &page {
                    let key = || {
                        format!(
                            "{}/{}",
                            get_s(item, PK).unwrap_or("?"),
                            get_s(item, SK).unwrap_or("?")
                        )
                    };
                    let body =
                        get_s(item, "fact").ok_or_else(|| corrupt(&key(), "missing fact"))?;
                    let fact = serde_json::from_str::<Fact>(body)
                        .map_err(|e| corrupt(&key(), e.to_string()))?;
                    visit(fact);
                    n += 1;
                }
                Ok(())
            },
        ))
        .await?;
        Ok(n)
    }

    async fn rows(&self, period: &str) -> Result<Vec<RollupRow>, StoreError> {
        let items = self
            .query_all(None, PK, &keys::rollup_pk(period), Some(&ROW_QUERY_PAGES))
            .await?;
        let mut rows = items
            .iter()
            .map(|item| {
                let sk = get_s(item, SK).unwrap_or("?");
                Ok(RollupRow {
                    sk: sk.to_owned(),
                    body: get_s(item, "body")
                        .ok_or_else(|| corrupt(sk, "missing body"))?
                        .to_owned(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort();
        Ok(rows)
    }

    async fn replace_rows(
        &self,
        period: &str,
        rows: &[RollupRow],
    ) -> Result<RowsWritten, StoreError> {
        if self.is_closed(period).await? {
            return Err(StoreError::Rejected {
                operation: "replace rollup rows",
                message: format!("period {period} is closed"),
            });
        }
        let existing: HashMap<String, String> = self
            .rows(period)
            .await?
            .into_iter()
            .map(|r| (r.sk, r.body))
            .collect();
        let wanted: HashMap<&str, &str> = rows
            .iter()
            .map(|r| (r.sk.as_str(), r.body.as_str()))
            .collect();
        let mut out = RowsWritten::default();
        let mut writes: Vec<(&str, Option<&str>)> = rows
            .iter()
            .filter(|r| existing.get(&r.sk).is_none_or(|b| *b != r.body))
            .map(|r| (r.sk.as_str(), Some(r.body.as_str())))
            .collect();
        out.written = writes.len() as u64;
        out.unchanged = rows.len() as u64 - out.written;
        let before = writes.len();
        writes.extend(
            existing
                .keys()
                .filter(|sk| !wanted.contains_key(sk.as_str()))
                .map(|sk| (sk.as_str(), None)),
        );
        out.deleted = (writes.len() - before) as u64;
        // Batched, unconditionally: the caller holds the sync lease, and a close takes it too,
        // so no close can freeze this period between the check above and these writes.
        let pk = keys::rollup_pk(period);
        let key = |sk: &str| {
            HashMap::from([
                (PK.to_owned(), s(pk.clone())),
                (SK.to_owned(), s(sk.to_owned())),
            ])
        };
        let (puts, deletes): (Vec<_>, Vec<_>) = writes.iter().partition(|(_, b)| b.is_some());
        self.batch_put(
            puts.iter()
                .map(|(sk, body)| {
                    let mut item = key(sk);
                    item.insert("body".to_owned(), s(body.unwrap_or_default().to_owned()));
                    item
                })
                .collect(),
        )
        .await?;
        self.batch_delete(deletes.iter().map(|(sk, _)| key(sk)).collect())
            .await?;
        Ok(out)
    }

    async fn save_plan(
        &self,
        criteria_version: &str,
        plan: &IncentivePlan,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(PLANS_PK))
            .item(SK, s(criteria_version))
            .item("body", s(json("PutItem plan", plan)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("PutItem plan", e))
    }

    async fn plans(&self) -> Result<BTreeMap<String, IncentivePlan>, StoreError> {
        Ok(self.bodies(PLANS_PK).await?.into_iter().collect())
    }

    /// In period order: the sort key is the period.
    async fn closed_periods(&self) -> Result<Vec<PeriodStatus>, StoreError> {
        Ok(self
            .bodies(PERIODS_PK)
            .await?
            .into_iter()
            .map(|(_, status)| status)
            .collect())
    }

    async fn close_period(&self, status: &PeriodStatus) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(PERIODS_PK))
            .item(SK, s(&status.period))
            .item("body", s(json("PutItem period", status)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        let new = match put {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                false
            }
            Err(e) => return Err(sdk_error("PutItem period", e)),
        };
        // Freeze every row (idempotent; repeating finishes an interrupted close).
        let rows = self.rows(&status.period).await?;
        let updates: Vec<_> = rows
            .iter()
            .map(|row| self.freeze_row(&status.period, &row.sk))
            .collect();
        stream::iter(updates)
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(new)
    }
}
