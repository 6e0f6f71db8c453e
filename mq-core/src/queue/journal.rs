//! The journal on disk: numbered segment files of checksummed, length-framed records.
//!
//! A record is framed as `[u32 LE length][u32 LE crc32 of payload][payload]` (the payload is in
//! `record`). A crash can leave the end of the last segment half-written (only the last batch is
//! unsynced, and its pages may have reached the disk in any order, or as zeros); the checksum,
//! and refusing empty records, make such a tail fail to parse instead of parsing as something
//! else.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::QueueError;
use super::private;
use super::record::{self, Record};

/// The largest payload a record may have; a larger length on disk is damage, not data.
pub(crate) const MAX_RECORD: u64 = 1 << 30;
/// Length and checksum before each payload.
pub(crate) const HEADER: u64 = 8;

/// A framed record, ready to append: the frame's header and the payload up to the body in
/// `head`, the body (a message's, empty for other records) apart in `body`, so that a message
/// is moved into its frame, never copied. Written one after the other they are the frame.
#[derive(Debug)]
pub(crate) struct Framed {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Framed {
    /// Frames `record`, whose body (for a `Message` record, of its `body_len`) is `body`.
    pub(crate) fn new(record: &Record, body: Vec<u8>) -> Framed {
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(&[0; HEADER as usize]);
        record::encode_head(record, &mut head);
        let payload_len = (head.len() - HEADER as usize + body.len()) as u32;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[HEADER as usize..]);
        crc.update(&body);
        head[..4].copy_from_slice(&payload_len.to_le_bytes());
        head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
        Framed { head, body }
    }

    /// The frame's length on disk: header and payload.
    pub(crate) fn len(&self) -> u64 {
        (self.head.len() + self.body.len()) as u64
    }

    /// The body (empty for most records).
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }

    /// The frame's bytes, in order: the head, then the body (empty for most records).
    pub(crate) fn parts(&self) -> [&[u8]; 2] {
        [&self.head, &self.body]
    }
}

/// The framed record as one buffer; `body` as for [`record::encode`].
#[cfg(test)]
pub(crate) fn frame(record: &Record, body: &[u8]) -> Vec<u8> {
    let framed = Framed::new(record, body.to_vec());
    framed.parts().concat()
}

/// The path of segment `seq`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("journal-{seq:016}.log"))
}

/// The segments in `dir`, oldest first. Other files are left alone.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let action = || format!("list {}", dir.display());
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| QueueError::io(action(), e))? {
        let entry = entry.map_err(|e| QueueError::io(action(), e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_name) {
            segments.push(seq);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("journal-")?.strip_suffix(".log")?;
    let all_digits = digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit());
    all_digits.then(|| digits.parse().ok()).flatten()
}

/// Opens a segment for appending (and positioned reads of bodies); one that others may read
/// is closed to them (mode 0600).
pub(crate) fn open_segment(path: &Path) -> Result<File, QueueError> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| QueueError::io(format!("open {}", path.display()), e))?;
    private::restrict(path, 0o600)?;
    Ok(file)
}

/// Creates segment `seq` (mode 0600: it holds message bodies) and makes its existence durable
/// (file and directory synced) before anything is written to it: a record must never sit in a
/// file that a crash can lose. If that fails, the file is removed again, so that the next try
/// can create it.
pub(crate) fn create_segment(dir: &Path, seq: u64) -> Result<File, QueueError> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| QueueError::io(format!("create {}", path.display()), e))?;
    let synced = file
        .sync_all()
        .map_err(|e| QueueError::io(format!("sync {}", path.display()), e))
        .and_then(|()| sync_dir(dir));
    if let Err(err) = synced {
        // Best effort: if it stays, the next try fails on it and says so.
        let _ = fs::remove_file(&path);
        return Err(err);
    }
    Ok(file)
}

/// Makes the directory's entries (files created, removed) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| QueueError::io(format!("sync directory {}", dir.display()), e))
}

/// A frame whose length and checksum held.
#[derive(Debug)]
pub(crate) struct Frame {
    /// Where the frame starts in its segment.
    pub(crate) offset: u64,
    pub(crate) payload: Vec<u8>,
}

/// Why reading a segment stopped before its end.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The frame at `offset` is not whole: a torn write, or damage.
    Broken {
        offset: u64,
        reason: &'static str,
    },
    Io(io::Error),
}

/// Reads a segment's frames in order: from its file, or (for the fuzz targets) from bytes.
#[derive(Debug)]
pub(crate) struct SegmentReader<R = File> {
    input: BufReader<R>,
    offset: u64,
    len: u64,
}

impl<R: Read> SegmentReader<R> {
    /// Reads `file` (of `len` bytes) from its start.
    pub(crate) fn new(file: R, len: u64) -> SegmentReader<R> {
        SegmentReader {
            input: BufReader::with_capacity(1 << 20, file),
            offset: 0,
            len,
        }
    }

    /// The next frame, or `None` at the end of the segment.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let left = self.len - self.offset;
        if left == 0 {
            return Ok(None);
        }
        let broken = |reason| ReadError::Broken {
            offset: self.offset,
            reason,
        };
        if left < HEADER {
            return Err(broken("record header cut short"));
        }
        let mut header = [0; HEADER as usize];
        self.input.read_exact(&mut header).map_err(ReadError::Io)?;
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
        // An empty record is never written; zeros are what a crash can leave past the end.
        if len == 0 || len > MAX_RECORD {
            return Err(broken("record length out of bounds"));
        }
        if len > left - HEADER {
            return Err(broken("record runs past the end of the file"));
        }
        let mut payload = vec![0; len as usize];
        self.input.read_exact(&mut payload).map_err(ReadError::Io)?;
        if crc32fast::hash(&payload) != u32::from_le_bytes([c0, c1, c2, c3]) {
            return Err(broken("checksum mismatch"));
        }
        let frame = Frame {
            offset: self.offset,
            payload,
        };
        self.offset += HEADER + len;
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::queue::QueueId;

    fn payload(frame: &[u8]) -> &[u8] {
        &frame[HEADER as usize..]
    }

    #[test]
    fn a_frame_holds_length_and_checksum_of_its_payload() {
        let framed = frame(
            &Record::Delete {
                id: QueueId::from_u64(1),
            },
            b"",
        );
        let len = u32::from_le_bytes(framed[..4].try_into().unwrap());
        let crc = u32::from_le_bytes(framed[4..8].try_into().unwrap());
        assert_eq!(len as usize, framed.len() - 8);
        assert_eq!(crc, crc32fast::hash(payload(&framed)));
    }

    #[test]
    fn a_frame_with_its_body_apart_is_the_whole_payload_framed() {
        let body = b"Subject: hi\r\n\r\nbody\r\n".repeat(100);
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let record = Record::Message(record::MessageRecord {
            id: QueueId::from_u64(9),
            arrived: at,
            client: "client.example[192.0.2.1]".into(),
            sender: "a@example.org".parse().unwrap(),
            recipients: vec![record::RecipientState {
                address: "b@example.net".parse().unwrap(),
                done: false,
                attempts: 0,
                next_attempt: at,
                last_error: None,
            }],
            body_len: body.len() as u64,
            held: false,
            extensions: None,
            shape: None,
        });
        let mut payload = Vec::new();
        record::encode(&record, &body, &mut payload);
        let mut whole = Vec::new();
        whole.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        whole.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        whole.extend_from_slice(&payload);

        let framed = Framed::new(&record, body.clone());
        assert_eq!(framed.len(), whole.len() as u64);
        assert_eq!(framed.parts()[1], &body[..]);
        assert_eq!(framed.parts().concat(), whole);
        assert_eq!(record::decode(&whole[HEADER as usize..]), Ok(record));
    }

    fn segment_with(bytes: &[u8]) -> (tempfile::TempDir, SegmentReader) {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        File::create(&path).unwrap().write_all(bytes).unwrap();
        let reader = SegmentReader::new(File::open(&path).unwrap(), bytes.len() as u64);
        (dir, reader)
    }

    fn broken_at(reader: &mut SegmentReader) -> Option<(u64, &'static str)> {
        loop {
            match reader.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) => return None,
                Err(ReadError::Broken { offset, reason }) => return Some((offset, reason)),
                Err(ReadError::Io(e)) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn torn_tails_stop_the_reader_at_the_last_whole_record() {
        let first = frame(
            &Record::Delete {
                id: QueueId::from_u64(1),
            },
            b"",
        );
        let second = frame(
            &Record::Defer {
                id: QueueId::from_u64(2),
                recipient: 0,
                attempts: 1,
                next_attempt: std::time::UNIX_EPOCH,
                error: "421 4.7.0 ".repeat(20),
            },
            b"",
        );
        let whole = [first.clone(), second.clone()].concat();
        let (_dir, mut reader) = segment_with(&whole);
        assert_eq!(broken_at(&mut reader), None);
        let at = first.len() as u64;
        for cut in first.len() + 1..whole.len() {
            let (_dir, mut reader) = segment_with(&whole[..cut]);
            assert_eq!(
                broken_at(&mut reader).map(|b| b.0),
                Some(at),
                "cut at {cut}"
            );
        }
        let zeros = [first.clone(), vec![0; 64]].concat();
        let (_dir, mut reader) = segment_with(&zeros);
        assert_eq!(
            broken_at(&mut reader),
            Some((at, "record length out of bounds"))
        );
        let mut flipped = whole.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let (_dir, mut reader) = segment_with(&flipped);
        assert_eq!(broken_at(&mut reader), Some((at, "checksum mismatch")));
    }

    #[test]
    fn only_segment_names_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "journal-0000000000000002.log",
            "journal-0000000000000010.log",
        ] {
            File::create(dir.path().join(name)).unwrap();
        }
        for name in [
            "journal-2.log",
            "journal-000000000000000x.log",
            "lock",
            "x.tmp",
        ] {
            File::create(dir.path().join(name)).unwrap();
        }
        assert_eq!(list_segments(dir.path()).unwrap(), vec![2, 10]);
    }
}
