//! A counting proxy in front of moto: every AWS request passes through it unchanged and is
//! counted by operation (`DynamoDB.BatchWriteItem`, `S3.PUT`, …), with the DynamoDB items each
//! write carries. Benchmarks use it to report DynamoDB writes per 1,000 leads without touching
//! the code they measure. Loopback only.
//!
//! It can also stand for an AWS having a bad night ([`CountingProxy::set_faults`]): a share of
//! DynamoDB requests answered `ProvisionedThroughputExceededException`, `ThrottlingException`
//! or `InternalServerError`, and of S3 requests `SlowDown` (503) or `InternalError` (500) — the
//! bodies and statuses AWS sends, so the SDK and our retry policy see exactly what they would.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Requests and DynamoDB items written, by operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: BTreeMap<String, u64>,
    /// Items written by DynamoDB write operations (a BatchWriteItem counts each put and delete).
    pub items_written: u64,
    /// Of the DynamoDB reads (GetItem, BatchGetItem), those of the firmographic cache: every
    /// key they ask for is a `FIRMO#<domain>` item.
    pub cache_reads: u64,
}

impl Counts {
    /// DynamoDB write requests: PutItem, UpdateItem, DeleteItem, BatchWriteItem,
    /// TransactWriteItems.
    pub fn dynamo_write_requests(&self) -> u64 {
        self.requests
            .iter()
            .filter(|(op, _)| {
                [
                    "DynamoDB.PutItem",
                    "DynamoDB.UpdateItem",
                    "DynamoDB.DeleteItem",
                    "DynamoDB.BatchWriteItem",
                    "DynamoDB.TransactWriteItems",
                ]
                .contains(&op.as_str())
            })
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests whose operation starts with `prefix` (`"DynamoDB."`, `"S3."`).
    pub fn requests_of(&self, prefix: &str) -> u64 {
        self.requests
            .iter()
            .filter(|(op, _)| op.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Shares of requests answered with an AWS error instead of being forwarded (0–1 each).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AwsFaults {
    /// DynamoDB: `ProvisionedThroughputExceededException` or `ThrottlingException` (400).
    pub dynamo_throttle: f64,
    /// DynamoDB: `InternalServerError` (500).
    pub dynamo_500: f64,
    /// S3: `SlowDown` (503) or `InternalError` (500), half each.
    pub s3: f64,
}

#[derive(Debug)]
struct Shared {
    target: String,
    client: reqwest::Client,
    counts: Mutex<Counts>,
    faults: Mutex<(AwsFaults, u64)>,
}

/// A deterministic draw in 0..1 from a counter (no RNG state to share across requests).
fn draw(n: u64) -> f64 {
    let mut x = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The error AWS would answer for `op`, if the faults pick this request.
fn injected(op: &str, faults: AwsFaults, n: u64) -> Option<Response> {
    let roll = draw(n);
    let json = |status: u16, kind: &str, message: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-errortype", kind)
            .body(Body::from(format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"{message}"}}"#
            )))
            .unwrap_or_default()
    };
    let xml = |status: u16, code: &str, message: &str| {
        Response::builder()
            .status(status)
            .header("content-type", "application/xml")
            .body(Body::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault{n}</RequestId></Error>"
            )))
            .unwrap_or_default()
    };
    if op.starts_with("DynamoDB.") {
        if roll < faults.dynamo_throttle {
            return Some(if n % 2 == 0 {
                json(
                    400,
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                )
            } else {
                json(
                    400,
                    "ThrottlingException",
                    "Rate of requests exceeds the allowed throughput.",
                )
            });
        }
        if roll < faults.dynamo_throttle + faults.dynamo_500 {
            return Some(json(500, "InternalServerError", "Internal server error"));
        }
    } else if op.starts_with("S3.") && roll < faults.s3 {
        return Some(if n % 2 == 0 {
            xml(503, "SlowDown", "Please reduce your request rate.")
        } else {
            xml(
                500,
                "InternalError",
                "We encountered an internal error. Please try again.",
            )
        });
    }
    None
}

/// The proxy; stops when dropped.
#[derive(Debug)]
pub struct CountingProxy {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Listen on a free 127.0.0.1 port and forward everything to `target` (moto's endpoint).
    ///
    /// # Errors
    /// The port cannot be bound or the HTTP client cannot be built.
    pub async fn start(target: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            target: target.trim_end_matches('/').to_owned(),
            client,
            counts: Mutex::new(Counts::default()),
            faults: Mutex::new((AwsFaults::default(), 0)),
        });
        let app = axum::Router::new()
            .fallback(forward)
            // S3 puts (a slice's snapshot) run far past axum's 2 MB default.
            .layer(axum::extract::DefaultBodyLimit::max(PROXY_BODY_LIMIT))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, shared, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Answer a share of requests with AWS's errors from now on ([`AwsFaults::default`]: none).
    pub fn set_faults(&self, faults: AwsFaults) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0 = faults;
    }

    /// Start counting from zero.
    pub fn reset(&self) {
        *self
            .shared
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Counts::default();
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The operation a request is, and the DynamoDB items it writes.
fn classify(method: &Method, headers: &HeaderMap, body: &[u8]) -> (String, u64) {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(op) = target.strip_prefix("DynamoDB_20120810.") {
        let items = match op {
            "PutItem" | "UpdateItem" | "DeleteItem" => 1,
            "BatchWriteItem" | "TransactWriteItems" => {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
                match op {
                    "BatchWriteItem" => v
                        .get("RequestItems")
                        .and_then(serde_json::Value::as_object)
                        .map_or(0, |tables| {
                            tables
                                .values()
                                .filter_map(serde_json::Value::as_array)
                                .map(|a| a.len() as u64)
                                .sum()
                        }),
                    _ => v
                        .get("TransactItems")
                        .and_then(serde_json::Value::as_array)
                        .map_or(0, |a| a.len() as u64),
                }
            }
            _ => 0,
        };
        return (format!("DynamoDB.{op}"), items);
    }
    if let Some(service) = target.split('.').next().filter(|s| !s.is_empty()) {
        return (
            format!("{service}.{}", target.rsplit('.').next().unwrap_or("")),
            0,
        );
    }
    let form = std::str::from_utf8(body).unwrap_or_default();
    if let Some(action) = form.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return (format!("Query.{action}"), 0);
    }
    (format!("S3.{method}"), 0)
}

/// A GetItem or BatchGetItem whose keys are all firmographic cache items (`pk` `FIRMO#…`).
fn reads_firmographic_cache(op: &str, body: &[u8]) -> bool {
    if op != "DynamoDB.GetItem" && op != "DynamoDB.BatchGetItem" {
        return false;
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let keys: Vec<&serde_json::Value> = match op {
        "DynamoDB.GetItem" => v.get("Key").into_iter().collect(),
        _ => v
            .get("RequestItems")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flat_map(|tables| tables.values())
            .filter_map(|t| t.get("Keys").and_then(serde_json::Value::as_array))
            .flatten()
            .collect(),
    };
    !keys.is_empty()
        && keys.iter().all(|k| {
            k.pointer("/pk/S")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|pk| pk.starts_with("FIRMO#"))
        })
}

/// The largest request body the proxy forwards (S3's single-put limit is 5 GB; no test or bench
/// writes near this).
const PROXY_BODY_LIMIT: usize = 1 << 30;

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (op, items) = classify(&method, &headers, &body);
    let fault = {
        let mut faults = shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        faults.1 += 1;
        injected(&op, faults.0, faults.1)
    };
    if let Some(fault) = fault {
        let mut counts = shared
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.requests.entry(format!("fault.{op}")).or_default() += 1;
        return fault;
    }
    {
        let mut counts = shared
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.cache_reads += u64::from(reads_firmographic_cache(&op, &body));
        *counts.requests.entry(op).or_default() += 1;
        counts.items_written += items;
    }
    let url = format!(
        "{}{}",
        shared.target,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = shared.client.request(method, url).body(body);
    for (name, value) in &headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(a) => a,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("counting proxy: {e}")))
                .unwrap_or_default();
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != axum::http::header::TRANSFER_ENCODING
            && name != axum::http::header::CONTENT_LENGTH
        {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_items_are_read_from_each_protocol() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-target",
            "DynamoDB_20120810.BatchWriteItem".parse().unwrap(),
        );
        let body = br#"{"RequestItems":{"t":[{"PutRequest":{}},{"DeleteRequest":{}}],"u":[{"PutRequest":{}}]}}"#;
        assert_eq!(
            classify(&Method::POST, &h, body),
            ("DynamoDB.BatchWriteItem".into(), 3)
        );
        h.insert("x-amz-target", "DynamoDB_20120810.Query".parse().unwrap());
        assert_eq!(
            classify(&Method::POST, &h, b"{}"),
            ("DynamoDB.Query".into(), 0)
        );
        assert_eq!(
            classify(&Method::PUT, &HeaderMap::new(), b"data"),
            ("S3.PUT".into(), 0)
        );
        assert_eq!(
            classify(
                &Method::POST,
                &HeaderMap::new(),
                b"Action=SendMessage&Version=1"
            ),
            ("Query.SendMessage".into(), 0)
        );
        let cache = br#"{"RequestItems":{"t":{"Keys":[{"pk":{"S":"FIRMO#acme.com"},"sk":{"S":"pdl"}},{"pk":{"S":"FIRMO#b.io"},"sk":{"S":"pdl"}}]}}}"#;
        assert!(reads_firmographic_cache("DynamoDB.BatchGetItem", cache));
        let mixed = br#"{"RequestItems":{"t":{"Keys":[{"pk":{"S":"FIRMO#acme.com"},"sk":{"S":"pdl"}},{"pk":{"S":"LEAD#1"},"sk":{"S":"STATE"}}]}}}"#;
        assert!(!reads_firmographic_cache("DynamoDB.BatchGetItem", mixed));
        let one = br#"{"TableName":"t","Key":{"pk":{"S":"FIRMO#acme.com"},"sk":{"S":"pdl"}}}"#;
        assert!(reads_firmographic_cache("DynamoDB.GetItem", one));
        assert!(!reads_firmographic_cache("DynamoDB.Query", one));
        let mut counts = Counts::default();
        counts.requests.insert("DynamoDB.BatchWriteItem".into(), 4);
        counts.requests.insert("DynamoDB.PutItem".into(), 2);
        counts.requests.insert("DynamoDB.Query".into(), 9);
        assert_eq!(counts.dynamo_write_requests(), 6);
        assert_eq!(counts.requests_of("DynamoDB."), 15);
    }
}
