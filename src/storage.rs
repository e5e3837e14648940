//! External storage for large payloads (`[external_storage]`): a payload
//! whose encoded (encrypted) size reaches a namespace's threshold is stored
//! in the user's own S3 bucket and replaced by a reference payload in the
//! Temporal SDKs' External Storage format, so Temporal stores only the
//! reference; on the way back references are fetched and inlined, so
//! workers need no External Storage configuration of their own.
//!
//! The format is the SDKs' S3 driver's (`aws.s3driver`): the reference is a
//! `json/protobuf` payload of `temporal.api.sdk.v1.ExternalStorageReference`
//! (`{"claimData":{"bucket","hash_algorithm":"sha256","hash_value","key"},
//! "driverName":"aws.s3driver"}`) with `external_payloads` giving the
//! stored size, and the object is the serialized (encrypted) `Payload`.
//! Objects are content-addressed (`…/d/sha256/<hex>`), so a retried call
//! makes no duplicate; references an SDK's own S3 driver wrote resolve too,
//! when sealgate can read their bucket.
//!
//! Uploads and downloads are bounded in number at once; a failure is an
//! error naming the store, and nothing is forwarded after a failed upload.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::{OnceCell, Semaphore};

use crate::wire;

/// The SDKs' S3 driver name, written in every reference sealgate makes.
pub const DRIVER: &str = "aws.s3driver";
/// `messageType` of a reference payload.
pub const REFERENCE_TYPE: &str = "temporal.api.sdk.v1.ExternalStorageReference";
/// Default threshold, as in the SDKs: 256 KiB.
pub const DEFAULT_THRESHOLD: usize = 256 << 10;
/// The largest object sealgate fetches (the SDK driver's own limit).
pub const MAX_OBJECT: usize = 50 << 20;

/// Where and when payloads of some namespaces are offloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// Exact name or pattern (`*`, `?`).
    pub namespace: String,
    pub enabled: bool,
    pub bucket: Option<String>,
    pub threshold: Option<usize>,
}

/// The `[external_storage]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Offload for namespaces no policy names.
    pub enabled: bool,
    pub bucket: String,
    /// An S3-compatible endpoint (MinIO, an emulator); AWS when absent.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Prepended to every object key.
    pub prefix: String,
    /// Encoded size from which a payload is offloaded.
    pub threshold: usize,
    /// Path-style addressing (`endpoint/bucket/key`), for most S3-compatible
    /// stores.
    pub path_style: bool,
    /// Uploads and downloads at once, across all calls.
    pub max_concurrent: usize,
    /// Per-namespace policies, first match wins.
    pub namespaces: Vec<NamespacePolicy>,
}

/// What one namespace does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offload {
    pub bucket: String,
    pub threshold: usize,
}

/// The store could not be used.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("external storage s3://{bucket}/{key}: {reason}")]
    Call {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error(
        "external storage s3://{bucket}/{key}: the object does not match its reference's sha256 (changed or corrupt)"
    )]
    Mismatch { bucket: String, key: String },
    #[error("a storage reference cannot be read: {0}")]
    BadReference(String),
}

/// A parsed reference: where the stored payload is and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    pub bucket: String,
    pub key: String,
    /// Lower-case hex SHA-256 of the object.
    pub sha256: String,
}

/// The built store: the client (made on first use), the bound on calls at
/// once, and the policies.
pub struct Store {
    config: StorageConfig,
    client: OnceCell<aws_sdk_s3::Client>,
    slots: Arc<Semaphore>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("bucket", &self.config.bucket)
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub fn new(config: StorageConfig) -> Store {
        let slots = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        Store {
            config,
            client: OnceCell::new(),
            slots,
        }
    }

    /// The offload policy of `namespace`: `None` when it stays inline.
    pub fn policy(&self, namespace: &str) -> Option<Offload> {
        let c = &self.config;
        let rule = c
            .namespaces
            .iter()
            .find(|p| crate::auth::glob(&p.namespace, namespace));
        let enabled = rule.map_or(c.enabled, |r| r.enabled);
        enabled.then(|| Offload {
            bucket: rule
                .and_then(|r| r.bucket.clone())
                .unwrap_or_else(|| c.bucket.clone()),
            threshold: rule.and_then(|r| r.threshold).unwrap_or(c.threshold),
        })
    }

    /// The content-addressed key of `object` for `namespace`, as the SDKs'
    /// S3 driver lays keys out: `<prefix>v0/ns/<namespace>/d/sha256/<hex>`.
    pub fn key(&self, namespace: &str, sha256: &str) -> String {
        let ns = if namespace.is_empty() {
            "null".to_string()
        } else {
            key_segment(namespace)
        };
        format!("{}v0/ns/{ns}/d/sha256/{sha256}", self.config.prefix)
    }

    async fn client(&self) -> &aws_sdk_s3::Client {
        self.client
            .get_or_init(|| async {
                let c = &self.config;
                let shared =
                    crate::aws::sdk_config(c.region.as_deref(), None, c.endpoint.as_deref()).await;
                let s3 = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.config.path_style)
                    .build();
                aws_sdk_s3::Client::from_conf(s3)
            })
            .await
    }

    /// Stores `object` at `bucket`/`key` unless it is there already (the
    /// key is its digest: same key, same bytes).
    pub async fn put(&self, bucket: &str, key: &str, object: Bytes) -> Result<(), StorageError> {
        let fail = |reason: String| StorageError::Call {
            bucket: bucket.to_string(),
            key: key.to_string(),
            reason,
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| fail("the store is shutting down".into()))?;
        let client = self.client().await;
        let head = client.head_object().bucket(bucket).key(key).send().await;
        if head.is_ok() {
            return Ok(());
        }
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/x-protobuf")
            .body(aws_sdk_s3::primitives::ByteStream::from(object))
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        Ok(())
    }

    /// Fetches the object `claim` names and checks its digest.
    pub async fn get(&self, claim: &Claim) -> Result<Bytes, StorageError> {
        let fail = |reason: String| StorageError::Call {
            bucket: claim.bucket.clone(),
            key: claim.key.clone(),
            reason,
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| fail("the store is shutting down".into()))?;
        let out = self
            .client()
            .await
            .get_object()
            .bucket(&claim.bucket)
            .key(&claim.key)
            .send()
            .await
            .map_err(|e| fail(describe(&e)))?;
        if out
            .content_length()
            .is_some_and(|n| n as usize > MAX_OBJECT)
        {
            return Err(fail(format!("the object is over {MAX_OBJECT} bytes")));
        }
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .into_bytes();
        if sha256_hex(&body) != claim.sha256 {
            return Err(StorageError::Mismatch {
                bucket: claim.bucket.clone(),
                key: claim.key.clone(),
            });
        }
        Ok(body)
    }
}

/// The error and what the service said, without the request (which may
/// carry a presigned URL or credentials), and what to check.
fn describe<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let code = e.code().unwrap_or("error");
            let message = e.message().unwrap_or("");
            let hint = match status {
                403 => " (check that sealgate's AWS credentials may read and write the bucket)",
                404 if code == "NoSuchBucket" => {
                    " (create the bucket, or fix [external_storage] bucket)"
                }
                _ => "",
            };
            format!("HTTP {status} {code} {message}{hint}")
        }
        other => crate::errors::error_chain(other),
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut s = String::with_capacity(64);
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A key path segment as the SDKs' driver writes one: percent-encoded
/// except `A-Za-z0-9!-_.*'()`.
fn key_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!-_.*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The reference payload for an object of `size` bytes: what Temporal
/// stores instead of the payload.
pub fn reference_payload(claim: &Claim, size: usize) -> Vec<u8> {
    // Keys sorted, compact, as the Python SDK writes it.
    let json = serde_json::json!({
        "claimData": {
            "bucket": claim.bucket,
            "hash_algorithm": "sha256",
            "hash_value": claim.sha256,
            "key": claim.key,
        },
        "driverName": DRIVER,
    })
    .to_string();
    let entry = |k: &str, v: &[u8], out: &mut Vec<u8>| {
        let mut e = Vec::with_capacity(k.len() + v.len() + 4);
        wire::write_len_field(1, k.as_bytes(), &mut e);
        wire::write_len_field(2, v, &mut e);
        wire::write_len_field(1, &e, out);
    };
    let mut out = Vec::with_capacity(json.len() + 128);
    entry("encoding", b"json/protobuf", &mut out);
    entry("messageType", REFERENCE_TYPE.as_bytes(), &mut out);
    wire::write_len_field(2, json.as_bytes(), &mut out);
    // external_payloads (3): ExternalPayloadDetails { size_bytes (1) }.
    let mut details = Vec::new();
    wire::write_varint(1 << 3, &mut details);
    wire::write_varint(size as u64, &mut details);
    wire::write_len_field(3, &details, &mut out);
    out
}

/// The claim of a reference payload: `None` when `payload` is not one;
/// an error when it is one sealgate cannot use.
pub fn parse_reference(
    encoding: Option<&[u8]>,
    message_type: Option<&[u8]>,
    data: &[u8],
) -> Result<Option<Claim>, StorageError> {
    let legacy = encoding == Some(b"json/external-storage-reference".as_slice());
    let current = encoding == Some(b"json/protobuf".as_slice())
        && message_type == Some(REFERENCE_TYPE.as_bytes());
    if !legacy && !current {
        return Ok(None);
    }
    let bad = |m: &str| StorageError::BadReference(m.to_string());
    let v: serde_json::Value =
        serde_json::from_slice(data).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let driver = v
        .get("driverName")
        .or_else(|| v.get("driver_name"))
        .and_then(|d| d.as_str())
        .unwrap_or_default();
    if driver != DRIVER {
        return Err(bad(&format!(
            "driver {driver:?}: sealgate reads only {DRIVER:?} references"
        )));
    }
    let claim = v
        .get("claimData")
        .or_else(|| v.get("claim_data"))
        .ok_or_else(|| bad("no claimData"))?;
    let field = |k: &str| {
        claim
            .get(k)
            .and_then(|s| s.as_str())
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("claimData has no {k}")))
    };
    let algorithm = field("hash_algorithm")?;
    if algorithm != "sha256" {
        return Err(bad(&format!("hash {algorithm:?}: only sha256 is read")));
    }
    Ok(Some(Claim {
        bucket: field("bucket")?,
        key: field("key")?,
        sha256: field("hash_value")?.to_ascii_lowercase(),
    }))
}

/// True when `metadata` and `data` are exactly a reference as sealgate
/// writes one: the two metadata entries, and JSON with only the driver and
/// the four claim fields, all strings. The outgoing audit lets such a
/// payload through in clear (it names an object, it carries no data);
/// anything more could smuggle plaintext, and is refused.
pub fn is_own_reference(metadata: &[(&[u8], &[u8])], data: &[u8]) -> bool {
    let mut keys: Vec<&[u8]> = metadata.iter().map(|(k, _)| *k).collect();
    keys.sort();
    if keys != [b"encoding".as_slice(), b"messageType".as_slice()] {
        return false;
    }
    let get = |k: &[u8]| metadata.iter().find(|(m, _)| *m == k).map(|(_, v)| *v);
    if !matches!(
        parse_reference(get(b"encoding"), get(b"messageType"), data),
        Ok(Some(_))
    ) {
        return false;
    }
    let Ok(serde_json::Value::Object(top)) = serde_json::from_slice(data) else {
        return false;
    };
    let claim_ok = match top.get("claimData") {
        Some(serde_json::Value::Object(c)) => {
            c.len() == 4
                && ["bucket", "hash_algorithm", "hash_value", "key"]
                    .iter()
                    .all(|k| c.get(*k).is_some_and(|v| v.is_string()))
        }
        _ => false,
    };
    top.len() == 2 && claim_ok && top.get("driverName").is_some_and(|v| v == DRIVER)
}

#[cfg(test)]
mod tests;
