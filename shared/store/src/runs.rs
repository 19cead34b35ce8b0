//! Run records and the sync lease in the single table ([`RunStore`] for [`DynamoLeadStore`]).
//!
//! - `RUN#<id>` / `PLAN`: the plan (JSON), then `finished` and the run's merged report.
//! - `RUN#<id>` / `DONE#<slice>`: one item per finished slice (its [`SliceResult`]). Progress is
//!   the count of these items (a consistent Query), not a counter: writing the same slice twice
//!   (a redelivered message, a crash before the count) can never count it twice, and no crash
//!   between two writes can leave a counter behind.
//! - `LOCK#sync` / `LOCK`: the lease — holder and expiry, taken with a conditional put.

use crate::dynamo::{DynamoLeadStore, Item, get_s, s};
use crate::keys::{self, PK, SK, TTL};
use crate::sdk_error;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use chrono::{DateTime, Utc};
use leadsync_domain::ports::{RunReport, RunStore, StoreError};
use leadsync_domain::runs::{Lease, RunPlan, RunProgress, SliceResult};

const PLAN_SK: &str = "PLAN";
const DONE_PREFIX: &str = "DONE#";

fn done_sk(slice: u32) -> String {
    format!("{DONE_PREFIX}{slice:05}")
}

fn json<T: serde::Serialize>(operation: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Rejected {
        operation,
        message: e.to_string(),
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    key: &str,
    item: &Item,
    attribute: &str,
) -> Result<T, StoreError> {
    let text = get_s(item, attribute).ok_or_else(|| StoreError::Corrupt {
        key: key.to_owned(),
        message: format!("attribute {attribute} is missing"),
    })?;
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        message: format!("attribute {attribute}: {e}"),
    })
}

fn conditional_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(error: &E) -> bool {
    error.code() == Some("ConditionalCheckFailedException")
}

impl DynamoLeadStore {
    async fn plan_item(&self, run_id: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(keys::run_pk(run_id)))
            .key(SK, s(PLAN_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem run plan", e))?
            .item)
    }

    /// The run's finished slices (one consistent Query, paged): how many, and — unless
    /// `count_only` — their results.
    async fn done(
        &self,
        run_id: &str,
        count_only: bool,
    ) -> Result<(u32, Vec<SliceResult>), StoreError> {
        let (mut count, mut results) = (0u32, Vec::new());
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :done)")
                .expression_attribute_values(":pk", s(keys::run_pk(run_id)))
                .expression_attribute_values(":done", s(DONE_PREFIX))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if count_only {
                query = query.select(Select::Count);
            }
            let page = query
                .send()
                .await
                .map_err(|e| sdk_error("Query finished slices", e))?;
            count += u32::try_from(page.count).unwrap_or(0);
            for item in page.items.unwrap_or_default() {
                let key = format!(
                    "{}/{}",
                    keys::run_pk(run_id),
                    get_s(&item, SK).unwrap_or("?")
                );
                results.push(parse::<SliceResult>(&key, &item, "result")?);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok((count, results)),
            }
        }
    }
}

impl RunStore for DynamoLeadStore {
    async fn acquire_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(keys::LEASE_PK))
            .item(SK, s(keys::LEASE_SK))
            .item("holder", s(holder))
            .item("until", s(until.to_rfc3339()))
            .item(
                "until_epoch",
                AttributeValue::N(until.timestamp().to_string()),
            )
            // Swept a day after it expired; an expired lease is free whether swept or not.
            .item(
                TTL,
                AttributeValue::N((until.timestamp() + 86_400).to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR until_epoch < :now OR holder = :me")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => {
                let item = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key(PK, s(keys::LEASE_PK))
                    .key(SK, s(keys::LEASE_SK))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| sdk_error("GetItem lease", e))?
                    .item
                    .unwrap_or_default();
                let until = get_s(&item, "until")
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map_or(until, |t| t.with_timezone(&Utc));
                Ok(Some(Lease {
                    holder: get_s(&item, "holder").unwrap_or("?").to_owned(),
                    until,
                }))
            }
            Err(e) => Err(sdk_error("PutItem lease", e)),
        }
    }

    async fn release_lease(&self, holder: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(keys::LEASE_PK))
            .key(SK, s(keys::LEASE_SK))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Someone else holds it (ours expired and was taken) or it is gone: nothing to give up.
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(()),
            Err(e) => Err(sdk_error("DeleteItem lease", e)),
        }
    }

    async fn create_run(&self, plan: &RunPlan) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(keys::run_pk(&plan.run_id)))
            .item(SK, s(PLAN_SK))
            .item("plan", s(json("PutItem run plan", plan)?))
            .item("slices", AttributeValue::N(plan.slices.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Planned already (a retried invocation): the first plan stands.
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => Ok(()),
            Err(e) => Err(sdk_error("PutItem run plan", e)),
        }
    }

    async fn finish_slice(
        &self,
        run_id: &str,
        result: &SliceResult,
    ) -> Result<RunProgress, StoreError> {
        let plan = self
            .plan_item(run_id)
            .await?
            .ok_or_else(|| StoreError::Rejected {
                operation: "finish_slice",
                message: format!("run {run_id} was never planned"),
            })?;
        let key = format!("{}/{PLAN_SK}", keys::run_pk(run_id));
        let planned: RunPlan = parse(&key, &plan, "plan")?;
        let written = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(keys::run_pk(run_id)))
            .item(SK, s(done_sk(result.slice)))
            .item("result", s(json("PutItem slice result", result)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match written {
            Ok(_) => {}
            // Finished before (a redelivery): the first result stands, and is counted once.
            Err(e) if e.as_service_error().is_some_and(conditional_failed) => {}
            Err(e) => return Err(sdk_error("PutItem slice result", e)),
        }
        Ok(RunProgress {
            slices: planned.slices,
            done: self.done(run_id, true).await?.0,
            finished: plan
                .get("finished")
                .and_then(|v| v.as_bool().ok())
                .copied()
                .unwrap_or(false),
        })
    }

    async fn slice_results(&self, run_id: &str) -> Result<Vec<SliceResult>, StoreError> {
        Ok(self.done(run_id, false).await?.1)
    }

    async fn finish_run(&self, run_id: &str, report: &RunReport) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(keys::run_pk(run_id)))
            .key(SK, s(PLAN_SK))
            .update_expression("SET finished = :t, report = :r")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .expression_attribute_values(":r", s(json("UpdateItem run", report)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("UpdateItem run finished", e))
    }
}
