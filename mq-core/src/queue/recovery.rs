//! Rebuilding the index on open: every segment replayed in order.
//!
//! A record that fails its framing or checksum at the end of the last segment is the batch a
//! crash interrupted: none of it was acknowledged (a batch is answered only after its sync, and
//! the next batch starts after that), so the file is cut there and the queue starts. The same
//! anywhere else, or a record that passed its checksum but does not decode, is damage that a
//! crash cannot explain, and the queue refuses to start rather than guess.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::QueueError;
use super::index::{Index, Placement};
use super::journal::{self, Frame, HEADER, ReadError, SegmentReader};
use super::record;

/// The state recovered from a journal, and the segment to go on appending to.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) index: Index,
    pub(crate) file: Arc<File>,
    pub(crate) seq: u64,
    pub(crate) len: u64,
}

/// Replays every segment in `dir`; starts segment 1 if there is none.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, QueueError> {
    let segments = journal::list_segments(dir)?;
    let mut index = Index::default();
    let mut current = None;
    for (i, &seq) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let (file, len) = replay(&mut index, dir, seq, last)?;
        current = Some((file, seq, len));
    }
    let (file, seq, len) = if let Some(current) = current {
        current
    } else {
        let file = Arc::new(journal::create_segment(dir, 1)?);
        index.add_segment(1, Arc::clone(&file), 0);
        (file, 1, 0)
    };
    Ok(Recovered {
        index,
        file,
        seq,
        len,
    })
}

/// Replays one segment into the index; returns its file and its length once any torn tail is
/// cut off.
fn replay(
    index: &mut Index,
    dir: &Path,
    seq: u64,
    last: bool,
) -> Result<(Arc<File>, u64), QueueError> {
    let path = journal::segment_path(dir, seq);
    let read_error = |e| QueueError::io(format!("read {}", path.display()), e);
    let file = Arc::new(journal::open_segment(&path)?);
    let len = file.metadata().map_err(read_error)?.len();
    index.add_segment(seq, Arc::clone(&file), len);
    let mut reader = SegmentReader::new(file.try_clone().map_err(read_error)?, len);
    let end = loop {
        match reader.next_frame() {
            Ok(Some(frame)) => apply(index, &path, seq, &frame)?,
            Ok(None) => break len,
            Err(ReadError::Broken { offset, reason }) if last => {
                cut_tail(&file, &path, offset, len, reason)?;
                break offset;
            }
            Err(ReadError::Broken { offset, reason }) => {
                return Err(corrupt(path, offset, reason));
            }
            Err(ReadError::Io(e)) => return Err(read_error(e)),
        }
    };
    index.set_segment_len(seq, end);
    Ok((file, end))
}

fn apply(index: &mut Index, path: &Path, seq: u64, frame: &Frame) -> Result<(), QueueError> {
    let record = record::decode(&frame.payload)
        .map_err(|reason| corrupt(path.to_owned(), frame.offset, reason))?;
    let at = Placement {
        segment: seq,
        offset: frame.offset,
        len: HEADER + frame.payload.len() as u64,
    };
    index.apply(record, at);
    Ok(())
}

/// Cuts the torn tail off the last segment, durably, before anything is appended after it.
fn cut_tail(
    file: &File,
    path: &Path,
    offset: u64,
    len: u64,
    reason: &str,
) -> Result<(), QueueError> {
    tracing::warn!(
        file = %path.display(),
        offset,
        dropped_bytes = len - offset,
        reason,
        "dropping the unfinished end of the queue journal (a crash during a write)"
    );
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| QueueError::io(format!("truncate {}", path.display()), e))
}

fn corrupt(file: PathBuf, offset: u64, reason: &str) -> QueueError {
    QueueError::Corrupt {
        file,
        offset,
        reason: reason.to_owned(),
    }
}
