//! Published criteria versions: the document in S3 (`criteria/<id>/<version>.toml`, never
//! overwritten), a record per version and the active pointer in DynamoDB (`CRITERIA` /
//! `V#<version>`, `ACTIVE`).
//!
//! Only a valid document signed by both sales and marketing is published, and only a
//! published version becomes active; a refused publication leaves the active version as it was.

use crate::keys::{PK, SK};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;
use leadsync_domain::Criteria;
use sha2::{Digest, Sha256};

/// Why a publication or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum CriteriaStoreError {
    #[error("the document is invalid:\n{0}")]
    Invalid(#[from] leadsync_domain::CriteriaError),
    #[error(
        "{id} version {version} is not signed by {missing}: it can be checked and simulated, not published"
    )]
    Unsigned {
        id: String,
        version: String,
        missing: &'static str,
    },
    #[error(
        "{id} version {version} is already published with different content; publish it under a new version"
    )]
    VersionTaken { id: String, version: String },
    #[error("the active criteria {key} are unreadable: {message}")]
    Corrupt { key: String, message: String },
    #[error("{operation} failed: {message}")]
    Storage {
        operation: &'static str,
        message: String,
    },
}

/// What a publication did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub version: String,
    pub key: String,
    pub sha256: String,
    /// False when this exact version was already published (publishing is idempotent).
    pub new: bool,
}

/// The criteria registry over the bucket and the table.
#[derive(Debug, Clone)]
pub struct CriteriaStore {
    s3: aws_sdk_s3::Client,
    dynamo: aws_sdk_dynamodb::Client,
    bucket: String,
    table: String,
}

const CRITERIA_PK: &str = "CRITERIA";
const ACTIVE_SK: &str = "ACTIVE";

fn storage(operation: &'static str, e: impl std::fmt::Display) -> CriteriaStoreError {
    CriteriaStoreError::Storage {
        operation,
        message: e.to_string(),
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl CriteriaStore {
    pub fn new(
        s3: aws_sdk_s3::Client,
        dynamo: aws_sdk_dynamodb::Client,
        bucket: impl Into<String>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            s3,
            dynamo,
            bucket: bucket.into(),
            table: table.into(),
        }
    }

    /// Validate, store and activate a document. `source_name` prefixes error locations.
    ///
    /// # Errors
    /// [`CriteriaStoreError`]: invalid, unsigned, a version already published with other
    /// content, or storage failures. In every error case the active version is unchanged.
    pub async fn publish(
        &self,
        source_name: &str,
        text: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Published, CriteriaStoreError> {
        let criteria = Criteria::parse(source_name, text)?;
        let missing = match (&criteria.sales_sign_off, &criteria.marketing_sign_off) {
            (Some(_), Some(_)) => None,
            (None, Some(_)) => Some("sales"),
            (Some(_), None) => Some("marketing"),
            (None, None) => Some("sales or marketing"),
        };
        if let Some(missing) = missing {
            return Err(CriteriaStoreError::Unsigned {
                id: criteria.id,
                version: criteria.version,
                missing,
            });
        }
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let key = format!("criteria/{}/{}.toml", criteria.id, criteria.version);
        let version_sk = format!("V#{}#{}", criteria.id, criteria.version);

        // The version record is written only if absent: a version's content never changes.
        let recorded = self
            .dynamo
            .put_item()
            .table_name(&self.table)
            .item(PK, s(CRITERIA_PK))
            .item(SK, s(&version_sk))
            .item("id", s(&criteria.id))
            .item("version", s(&criteria.version))
            .item("key", s(&key))
            .item("sha256", s(&sha256))
            .item("published_at", s(now.to_rfc3339()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        let new = match recorded {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                let existing = self
                    .dynamo
                    .get_item()
                    .table_name(&self.table)
                    .key(PK, s(CRITERIA_PK))
                    .key(SK, s(&version_sk))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| {
                        storage(
                            "GetItem criteria version",
                            aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                        )
                    })?;
                let same = existing
                    .item
                    .as_ref()
                    .and_then(|i| i.get("sha256"))
                    .and_then(|v| v.as_s().ok())
                    == Some(&sha256);
                if !same {
                    return Err(CriteriaStoreError::VersionTaken {
                        id: criteria.id,
                        version: criteria.version,
                    });
                }
                false
            }
            Err(e) => {
                return Err(storage(
                    "PutItem criteria version",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                ));
            }
        };
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/toml")
            .body(ByteStream::from(text.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| {
                storage(
                    "PutObject criteria",
                    aws_sdk_s3::error::DisplayErrorContext(&e),
                )
            })?;
        // Only now, with the document stored, does the pointer move.
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .item(PK, s(CRITERIA_PK))
            .item(SK, s(ACTIVE_SK))
            .item("id", s(&criteria.id))
            .item("version", s(&criteria.version))
            .item("key", s(&key))
            .item("sha256", s(&sha256))
            .item("activated_at", s(now.to_rfc3339()))
            .send()
            .await
            .map_err(|e| {
                storage(
                    "PutItem criteria pointer",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                )
            })?;
        Ok(Published {
            id: criteria.id,
            version: criteria.version,
            key,
            sha256,
            new,
        })
    }

    /// The active document (its key and text, checked against the recorded hash), if any.
    ///
    /// # Errors
    /// [`CriteriaStoreError`] when the pointer or the object cannot be read or do not match.
    pub async fn active(&self) -> Result<Option<(String, String)>, CriteriaStoreError> {
        match self.pointer(ACTIVE_SK).await? {
            None => Ok(None),
            Some(p) => Ok(Some((p.key.clone(), self.read(&p).await?))),
        }
    }

    /// Which version is active (one GetItem; the document is not read).
    ///
    /// # Errors
    /// [`CriteriaStoreError`] when the pointer cannot be read.
    pub async fn active_pointer(&self) -> Result<Option<Pointer>, CriteriaStoreError> {
        self.pointer(ACTIVE_SK).await
    }

    /// A published version's document (key and text), whether active or not.
    ///
    /// # Errors
    /// [`CriteriaStoreError`] when it cannot be read or does not match its hash.
    pub async fn version(
        &self,
        id: &str,
        version: &str,
    ) -> Result<Option<(String, String)>, CriteriaStoreError> {
        match self.pointer(&format!("V#{id}#{version}")).await? {
            None => Ok(None),
            Some(p) => Ok(Some((p.key.clone(), self.read(&p).await?))),
        }
    }

    async fn pointer(&self, sk: &str) -> Result<Option<Pointer>, CriteriaStoreError> {
        let found = self
            .dynamo
            .get_item()
            .table_name(&self.table)
            .key(PK, s(CRITERIA_PK))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                storage(
                    "GetItem criteria pointer",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                )
            })?;
        let Some(item) = found.item else {
            return Ok(None);
        };
        let field = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        match (field("id"), field("version"), field("key"), field("sha256")) {
            (Some(id), Some(version), Some(key), Some(sha256)) => Ok(Some(Pointer {
                id,
                version,
                key,
                sha256,
            })),
            _ => Err(CriteriaStoreError::Corrupt {
                key: format!("{CRITERIA_PK}/{sk}"),
                message: "missing id, version, key or sha256".into(),
            }),
        }
    }

    /// The document a pointer names, checked against its hash.
    async fn read(&self, pointer: &Pointer) -> Result<String, CriteriaStoreError> {
        let text = self.read_upload(&pointer.key).await?;
        if hex::encode(Sha256::digest(text.as_bytes())) != pointer.sha256 {
            return Err(CriteriaStoreError::Corrupt {
                key: pointer.key.clone(),
                message: "content does not match the published sha256".into(),
            });
        }
        Ok(text)
    }

    /// Read a document from the bucket as it is (no published-hash check): the input of a
    /// publish triggered by an upload under `criteria/`, and of [`Self::read`].
    ///
    /// # Errors
    /// [`CriteriaStoreError`] when it cannot be read or is not UTF-8.
    pub async fn read_upload(&self, key: &str) -> Result<String, CriteriaStoreError> {
        let object = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                storage(
                    "GetObject criteria",
                    aws_sdk_s3::error::DisplayErrorContext(&e),
                )
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| storage("GetObject criteria", e))?
            .into_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|e| CriteriaStoreError::Corrupt {
            key: key.to_owned(),
            message: e.to_string(),
        })
    }
}

/// A criteria pointer: the active version, or one published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    pub id: String,
    pub version: String,
    pub key: String,
    pub sha256: String,
}
