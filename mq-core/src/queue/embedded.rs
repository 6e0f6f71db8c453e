//! [`EmbeddedQueue`]: the [`Queue`] on a journal in a local directory.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use futures::channel::oneshot;
use mq_plugin_api::Address;
use smol::channel::Sender;

use super::error::QueueError;
use super::fault::Health;
use super::hot::{self, Hot};
use super::id::IdSource;
use super::index::Index;
use super::journal::{self, Framed, HEADER, MAX_RECORD};
use super::private;
use super::record::{MessageRecord, RecipientState, Record};
use super::recovery::recover;
use super::writer::{Reminder, Reply, Request, Writer, lock};
use super::{AckResult, Body, Entry, NewMessage, PIECE, Queue, QueueHealth, QueueId};
use crate::smtp::client::Shape;

/// Requests that may wait for the writer before senders wait too (backpressure). Each sender
/// waits for its answer, so sessions and deliveries in flight are what waits here: a thousand
/// is room for them all, and the channel's slots (about 200 bytes each) are allocated up front.
const PENDING_REQUESTS: usize = 1024;
/// The longest last error kept with a deferred entry; remote replies are short, this bounds
/// what a misbehaving server can make us store.
const MAX_ERROR: usize = 4096;

/// How an [`EmbeddedQueue`] writes its journal.
///
/// # Examples
///
/// ```
/// use mq_core::queue::EmbeddedOptions;
///
/// let small = EmbeddedOptions { segment_size: 4 << 20, ..EmbeddedOptions::default() };
/// assert!(small.fsync);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Sync each batch to disk before answering it (default `true`). `false` gives up the
    /// queue's promise (a message acknowledged with 250 may be lost in a power cut or a kernel
    /// crash, though not when only mq is killed): for benchmarks and throwaway tests only.
    pub fsync: bool,
    /// The size at which the journal starts a new segment file (default 64 MiB). Space is
    /// reclaimed a whole segment at a time.
    pub segment_size: u64,
    /// The longest the result of a delivery attempt (an entry done or deferred), answered once
    /// written, waits for a sync when no new message brings one sooner (default 0.1 s). Only
    /// a crash of the machine in that time can lose it, which repeats the attempt.
    pub sync_later: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> EmbeddedOptions {
        EmbeddedOptions {
            fsync: true,
            segment_size: 64 << 20,
            sync_later: Duration::from_millis(100),
        }
    }
}

/// The durable queue on local disk: an append-only journal with group commit, replayed on open.
///
/// One process at a time may open a directory (it holds a lock on `<dir>/lock`). Dropping the
/// queue lets the writer finish what it was given, then stops it.
///
/// # Examples
///
/// ```
/// use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage, Queue};
///
/// let dir = tempfile::tempdir()?;
/// let message = NewMessage {
///     sender: "a@example.org".parse()?,
///     recipients: vec!["b@example.net".parse()?, "c@example.net".parse()?],
///     body: b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
///     client: "client.example[192.0.2.1]".into(),
///     extensions: None,
/// };
/// let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
/// let id = smol::block_on(queue.enqueue(message))?;
/// drop(queue);
///
/// // Everything is back after a restart, one entry per recipient.
/// let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
/// let entries = queue.list();
/// assert_eq!(entries.len(), 2);
/// assert!(entries.iter().all(|entry| entry.queue_id == id));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EmbeddedQueue {
    dir: PathBuf,
    index: Arc<Mutex<Index>>,
    /// Bodies just written, for the delivery that follows.
    hot: Arc<Mutex<Hot>>,
    ids: IdSource,
    requests: Sender<Request>,
    writer: Option<JoinHandle<()>>,
    health: Arc<Health>,
    /// Held for its lock on the directory, released when the queue is dropped (or the process
    /// dies).
    _lock: File,
}

impl EmbeddedQueue {
    /// Opens (or creates) the queue in `dir`, usually `<data-dir>/queue`, and recovers every
    /// entry in it. Entries that were in flight are due again.
    ///
    /// # Errors
    ///
    /// [`QueueError::InUse`] if another queue has `dir` open; [`QueueError::Io`] if the journal
    /// cannot be read, or its damage moved aside. Damage does not stop the queue: the damaged
    /// bytes go to `<dir>/corrupt/`, logged, and every valid record after them is kept.
    pub fn open(dir: &Path, options: EmbeddedOptions) -> Result<EmbeddedQueue, QueueError> {
        create_dir(dir)?;
        let lock_file = lock_dir(dir)?;
        let recovered = recover(dir)?;
        let ids = IdSource::after(recovered.index.highest_id());
        tracing::info!(dir = %dir.display(), entries = recovered.index.live_entries(), "queue opened");
        let index = Arc::new(Mutex::new(recovered.index));
        let health = Arc::new(Health::new(recovered.damage));
        let (requests, receiver) = smol::channel::bounded(PENDING_REQUESTS);
        let hot = Arc::new(Mutex::new(Hot::default()));
        let writer = Writer {
            hot: Arc::clone(&hot),
            dir: dir.to_owned(),
            fsync: options.fsync,
            segment_size: options.segment_size,
            index: Arc::clone(&index),
            requests: receiver,
            file: recovered.file,
            seq: recovered.seq,
            len: recovered.len,
            health: Arc::clone(&health),
            fault: None,
            unsynced: None,
            sync_later: options.sync_later,
            reminder: Reminder::new(requests.downgrade(), options.sync_later),
        };
        Ok(EmbeddedQueue {
            dir: dir.to_owned(),
            index,
            hot,
            ids,
            requests,
            writer: Some(writer.spawn()?),
            health,
            _lock: lock_file,
        })
    }

    /// Deletes every journal segment that nothing live needs, and compacts the oldest ones,
    /// now. The writer does this on its own between writes; this waits until it is done (for
    /// tests, and for an administrator's command).
    ///
    /// # Errors
    ///
    /// [`QueueError::Io`] if a segment cannot be written or removed; the queue is then closed.
    pub async fn maintain(&self) -> Result<(), QueueError> {
        self.submit(|reply| Request::Maintain { reply })
            .await
            .map(drop)
    }

    /// Frames a record and has the writer append it; returns how many entries it touched. The
    /// body (a message's; empty for other records) moves into the frame, uncopied.
    async fn append(&self, record: Record, body: Vec<u8>) -> Result<usize, QueueError> {
        let frame = Framed::new(&record, body);
        if frame.len() - HEADER > MAX_RECORD {
            return Err(QueueError::Invalid("message too large"));
        }
        self.submit(|reply| Request::Append {
            frame,
            record,
            reply,
        })
        .await
    }

    async fn submit(&self, request: impl FnOnce(Reply) -> Request) -> Result<usize, QueueError> {
        let (reply, answer) = oneshot::channel();
        let sent = self.requests.send(request(reply)).await;
        sent.map_err(|_| QueueError::Closed)?;
        answer.await.map_err(|_| QueueError::Closed)?
    }

    /// Appends an administrator's record about message `id`; how many entries it has.
    async fn administer(&self, record: Record) -> Result<usize, QueueError> {
        let id = record.id();
        if !lock(&self.index).contains(id) {
            return Err(QueueError::NotFound(id));
        }
        match self.append(record, Vec::new()).await? {
            0 => Err(QueueError::NotFound(id)),
            entries => Ok(entries),
        }
    }

    /// The attempts so far of a live entry.
    fn attempts(&self, entry: &Entry) -> Result<u32, QueueError> {
        lock(&self.index)
            .attempts(entry.queue_id, entry.recipient_index)
            .ok_or(QueueError::NotFound(entry.queue_id))
    }
}

#[async_trait::async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(&self, message: NewMessage) -> Result<QueueId, QueueError> {
        if message.recipients.is_empty() {
            return Err(QueueError::Invalid("no recipients"));
        }
        if u32::try_from(message.recipients.len()).is_err() {
            return Err(QueueError::Invalid("too many recipients"));
        }
        let id = self.ids.next();
        let arrived = SystemTime::now();
        // A body that delivery will read from the journal a piece at a time is scanned now,
        // while it is in memory, so that delivery need not read it through once more for it.
        let shape = (message.body.len() > PIECE).then(|| Shape::of(&message.body));
        let record = MessageRecord {
            id,
            arrived,
            client: message.client,
            sender: message.sender,
            recipients: message
                .recipients
                .into_iter()
                .map(|address| RecipientState::new(address, arrived))
                .collect(),
            body_len: message.body.len() as u64,
            held: false,
            extensions: message.extensions,
            shape,
        };
        self.append(Record::Message(record), message.body).await?;
        Ok(id)
    }

    async fn take_due(&self, now: SystemTime, max: usize) -> Result<Vec<Entry>, QueueError> {
        Ok(lock(&self.index).take_due(now, max))
    }

    async fn body(&self, id: &QueueId) -> Result<Arc<[u8]>, QueueError> {
        if let Some(body) = hot::lock(&self.hot).take(*id) {
            return Ok(body);
        }
        let body = lock(&self.index)
            .body(*id)
            .ok_or(QueueError::NotFound(*id))?;
        // A disk read: off the worker's event loop.
        smol::unblock(move || body.read_shared()).await
    }

    async fn open_body(&self, id: &QueueId) -> Result<Body, QueueError> {
        if let Some(body) = hot::lock(&self.hot).take(*id) {
            return Ok(Body::from(body));
        }
        let place = lock(&self.index)
            .body(*id)
            .ok_or(QueueError::NotFound(*id))?;
        if place.len() <= PIECE as u64 {
            // Small enough to hold: one read.
            return Ok(Body::from(
                smol::unblock(move || place.read_shared()).await?,
            ));
        }
        Ok(Body::journal(place))
    }

    async fn ack(&self, entry: &Entry, result: AckResult) -> Result<(), QueueError> {
        let id = entry.queue_id;
        self.attempts(entry)?;
        let record = Record::Done {
            id,
            recipient: entry.recipient_index,
        };
        if self.append(record, Vec::new()).await? == 0 {
            // A delete got there first.
            return Err(QueueError::NotFound(id));
        }
        tracing::debug!(queue_id = %id, recipient = %entry.recipient, result = ?result, "entry done");
        Ok(())
    }

    async fn defer(
        &self,
        entry: &Entry,
        until: SystemTime,
        error: String,
    ) -> Result<(), QueueError> {
        let record = Record::Defer {
            id: entry.queue_id,
            recipient: entry.recipient_index,
            attempts: self.attempts(entry)?.saturating_add(1),
            next_attempt: until,
            error: clip(error, MAX_ERROR),
        };
        match self.append(record, Vec::new()).await? {
            0 => Err(QueueError::NotFound(entry.queue_id)),
            _ => Ok(()),
        }
    }

    fn list(&self) -> Vec<Entry> {
        lock(&self.index).entries()
    }

    fn count(&self) -> usize {
        lock(&self.index).live()
    }

    fn age(&self) -> super::QueueAge {
        lock(&self.index).age()
    }

    async fn delete(&self, id: &QueueId) -> Result<usize, QueueError> {
        if !lock(&self.index).contains(*id) {
            return Err(QueueError::NotFound(*id));
        }
        match self.append(Record::Delete { id: *id }, Vec::new()).await? {
            0 => Err(QueueError::NotFound(*id)),
            removed => Ok(removed),
        }
    }

    fn health(&self) -> QueueHealth {
        self.health.snapshot()
    }

    fn flush(&self) {
        lock(&self.index).flush(SystemTime::now(), &|_, _| true);
    }

    fn flush_where(&self, which: &(dyn Fn(QueueId, &Address) -> bool + Sync)) -> usize {
        lock(&self.index).flush(SystemTime::now(), which)
    }

    async fn hold(&self, id: &QueueId) -> Result<usize, QueueError> {
        self.administer(Record::Hold { id: *id }).await
    }

    async fn release(&self, id: &QueueId) -> Result<usize, QueueError> {
        self.administer(Record::Release { id: *id }).await
    }

    async fn requeue(&self, id: &QueueId) -> Result<usize, QueueError> {
        let at = SystemTime::now();
        self.administer(Record::Requeue { id: *id, at }).await
    }
}

impl Drop for EmbeddedQueue {
    fn drop(&mut self) {
        // The writer answers what is already queued, sees the channel closed, and returns.
        self.requests.close();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!(dir = %self.dir.display(), "queue writer thread panicked");
        }
    }
}

impl fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl RecipientState {
    /// A new entry, due at once.
    fn new(address: mq_plugin_api::Address, arrived: SystemTime) -> RecipientState {
        RecipientState {
            address,
            done: false,
            attempts: 0,
            next_attempt: arrived,
            last_error: None,
        }
    }
}

/// Creates the queue directory (mode 0700: the journal holds message bodies), and makes its
/// own entry durable when it is new. Missing parents are created as usual. An existing queue
/// directory that others may read is closed to them, with a log line.
fn create_dir(dir: &Path) -> Result<(), QueueError> {
    let create_error = |e| QueueError::io(format!("create {}", dir.display()), e);
    if dir.is_dir() {
        return private::restrict(dir, 0o700);
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(create_error)?;
    }
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        // Created meanwhile by someone else: the lock decides who uses it.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return private::restrict(dir, 0o700),
        Err(e) => return Err(create_error(e)),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => journal::sync_dir(parent),
        _ => Ok(()),
    }
}

/// Takes the directory's lock: two writers on one journal would interleave their records.
fn lock_dir(dir: &Path) -> Result<File, QueueError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| QueueError::io(format!("open {}", path.display()), e))?;
    private::restrict(&path, 0o600)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(QueueError::InUse(dir.to_owned())),
        Err(TryLockError::Error(e)) => Err(QueueError::io(format!("lock {}", path.display()), e)),
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let end = (0..=max).rev().find(|&i| text.is_char_boundary(i));
        text.truncate(end.unwrap_or(0));
    }
    text
}
