//! A real moto server (DynamoDB and S3) on a free 127.0.0.1 port, for tests and the local demo,
//! and AWS SDK configuration pointed at it with dummy credentials.
//!
//! The server runs in a small Python watchdog that stops moto as soon as the process that
//! started it exits, so a test binary that ends (or crashes) never leaves a server behind.
//! [`shared`] starts one server per process and hands the same one to every caller.
//!
//! Needs `python3` with `moto[server]` installed (`pip install 'moto[server]'`); the error says
//! so when it is missing.

pub mod counting;
pub mod runtime_api;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The region every local resource lives in.
pub const REGION: &str = "us-east-1";

const WATCHDOG: &str = r#"
import os, sys, time
try:
    from moto.server import ThreadedMotoServer
except ImportError as e:
    print("missing moto: " + str(e), flush=True)
    sys.exit(3)
# Per request, moto's dispatcher lists its own package directory and tries hundreds of URL
# patterns to find the service, under one lock, and werkzeug formats a log line nobody reads:
# about a quarter of the server's time under the fan-out test. Neither answer changes while the
# server runs, so both are remembered; the log is off.
import logging
logging.getLogger("werkzeug").setLevel(logging.ERROR)
try:
    from moto import backends as _backends
    from moto.moto_server import werkzeug_app as _app
    _modules = list(_backends.list_of_moto_modules())
    _backends.list_of_moto_modules = lambda: _modules
    _lookup = _app.DomainDispatcherApplication.get_backend_for_host
    _hosts = {}
    def _backend_for_host(self, host):
        if host not in _hosts:
            _hosts[host] = _lookup(self, host)
        return _hosts[host]
    _app.DomainDispatcherApplication.get_backend_for_host = _backend_for_host
except (ImportError, AttributeError) as e:
    print("moto internals moved; running without the lookup cache: " + str(e), file=sys.stderr)
# moto answers every DynamoDB Query by sorting the whole table (all_items) and then filtering
# it: each page of a per-lead or per-period query costs the whole table, n log n. The query
# below is moto's own, shown only the items it can match: a table query its one partition, an
# index query the items holding the index key's value, unsorted (moto sorts what matches).
try:
    from moto.dynamodb.models import table as _table
    _moto_query = _table.Table.query
    class _Seen:
        def __init__(self, table, items):
            self.__dict__["_t"] = table
            self.__dict__["_items"] = items
        def __getattr__(self, name):
            return getattr(self._t, name)
        def all_items(self):
            return self._items
    def _query(self, hash_key, *args, **kwargs):
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if index_name is None:
            part = self.items.get(hash_key) if hash_key is not None else None
            if part is None:
                items = []
            elif self.range_key_attr:
                items = list(part.values())
            else:
                items = [part]
        else:
            items = [i for hs in self.items.values() for i in (hs.values() if self.range_key_attr else (hs,))]
            for name, want in kwargs.get("hash_key_conditions") or []:
                items = [i for i in items
                         if (v := i.attrs.get(name)) is not None and v.type == want.type and v.value == want.value]
        return _moto_query(_Seen(self, items), hash_key, *args, **kwargs)
    _table.Table.query = _query
except (ImportError, AttributeError) as e:
    print("moto internals moved; running without the query shortcut: " + str(e), file=sys.stderr)
# DynamoDB answers are already wire-shaped dicts ({"Items": [{"pk": {"S": ...}}]}); moto then
# walks the service model for every attribute of every item to write them out: half its time
# under a fan-out's rollups. json.dumps writes the same JSON; answers holding bytes or dates
# (binary attributes, DescribeTable) take moto's own way.
try:
    import json as _json
    from moto.core import responses as _core
    from moto.dynamodb import responses as _dynamo
    _execute = _core.ActionResult.execute_result
    def _execute_plain(self, context):
        try:
            body = _json.dumps(self.result)
        except (TypeError, ValueError):
            return _execute(self, context)
        status, headers, _ = _execute(_core.ActionResult({}), context)
        return status, headers, body
    _dynamo.DynamoResult.execute_result = _execute_plain
except (ImportError, AttributeError) as e:
    print("moto internals moved; running without the plain serializer: " + str(e), file=sys.stderr)
port = int(sys.argv[1])
parent = os.getppid()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print("ready", flush=True)
while os.getppid() == parent:
    time.sleep(0.3)
server.stop()
"#;

/// Why moto could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalStackError {
    #[error(
        "python3 could not be started ({0}); install Python 3 with `pip install 'moto[server]'`"
    )]
    NoPython(#[source] std::io::Error),
    #[error("moto is not installed for python3: run `python3 -m pip install 'moto[server]'` ({0})")]
    NoMoto(String),
    #[error("moto did not start on 127.0.0.1:{port}: {detail}")]
    NotReady { port: u16, detail: String },
    #[error("no free loopback port: {0}")]
    NoPort(#[source] std::io::Error),
}

/// A running moto server; stopped when dropped (and by its watchdog when this process exits).
#[derive(Debug)]
pub struct MotoServer {
    addr: SocketAddr,
    child: Mutex<Child>,
}

impl MotoServer {
    /// Start moto on a free 127.0.0.1 port and wait until it answers.
    ///
    /// # Errors
    /// [`LocalStackError`] saying what is missing or what failed.
    pub fn start() -> Result<Self, LocalStackError> {
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start() {
                Ok(server) => return Ok(server),
                Err(e @ (LocalStackError::NoPython(_) | LocalStackError::NoMoto(_))) => {
                    return Err(e);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(LocalStackError::NotReady {
            port: 0,
            detail: "no attempt made".into(),
        }))
    }

    fn try_start() -> Result<Self, LocalStackError> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(LocalStackError::NoPort)?
            .port();
        let mut child = Command::new("python3")
            .args(["-c", WATCHDOG, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(LocalStackError::NoPython)?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| LocalStackError::NotReady {
                port,
                detail: "no stdout".into(),
            })?;
        let mut first_line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first_line);
        if first_line.starts_with("missing moto") {
            let _ = child.wait();
            return Err(LocalStackError::NoMoto(first_line.trim().to_owned()));
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LocalStackError::NotReady {
                    port,
                    detail: format!("watchdog said {:?}", first_line.trim()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            addr,
            child: Mutex::new(child),
        })
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SDK configuration for this server: its endpoint, `us-east-1`, dummy static credentials.
    /// Nothing here consults the environment or the instance-metadata service.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint()).await
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SDK configuration for any local endpoint, with dummy static credentials.
pub async fn sdk_config_for(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "leadsync-localstack",
        ))
        .load()
        .await
}

/// The one moto server of this process, started on first use.
///
/// # Errors
/// [`LocalStackError`] (the same failure is reported to every caller).
pub fn shared() -> Result<&'static MotoServer, String> {
    static SERVER: OnceLock<Result<MotoServer, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| MotoServer::start().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

/// A name unique within this process, for per-test tables and buckets (lowercase, S3-safe).
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
