//! The journal's one writer thread: group commit, segment rotation, deletion and compaction.
//!
//! Requests arrive on a channel. The writer takes the first, then every other one already
//! waiting (up to a bound), writes their records with one `write`, syncs once, applies them to
//! the index, and only then answers: what a caller sees, and what `take_due` hands out, is
//! always on disk. Between batches it deletes segments nothing needs and compacts the oldest one
//! a little at a time, so that clients never wait behind a whole compaction.
//!
//! At the first write or sync error it stops: after a failed `fsync` the state of the file is
//! unknown, and appending more would bury a half-written record mid-journal. The requests of
//! that batch get the error, later ones [`QueueError::Closed`]; on the next start the journal's
//! tail is recovered as after a crash.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use futures::channel::oneshot;
use smol::channel::{Receiver, TryRecvError};

use super::error::QueueError;
use super::index::{Index, Placement};
use super::journal;
use super::record::Record;

/// Requests taken into one batch at most, and their bytes: bounds the latency a big batch adds.
const BATCH_REQUESTS: usize = 1024;
const BATCH_BYTES: usize = 8 << 20;
/// Bytes of live messages copied forward per compaction step, between client batches.
const COMPACTION_STEP: u64 = 4 << 20;

/// The answer to a request: how many live entries it touched.
pub(crate) type Reply = oneshot::Sender<Result<usize, QueueError>>;

/// What the queue asks of its writer.
#[derive(Debug)]
pub(crate) enum Request {
    /// Append a framed record and apply it once synced.
    Append {
        frame: Vec<u8>,
        record: Record,
        reply: Reply,
    },
    /// Delete and compact every segment that can be, then answer.
    Maintain { reply: Reply },
}

/// The writer's state: the current segment and what it needs to rotate and compact.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) fsync: bool,
    pub(crate) segment_size: u64,
    pub(crate) index: Arc<Mutex<Index>>,
    pub(crate) requests: Receiver<Request>,
    /// The current segment, its number and length.
    pub(crate) file: Arc<File>,
    pub(crate) seq: u64,
    pub(crate) len: u64,
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
        if let Err(err) = self.serve() {
            tracing::error!(error = %err, "queue writer stopped; the queue is closed");
        }
        // Requests still waiting are dropped unanswered, which their callers see as `Closed`;
        // closing first makes later ones fail at once.
        self.requests.close();
        while self.requests.try_recv().is_ok() {}
    }

    fn serve(&mut self) -> Result<(), QueueError> {
        // Recovery may have left segments to delete or compact.
        let mut maintenance = true;
        loop {
            let first = if maintenance {
                match self.requests.try_recv() {
                    Ok(request) => Some(request),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Closed) => return Ok(()),
                }
            } else {
                match self.requests.recv_blocking() {
                    Ok(request) => Some(request),
                    Err(_) => return Ok(()),
                }
            };
            if let Some(first) = first {
                let batch = self.gather(first);
                self.commit(batch)?;
            }
            // One step per batch: under load, compaction still moves on.
            maintenance = self.maintain_step()?;
        }
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
    fn commit(&mut self, batch: Vec<Request>) -> Result<(), QueueError> {
        let mut frames = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut maintain = Vec::new();
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
            }
        }
        let counts = self
            .append(&frames)
            .map(|at| self.apply(records.into_iter().zip(at)));
        match counts {
            Ok(counts) => answer(replies.into_iter().zip(counts), Ok(()))?,
            Err(err) => answer(replies.into_iter().map(|reply| (reply, 0)), Err(err))?,
        }
        if maintain.is_empty() {
            return Ok(());
        }
        let done = self.maintain_fully();
        answer(maintain.into_iter().map(|reply| (reply, 0)), done)
    }

    /// Appends frames with one write and one sync; returns where each landed. Starts a new
    /// segment first if they would not fit in the current one (a batch larger than a segment
    /// gets a segment of its own).
    fn append(&mut self, frames: &[Vec<u8>]) -> Result<Vec<Placement>, QueueError> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let total: u64 = frames.iter().map(|f| f.len() as u64).sum();
        if self.len > 0 && self.len + total > self.segment_size {
            self.rotate()?;
        }
        let mut placements = Vec::with_capacity(frames.len());
        let mut offset = self.len;
        for frame in frames {
            let len = frame.len() as u64;
            placements.push(Placement {
                segment: self.seq,
                offset,
                len,
            });
            offset += len;
        }
        self.write(&frames.concat())?;
        Ok(placements)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), QueueError> {
        (&*self.file)
            .write_all(bytes)
            .map_err(|e| self.io_error("write", e))?;
        if self.fsync {
            self.file
                .sync_data()
                .map_err(|e| self.io_error("sync", e))?;
        }
        self.len += bytes.len() as u64;
        lock(&self.index).set_segment_len(self.seq, self.len);
        Ok(())
    }

    fn io_error(&self, action: &str, error: io::Error) -> QueueError {
        let path = journal::segment_path(&self.dir, self.seq);
        QueueError::io(format!("{action} {}", path.display()), error)
    }

    fn apply(&self, records: impl Iterator<Item = (Record, Placement)>) -> Vec<usize> {
        let mut index = lock(&self.index);
        records
            .map(|(record, at)| index.apply(record, at))
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
        while self.maintain_step()? {}
        Ok(())
    }

    /// Deletes dead segments and copies one step of the oldest segment's live messages
    /// forward; `true` if there may be more to do.
    fn maintain_step(&mut self) -> Result<bool, QueueError> {
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
            frames.push(journal::frame(&record, &body.read()?));
            records.push(record);
        }
        let placements = self.append(&frames)?;
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

/// Sends each caller its count, or all of them the error (which is then returned).
fn answer(
    replies: impl Iterator<Item = (Reply, usize)>,
    result: Result<(), QueueError>,
) -> Result<(), QueueError> {
    for (reply, count) in replies {
        let answer = match &result {
            Ok(()) => Ok(count),
            Err(err) => Err(err.duplicate()),
        };
        // A caller that went away no longer needs its answer.
        let _ = reply.send(answer);
    }
    result
}

impl Request {
    fn bytes(&self) -> usize {
        match self {
            Request::Append { frame, .. } => frame.len(),
            Request::Maintain { .. } => 0,
        }
    }
}
