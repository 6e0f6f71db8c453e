//! The admin port: Prometheus metrics and the queue commands of a running `mq serve`, over a
//! small HTTP/1.1 server meant for loopback.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /metrics` | [`render_metrics`], `text/plain; version=0.0.4` |
//! | `GET /queue` | every entry, one [`QueueRecord`] of JSON per line |
//! | `GET /queue/<ID>` | the entries of one message, likewise; 404 if none |
//! | `GET /queue/<ID>/body` | the message as queued (`message/rfc822`) |
//! | `POST /queue/flush` | [`Queue::flush`]: deferred entries are due now |
//! | `POST /queue/delete/<ID>` | [`Queue::delete`]; the body is how many entries went |
//!
//! Anything else is 404, a request that is not HTTP is 400; every response closes the
//! connection. There is no authentication: bind it to loopback.
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
//! let sources = Sources { stats: &stats, metrics: &Metrics::default, queue: &queue };
//! let admin = AdminServer::bind("127.0.0.1:0".parse()?)?;
//! let (address, stop) = (admin.local_addr(), admin.stop_handle());
//! std::thread::scope(|scope| {
//!     scope.spawn(|| admin.serve(&sources));
//!     let mut client = std::net::TcpStream::connect(address)?;
//!     client.write_all(b"GET /metrics HTTP/1.1\r\nHost: mq\r\n\r\n")?;
//!     let mut page = String::new();
//!     client.read_to_string(&mut page)?;
//!     assert!(page.starts_with("HTTP/1.1 200 OK\r\n"));
//!     assert!(page.contains("\nmq_queue_entries 0\n"));
//!     stop.stop();
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod http;
mod metrics;
mod record;

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use futures::AsyncWriteExt as _;
use smol::channel::{Receiver, Sender};
use smol::{Async, LocalExecutor};

pub use metrics::render_metrics;
pub use record::QueueRecord;

use self::http::{Request, Response, internal, read_request};
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

/// The admin port's address could not be bound.
#[derive(Debug)]
pub struct AdminError {
    address: SocketAddr,
    source: io::Error,
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cause is `source()`'s, printed once by whoever prints the chain.
        write!(f, "cannot listen on {} for the admin port", self.address)
    }
}

impl std::error::Error for AdminError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
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
        let (local, listener) = bound.map_err(|source| AdminError { address, source })?;
        let (stop, stopped) = smol::channel::bounded(1);
        Ok(AdminServer {
            listener,
            local,
            stop,
            stopped,
        })
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

    async fn accept_loop<'a>(&self, executor: &LocalExecutor<'a>, sources: &'a Sources<'a>) {
        loop {
            let accepted = smol::future::or(async { Some(self.listener.accept().await) }, async {
                let _ = self.stopped.recv().await;
                None
            });
            match accepted.await {
                None => return,
                Some(Ok((stream, _))) => executor.spawn(connection(stream, sources)).detach(),
                Some(Err(error)) => {
                    // Out of descriptors, usually: wait rather than spin.
                    tracing::warn!(%error, "admin port: accept failed");
                    smol::Timer::after(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Serves one connection within [`CONNECTION_DEADLINE`].
async fn connection(mut stream: Async<TcpStream>, sources: &Sources<'_>) {
    let answer = async {
        let response = match read_request(&mut stream).await {
            Ok(request) => route(&request, sources).await,
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

/// The response to `request`.
async fn route(request: &Request, sources: &Sources<'_>) -> Response {
    let path = request.path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
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
        _ => Response::text(404, "not found\n"),
    }
}

fn metrics_page(sources: &Sources<'_>) -> Response {
    let page = render_metrics(sources.stats, &(sources.metrics)(), sources.queue.count());
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
            format!("{method} {path} HTTP/1.1\r\nHost: mq\r\n\r\n").as_bytes(),
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
        };
        let id = smol::block_on(queue.enqueue(message)).unwrap();
        (queue, id)
    }

    /// Runs `test` against an admin server on a loopback port, over `queue`.
    fn with_server(queue: &EmbeddedQueue, test: impl FnOnce(SocketAddr)) {
        let stats = Stats::default();
        let sources = Sources {
            stats: &stats,
            metrics: &Metrics::default,
            queue,
        };
        let admin = AdminServer::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
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
}
