//! A Lambda Runtime API on 127.0.0.1 for tests and the cold-start bench: the function binary
//! is started as a child process with `AWS_LAMBDA_RUNTIME_API` pointing here, polls
//! `/invocation/next` exactly as in Lambda, and answers on `/response` or `/error`.
//! The moment of the first poll is recorded: process start → first poll is the cold start.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

/// What a function answered to one invocation.
pub type Answer = Result<serde_json::Value, serde_json::Value>;

#[derive(Debug, Default)]
struct Inner {
    first_poll: Option<Instant>,
    init_error: Option<String>,
    waiting: HashMap<String, oneshot::Sender<Answer>>,
}

/// A queued invocation: request id and payload.
type Invocation = (String, Vec<u8>);

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    polled: Arc<Notify>,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
}

/// The Runtime API server.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    polled: Arc<Notify>,
    send: mpsc::UnboundedSender<Invocation>,
    next_id: std::sync::atomic::AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn next(State(s): State<Shared>) -> impl IntoResponse {
    {
        let mut inner = lock(&s.inner);
        if inner.first_poll.is_none() {
            inner.first_poll = Some(Instant::now());
        }
    }
    s.polled.notify_waiters();
    let received = s.events.lock().await.recv().await;
    let Some((id, body)) = received else {
        return (StatusCode::GONE, HeaderMap::new(), Vec::new());
    };
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 900_000;
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(&mut headers, "lambda-runtime-aws-request-id", id);
    put(
        &mut headers,
        "lambda-runtime-deadline-ms",
        deadline.to_string(),
    );
    put(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:000000000000:function:local".into(),
    );
    put(
        &mut headers,
        "lambda-runtime-trace-id",
        "Root=1-local".into(),
    );
    (StatusCode::OK, headers, body)
}

fn answer(s: &Shared, id: &str, value: Answer) -> StatusCode {
    match lock(&s.inner).waiting.remove(id) {
        Some(tx) => {
            let _ = tx.send(value);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, Ok(json(&body)))
}

async fn error(State(s): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    answer(&s, &id, Err(json(&body)))
}

async fn init_error(State(s): State<Shared>, body: Bytes) -> StatusCode {
    lock(&s.inner).init_error = Some(String::from_utf8_lossy(&body).into_owned());
    s.polled.notify_waiters();
    StatusCode::ACCEPTED
}

impl RuntimeApi {
    /// Start on a free 127.0.0.1 port.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (send, receive) = mpsc::unbounded_channel();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let polled = Arc::new(Notify::new());
        let shared = Shared {
            inner: Arc::clone(&inner),
            polled: Arc::clone(&polled),
            events: Arc::new(tokio::sync::Mutex::new(receive)),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            inner,
            polled,
            send,
            next_id: std::sync::atomic::AtomicU64::new(1),
            server,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The environment Lambda gives a function, pointing at this API.
    pub fn lambda_env(&self, function: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Wait until the function first polls for work (or reports an init error); the instant of
    /// the poll.
    ///
    /// # Errors
    /// The init error the function reported, or a timeout.
    pub async fn first_poll(&self, timeout: Duration) -> Result<Instant, String> {
        let give_up = Instant::now() + timeout;
        loop {
            let notified = self.polled.notified();
            {
                let inner = lock(&self.inner);
                if let Some(at) = inner.first_poll {
                    return Ok(at);
                }
                if let Some(e) = &inner.init_error {
                    return Err(format!("init error: {e}"));
                }
            }
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("the function never polled the Runtime API".into());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(50)), notified).await;
        }
    }

    /// Invoke the function with `payload` and wait for its answer.
    ///
    /// # Errors
    /// `Err` with the function's error document, or a description if it never answered.
    pub async fn invoke(&self, payload: &serde_json::Value, timeout: Duration) -> Answer {
        let id = format!(
            "req-{}",
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.invoke_as(&id, payload, timeout).await
    }

    /// [`RuntimeApi::invoke`] under a request id of the caller's: Lambda retries an
    /// asynchronous invocation (after a crash or a timeout) under the same id.
    ///
    /// # Errors
    /// As [`RuntimeApi::invoke`].
    pub async fn invoke_as(
        &self,
        id: &str,
        payload: &serde_json::Value,
        timeout: Duration,
    ) -> Answer {
        let id = id.to_owned();
        let (tx, rx) = oneshot::channel();
        lock(&self.inner).waiting.insert(id.clone(), tx);
        let body = serde_json::to_vec(payload).unwrap_or_default();
        if self.send.send((id, body)).is_err() {
            return Err(serde_json::json!("the Runtime API is shut down"));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            _ => Err(serde_json::json!("no answer before the timeout")),
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A function binary running against a [`RuntimeApi`], killed on drop.
#[derive(Debug)]
pub struct FunctionProcess {
    pub child: tokio::process::Child,
    pub spawned_at: Instant,
}

impl FunctionProcess {
    /// Start `binary` with the Lambda environment of `api`, the moto endpoint and dummy
    /// credentials (never the instance-metadata service), plus `env`.
    ///
    /// # Errors
    /// The binary cannot be started.
    pub fn spawn(
        binary: &str,
        api: &RuntimeApi,
        moto_endpoint: &str,
        env: &[(&str, String)],
    ) -> std::io::Result<Self> {
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(api.lambda_env("local"))
            .env("AWS_ENDPOINT_URL", moto_endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        Ok(Self {
            child: command.spawn()?,
            spawned_at,
        })
    }
}
