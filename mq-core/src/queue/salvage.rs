//! Damage inside the journal: finding the valid records after it, and moving it aside.
//!
//! Recovery stops at the first record of a segment that fails its framing, checksum or
//! decoding. From there, [`scan`] looks for the next valid frame at every following byte: a
//! length in bounds, a payload whose checksum holds and that decodes. What lies between two
//! valid frames is damage. Damage that ends the last segment with nothing valid after it is the
//! torn tail a crash leaves (the batch being written, never acknowledged): it is cut off, as
//! before. Any other damage cannot be explained by a crash: its bytes are copied into
//! `<queue>/corrupt/`, and the segment is rewritten without them (a new file synced, then
//! renamed over the old one), so that every valid record after the damage is kept and the
//! evidence is not destroyed.
//!
//! # Why rewrite the segment
//!
//! - Bodies are read at their offset in the segment, so the damaged bytes cannot stay in the
//!   middle of it without being found again at every start.
//! - A rename is atomic: a crash during the salvage leaves either the old segment (salvaged
//!   again at the next start) or the new one, never a mix. The damaged bytes are synced into
//!   `corrupt/` before the rename.
//! - The cost (a copy of one segment) is paid only when damage is found.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::QueueError;
use super::journal::{self, HEADER, MAX_RECORD};
use super::record;

/// Where the valid frames and the damage lie in the bytes after a broken record.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Valid frames, in order.
    pub(crate) frames: Vec<Range<usize>>,
    /// Damaged ranges, in order; the first starts at 0.
    pub(crate) damage: Vec<Range<usize>>,
}

/// What a salvage found and did, for the log and the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Damaged ranges moved aside.
    pub(crate) regions: u64,
    /// Their bytes.
    pub(crate) bytes: u64,
}

/// Splits `bytes` (starting at a broken record) into valid frames and damage.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut damaged_from = None;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(len) = frame_len(&bytes[at..]) {
            if let Some(start) = damaged_from.take() {
                scan.damage.push(start..at);
            }
            scan.frames.push(at..at + len);
            at += len;
        } else {
            damaged_from.get_or_insert(at);
            at += 1;
        }
    }
    if let Some(start) = damaged_from {
        scan.damage.push(start..bytes.len());
    }
    scan
}

/// The length of the valid frame at the start of `bytes`, if there is one. The cheap checks
/// come first: most positions in damage fail on the length or the record kind.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..HEADER as usize)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || u64::from(len) > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(HEADER as usize..HEADER as usize + len as usize)?;
    let valid = record::is_kind(payload[0])
        && crc32fast::hash(payload) == crc
        && record::decode(payload).is_ok();
    valid.then_some(HEADER as usize + len as usize)
}

/// Salvages segment `seq` of `dir`, broken at `offset`: cuts a torn tail off the last segment,
/// or moves the damage aside and rewrites the segment with every valid frame.
pub(crate) fn salvage(dir: &Path, seq: u64, offset: u64, last: bool) -> Result<Damage, QueueError> {
    let path = journal::segment_path(dir, seq);
    let read_error = |e| QueueError::io(format!("read {}", path.display()), e);
    let mut file = journal::open_segment(&path)?;
    let mut rest = Vec::new();
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_to_end(&mut rest))
        .map_err(read_error)?;
    let scan = scan(&rest);
    if last && scan.frames.is_empty() {
        cut_tail(&file, &path, offset, rest.len() as u64)?;
        return Ok(Damage::default());
    }
    let damage = move_aside(dir, seq, offset, &rest, &scan.damage)?;
    rewrite(dir, &path, &mut file, offset, &rest, &scan.frames)?;
    tracing::error!(
        segment = %path.display(),
        regions = damage.regions,
        damaged_bytes = damage.bytes,
        kept_records = scan.frames.len(),
        moved_to = %dir.join(CORRUPT).display(),
        "damaged queue journal records moved aside; the valid records after them are kept"
    );
    Ok(damage)
}

/// The directory, inside the queue's, that keeps damaged journal bytes.
const CORRUPT: &str = "corrupt";

/// Cuts the torn tail off the last segment, durably, before anything is appended after it.
fn cut_tail(file: &File, path: &Path, offset: u64, dropped: u64) -> Result<(), QueueError> {
    tracing::warn!(
        file = %path.display(),
        offset,
        dropped_bytes = dropped,
        "dropping the unfinished end of the queue journal (a crash during a write)"
    );
    file.set_len(offset)
        .and_then(|()| file.sync_all())
        .map_err(|e| QueueError::io(format!("truncate {}", path.display()), e))
}

/// Copies each damaged range into its own file in `<dir>/corrupt/`, synced, named after the
/// segment, the range's offset in it, and the time.
fn move_aside(
    dir: &Path,
    seq: u64,
    offset: u64,
    rest: &[u8],
    damage: &[Range<usize>],
) -> Result<Damage, QueueError> {
    let corrupt = dir.join(CORRUPT);
    match DirBuilder::new().mode(0o700).create(&corrupt) {
        Ok(()) => journal::sync_dir(dir)?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(QueueError::io(format!("create {}", corrupt.display()), e)),
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut moved = Damage::default();
    for range in damage {
        let at = offset + range.start as u64;
        let name = format!("journal-{seq:016}-at-{at}-{}.bad", now.as_micros());
        write_synced(&corrupt.join(name), &rest[range.clone()])?;
        moved.regions += 1;
        moved.bytes += range.len() as u64;
    }
    journal::sync_dir(&corrupt)?;
    Ok(moved)
}

/// Writes `bytes` to a new file (mode 0600) and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), QueueError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .map_err(|e| QueueError::io(format!("write {}", path.display()), e))
}

/// Replaces the segment at `path` by its first `offset` bytes and the valid `frames` of `rest`:
/// a new file, synced, renamed over it, the directory synced.
fn rewrite(
    dir: &Path,
    path: &Path,
    file: &mut File,
    offset: u64,
    rest: &[u8],
    frames: &[Range<usize>],
) -> Result<(), QueueError> {
    let temp = temp_path(path);
    let write_error = |e| QueueError::io(format!("write {}", temp.display()), e);
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(write_error)?;
    file.seek(SeekFrom::Start(0)).map_err(write_error)?;
    io::copy(&mut Read::by_ref(file).take(offset), &mut out).map_err(write_error)?;
    for frame in frames {
        out.write_all(&rest[frame.clone()]).map_err(write_error)?;
    }
    out.sync_all().map_err(write_error)?;
    fs::rename(&temp, path).map_err(|e| {
        QueueError::io(
            format!("rename {} to {}", temp.display(), path.display()),
            e,
        )
    })?;
    journal::sync_dir(dir)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".salvage");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::QueueId;
    use crate::queue::record::Record;

    fn frame(id: u64) -> Vec<u8> {
        journal::frame(
            &Record::Delete {
                id: QueueId::from_u64(id),
            },
            b"",
        )
    }

    #[test]
    fn the_frames_after_damage_are_found_and_the_damage_between_them() {
        let (a, b, c) = (frame(1), frame(2), frame(3));
        let mut bytes = [a.clone(), b.clone(), c.clone()].concat();
        bytes[a.len() + 9] ^= 1;
        let scan = scan(&bytes[a.len()..]);
        assert_eq!(scan.damage, vec![0..b.len()]);
        assert_eq!(scan.frames, vec![b.len()..b.len() + c.len()]);
    }

    #[test]
    fn garbage_and_zeros_hold_no_frame() {
        for bytes in [vec![0; 4096], vec![0xAB; 4096], (0..=255).collect()] {
            let scan = scan(&bytes);
            assert!(scan.frames.is_empty());
            assert_eq!(scan.damage, vec![0..bytes.len()]);
        }
    }
}
