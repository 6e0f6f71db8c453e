//! The journal's one writer thread: group commit, segment rotation, deletion and compaction.
//!
//! Requests arrive on a channel. The writer takes the first, then every other one already
//! waiting (up to a bound), writes their records with vectored writes straight from the
//! requests' own buffers (a batch is never gathered into one), syncs once, applies them to
//! the index, and only then answers: a new message, and what `take_due` hands out, is always
//! on disk. A batch that holds only results of delivery attempts (an entry done or deferred)
//! is answered once written, and synced with the next batch that needs a sync or
//! `sync_later` (0.1 s) after it, whichever comes first: a written record survives a crash of mq,
//! and what a crash of the machine can lose of it only repeats an attempt. Between batches it
//! deletes segments nothing needs and compacts the oldest one a little at a time, so that
//! clients never wait behind a whole compaction.
//!
//! A write, sync or new segment that fails (a full disk, too many open files) does not stop
//! it: the requests of that batch get the error, and the writer is in a fault (see `fault`)
//! until a write succeeds again. Before its next write it cuts the segment back to the end of
//! its last answered record, so that a half-written batch is never buried mid-journal; retries
//! are spaced by a back-off, and requests that arrive in between get the error at once.
//! Nothing answered before the fault is touched: it all lies before that length.

use std::fs::{self, File};
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use smol::channel::{Receiver, TryRecvError, WeakSender};

use super::error::QueueError;
use super::fault::{Fault, Health};
use super::hot::{self, Hot};
use super::index::{Index, Placement};
use super::journal::{self, Framed};
use super::record::Record;

/// Requests taken into one batch at most, and their bytes: bounds the latency a big batch adds.
const BATCH_REQUESTS: usize = 1024;
const BATCH_BYTES: usize = 8 << 20;
/// Bytes of live messages copied forward per compaction step, between client batches: a step
/// holds them in memory while it writes them, so it stays small beside the sessions' own.
const COMPACTION_STEP: u64 = 1 << 20;
/// The most buffers one vectored write takes (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// The answer to a request: how many live entries it touched.
pub(crate) type Reply = oneshot::Sender<Result<usize, QueueError>>;

/// What the queue asks of its writer.
#[derive(Debug)]
pub(crate) enum Request {
    /// Append a framed record and apply it once synced.
    Append {
        frame: Framed,
        record: Record,
        reply: Reply,
    },
    /// Delete and compact every segment that can be, then answer.
    Maintain { reply: Reply },
    /// Sync what was written and answered without a sync, if anything was: from the
    /// [`Reminder`].
    Sync,
}

/// The writer's state: the current segment and what it needs to rotate and compact.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) fsync: bool,
    pub(crate) segment_size: u64,
    pub(crate) index: Arc<Mutex<Index>>,
    /// Bodies just written, kept for their delivery.
    pub(crate) hot: Arc<Mutex<Hot>>,
    pub(crate) requests: Receiver<Request>,
    /// The current segment, its number and length.
    pub(crate) file: Arc<File>,
    pub(crate) seq: u64,
    pub(crate) len: u64,
    /// What the metrics page shows of the writer's faults.
    pub(crate) health: Arc<Health>,
    /// The fault the writer is in, if its last write failed.
    pub(crate) fault: Option<Fault>,
    /// Since when records written and answered wait for a sync, if any do.
    pub(crate) unsynced: Option<Instant>,
    /// The longest they wait (`EmbeddedOptions::sync_later`).
    pub(crate) sync_later: Duration,
    /// Asks for their sync when nothing else brings it.
    pub(crate) reminder: Reminder,
}

/// Locks the index. A panic while it was held cannot leave it half-changed in a way that
/// matters more than stopping the MTA would, so a poisoned lock is used as it is.
pub(crate) fn lock(index: &Mutex<Index>) -> MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Writer {
    /// Starts the writer thread, `mq-queue-writer`.
    pub(crate) fn spawn(self) -> Result<thread::JoinHandle<()>, QueueError> {
        thread::Builder::new()
            .name("mq-queue-writer".into())
            .spawn(move || self.run())
            .map_err(|e| QueueError::io("start the queue writer thread", e))
    }

    fn run(mut self) {
        self.serve();
        // Requests still waiting are dropped unanswered, which their callers see as `Closed`;
        // closing first makes later ones fail at once.
        self.requests.close();
        while self.requests.try_recv().is_ok() {}
        self.sync_written();
    }

    /// Serves requests until the queue is dropped.
    fn serve(&mut self) {
        // Recovery may have left segments to delete or compact.
        let mut maintenance = true;
        loop {
            let first = if maintenance {
                match self.requests.try_recv() {
                    Ok(request) => Some(request),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Closed) => return,
                }
            } else {
                match self.requests.recv_blocking() {
                    Ok(request) => Some(request),
                    Err(_) => return,
                }
            };
            if let Some(first) = first {
                let batch = self.gather(first);
                self.commit(batch);
            }
            // One step per batch: under load, compaction still moves on.
            maintenance = self.maintain_step().unwrap_or_else(|err| {
                tracing::warn!(error = %err, "queue journal maintenance failed; retried after the next write");
                false
            });
        }
    }

    /// Syncs the records written and answered since the last sync, if any. A failure puts the
    /// writer in a fault: the next write cuts back to them and syncs again. In a fault it is
    /// left to that write, after the back-off.
    fn sync_written(&mut self) {
        if self.unsynced.is_none() || self.fault.is_some() {
            return;
        }
        if let Err(err) = self.sync() {
            // Not tried again at once: the fault's next write cuts back and syncs first.
            self.unsynced = None;
            Fault::failed(&mut self.fault, &err, &self.health);
        }
    }

    /// Syncs the current segment.
    fn sync(&mut self) -> Result<(), QueueError> {
        self.file
            .sync_data()
            .map_err(|e| self.io_error("sync", e))?;
        self.unsynced = None;
        self.health.synced();
        Ok(())
    }

    /// The first request and whatever else is already waiting, within the batch bounds.
    fn gather(&self, first: Request) -> Vec<Request> {
        let mut bytes = first.bytes();
        let mut batch = vec![first];
        while batch.len() < BATCH_REQUESTS && bytes < BATCH_BYTES {
            let Ok(request) = self.requests.try_recv() else {
                break;
            };
            bytes += request.bytes();
            batch.push(request);
        }
        batch
    }

    /// Writes and syncs a batch, applies it, answers it; then, if asked, maintains to the end.
    fn commit(&mut self, batch: Vec<Request>) {
        let mut frames = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut maintain = Vec::new();
        let mut sync = false;
        for request in batch {
            match request {
                Request::Append {
                    frame,
                    record,
                    reply,
                } => {
                    frames.push(frame);
                    records.push(record);
                    replies.push(reply);
                }
                Request::Maintain { reply } => maintain.push(reply),
                Request::Sync => sync = true,
            }
        }
        let later = records.iter().all(Record::may_sync_later);
        let placed = self.append(&frames, later);
        if placed.is_ok() {
            // A copy of each new body (as room allows) for the delivery about to ask for it;
            // kept before the message is in the index, so no delivery misses it.
            // Locked only for a batch that holds new messages: acknowledgements alone take none.
            let mut hot = None;
            for (record, frame) in records.iter().zip(&frames) {
                if let Record::Message(message) = record {
                    let hot = hot.get_or_insert_with(|| hot::lock(&self.hot));
                    hot.offer(message.id, frame.body());
                }
            }
        }
        // The bodies are on disk: free them before anyone is answered.
        drop(frames);
        let counts = placed.map(|at| self.apply(records.into_iter().zip(at)));
        match counts {
            Ok(counts) => answer(replies.into_iter().zip(counts), &Ok(())),
            Err(err) => answer(replies.into_iter().map(|reply| (reply, 0)), &Err(err)),
        }
        if sync {
            self.sync_written();
        }
        if !maintain.is_empty() {
            let done = self.maintain_fully();
            answer(maintain.into_iter().map(|reply| (reply, 0)), &done);
        }
    }

    /// Appends frames with vectored writes and one sync (none yet if `later`: see
    /// [`Record::may_sync_later`]); returns where each landed. A failure puts the writer in a
    /// fault, a success ends one.
    fn append(&mut self, frames: &[Framed], later: bool) -> Result<Vec<Placement>, QueueError> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(fault) = &self.fault {
            // Before the next try, the fault's error at once: not another failure.
            fault.may_retry()?;
        }
        let placed = self.try_append(frames, later);
        match &placed {
            Ok(_) => {
                if let Some(fault) = self.fault.take() {
                    fault.ended(&self.health);
                }
            }
            Err(err) => Fault::failed(&mut self.fault, err, &self.health),
        }
        placed
    }

    /// Appends frames, after a fault once the segment is cut back to what was answered. Starts a
    /// new segment first if they would not fit in the current one (a batch larger than a segment
    /// gets a segment of its own).
    fn try_append(&mut self, frames: &[Framed], later: bool) -> Result<Vec<Placement>, QueueError> {
        if self.fault.is_some() {
            self.cut_back()?;
        }
        let total: u64 = frames.iter().map(Framed::len).sum();
        if self.len > 0 && self.len + total > self.segment_size {
            if self.unsynced.is_some() {
                // Later syncs are of the next segment.
                self.sync()?;
            }
            self.rotate()?;
        }
        let mut placements = Vec::with_capacity(frames.len());
        let mut offset = self.len;
        for frame in frames {
            let len = frame.len();
            placements.push(Placement {
                segment: self.seq,
                offset,
                len,
            });
            offset += len;
        }
        self.write(frames, total, later)?;
        Ok(placements)
    }

    /// Writes the frames (`total` bytes) at the end of the segment, then syncs, unless they
    /// may be synced `later` and `sync_later` has not passed since the first record that
    /// waits for a sync.
    fn write(&mut self, frames: &[Framed], total: u64, later: bool) -> Result<(), QueueError> {
        let mut slices: Vec<IoSlice<'_>> = frames
            .iter()
            .flat_map(Framed::parts)
            .filter(|part| !part.is_empty())
            .map(IoSlice::new)
            .collect();
        write_all_vectored(&*self.file, &mut slices).map_err(|e| self.io_error("write", e))?;
        if self.fsync {
            // The clock is read only for records that may wait: a new message is synced at once.
            let waits =
                later && self.unsynced.get_or_insert_with(Instant::now).elapsed() < self.sync_later;
            if waits {
                self.reminder.arm();
            } else {
                self.sync()?;
            }
        }
        self.len += total;
        lock(&self.index).set_segment_len(self.seq, self.len);
        Ok(())
    }

    /// Cuts the segment back to the end of its last answered record, and syncs it: what a
    /// failed write may have left after that was never answered, and must not stay before the
    /// next record.
    fn cut_back(&mut self) -> Result<(), QueueError> {
        self.file
            .set_len(self.len)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| self.io_error("truncate", e))?;
        self.unsynced = None;
        Ok(())
    }

    fn io_error(&self, action: &str, error: io::Error) -> QueueError {
        let path = journal::segment_path(&self.dir, self.seq);
        QueueError::io(format!("{action} {}", path.display()), error)
    }

    /// Applies written records to the index. A record that took a message's last entry away
    /// logs `removed`, as Postfix's qmgr does: the last line of a message's life.
    fn apply(&self, records: impl Iterator<Item = (Record, Placement)>) -> Vec<usize> {
        let mut index = lock(&self.index);
        // Once per batch, not per message; always after the index's, never the other way round.
        let mut hot = hot::lock(&self.hot);
        records
            .map(|(record, at)| {
                let ends = match &record {
                    Record::Done { id, .. } | Record::Delete { id } => Some(*id),
                    _ => None,
                };
                if let Record::Hold { id } = &record {
                    // Not delivered until released, maybe long after: read back then.
                    hot.forget(*id);
                }
                let touched = index.apply(record, at);
                if let Some(id) = ends
                    && touched > 0
                    && !index.contains(id)
                {
                    hot.forget(id);
                    tracing::info!(queue_id = %id, "removed");
                }
                touched
            })
            .collect()
    }

    /// Starts the next segment; it is durable before anything is written to it.
    fn rotate(&mut self) -> Result<(), QueueError> {
        let seq = self.seq + 1;
        let file = Arc::new(journal::create_segment(&self.dir, seq)?);
        lock(&self.index).add_segment(seq, Arc::clone(&file), 0);
        self.file = file;
        self.seq = seq;
        self.len = 0;
        Ok(())
    }

    fn maintain_fully(&mut self) -> Result<(), QueueError> {
        if let Some(fault) = &self.fault {
            return Err(fault.error());
        }
        while self.maintain_step()? {}
        Ok(())
    }

    /// Deletes dead segments and copies one step of the oldest segment's live messages
    /// forward; `true` if there may be more to do.
    fn maintain_step(&mut self) -> Result<bool, QueueError> {
        if self.fault.is_some() {
            // Compaction waits until clients' writes succeed again.
            return Ok(false);
        }
        self.delete_dead()?;
        let chunk = {
            let index = lock(&self.index);
            match index.compaction_candidate() {
                Some(seq) => index.compaction_chunk(seq, COMPACTION_STEP),
                None => return Ok(false),
            }
        };
        // The snapshot is consistent with the journal: only this thread applies records, and
        // the copies land after every record applied so far.
        let mut frames = Vec::with_capacity(chunk.len());
        let mut records = Vec::with_capacity(chunk.len());
        for (message, body) in chunk {
            let record = Record::Message(message);
            frames.push(Framed::new(&record, body.read()?));
            records.push(record);
        }
        let placements = self.append(&frames, false)?;
        self.apply(records.into_iter().zip(placements));
        self.delete_dead()?;
        Ok(true)
    }

    /// Deletes the oldest segments while nothing live is in them, each durably (the directory
    /// synced) before the next, so that a crash never brings back an older one alone.
    fn delete_dead(&mut self) -> Result<(), QueueError> {
        loop {
            let Some(seq) = lock(&self.index).dead_oldest() else {
                return Ok(());
            };
            let path = journal::segment_path(&self.dir, seq);
            fs::remove_file(&path)
                .map_err(|e| QueueError::io(format!("remove {}", path.display()), e))?;
            journal::sync_dir(&self.dir)?;
            lock(&self.index).remove_segment(seq);
            tracing::debug!(segment = seq, "deleted a queue journal segment");
        }
    }
}

/// Reminds the writer to sync records it wrote and answered without a sync, should no new
/// message bring a sync first: a thread of its own (`mq-queue-sync`, started when first
/// needed) that, once armed, waits `sync_later` and sends [`Request::Sync`]. Armed while
/// armed changes nothing, so it wakes at most once per `sync_later` (ten times a second)
/// whatever the rate of records; a timer per write would cost the writer more than the syncs
/// it saves.
#[derive(Debug)]
pub(crate) struct Reminder {
    requests: WeakSender<Request>,
    delay: Duration,
    state: Arc<ReminderState>,
    thread: Option<Thread>,
}

#[derive(Debug, Default)]
struct ReminderState {
    armed: AtomicBool,
    stopped: AtomicBool,
}

impl Reminder {
    /// A reminder that sends to the writer's channel, without keeping it open.
    pub(crate) fn new(requests: WeakSender<Request>, delay: Duration) -> Reminder {
        Reminder {
            requests,
            delay,
            state: Arc::default(),
            thread: None,
        }
    }

    /// Asks for a [`Request::Sync`] after its delay, unless one is coming already.
    fn arm(&mut self) {
        if self.state.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(thread) = &self.thread {
            thread.unpark();
            return;
        }
        let (state, requests, delay) = (Arc::clone(&self.state), self.requests.clone(), self.delay);
        match thread::Builder::new()
            .name("mq-queue-sync".into())
            .spawn(move || remind(&state, &requests, delay))
        {
            Ok(handle) => self.thread = Some(handle.thread().clone()),
            Err(error) => {
                // The next write past the delay, the next message, or the writer's end syncs.
                tracing::warn!(%error, "cannot start the queue's sync reminder thread");
                self.state.armed.store(false, Ordering::Release);
            }
        }
    }
}

impl Drop for Reminder {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }
}

/// The reminder's thread: once armed, waits `delay`, disarms and sends [`Request::Sync`]; ends
/// when the reminder or the writer's channel is gone.
fn remind(state: &ReminderState, requests: &WeakSender<Request>, delay: Duration) {
    loop {
        while !state.armed.load(Ordering::Acquire) {
            if state.stopped.load(Ordering::Acquire) {
                return;
            }
            thread::park();
        }
        thread::sleep(delay);
        state.armed.store(false, Ordering::Release);
        let Some(requests) = requests.upgrade() else {
            return;
        };
        if state.stopped.load(Ordering::Acquire) || requests.send_blocking(Request::Sync).is_err() {
            return;
        }
    }
}

/// Writes every byte of `slices`, in order, at most [`IOV_MAX`] buffers per call: a short write
/// goes on where it stopped, an interrupted one is retried.
fn write_all_vectored(mut out: impl Write, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    for mut chunk in slices.chunks_mut(IOV_MAX) {
        // Leading empty buffers would make a write of zero bytes look like a failure.
        IoSlice::advance_slices(&mut chunk, 0);
        while !chunk.is_empty() {
            match out.write_vectored(chunk) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut chunk, written),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

/// Sends each caller its count, or all of them the error.
fn answer(replies: impl Iterator<Item = (Reply, usize)>, result: &Result<(), QueueError>) {
    for (reply, count) in replies {
        let answer = match result {
            Ok(()) => Ok(count),
            Err(err) => Err(err.duplicate()),
        };
        // A caller that went away no longer needs its answer.
        let _ = reply.send(answer);
    }
}

impl Request {
    fn bytes(&self) -> usize {
        match self {
            Request::Append { frame, .. } => frame.len() as usize,
            Request::Maintain { .. } | Request::Sync => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that takes at most `max_bytes` per call, fails every third call with
    /// `Interrupted`, and checks that no call passes more than `IOV_MAX` buffers.
    struct Stingy {
        written: Vec<u8>,
        max_bytes: usize,
        calls: usize,
        widest: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            assert!(bufs.len() <= IOV_MAX, "{} buffers in one write", bufs.len());
            self.widest = self.widest.max(bufs.len());
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let before = self.written.len();
            for buf in bufs {
                let room = self.max_bytes - (self.written.len() - before);
                self.written.extend_from_slice(&buf[..buf.len().min(room)]);
                if buf.len() >= room {
                    break;
                }
            }
            Ok(self.written.len() - before)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn stingy(max_bytes: usize) -> Stingy {
        Stingy {
            written: Vec::new(),
            max_bytes,
            calls: 0,
            widest: 0,
        }
    }

    /// Buffers of varied lengths (some empty), each filled with its own pattern.
    fn parts(count: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|n| {
                let len = match n % 5 {
                    0 => 0,
                    1 => 7,
                    2 => 300,
                    3 => 1,
                    _ => 5000 + n,
                };
                (0..len).map(|i| (n * 13 + i) as u8).collect()
            })
            .collect()
    }

    #[test]
    fn short_and_interrupted_writes_go_on_where_they_stopped() {
        let parts = parts(40);
        for max_bytes in [1, 3, 299, 4096, 1 << 20] {
            let mut out = stingy(max_bytes);
            let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            write_all_vectored(&mut out, &mut slices).unwrap();
            assert_eq!(
                out.written,
                parts.concat(),
                "at most {max_bytes} bytes a write"
            );
        }
    }

    #[test]
    fn many_buffers_go_at_most_iov_max_at_a_time() {
        let parts = parts(3 * IOV_MAX + 17);
        let mut out = stingy(usize::MAX / 2);
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_vectored(&mut out, &mut slices).unwrap();
        assert_eq!(out.written, parts.concat());
        assert_eq!(out.widest, IOV_MAX);
    }

    #[test]
    fn a_write_that_takes_nothing_is_an_error_not_a_hang() {
        let mut out = stingy(0);
        let parts = parts(3);
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let error = write_all_vectored(&mut out, &mut slices).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WriteZero);
        let mut nothing: Vec<IoSlice<'_>> = vec![IoSlice::new(&[]); 3];
        write_all_vectored(&mut out, &mut nothing).unwrap();
    }

    #[test]
    fn a_real_file_gets_every_buffer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = journal::create_segment(dir.path(), 1).unwrap();
        let mut parts = parts(2 * IOV_MAX + 5);
        for part in parts.iter_mut().step_by(300) {
            *part = vec![part.len() as u8; 1 << 20];
        }
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        write_all_vectored(&file, &mut slices).unwrap();
        let path = journal::segment_path(dir.path(), 1);
        assert_eq!(fs::read(path).unwrap(), parts.concat());
    }
}
