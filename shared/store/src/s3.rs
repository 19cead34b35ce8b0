//! `S3SnapshotStore`: scored-lead snapshots (gzipped JSONL) and quarantine files in the bucket.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use flate2::Compression;
use flate2::write::GzEncoder;
use leadsync_domain::LeadId;
use leadsync_domain::ports::{
    Rejected, SnapshotKey, SnapshotLine, SnapshotStore, SnapshotWriter, SnapshotsErased, StoreError,
};
use std::io::{Read, Write};

/// An object found by [`S3SnapshotStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: i64,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// The S3 adapter of the [`SnapshotStore`] port.
#[derive(Debug, Clone)]
pub struct S3SnapshotStore {
    client: Client,
    bucket: String,
}

fn rejected(operation: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected {
        operation,
        message: e.to_string(),
    }
}

/// Serialise values as JSON lines.
fn jsonl<T: serde::Serialize>(items: &[T], operation: &'static str) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(items.len() * 512);
    for item in items {
        serde_json::to_writer(&mut out, item).map_err(|e| rejected(operation, e))?;
        out.push(b'\n');
    }
    Ok(out)
}

impl S3SnapshotStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Write a finance export: `exports/<period>/<name>` and `<name>.sha256` beside it (in
    /// `sha256sum` format). Returns the CSV's key.
    ///
    /// # Errors
    /// [`StoreError`] when either object cannot be written.
    pub async fn put_export(
        &self,
        period: &str,
        name: &str,
        bytes: Vec<u8>,
        sha256: &str,
    ) -> Result<String, StoreError> {
        self.put_export_as(
            period,
            name,
            bytes,
            sha256,
            "text/csv; charset=utf-8; header=present",
        )
        .await
    }

    /// One file of a finance export (see `leadsync_pipeline::rollups::ExportFile`): under
    /// `exports/<period>/` with its `.sha256`, and a Parquet file also under
    /// `athena/<table>/period=<period>/<version>.parquet` for the Glue tables. Returns the
    /// export's key.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when S3 refuses a write.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_export_file(
        &self,
        period: &str,
        version: &str,
        name: &str,
        bytes: Vec<u8>,
        sha256: &str,
        content_type: &str,
        athena_table: Option<&str>,
    ) -> Result<String, StoreError> {
        if let Some(table) = athena_table {
            self.put(
                &athena_object_key(table, period, version),
                bytes.clone(),
                content_type,
                "PutObject athena export",
            )
            .await?;
        }
        self.put_export_as(period, name, bytes, sha256, content_type)
            .await
    }

    /// [`S3SnapshotStore::put_export`] with the object's content type.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when S3 refuses a write.
    pub async fn put_export_as(
        &self,
        period: &str,
        name: &str,
        bytes: Vec<u8>,
        sha256: &str,
        content_type: &str,
    ) -> Result<String, StoreError> {
        let key = format!("exports/{period}/{name}");
        for (object, body, content_type) in [
            (key.clone(), bytes, content_type),
            (
                format!("{key}.sha256"),
                format!("{sha256}  {name}\n").into_bytes(),
                "text/plain; charset=utf-8",
            ),
        ] {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(&object)
                .content_type(content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| StoreError::Unavailable {
                    operation: "PutObject export",
                    message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                })?;
        }
        Ok(key)
    }

    /// Read a snapshot written by [`SnapshotStore::put_snapshot`] (the input of criteria
    /// simulation and of tests).
    ///
    /// # Errors
    /// [`StoreError`]: the object is missing or unreadable, or a line is not a snapshot line
    /// (the error names the key and line number).
    pub async fn read_snapshot(&self, key: &str) -> Result<Vec<SnapshotLine>, StoreError> {
        let body = self.get(key, "GetObject snapshot").await?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                message: format!("not gzip text: {e}"),
            })?;
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| StoreError::Corrupt {
                    key: key.to_owned(),
                    message: format!("line {}: {e}", i + 1),
                })
            })
            .collect()
    }

    /// One object's bytes.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] when the object is missing or may not be read,
    /// [`StoreError::Unavailable`] when S3 cannot be reached.
    pub async fn get(&self, key: &str, operation: &'static str) -> Result<Vec<u8>, StoreError> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                let message = format!(
                    "s3://{}/{key}: {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                );
                match e {
                    aws_sdk_s3::error::SdkError::ServiceError(ref se)
                        if se.raw().status().is_client_error() =>
                    {
                        StoreError::Rejected { operation, message }
                    }
                    _ => StoreError::Unavailable { operation, message },
                }
            })?;
        Ok(object
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Unavailable {
                operation,
                message: format!("s3://{}/{key}: {e}", self.bucket),
            })?
            .into_bytes()
            .to_vec())
    }

    /// Every object under `prefix` (all pages of the listing), in key order.
    ///
    /// # Errors
    /// [`StoreError`] when S3 refuses the listing.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::Unavailable {
                operation: "ListObjectsV2",
                message: format!(
                    "s3://{}/{prefix}: {}",
                    self.bucket,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ),
            })?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                out.push(StoredObject {
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0),
                    last_modified: object
                        .last_modified()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Put one object (no checksum beside it).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when S3 refuses the write.
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
        operation: &'static str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let message = aws_sdk_s3::error::DisplayErrorContext(&e).to_string();
                match e {
                    aws_sdk_s3::error::SdkError::ServiceError(ref se)
                        if se.raw().status().is_client_error() =>
                    {
                        StoreError::Rejected { operation, message }
                    }
                    _ => StoreError::Unavailable { operation, message },
                }
            })
    }
}

impl S3SnapshotStore {
    /// Delete every version of `key` but `keep` (a versioned bucket keeps what an erasure
    /// rewrote); returns how many were deleted. An unversioned bucket has none to delete.
    async fn delete_versions(&self, key: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        let unavailable = |operation: &'static str| {
            move |e: String| StoreError::Unavailable {
                operation,
                message: format!("s3://{}/{key}: {e}", self.bucket),
            }
        };
        let mut deleted = 0;
        let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| {
                    unavailable("ListObjectVersions")(
                        aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                    )
                })?;
            let versions = page
                .versions()
                .iter()
                .filter_map(|v| Some((v.key()?, v.version_id()?)))
                .chain(
                    page.delete_markers()
                        .iter()
                        .filter_map(|m| Some((m.key()?, m.version_id()?))),
                );
            for (k, version) in versions {
                // An unversioned bucket lists its one object as version "null": nothing older.
                if k != key || Some(version) == keep || version == "null" {
                    continue;
                }
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .version_id(version)
                    .send()
                    .await
                    .map_err(|e| {
                        unavailable("DeleteObject version")(
                            aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                        )
                    })?;
                deleted += 1;
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        Ok(deleted)
    }
}

/// `text` (JSON lines) without the lines about lead `id` — snapshot lines (`lead.id`) and
/// quarantine records (`lead_id`) — and how many were removed. Lines that are not JSON are
/// kept as they are.
fn without_lead(text: &[u8], id: &LeadId) -> (Vec<u8>, u64) {
    let mut kept = Vec::with_capacity(text.len());
    let mut removed = 0;
    for line in text.split_inclusive(|b| *b == b'\n') {
        let about = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .is_some_and(|v| {
                let of = v
                    .pointer("/lead/id")
                    .or_else(|| v.get("lead_id"))
                    .and_then(serde_json::Value::as_str);
                of == Some(id.as_str())
            });
        if about {
            removed += 1;
        } else {
            kept.extend_from_slice(line);
        }
    }
    (kept, removed)
}

/// `snapshots/<date>/<run>/<slice>.jsonl.gz`
pub fn snapshot_object_key(key: &SnapshotKey) -> String {
    format!(
        "snapshots/{}/{}/{:05}.jsonl.gz",
        key.date, key.run_id, key.slice
    )
}

/// `athena/<table>/period=<period>/<version>.parquet`: where the template's Glue tables read
/// (partition projection on `period`).
pub fn athena_object_key(table: &str, period: &str, version: &str) -> String {
    format!("athena/{table}/period={period}/{version}.parquet")
}

/// `quarantine/<run>/<slice>.jsonl`
pub fn quarantine_object_key(key: &SnapshotKey) -> String {
    format!("quarantine/{}/{:05}.jsonl", key.run_id, key.slice)
}

/// A slice's snapshot as gzip'd JSON Lines, compressed as pages are appended: the slice holds
/// about 1/10 of the text (a few hundred bytes per lead), not the scored leads themselves.
pub struct S3SnapshotWriter {
    store: S3SnapshotStore,
    object: String,
    gz: GzEncoder<Vec<u8>>,
    lines: usize,
}

impl std::fmt::Debug for S3SnapshotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3SnapshotWriter")
            .field("object", &self.object)
            .field("lines", &self.lines)
            .finish_non_exhaustive()
    }
}

impl SnapshotWriter for S3SnapshotWriter {
    fn append(&mut self, lines: &[SnapshotLine]) -> Result<(), StoreError> {
        for line in lines {
            serde_json::to_writer(&mut self.gz, line)
                .and_then(|()| self.gz.write_all(b"\n").map_err(serde_json::Error::io))
                .map_err(|e| {
                    rejected(
                        "PutObject snapshot",
                        format!("line {} (lead {}): {e}", self.lines + 1, line.lead.id),
                    )
                })?;
            self.lines += 1;
        }
        Ok(())
    }

    async fn finish(self) -> Result<String, StoreError> {
        let body = self
            .gz
            .finish()
            .map_err(|e| rejected("PutObject snapshot", e))?;
        self.store
            .put(&self.object, body, "application/gzip", "PutObject snapshot")
            .await?;
        Ok(self.object)
    }
}

impl SnapshotStore for S3SnapshotStore {
    type Writer = S3SnapshotWriter;

    fn snapshot_writer(&self, key: &SnapshotKey) -> S3SnapshotWriter {
        S3SnapshotWriter {
            store: self.clone(),
            object: snapshot_object_key(key),
            gz: GzEncoder::new(Vec::with_capacity(64 * 1024), Compression::default()),
            lines: 0,
        }
    }

    async fn put_quarantine(
        &self,
        key: &SnapshotKey,
        records: &[Rejected],
    ) -> Result<String, StoreError> {
        let object = quarantine_object_key(key);
        self.put(
            &object,
            jsonl(records, "PutObject quarantine")?,
            "application/x-ndjson",
            "PutObject quarantine",
        )
        .await?;
        Ok(object)
    }

    async fn erase_lead(&self, id: &LeadId) -> Result<SnapshotsErased, StoreError> {
        let mut erased = SnapshotsErased::default();
        for prefix in ["snapshots/", "quarantine/"] {
            for object in self.list(prefix).await? {
                erased.objects_read += 1;
                let bytes = self.get(&object.key, "GetObject erase").await?;
                let gzipped = bytes.starts_with(&[0x1f, 0x8b]);
                let text = if gzipped {
                    let mut text = Vec::new();
                    flate2::read::MultiGzDecoder::new(&bytes[..])
                        .read_to_end(&mut text)
                        .map_err(|e| StoreError::Corrupt {
                            key: object.key.clone(),
                            message: format!("not gzip: {e}"),
                        })?;
                    text
                } else {
                    bytes
                };
                let (kept, removed) = without_lead(&text, id);
                if removed == 0 {
                    continue;
                }
                let (body, content_type) = if gzipped {
                    let mut gz =
                        GzEncoder::new(Vec::with_capacity(kept.len() / 4), Compression::default());
                    gz.write_all(&kept)
                        .and_then(|()| gz.finish())
                        .map(|b| (b, "application/gzip"))
                        .map_err(|e| rejected("PutObject erase", e))?
                } else {
                    (kept, "application/x-ndjson")
                };
                let current = self
                    .client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(&object.key)
                    .content_type(content_type)
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map_err(|e| StoreError::Unavailable {
                        operation: "PutObject erase",
                        message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                    })?
                    .version_id;
                erased.objects_rewritten += 1;
                erased.lines_removed += removed;
                erased.versions_deleted += self
                    .delete_versions(&object.key, current.as_deref())
                    .await?;
            }
        }
        Ok(erased)
    }

    async fn put_dashboard(&self, period: &str, html: String) -> Result<String, StoreError> {
        let object = format!("dashboards/{period}/index.html");
        self.put(
            &object,
            html.into_bytes(),
            "text/html; charset=utf-8",
            "PutObject dashboard",
        )
        .await?;
        Ok(object)
    }
}
