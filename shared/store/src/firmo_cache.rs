//! `DynamoFirmographicCache`: provider answers per company domain in the single table
//! (`FIRMO#<domain>` / `<provider>`), expiring through DynamoDB's TTL on `expires_at` — and
//! checked on read, since TTL deletion is lazy. A page's domains are read in `BatchGetItem`s of
//! 100 keys, and its new answers written in `BatchWriteItem`s of 25.

use crate::dynamo::{Read, batch_get, batch_put};
use crate::keys::{PK, SK, TTL};
use crate::sdk_error;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use leadsync_domain::Firmographics;
use leadsync_domain::ports::{CacheEntry, FirmographicCache, StoreError};
use std::collections::HashMap;

/// The DynamoDB adapter of the [`FirmographicCache`] port.
#[derive(Debug, Clone)]
pub struct DynamoFirmographicCache {
    client: Client,
    table: String,
}

impl DynamoFirmographicCache {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn key(domain: &str) -> String {
    format!("FIRMO#{domain}")
}

/// A cached answer, unless it expired by `now` (TTL deletion is lazy).
fn usable(
    item: &HashMap<String, AttributeValue>,
    domain: &str,
    now: DateTime<Utc>,
) -> Result<Option<Option<Firmographics>>, StoreError> {
    let expires = item
        .get(TTL)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0);
    if expires <= now.timestamp() {
        return Ok(None);
    }
    let body = item
        .get("value")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| StoreError::Corrupt {
            key: key(domain),
            message: "missing value".into(),
        })?;
    serde_json::from_str::<Option<Firmographics>>(body)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            key: key(domain),
            message: e.to_string(),
        })
}

impl FirmographicCache for DynamoFirmographicCache {
    async fn get(
        &self,
        domain: &str,
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Option<Firmographics>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(key(domain)))
            .key(SK, AttributeValue::S(provider.to_owned()))
            .send()
            .await
            .map_err(|e| sdk_error("GetItem firmographics", e))?;
        match out.item {
            None => Ok(None),
            Some(item) => usable(&item, domain, now),
        }
    }

    async fn get_many(
        &self,
        domains: &[String],
        provider: &str,
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Option<Firmographics>>, StoreError> {
        let mut unique: Vec<&String> = domains.iter().collect();
        unique.sort();
        unique.dedup();
        let keys = unique
            .iter()
            .map(|d| {
                HashMap::from([
                    (PK.to_owned(), AttributeValue::S(key(d))),
                    (SK.to_owned(), AttributeValue::S(provider.to_owned())),
                ])
            })
            .collect();
        let items = batch_get(
            &self.client,
            &self.table,
            keys,
            Read::Whole,
            "BatchGetItem firmographics",
        )
        .await?;
        let mut found = HashMap::with_capacity(items.len());
        for item in &items {
            let Some(domain) = item
                .get(PK)
                .and_then(|v| v.as_s().ok())
                .and_then(|pk| pk.strip_prefix("FIRMO#"))
            else {
                continue;
            };
            if let Some(value) = usable(item, domain, now)? {
                found.insert(domain.to_owned(), value);
            }
        }
        Ok(found)
    }

    async fn put(
        &self,
        domain: &str,
        provider: &str,
        value: Option<&Firmographics>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(domain, provider, value, expires_at)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("PutItem firmographics", e))
    }

    async fn put_many(&self, provider: &str, answers: &[CacheEntry]) -> Result<(), StoreError> {
        // One item per domain: a batch may not name a key twice.
        let mut seen = std::collections::HashSet::new();
        let items = answers
            .iter()
            .filter(|a| seen.insert(a.domain.as_str()))
            .map(|a| item(&a.domain, provider, a.value.as_ref(), a.expires_at))
            .collect::<Result<Vec<_>, _>>()?;
        batch_put(&self.client, &self.table, items)
            .await
            .map(|_| ())
    }
}

/// The cache item of one answer.
fn item(
    domain: &str,
    provider: &str,
    value: Option<&Firmographics>,
    expires_at: DateTime<Utc>,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let body = serde_json::to_string(&value).map_err(|e| StoreError::Rejected {
        operation: "PutItem firmographics",
        message: e.to_string(),
    })?;
    Ok(HashMap::from([
        (PK.to_owned(), AttributeValue::S(key(domain))),
        (SK.to_owned(), AttributeValue::S(provider.to_owned())),
        ("value".to_owned(), AttributeValue::S(body)),
        (
            TTL.to_owned(),
            AttributeValue::N(expires_at.timestamp().to_string()),
        ),
    ]))
}
