//! The admin port: Prometheus metrics and the queue commands of a running `mq serve`, over a
//! small HTTP/1.1 server meant for loopback.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /metrics` | [`render_metrics`], [`render_queue_health`], [`render_service`], `text/plain; version=0.0.4` |
//! | `GET /queue` | every entry, one [`QueueRecord`] of JSON per line |
//! | `GET /queue/<ID>` | the entries of one message, likewise; 404 if none |
//! | `GET /queue/<ID>/body` | the message as queued (`message/rfc822`) |
//! | `POST /queue/flush` | [`Queue::flush`]: deferred entries are due now |
//! | `POST /queue/delete/<ID>` | [`Queue::delete`]; the body is how many entries went |
//! | `POST /queue/hold/<ID>`, `release`, `requeue` | the change, durable; the body is the message's entry count |
//! | `POST /queue/<change>?ids=<ID>,…` or `?ids=ALL` | a change to many messages: one JSON line per id |
//! | `POST /queue/flush/<ID>`, `POST /queue/flush?domain=<D>` | that message's, or that domain's, deferred entries are due now |
//! | `POST /reload` | [`Sources::reload`]: 200 and what it did, or 500 and why it failed |
//! | `GET /info` | `{"data_dir": …}`: the canonical data directory this server owns |
//!
//! Anything else is 404, a request that is not HTTP is 400; every response closes the
//! connection. Before any route, the guard checks the request: a `Host` that is not a loopback
//! name or the port's address is 421, a foreign `Origin` 403, and with a token
//! ([`AdminServer::with_token`]) a request without `Authorization: Bearer <token>` is 401,
//! except `GET /metrics` on a loopback port. [`AdminServer::from_config`] refuses to bind a
//! non-loopback address without a token.
//!
//! # Why hand-rolled
//!
//! - Six routes without bodies need a request line and a status line, not an HTTP stack;
//!   httparse does the parsing that must not go wrong on hostile input.
//! - It runs on a thread of its own (the caller's), so a slow scrape never takes a worker
//!   core from SMTP sessions, and it borrows what it reports on for as long as it runs.
//!
//! # Layout
//!
//! - `metrics`: the Prometheus page, a pure function.
//! - `record`: [`QueueRecord`], an entry as JSON.
//! - `http`: reading a request head, writing a response.
//! - `guard`: the `Host`, `Origin` and token checks.
//! - `surgery`: the routes that hold, release, requeue, delete or flush many messages.
//!
//! # Example
//!
//! ```
//! use std::io::{Read as _, Write as _};
//! use mq_core::Metrics;
//! use mq_core::admin::{AdminServer, Sources};
//! use mq_core::queue::{EmbeddedOptions, EmbeddedQueue};
//! use mq_core::smtp::Stats;
//!
//! let dir = tempfile::tempdir()?;
//! let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
//! let stats = Stats::default();
//! let reload = || Err("nothing to reload".to_owned());
//! let sources = Sources {
//!     stats: &stats,
//!     metrics: &Metrics::default,
//!     queue: &queue,
//!     reload: &reload,
//!     delivery: None,
//!     started: None,
//! };
//! let admin = AdminServer::bind("127.0.0.1:0".parse()?)?;
//! let (address, stop) = (admin.local_addr(), admin.stop_handle());
//! std::thread::scope(|scope| {
//!     scope.spawn(|| admin.serve(&sources));
//!     let mut client = std::net::TcpStream::connect(address)?;
//!     client.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
//!     let mut page = String::new();
//!     client.read_to_string(&mut page)?;
//!     assert!(page.starts_with("HTTP/1.1 200 OK\r\n"));
//!     assert!(page.contains("\nmq_queue_entries 0\n"));
//!     stop.stop();
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub(crate) mod guard;
pub(crate) mod http;
mod metrics;
mod plugin_metrics;
mod record;
mod surgery;

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::AsyncWriteExt as _;
use smol::channel::{Receiver, Sender};
use smol::{Async, LocalExecutor};

pub use metrics::{
    Service, render_metrics, render_queue_health, render_queue_metrics, render_service,
};
pub use record::QueueRecord;

use self::guard::Guard;
use self::http::{Request, Response, internal, read_request};
use crate::config::AdminConfig;
use crate::delivery::DeliveryStats;
use crate::metrics::Metrics;
use crate::queue::{Queue, QueueError, QueueId};
use crate::smtp::Stats;

/// How long one connection may take, request and response: a client that stalls is cut off.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

/// What the admin port reports on and acts on, borrowed for as long as it serves.
pub struct Sources<'a> {
    /// The SMTP server's counters.
    pub stats: &'a Stats,
    /// The plugin × hook counters, read at each scrape (usually `|| runtime.metrics()`).
    pub metrics: &'a (dyn Fn() -> Metrics + Sync),
    /// The queue.
    pub queue: &'a dyn Queue,
    /// Reloads the configuration (as SIGHUP does), saying what it did or why it failed.
    pub reload: &'a (dyn Fn() -> Result<String, String> + Sync),
    /// Delivery's counters, when the server delivers.
    pub delivery: Option<&'a DeliveryStats>,
    /// When the server started (`mq_start_time_seconds`, which `mq status` reads).
    pub started: Option<SystemTime>,
}

impl fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The admin port, bound and not yet serving.
///
/// [`serve`](AdminServer::serve) blocks its thread until a [`StopHandle`] is used; the module
/// example runs it on a scoped thread.
///
/// # Examples
///
/// ```
/// use mq_core::admin::AdminServer;
///
/// let admin = AdminServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// assert_ne!(admin.local_addr().port(), 0);
/// let stop = admin.stop_handle();
/// stop.stop(); // before serving: `serve` would return at once
/// ```
#[derive(Debug)]
pub struct AdminServer {
    listener: Async<TcpListener>,
    local: SocketAddr,
    /// Kept so that the stop channel stays open until a handle closes it.
    stop: Sender<()>,
    stopped: Receiver<()>,
    guard: Guard,
    /// What `GET /info` reports: the data directory, canonical.
    data_dir: Option<PathBuf>,
}

/// Stops an [`AdminServer`]'s [`serve`](AdminServer::serve) from another thread; requests in
/// progress are dropped.
#[derive(Debug, Clone)]
pub struct StopHandle(Sender<()>);

impl StopHandle {
    /// Tells the server to stop; `serve` returns soon after.
    pub fn stop(&self) {
        self.0.close();
    }
}

/// Why the admin port could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum AdminError {
    /// The address could not be bound.
    Bind(SocketAddr, io::Error),
    /// `[admin] token_file` could not be read, or holds no token.
    TokenFile(PathBuf, io::Error),
    /// A non-loopback address without a token: anyone who reaches it could read and delete
    /// mail.
    Unprotected(SocketAddr),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A cause is `source()`'s, printed once by whoever prints the chain.
        match self {
            AdminError::Bind(address, _) => {
                write!(f, "cannot listen on {address} for the admin port")
            }
            AdminError::TokenFile(path, _) => {
                write!(f, "cannot read [admin] token_file {}", path.display())
            }
            AdminError::Unprotected(address) => write!(
                f,
                "refusing to serve the admin port on {address}, which is not loopback, without \
                 [admin] token or token_file"
            ),
        }
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AdminError::Bind(_, source) | AdminError::TokenFile(_, source) => Some(source),
            AdminError::Unprotected(_) => None,
        }
    }
}

impl AdminServer {
    /// Binds `address` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// The address cannot be bound, e.g. another process has it.
    pub fn bind(address: SocketAddr) -> Result<AdminServer, AdminError> {
        let bound =
            Async::<TcpListener>::bind(address).and_then(|l| Ok((l.get_ref().local_addr()?, l)));
        let (local, listener) = bound.map_err(|source| AdminError::Bind(address, source))?;
        let (stop, stopped) = smol::channel::bounded(1);
        Ok(AdminServer {
            listener,
            local,
            stop,
            stopped,
            guard: Guard::new(local, None),
            data_dir: None,
        })
    }

    /// The port `config` asks for, guarding the queue of `data_dir`; `None` when it is off.
    ///
    /// # Errors
    ///
    /// The token file cannot be read, the address is not loopback and no token is set, or
    /// the address cannot be bound.
    pub fn from_config(
        config: &AdminConfig,
        data_dir: &Path,
    ) -> Result<Option<AdminServer>, AdminError> {
        let Some(address) = config.listen else {
            return Ok(None);
        };
        let token = config
            .token()
            .map_err(|(path, error)| AdminError::TokenFile(path, error))?;
        if token.is_none() && !address.ip().is_loopback() {
            return Err(AdminError::Unprotected(address));
        }
        let server = AdminServer::bind(address)?.with_token(token);
        Ok(Some(server.with_data_dir(data_dir)))
    }

    /// Requires `Authorization: Bearer <token>` on every request (but `GET /metrics` on a
    /// loopback port); `None` requires nothing.
    pub fn with_token(mut self, token: Option<String>) -> AdminServer {
        self.guard = Guard::new(self.local, token);
        self
    }

    /// Reports `data_dir`, canonical, at `GET /info`, so that `mq queue --data-dir` can tell
    /// whether this server owns the queue it asks about.
    pub fn with_data_dir(mut self, data_dir: &Path) -> AdminServer {
        self.data_dir = Some(std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.into()));
        self
    }

    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A handle that stops [`serve`](AdminServer::serve).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Answers requests on this thread until stopped. Connections are served concurrently on
    /// a local executor; a scrape that reads the runtime's metrics blocks the others for the
    /// moment that takes.
    pub fn serve(self, sources: &Sources<'_>) {
        tracing::info!(address = %self.local, "admin port listening");
        let executor = LocalExecutor::new();
        smol::block_on(executor.run(self.accept_loop(&executor, sources)));
        tracing::debug!(address = %self.local, "admin port stopped");
    }

    async fn accept_loop<'a>(&'a self, executor: &LocalExecutor<'a>, sources: &'a Sources<'a>) {
        loop {
            let accepted = smol::future::or(async { Some(self.listener.accept().await) }, async {
                let _ = self.stopped.recv().await;
                None
            });
            match accepted.await {
                None => return,
                Some(Ok((stream, _))) => {
                    let port = Port {
                        guard: &self.guard,
                        data_dir: self.data_dir.as_deref(),
                        sources,
                    };
                    executor.spawn(connection(stream, port)).detach();
                }
                Some(Err(error)) => {
                    // Out of descriptors, usually: wait rather than spin.
                    tracing::warn!(%error, "admin port: accept failed");
                    smol::Timer::after(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// What one connection is answered from.
#[derive(Clone, Copy)]
struct Port<'a> {
    guard: &'a Guard,
    data_dir: Option<&'a Path>,
    sources: &'a Sources<'a>,
}

/// Serves one connection within [`CONNECTION_DEADLINE`].
async fn connection(mut stream: Async<TcpStream>, port: Port<'_>) {
    let answer = async {
        let response = match read_request(&mut stream).await {
            Ok(request) => match port.guard.check(&request) {
                Some(refusal) => refusal,
                None if request.method == "GET" && request.route() == "/info" => {
                    info(port.data_dir)
                }
                None => route(&request, port.sources).await,
            },
            Err(error) => match Option::<Response>::from(error) {
                Some(response) => response,
                None => return,
            },
        };
        // A client that left early is its own business.
        let _ = stream.write_all(&response.to_bytes()).await;
        let _ = stream.flush().await;
    };
    let deadline = async {
        smol::Timer::after(CONNECTION_DEADLINE).await;
    };
    smol::future::or(answer, deadline).await;
}

/// `GET /info`: the data directory this server owns, as JSON.
fn info(data_dir: Option<&Path>) -> Response {
    let data_dir = data_dir.map(|dir| dir.to_string_lossy());
    Response {
        status: 200,
        content_type: "application/json",
        body: serde_json::json!({ "data_dir": data_dir })
            .to_string()
            .into_bytes(),
    }
}

/// The response to `request`.
async fn route(request: &Request, sources: &Sources<'_>) -> Response {
    let segments: Vec<&str> = request.route().trim_start_matches('/').split('/').collect();
    if let Some(response) = surgery::route(request, &segments, sources.queue).await {
        return response;
    }
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["metrics"]) => metrics_page(sources),
        ("GET", ["queue"]) => records(sources.queue, None),
        ("GET", ["queue", id]) => {
            with_id(id, |id| async move { records(sources.queue, Some(id)) }).await
        }
        ("GET", ["queue", id, "body"]) => with_id(id, |id| body(sources.queue, id)).await,
        ("POST", ["queue", "flush"]) => {
            sources.queue.flush();
            tracing::info!("queue flushed through the admin port");
            Response::text(200, "flushed\n")
        }
        ("POST", ["queue", "delete", id]) => with_id(id, |id| delete(sources.queue, id)).await,
        ("POST", ["reload"]) => match (sources.reload)() {
            Ok(done) => Response::text(200, format!("{done}\n")),
            Err(failed) => Response::text(500, format!("{failed}\n")),
        },
        _ => Response::text(404, "not found\n"),
    }
}

fn metrics_page(sources: &Sources<'_>) -> Response {
    let mut page = render_metrics(sources.stats, &(sources.metrics)(), sources.queue.count());
    page.push_str(&render_queue_health(&sources.queue.health()));
    page.push_str(&render_service(&Service {
        started: sources.started,
        tls_in: sources.stats.tls.load(std::sync::atomic::Ordering::Relaxed),
        delivery: sources.delivery,
        queue: sources.queue.age(),
        now: SystemTime::now(),
    }));
    page.push_str(&render_queue_metrics(&sources.queue.metrics()));
    Response {
        status: 200,
        content_type: "text/plain; version=0.0.4",
        body: page.into_bytes(),
    }
}

/// Answers with `answer(id)`, or 400 if `text` is not a queue id.
async fn with_id<F, Fut>(text: &str, answer: F) -> Response
where
    F: FnOnce(QueueId) -> Fut,
    Fut: Future<Output = Response>,
{
    match text.parse() {
        Ok(id) => answer(id).await,
        Err(error) => Response::text(400, format!("{error}\n")),
    }
}

/// Every entry, or those of message `id` (404 if it has none), as JSON lines.
fn records(queue: &dyn Queue, id: Option<QueueId>) -> Response {
    let mut lines = String::new();
    for entry in queue
        .list()
        .iter()
        .filter(|e| id.is_none_or(|id| e.queue_id == id))
    {
        // Serialising a struct of strings and numbers cannot fail.
        lines.push_str(&serde_json::to_string(&QueueRecord::from(entry)).unwrap_or_default());
        lines.push('\n');
    }
    match id {
        Some(id) if lines.is_empty() => not_found(id),
        _ => Response {
            status: 200,
            content_type: "application/x-ndjson",
            body: lines.into_bytes(),
        },
    }
}

async fn body(queue: &dyn Queue, id: QueueId) -> Response {
    match queue.body(&id).await {
        Ok(body) => Response {
            status: 200,
            content_type: "message/rfc822",
            body: body.to_vec(),
        },
        Err(QueueError::NotFound(_)) => not_found(id),
        Err(error) => internal("cannot read the message", &error),
    }
}

async fn delete(queue: &dyn Queue, id: QueueId) -> Response {
    match queue.delete(&id).await {
        Ok(removed) => {
            tracing::info!(queue_id = %id, removed, "message deleted through the admin port");
            Response::text(200, format!("{removed}\n"))
        }
        Err(QueueError::NotFound(_)) => not_found(id),
        Err(error) => internal("cannot delete the message", &error),
    }
}

fn not_found(id: QueueId) -> Response {
    Response::text(404, format!("{}\n", QueueError::NotFound(id)))
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::Shutdown;

    use mq_plugin_api::Address;

    use super::*;
    use crate::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage};

    /// Sends `request` as is and returns the status code and the body.
    fn ask(address: SocketAddr, request: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    fn get(address: SocketAddr, method: &str, path: &str) -> (u16, String) {
        ask(
            address,
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
        )
    }

    fn queue_with_one_message(dir: &std::path::Path) -> (EmbeddedQueue, QueueId) {
        let options = EmbeddedOptions {
            fsync: false,
            ..EmbeddedOptions::default()
        };
        let queue = EmbeddedQueue::open(dir, options).unwrap();
        let message = NewMessage {
            sender: Address::null(),
            recipients: vec![
                "b@example.net".parse().unwrap(),
                "c@example.net".parse().unwrap(),
            ],
            body: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
            client: "test".into(),
            extensions: None,
        };
        let id = smol::block_on(queue.enqueue(message)).unwrap();
        (queue, id)
    }

    /// Runs `test` against an admin server on a loopback port, over `queue`.
    fn with_server(queue: &EmbeddedQueue, test: impl FnOnce(SocketAddr)) {
        let admin = AdminServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        with_admin(admin, queue, test);
    }

    /// Runs `test` against `admin`, serving `queue`.
    fn with_admin(admin: AdminServer, queue: &EmbeddedQueue, test: impl FnOnce(SocketAddr)) {
        let stats = Stats::default();
        let reload = || Err("reload failed, keeping the running configuration: test".to_owned());
        let sources = Sources {
            stats: &stats,
            metrics: &Metrics::default,
            queue,
            reload: &reload,
            delivery: None,
            started: Some(std::time::SystemTime::now()),
        };
        let (address, stop) = (admin.local_addr(), admin.stop_handle());
        std::thread::scope(|scope| {
            let server = scope.spawn(|| admin.serve(&sources));
            test(address);
            stop.stop();
            server.join().unwrap();
        });
    }

    #[test]
    fn metrics_and_queue_listing_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, id) = queue_with_one_message(dir.path());
        with_server(&queue, |address| {
            let (status, page) = get(address, "GET", "/metrics");
            assert_eq!(status, 200);
            assert!(page.contains("\nmq_queue_entries 2\n"), "{page}");
            assert!(page.contains("\nmq_queue_writable 1\n"), "{page}");
            let (status, lines) = get(address, "GET", "/queue");
            assert_eq!(status, 200);
            let records: Vec<QueueRecord> = lines
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert_eq!(records.len(), 2);
            assert_eq!(records[1].recipient, "c@example.net");
            assert_eq!(records[0].queue_id, id.to_string());
            assert_eq!(get(address, "GET", &format!("/queue/{id}")).1, lines);
            assert_eq!(
                get(address, "GET", &format!("/queue/{id}/body")).1,
                "Subject: hi\r\n\r\nhello\r\n"
            );
        });
    }

    #[test]
    fn delete_and_flush_act_on_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, id) = queue_with_one_message(dir.path());
        with_server(&queue, |address| {
            assert_eq!(
                get(address, "POST", "/queue/flush"),
                (200, "flushed\n".into())
            );
            assert_eq!(
                get(address, "POST", &format!("/queue/delete/{id}")),
                (200, "2\n".into())
            );
            let (status, text) = get(address, "POST", &format!("/queue/delete/{id}"));
            assert_eq!(
                (status, text.trim()),
                (404, format!("no queued message {id}").as_str())
            );
            assert_eq!(get(address, "GET", &format!("/queue/{id}")).0, 404);
            assert_eq!(get(address, "GET", &format!("/queue/{id}/body")).0, 404);
        });
        assert!(queue.list().is_empty());
    }

    #[test]
    fn reload_answers_with_what_the_reload_said() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = queue_with_one_message(dir.path());
        with_server(&queue, |address| {
            assert_eq!(
                get(address, "POST", "/reload"),
                (
                    500,
                    "reload failed, keeping the running configuration: test\n".into()
                )
            );
            assert_eq!(get(address, "GET", "/reload").0, 404);
        });
    }

    #[test]
    fn unknown_routes_bad_ids_and_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, _) = queue_with_one_message(dir.path());
        with_server(&queue, |address| {
            assert_eq!(get(address, "GET", "/").0, 404);
            assert_eq!(get(address, "DELETE", "/metrics").0, 404);
            assert_eq!(get(address, "GET", "/queue/xyz").0, 400);
            assert_eq!(get(address, "POST", "/queue/delete/../../etc").0, 404);
            assert_eq!(ask(address, b"\x16\x03\x01 not http\r\n\r\n").0, 400);
            // A client that leaves without a request gets nothing, and the server goes on.
            drop(TcpStream::connect(address).unwrap());
            assert_eq!(get(address, "GET", "/metrics").0, 200);
        });
        assert_eq!(queue.list().len(), 2);
    }

    /// `method path` with `headers` (each a whole `Name: value` line) and `Host: localhost`.
    fn with_headers(address: SocketAddr, method: &str, path: &str, headers: &str) -> u16 {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n");
        ask(address, request.as_bytes()).0
    }

    #[test]
    fn without_the_token_or_from_a_browser_nothing_is_read_or_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (queue, id) = queue_with_one_message(dir.path());
        let admin = AdminServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let admin = admin
            .with_token(Some("s3cret".into()))
            .with_data_dir(dir.path());
        with_admin(admin, &queue, |address| {
            let delete = format!("/queue/delete/{id}");
            let body = format!("/queue/{id}/body");
            let token = "Authorization: Bearer s3cret\r\n";
            assert_eq!(with_headers(address, "GET", &body, ""), 401);
            assert_eq!(with_headers(address, "POST", &delete, ""), 401);
            assert_eq!(
                with_headers(address, "POST", &delete, "Authorization: Bearer guess\r\n"),
                401
            );
            let rebound = format!("GET {body} HTTP/1.1\r\nHost: evil.example:9025\r\n{token}\r\n");
            assert_eq!(ask(address, rebound.as_bytes()).0, 421);
            let page = format!("{token}Origin: http://evil.example\r\n");
            assert_eq!(with_headers(address, "POST", &delete, &page), 403);
            assert_eq!(
                with_headers(address, "GET", "/metrics", ""),
                200,
                "open on loopback"
            );
            let info = format!("GET /info HTTP/1.1\r\nHost: localhost\r\n{token}\r\n");
            let (status, info) = ask(address, info.as_bytes());
            let expected = std::fs::canonicalize(dir.path()).unwrap();
            let reported: serde_json::Value = serde_json::from_str(&info).unwrap();
            assert_eq!(
                (status, reported["data_dir"].as_str()),
                (200, expected.to_str())
            );
            assert_eq!(queue.list().len(), 2, "nothing was deleted");
            assert_eq!(with_headers(address, "POST", &delete, token), 200);
        });
        assert!(queue.list().is_empty());
    }

    #[test]
    fn a_non_loopback_admin_address_without_a_token_is_refused() {
        let config = AdminConfig {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
            ..AdminConfig::default()
        };
        let error = AdminServer::from_config(&config, Path::new(".")).unwrap_err();
        assert!(matches!(error, AdminError::Unprotected(_)), "{error}");
        let with_token = AdminConfig {
            token: Some("s3cret".into()),
            ..config
        };
        let served = AdminServer::from_config(&with_token, Path::new(".")).unwrap();
        assert!(served.is_some());
    }
}
