//! Rebuilding the index on open: every segment replayed in order.
//!
//! At the first record of a segment that fails its framing or checksum, or does not decode,
//! the segment is salvaged (see `salvage`): a torn tail at the end of the last segment (the
//! batch a crash interrupted, none of it acknowledged: a batch is answered only after its sync,
//! and the next batch starts after that) is cut off; any other damage is moved aside into
//! `corrupt/` and the segment rewritten with every valid record after it. Then the replay
//! starts over, on the journal as it now is, until it reads through without damage.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::error::QueueError;
use super::index::{Index, Placement};
use super::journal::{self, Frame, HEADER, ReadError, SegmentReader};
use super::record;
use super::salvage::{self, Damage};

/// The state recovered from a journal, and the segment to go on appending to.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) index: Index,
    pub(crate) file: Arc<File>,
    pub(crate) seq: u64,
    pub(crate) len: u64,
    /// The damage moved aside on the way.
    pub(crate) damage: Damage,
}

/// Replays every segment in `dir`, salvaging each damaged one; starts segment 1 if there is
/// none.
pub(crate) fn recover(dir: &Path) -> Result<Recovered, QueueError> {
    let mut damage = Damage::default();
    loop {
        match replay_all(dir)? {
            Ok(mut recovered) => {
                recovered.damage = damage;
                return Ok(recovered);
            }
            Err(broken) => {
                let found = salvage::salvage(dir, broken.seq, broken.offset, broken.last)?;
                damage.regions += found.regions;
                damage.bytes += found.bytes;
            }
        }
    }
}

/// Where a replay met a record it could not read.
#[derive(Debug)]
struct Broken {
    seq: u64,
    offset: u64,
    last: bool,
}

fn replay_all(dir: &Path) -> Result<Result<Recovered, Broken>, QueueError> {
    let segments = journal::list_segments(dir)?;
    let mut index = Index::default();
    let mut current = None;
    for (i, &seq) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match replay(&mut index, dir, seq)? {
            Ok((file, len)) => current = Some((file, seq, len)),
            Err(offset) => return Ok(Err(Broken { seq, offset, last })),
        }
    }
    let (file, seq, len) = if let Some(current) = current {
        current
    } else {
        let file = Arc::new(journal::create_segment(dir, 1)?);
        index.add_segment(1, Arc::clone(&file), 0);
        (file, 1, 0)
    };
    Ok(Ok(Recovered {
        index,
        file,
        seq,
        len,
        damage: Damage::default(),
    }))
}

/// Replays one segment into the index; returns its file and its length, or the offset of
/// the first record that cannot be read.
fn replay(
    index: &mut Index,
    dir: &Path,
    seq: u64,
) -> Result<Result<(Arc<File>, u64), u64>, QueueError> {
    let path = journal::segment_path(dir, seq);
    let read_error = |e| QueueError::io(format!("read {}", path.display()), e);
    let file = Arc::new(journal::open_segment(&path)?);
    let len = file.metadata().map_err(read_error)?.len();
    index.add_segment(seq, Arc::clone(&file), len);
    let mut reader = SegmentReader::new(file.try_clone().map_err(read_error)?, len);
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                if !apply(index, seq, &frame) {
                    return Ok(Err(frame.offset));
                }
            }
            Ok(None) => return Ok(Ok((file, len))),
            Err(ReadError::Broken { offset, reason }) => {
                tracing::debug!(file = %path.display(), offset, reason, "unreadable queue journal record");
                return Ok(Err(offset));
            }
            Err(ReadError::Io(e)) => return Err(read_error(e)),
        }
    }
}

/// Applies a frame's record; false if it does not decode.
fn apply(index: &mut Index, seq: u64, frame: &Frame) -> bool {
    let Ok(record) = record::decode(&frame.payload) else {
        return false;
    };
    let at = Placement {
        segment: seq,
        offset: frame.offset,
        len: HEADER + frame.payload.len() as u64,
    };
    index.apply(record, at);
    true
}
