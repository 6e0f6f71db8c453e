//! The mail queue: where an accepted message waits, one entry per recipient, until each entry
//! is delivered or fails for good.
//!
//! [`Queue`] is shaped like a message broker (enqueue, take what is due, acknowledge with a
//! result, defer until a time) so that a broker-backed queue (RabbitMQ, in MailerQ's JSON format)
//! can implement it beside [`EmbeddedQueue`], the durable queue on local disk.
//!
//! # Layout
//!
//! - `id`: [`QueueId`], unique and sortable by arrival.
//! - `error`: [`QueueError`].
//! - `body`: [`Body`], a body as delivery reads it: in memory, or a piece at a time.
//! - `embedded`: [`EmbeddedQueue`], the trait on the journal, and its recovery on open.
//! - `journal`: the segment files, and the framing of records in them (length, checksum).
//! - `record`: what a record says (a message, an entry done or deferred, a delete), encoded.
//! - `writer`: the one thread that appends to the journal, with group commit.
//! - `fault`: a write that failed (a full disk), the back-off until the writer tries again.
//! - `index`: the in-memory state of every live entry, rebuilt from the journal on open.
//! - `private`: the modes of what the queue creates (0700, 0600): it holds message bodies.
//! - `recovery`: that rebuilding, and what a crash may leave at the journal's end.
//! - `salvage`: damage inside the journal, moved aside so that the records after it are kept.
//! - `surgery`: [`Surgery`], an administrator's delete, hold, release or requeue of many
//!   messages at once.
//! - [`rabbitmq`]: [`RabbitQueue`], the queue on a RabbitMQ broker, one MailerQ JSON document
//!   per recipient, shared by any number of mq nodes.
//!
//! # Why a journal with group commit
//!
//! - A 250 reply promises that the message survives a crash, so the message must be synced to
//!   disk before it. A file per message (write, fsync, rename, fsync the directory) costs about
//!   350 µs, which caps one stream near 3,000 messages a second.
//! - One append-only journal lets many sessions share one sync: the writer takes every request
//!   that is waiting, writes them with vectored writes straight from each message's own buffer,
//!   syncs once, then answers them all. The busier the queue, the more messages each sync
//!   carries.
//! - Checksummed records make a half-written tail (a crash mid-write) detectable, so recovery
//!   drops it instead of showing a damaged entry; nothing is renamed into place. Damage
//!   elsewhere is found the same way, and the records after it are found again by their
//!   framing: it costs only the messages whose own records were damaged.
//! - The price: space is reclaimed per segment, oldest first, and a long-lived message in an old
//!   segment is copied forward (compaction) so that the segment can go.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use mq_core::queue::{AckResult, EmbeddedOptions, EmbeddedQueue, NewMessage, Queue};
//!
//! let dir = tempfile::tempdir()?;
//! let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
//! smol::block_on(async {
//!     let id = queue
//!         .enqueue(NewMessage {
//!             sender: "a@example.org".parse().unwrap(),
//!             recipients: vec!["b@example.net".parse().unwrap()],
//!             body: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
//!             client: "client.example[192.0.2.1]".into(),
//!             extensions: None,
//!         })
//!         .await?;
//!     let due = queue.take_due(SystemTime::now(), 10).await?;
//!     assert_eq!(due[0].queue_id, id);
//!     assert_eq!(&*queue.body(&id).await?, b"Subject: hi\r\n\r\nhello\r\n");
//!     queue.ack(&due[0], AckResult::Delivered).await?;
//!     assert!(queue.list().is_empty());
//!     Ok::<(), mq_core::queue::QueueError>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
mod embedded;
mod error;
mod fault;
mod hot;
mod id;
mod index;
pub(crate) mod journal;
mod private;
pub mod rabbitmq;
pub(crate) mod record;
mod recovery;
pub(crate) mod salvage;
mod surgery;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use mq_plugin_api::Address;

pub use body::{Body, PIECE};
pub use embedded::{EmbeddedOptions, EmbeddedQueue};
pub use error::QueueError;
pub use id::{ParseQueueIdError, QueueId};
pub use surgery::{Surgery, all_messages};

pub use rabbitmq::RabbitQueue;

pub use crate::config::QueueBackend;

/// A message accepted by the SMTP server, to be queued with one entry per recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The envelope sender (`MAIL FROM`), possibly the null path.
    pub sender: Address,
    /// The envelope recipients (`RCPT TO`), in order; entry `i` is recipient `i`.
    pub recipients: Vec<Address>,
    /// The whole message as accepted (headers and body), stored once for all entries.
    pub body: Vec<u8>,
    /// Who handed it over, for logs, e.g. `client.example[192.0.2.1]`.
    pub client: String,
    /// The SMTPUTF8 and DSN parameters it came with; `None` when it came with none.
    pub extensions: Option<Arc<Extensions>>,
}

/// The SMTPUTF8 (RFC 6531) and DSN (RFC 3461) parameters of a message, kept with it in the
/// queue: delivery passes them on to a server that offers the extension, and mq's own reports
/// follow them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// MAIL came with `SMTPUTF8`: only a server that offers it may take the message.
    pub smtputf8: bool,
    /// MAIL's `RET`.
    pub ret: Option<crate::smtp::Ret>,
    /// MAIL's `ENVID`, decoded.
    pub envid: Option<String>,
    /// Each recipient's `NOTIFY` and `ORCPT`, in the order of [`NewMessage::recipients`];
    /// empty when no RCPT had any.
    pub recipients: Vec<crate::smtp::RcptParams>,
}

impl Extensions {
    /// The NOTIFY and ORCPT of recipient `index`; the defaults when it had none.
    pub fn recipient(&self, index: u32) -> crate::smtp::RcptParams {
        self.recipients
            .get(index as usize)
            .cloned()
            .unwrap_or_default()
    }
}

/// One recipient of a queued message, and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// The message's id, shared by its entries.
    pub queue_id: QueueId,
    /// Which recipient of the message: its index in [`NewMessage::recipients`].
    pub recipient_index: u32,
    /// The envelope sender.
    pub sender: Address,
    /// This entry's recipient.
    pub recipient: Address,
    /// The message's size in bytes.
    pub size: u64,
    /// When the message was queued.
    pub arrived: SystemTime,
    /// Delivery attempts deferred so far.
    pub attempts: u32,
    /// When the entry is due; at arrival for a new one.
    pub next_attempt: SystemTime,
    /// Why the last attempt was deferred.
    pub last_error: Option<String>,
    /// Whether it waits or is being delivered.
    pub state: EntryState,
    /// A relay the entry itself names (a MailerQ document's `smarthost`), taking the place of
    /// the configured route; `None` for the embedded queue.
    pub relay: Option<Relay>,
    /// Retry rules the entry itself carries (a MailerQ document's `retries`, `maxattempts`,
    /// `maxdelivertime`), before `[delivery.retry]`'s; `None` for the embedded queue.
    pub retry: Option<RetryRules>,
    /// The message's SMTPUTF8 and DSN parameters, when it came with any.
    pub extensions: Option<Arc<Extensions>>,
}

/// Retry rules of one entry.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mq_core::queue::RetryRules;
///
/// let rules = RetryRules { delays: vec![Duration::from_secs(5)], max_attempts: Some(2), deadline: None };
/// let now = SystemTime::now();
/// assert_eq!(rules.next_attempt(1, now, None), Some(now + Duration::from_secs(5)));
/// assert_eq!(rules.next_attempt(2, now, Some(now)), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryRules {
    /// The delay after each failed attempt, the last repeating; empty: the configured ones.
    pub delays: Vec<std::time::Duration>,
    /// The most attempts; `None` or 0: no limit of its own.
    pub max_attempts: Option<u32>,
    /// The time after which no attempt is made.
    pub deadline: Option<SystemTime>,
}

impl RetryRules {
    /// When to try again after `attempts` failed attempts at `now`, or `None` to give up;
    /// `configured` is what `[delivery.retry]` says (`None`: too old).
    pub fn next_attempt(
        &self,
        attempts: u32,
        now: SystemTime,
        configured: Option<SystemTime>,
    ) -> Option<SystemTime> {
        if self
            .max_attempts
            .is_some_and(|max| max > 0 && attempts >= max)
        {
            return None;
        }
        let index = (attempts.max(1) - 1) as usize;
        let next = match self.delays.get(index).or(self.delays.last()) {
            Some(delay) => now + *delay,
            None => configured?,
        };
        match self.deadline {
            Some(deadline) if next > deadline => None,
            _ => Some(next),
        }
    }
}

/// A relay named by a queued entry rather than by the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relay {
    /// The host name or IP address.
    pub host: String,
    /// The port (25 unless the entry says otherwise).
    pub port: u16,
    /// User and password for AUTH, when given.
    pub auth: Option<(String, String)>,
}

/// Where an accepted message came from, for a queue that records it (the RabbitMQ queue's
/// `connection` object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client's address.
    pub remote: std::net::SocketAddr,
    /// The address the client connected to.
    pub local: std::net::SocketAddr,
    /// Whether the session ran over TLS.
    pub secure: bool,
    /// The user the client authenticated as.
    pub user: Option<String>,
}

/// What one delivery attempt of an entry came to, as the RabbitMQ queue publishes it in its
/// results (MailerQ's `results` entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The step the attempt ended at: `message` once the data was answered, `connect`, `dns`,
    /// `process` (mq's own decision), as MailerQ names them.
    pub state: &'static str,
    /// `accepted`, `timeout`, `lost`, `invalid` or `error`.
    pub result: &'static str,
    /// When it ended.
    pub time: SystemTime,
    /// The remote reply's code, when there was a reply.
    pub code: Option<u16>,
    /// Its enhanced status code.
    pub status: Option<String>,
    /// Its text, or why there was none.
    pub description: String,
    /// The remote host's name.
    pub mta: Option<String>,
    /// The remote host's address.
    pub to: Option<String>,
}

/// Where an entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryState {
    /// Never attempted; due at its `next_attempt`.
    Ready,
    /// Attempted and deferred; due again at its `next_attempt`.
    Deferred,
    /// Handed out by [`Queue::take_due`] and not yet acknowledged or deferred. After a restart
    /// such an entry is due again: delivery is at least once.
    InFlight,
    /// Its message is on hold ([`Queue::hold`]): not due, whatever its `next_attempt`, until
    /// it is released.
    Held,
}

/// How a delivery ended, for [`Queue::ack`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckResult {
    /// The recipient's server accepted the message.
    Delivered,
    /// The message cannot be delivered (a permanent failure, or the retries ran out).
    Failed {
        /// The final error, e.g. the remote server's reply.
        reason: String,
    },
}

/// The queue's backlog at a glance: deferred entries and the oldest live entry's arrival.
///
/// # Examples
///
/// ```
/// use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage, Queue, QueueAge};
///
/// let dir = tempfile::tempdir()?;
/// let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
/// assert_eq!(queue.age(), QueueAge::default());
/// smol::block_on(queue.enqueue(NewMessage {
///     sender: "a@example.org".parse()?,
///     recipients: vec!["b@example.net".parse()?],
///     body: b"Subject: s\r\n\r\nhi\r\n".to_vec(),
///     client: "client.example[192.0.2.1]".into(),
///     extensions: None,
/// }))?;
/// let age = queue.age();
/// assert_eq!(age.deferred, 0);
/// assert!(age.oldest.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueAge {
    /// Entries whose last attempt was deferred (not in flight now).
    pub deferred: usize,
    /// When the oldest live entry arrived; `None` when the queue is empty.
    pub oldest: Option<SystemTime>,
}

impl QueueAge {
    /// The age of `entries`.
    pub fn of(entries: &[Entry]) -> QueueAge {
        QueueAge {
            deferred: entries
                .iter()
                .filter(|e| e.state == EntryState::Deferred)
                .count(),
            oldest: entries.iter().map(|e| e.arrived).min(),
        }
    }

    /// Counts one live entry.
    pub(crate) fn add(&mut self, arrived: SystemTime, deferred: bool) {
        self.deferred += usize::from(deferred);
        self.oldest = Some(self.oldest.map_or(arrived, |oldest| oldest.min(arrived)));
    }
}

/// How a queue's storage is doing: the metrics page shows it.
///
/// # Examples
///
/// ```
/// use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Queue};
///
/// let dir = tempfile::tempdir()?;
/// let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
/// let health = queue.health();
/// assert!(health.writable);
/// assert_eq!((health.write_failures, health.corrupt_regions), (0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueHealth {
    /// Whether writes succeed: false from a failed write until one succeeds again, while new
    /// mail is refused with a temporary error.
    pub writable: bool,
    /// Writes, syncs or new journal segments that failed since the queue was opened.
    pub write_failures: u64,
    /// Syncs of the journal since the queue was opened: one per batch of new messages or
    /// administrator's changes (group commit), and one for results of delivery attempts that no
    /// such batch came to sync in time; fewer than the messages under load.
    pub syncs: u64,
    /// Damaged ranges of the journal moved aside into `corrupt/` when the queue was opened.
    pub corrupt_regions: u64,
    /// Their bytes.
    pub corrupt_bytes: u64,
}

impl Default for QueueHealth {
    fn default() -> QueueHealth {
        QueueHealth {
            writable: true,
            write_failures: 0,
            syncs: 0,
            corrupt_regions: 0,
            corrupt_bytes: 0,
        }
    }
}

/// One metric a queue backend adds to the metrics page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueMetric {
    /// Its name, `mq_…`.
    pub name: &'static str,
    /// `counter` or `gauge`.
    pub kind: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// Its value now.
    pub value: u64,
}

/// A queue of entries, each a message to one recipient.
///
/// The lifecycle of an entry: [`enqueue`](Queue::enqueue) makes one per recipient;
/// [`take_due`](Queue::take_due) hands a due entry to one deliverer; the deliverer ends the
/// attempt with [`ack`](Queue::ack) (done for good) or [`defer`](Queue::defer) (try again
/// later). A message's body is freed with its last entry. Every call that changes an entry
/// returns only once the change is durable.
///
/// The futures are `Send`: any worker core may call any method.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, EntryState, NewMessage, Queue};
///
/// async fn retry_later(queue: &dyn Queue) -> Result<(), mq_core::queue::QueueError> {
///     let now = SystemTime::now();
///     for entry in queue.take_due(now, 100).await? {
///         let later = now + Duration::from_secs(600);
///         queue.defer(&entry, later, "421 4.7.0 try again later".into()).await?;
///     }
///     Ok(())
/// }
///
/// let dir = tempfile::tempdir()?;
/// let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
/// smol::block_on(async {
///     queue.enqueue(NewMessage {
///         sender: mq_plugin_api::Address::null(),
///         recipients: vec!["b@example.net".parse().unwrap()],
///         body: b"\r\n".to_vec(),
///         client: "localhost".into(),
///         extensions: None,
///     }).await?;
///     retry_later(&queue).await
/// })?;
/// assert_eq!(queue.list()[0].state, EntryState::Deferred);
/// assert_eq!(queue.list()[0].attempts, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[async_trait::async_trait]
pub trait Queue: Send + Sync + fmt::Debug {
    /// Queues a message, one entry per recipient, and returns its id once the message is
    /// durable: only then may the SMTP server send its 250 reply.
    ///
    /// If the future is dropped before it resolves, the message may still have been queued.
    async fn enqueue(&self, message: NewMessage) -> Result<QueueId, QueueError>;

    /// [`enqueue`](Queue::enqueue) for a message the SMTP server accepted from `origin`; a
    /// queue that records where mail came from overrides it.
    async fn enqueue_from(
        &self,
        message: NewMessage,
        origin: &Origin,
    ) -> Result<QueueId, QueueError> {
        let _ = origin;
        self.enqueue(message).await
    }

    /// Tells the queue how the current attempt of `entry` went, just before it is acked or
    /// deferred; a queue that publishes results (RabbitMQ) keeps it for them.
    fn report_attempt(&self, entry: &Entry, report: AttemptReport) {
        let _ = (entry, report);
    }

    /// Hands out up to `max` entries due at `now` (`next_attempt <= now`), the longest-due
    /// first, and marks them [`EntryState::InFlight`] so that no one else gets them.
    async fn take_due(&self, now: SystemTime, max: usize) -> Result<Vec<Entry>, QueueError>;

    /// The body of a queued message, as it was accepted.
    async fn body(&self, id: &QueueId) -> Result<Arc<[u8]>, QueueError>;

    /// The body of a queued message for delivery to read: [`body`](Queue::body) in memory
    /// unless the queue can leave a large one where it lies, to be read a piece at a time as
    /// it is sent.
    async fn open_body(&self, id: &QueueId) -> Result<Body, QueueError> {
        self.body(id).await.map(Body::from)
    }

    /// Ends an entry for good (delivered, or failed and bounced) and removes it; the message's
    /// body goes with its last entry. Once it returns, the removal survives a crash of mq; the
    /// embedded queue syncs it to disk with the next message or within a tenth of a second,
    /// so a crash of the machine in between can repeat the delivery, never lose the message.
    async fn ack(&self, entry: &Entry, result: AckResult) -> Result<(), QueueError>;

    /// Puts an entry back to be tried again at `until`, counting one more attempt and keeping
    /// `error` as its last error; kept across a crash of mq when it returns (synced to disk as
    /// [`ack`](Queue::ack)'s removal is).
    async fn defer(
        &self,
        entry: &Entry,
        until: SystemTime,
        error: String,
    ) -> Result<(), QueueError>;

    /// Every live entry, in queue id and recipient order (for `mq queue list`).
    fn list(&self) -> Vec<Entry>;

    /// How many entries are live: what [`list`](Queue::list) would return. A backend that can
    /// tell without copying them should (the metrics page asks at every scrape).
    fn count(&self) -> usize {
        self.list().len()
    }

    /// How many entries are deferred and when the oldest live entry arrived, for the metrics
    /// page. A backend that can tell without copying the entries should.
    fn age(&self) -> QueueAge {
        QueueAge::of(&self.list())
    }

    /// Removes every entry of a message (an administrator's `mq queue delete`) and returns how
    /// many there were.
    async fn delete(&self, id: &QueueId) -> Result<usize, QueueError>;

    /// How the queue's storage is doing, for the metrics page. A queue without faults to report
    /// keeps the default: writable, nothing failed.
    fn health(&self) -> QueueHealth {
        QueueHealth::default()
    }

    /// The backend's own metrics for the metrics page (the RabbitMQ queue's connection state
    /// and message counters); none by default.
    fn metrics(&self) -> Vec<QueueMetric> {
        Vec::new()
    }

    /// Makes every deferred entry due now. A hint, kept in memory only: after a restart the
    /// entries are due at their deferred times again.
    fn flush(&self);

    /// Makes the deferred entries that `which` picks (by message id and recipient) due now,
    /// as [`flush`](Queue::flush) does for all, and returns how many. A backend that cannot
    /// pick flushes everything and returns 0.
    fn flush_where(&self, which: &(dyn Fn(QueueId, &Address) -> bool + Sync)) -> usize {
        let _ = which;
        self.flush();
        0
    }

    /// Puts a message on hold, durably: none of its entries is handed out by
    /// [`take_due`](Queue::take_due) until [`release`](Queue::release) (an entry in flight
    /// finishes its attempt). Returns how many entries it has.
    async fn hold(&self, id: &QueueId) -> Result<usize, QueueError> {
        let _ = id;
        Err(QueueError::Unsupported("holding messages"))
    }

    /// Releases a held message, durably: its entries are due at their times again. Returns
    /// how many entries it has.
    async fn release(&self, id: &QueueId) -> Result<usize, QueueError> {
        let _ = id;
        Err(QueueError::Unsupported("releasing messages"))
    }

    /// Starts every waiting entry of a message afresh, durably: due now, no attempts counted,
    /// no last error, and no longer held. Returns how many entries it has.
    async fn requeue(&self, id: &QueueId) -> Result<usize, QueueError> {
        let _ = id;
        Err(QueueError::Unsupported("requeueing messages"))
    }
}
