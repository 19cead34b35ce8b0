//! DynamoDB's batch calls as the store makes them: `BatchWriteItem`s of 25 and
//! `BatchGetItem`s of 100, the unprocessed part of each retried on the AWS policy.

use super::{Item, MAX_BATCH_GET, MAX_BATCH_WRITE};
use crate::keys::{PK, SK};
use crate::sdk_error;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{KeysAndAttributes, PutRequest, WriteRequest};
use leadsync_domain::ports::StoreError;
use leadsync_retry::Policy;

/// Put `items` in `BatchWriteItem`s of 25, unprocessed ones retried on the AWS policy.
///
/// # Errors
/// [`StoreError`]: a request failed, or items were still unprocessed after the retries.
pub(crate) async fn batch_put(
    client: &Client,
    table: &str,
    items: Vec<Item>,
) -> Result<u64, StoreError> {
    let requests = items
        .into_iter()
        .map(|item| {
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(unbuildable)?;
    batch_write(client, table, requests).await
}

/// A write request the SDK would not build (a missing key or item).
pub(super) fn unbuildable(error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Rejected {
        operation: "BatchWriteItem",
        message: error.to_string(),
    }
}

/// `BatchWriteItem`s of 25 requests, unprocessed ones retried on the AWS policy. Returns how
/// many were written.
pub(super) async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<u64, StoreError> {
    let mut written = 0u64;
    for chunk in requests.chunks(MAX_BATCH_WRITE) {
        let mut pending: Vec<WriteRequest> = chunk.to_vec();
        let mut waits = Policy::AWS.backoff();
        while !pending.is_empty() {
            let sent = pending.len() as u64;
            let out = client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(|e| sdk_error("BatchWriteItem", e))?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
            written += sent - pending.len() as u64;
            if !pending.is_empty() {
                let wait = waits.next().ok_or_else(|| StoreError::Unavailable {
                    operation: "BatchWriteItem",
                    message: format!(
                        "{} items still unprocessed after {} attempts",
                        pending.len(),
                        1 + Policy::AWS.retries
                    ),
                })?;
                tokio::time::sleep(wait).await;
            }
        }
    }
    Ok(written)
}

/// What [`batch_get`] reads of each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The whole item, eventually consistent.
    Whole,
    /// Only `pk` and `sk`, strongly consistent (does it exist?).
    KeysOnly,
}

/// Read `keys` in `BatchGetItem`s of [`MAX_BATCH_GET`], retrying unprocessed keys with
/// backoff; every item found, in no particular order.
pub(crate) async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    read: Read,
    operation: &'static str,
) -> Result<Vec<Item>, StoreError> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_BATCH_GET) {
        let mut pending: Vec<Item> = chunk.to_vec();
        let mut waits = Policy::AWS.backoff();
        while !pending.is_empty() {
            let mut request = KeysAndAttributes::builder().set_keys(Some(pending));
            if read == Read::KeysOnly {
                request = request
                    .projection_expression("#pk, #sk")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .consistent_read(true);
            }
            let request = request.build().map_err(|e| StoreError::Rejected {
                operation,
                message: e.to_string(),
            })?;
            let out = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| sdk_error(operation, e))?;
            found.extend(
                out.responses
                    .and_then(|mut r| r.remove(table))
                    .unwrap_or_default(),
            );
            pending = out
                .unprocessed_keys
                .and_then(|mut m| m.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if !pending.is_empty() {
                let wait = waits.next().ok_or_else(|| StoreError::Unavailable {
                    operation,
                    message: format!("{} keys still unprocessed", pending.len()),
                })?;
                tokio::time::sleep(wait).await;
            }
        }
    }
    Ok(found)
}
