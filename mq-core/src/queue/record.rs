//! Journal records and their encoding.
//!
//! A payload is a kind byte and fields: integers little-endian, strings as `[u32 length][bytes]`,
//! times as microseconds since the Unix epoch. A message's body is its record's last field, so
//! the body's place in the file is the record's end minus its length, and `body()` reads it back
//! without decoding anything. Decoding checks every length against what is left: damaged input
//! is an error, never a panic or a huge allocation.

use std::sync::Arc;
use std::time::SystemTime;

use mq_plugin_api::Address;

use super::id::{from_micros, micros};
use super::{Extensions, QueueId};
use crate::smtp::client::Shape;
use crate::smtp::{Notify, RcptParams, Ret};

const MESSAGE: u8 = 1;
const DONE: u8 = 2;
const DEFER: u8 = 3;
const DELETE: u8 = 4;
const HOLD: u8 = 5;
const RELEASE: u8 = 6;
const REQUEUE: u8 = 7;
/// A `Message` record whose message is on hold: compaction's copy of a held message.
const HELD_MESSAGE: u8 = 8;
/// `MESSAGE` and `HELD_MESSAGE` for a message with SMTPUTF8 or DSN parameters, which follow
/// its recipients (before the body); a message without them is written as before.
const EXTENDED_MESSAGE: u8 = 9;
const HELD_EXTENDED_MESSAGE: u8 = 10;

/// One recipient of a message and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecipientState {
    pub(crate) address: Address,
    /// Delivered, or failed for good: the entry is gone.
    pub(crate) done: bool,
    pub(crate) attempts: u32,
    pub(crate) next_attempt: SystemTime,
    pub(crate) last_error: Option<String>,
}

/// A message as journaled: its envelope, each recipient's state, and the length of its body,
/// which follows in the same record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageRecord {
    pub(crate) id: QueueId,
    pub(crate) arrived: SystemTime,
    pub(crate) client: String,
    pub(crate) sender: Address,
    pub(crate) recipients: Vec<RecipientState>,
    pub(crate) body_len: u64,
    /// On hold: none of its entries is due until it is released.
    pub(crate) held: bool,
    /// SMTPUTF8 and DSN parameters, when it came with any.
    pub(crate) extensions: Option<Arc<Extensions>>,
    /// What delivery must know of a large body before it sends it, scanned as the body arrived
    /// in memory. Not journaled: read back from the journal it is `None`, and delivery reads
    /// the body through for it.
    pub(crate) shape: Option<Shape>,
}

/// One journal record. A later `Message` record with a known id replaces the earlier one: that
/// is how compaction moves a live message forward with its entries' states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Message(MessageRecord),
    /// One entry is done (delivered or failed for good).
    Done {
        id: QueueId,
        recipient: u32,
    },
    /// One entry was deferred.
    Defer {
        id: QueueId,
        recipient: u32,
        attempts: u32,
        next_attempt: SystemTime,
        error: String,
    },
    /// Every entry of a message was removed by an administrator.
    Delete {
        id: QueueId,
    },
    /// An administrator put the message on hold: no entry of it is due until released.
    Hold {
        id: QueueId,
    },
    /// An administrator released a held message: its entries are due as before.
    Release {
        id: QueueId,
    },
    /// An administrator requeued the message: every live entry starts afresh, due at `at`
    /// with no attempts and no error, and a hold ends.
    Requeue {
        id: QueueId,
        at: SystemTime,
    },
}

impl Record {
    /// The message the record is about.
    pub(crate) fn id(&self) -> QueueId {
        match self {
            Record::Message(message) => message.id,
            Record::Done { id, .. }
            | Record::Defer { id, .. }
            | Record::Delete { id }
            | Record::Hold { id }
            | Record::Release { id }
            | Record::Requeue { id, .. } => *id,
        }
    }

    /// Whether the record may be answered once written, before the journal is synced: the
    /// result of a delivery attempt (an entry done or deferred). Written, it survives a crash
    /// of mq (the kernel holds it); only a crash of the machine before the next sync can lose
    /// it, and that repeats an attempt (at least once, as Postfix's removal of a delivered
    /// queue file). A message, and an administrator's change, are synced before their answer.
    pub(crate) fn may_sync_later(&self) -> bool {
        matches!(self, Record::Done { .. } | Record::Defer { .. })
    }
}

/// Appends the payload of `record` to `out`. `body` is the message body for a `Message` record
/// (whose `body_len` must match it) and empty for the others.
#[cfg(test)]
pub(crate) fn encode(record: &Record, body: &[u8], out: &mut Vec<u8>) {
    encode_head(record, out);
    out.extend_from_slice(body);
}

/// Appends the payload of `record` to `out` up to its body, which is the payload's last
/// `body_len` bytes for a `Message` record (and nothing for the others): the body's length is
/// written, the body is the caller's to append.
pub(crate) fn encode_head(record: &Record, out: &mut Vec<u8>) {
    Encoder(out).record(record);
}

struct Encoder<'a>(&'a mut Vec<u8>);

impl Encoder<'_> {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }

    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn time(&mut self, value: SystemTime) {
        self.u64(micros(value));
    }

    /// Lengths above `u32::MAX` never get here: the record would be over `MAX_RECORD`, which
    /// the queue refuses before it writes.
    fn bytes(&mut self, value: &[u8]) {
        self.u32(value.len() as u32);
        self.0.extend_from_slice(value);
    }

    fn record(&mut self, record: &Record) {
        match record {
            Record::Message(message) => self.message(message),
            Record::Done { id, recipient } => {
                self.u8(DONE);
                self.u64(id.as_u64());
                self.u32(*recipient);
            }
            Record::Defer {
                id,
                recipient,
                attempts,
                next_attempt,
                error,
            } => {
                self.u8(DEFER);
                self.u64(id.as_u64());
                self.u32(*recipient);
                self.u32(*attempts);
                self.time(*next_attempt);
                self.bytes(error.as_bytes());
            }
            Record::Delete { id } => {
                self.u8(DELETE);
                self.u64(id.as_u64());
            }
            Record::Hold { id } => {
                self.u8(HOLD);
                self.u64(id.as_u64());
            }
            Record::Release { id } => {
                self.u8(RELEASE);
                self.u64(id.as_u64());
            }
            Record::Requeue { id, at } => {
                self.u8(REQUEUE);
                self.u64(id.as_u64());
                self.time(*at);
            }
        }
    }

    fn message(&mut self, message: &MessageRecord) {
        let kind = match (message.held, message.extensions.is_some()) {
            (false, false) => MESSAGE,
            (true, false) => HELD_MESSAGE,
            (false, true) => EXTENDED_MESSAGE,
            (true, true) => HELD_EXTENDED_MESSAGE,
        };
        self.u8(kind);
        self.u64(message.id.as_u64());
        self.time(message.arrived);
        self.bytes(message.client.as_bytes());
        self.bytes(message.sender.as_str().as_bytes());
        self.u32(message.recipients.len() as u32);
        for recipient in &message.recipients {
            self.bytes(recipient.address.as_str().as_bytes());
            self.u8(u8::from(recipient.done));
            self.u32(recipient.attempts);
            self.time(recipient.next_attempt);
            match &recipient.last_error {
                Some(error) => {
                    self.u8(1);
                    self.bytes(error.as_bytes());
                }
                None => self.u8(0),
            }
        }
        if let Some(extensions) = &message.extensions {
            self.extensions(extensions);
        }
        // The body is last, so that its place is the record's end minus its length; only its
        // length is written here, as `bytes` would write it.
        self.u32(message.body_len as u32);
    }

    fn optional(&mut self, text: Option<&str>) {
        match text {
            Some(text) => {
                self.u8(1);
                self.bytes(text.as_bytes());
            }
            None => self.u8(0),
        }
    }

    /// SMTPUTF8 as a byte, RET (0 none, 1 FULL, 2 HDRS), ENVID, then each recipient's NOTIFY
    /// (0 none, else its flags) and ORCPT.
    fn extensions(&mut self, extensions: &Extensions) {
        self.u8(u8::from(extensions.smtputf8));
        self.u8(match extensions.ret {
            None => 0,
            Some(Ret::Full) => 1,
            Some(Ret::Hdrs) => 2,
        });
        self.optional(extensions.envid.as_deref());
        self.u32(extensions.recipients.len() as u32);
        for recipient in &extensions.recipients {
            self.u8(recipient.notify.map_or(0, Notify::to_bits));
            self.optional(recipient.orcpt.as_deref());
        }
    }
}

/// Whether `kind`, a payload's first byte, names a kind of record.
pub(crate) fn is_kind(kind: u8) -> bool {
    matches!(
        kind,
        MESSAGE
            | DONE
            | DEFER
            | DELETE
            | HOLD
            | RELEASE
            | REQUEUE
            | HELD_MESSAGE
            | EXTENDED_MESSAGE
            | HELD_EXTENDED_MESSAGE
    )
}

/// Decodes a payload whose checksum held. An error is damage that a crash cannot explain.
pub(crate) fn decode(payload: &[u8]) -> Result<Record, &'static str> {
    let mut input = Decoder(payload);
    let record = match input.u8()? {
        MESSAGE => Record::Message(input.message(false, false)?),
        HELD_MESSAGE => Record::Message(input.message(true, false)?),
        EXTENDED_MESSAGE => Record::Message(input.message(false, true)?),
        HELD_EXTENDED_MESSAGE => Record::Message(input.message(true, true)?),
        DONE => Record::Done {
            id: input.id()?,
            recipient: input.u32()?,
        },
        DEFER => Record::Defer {
            id: input.id()?,
            recipient: input.u32()?,
            attempts: input.u32()?,
            next_attempt: from_micros(input.u64()?),
            error: input.string()?,
        },
        DELETE => Record::Delete { id: input.id()? },
        HOLD => Record::Hold { id: input.id()? },
        RELEASE => Record::Release { id: input.id()? },
        REQUEUE => Record::Requeue {
            id: input.id()?,
            at: from_micros(input.u64()?),
        },
        _ => return Err("unknown record kind"),
    };
    if input.0.is_empty() {
        Ok(record)
    } else {
        Err("trailing bytes after the record")
    }
}

/// Reads fields off the front of a payload; every length is checked against what is left.
struct Decoder<'a>(&'a [u8]);

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.0.len() {
            return Err("field runs past the end of the record");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(bytes))
    }

    fn id(&mut self) -> Result<QueueId, &'static str> {
        self.u64().map(QueueId::from_u64)
    }

    fn bytes(&mut self) -> Result<&'a [u8], &'static str> {
        let len = self.u32()?;
        self.take(len as usize)
    }

    fn string(&mut self) -> Result<String, &'static str> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8")
    }

    fn address(&mut self) -> Result<Address, &'static str> {
        self.string()?.parse().map_err(|_| "invalid address")
    }

    fn message(&mut self, held: bool, extended: bool) -> Result<MessageRecord, &'static str> {
        let id = self.id()?;
        let arrived = from_micros(self.u64()?);
        let client = self.string()?;
        let sender = self.address()?;
        let count = self.u32()? as usize;
        // Each recipient takes at least 18 bytes, so a damaged count cannot make us allocate
        // more than the payload could hold.
        let mut recipients = Vec::with_capacity(count.min(self.0.len() / 18));
        for _ in 0..count {
            recipients.push(self.recipient()?);
        }
        let extensions = if extended {
            Some(Arc::new(self.extensions()?))
        } else {
            None
        };
        let body_len = self.bytes()?.len() as u64;
        Ok(MessageRecord {
            id,
            arrived,
            client,
            sender,
            recipients,
            body_len,
            held,
            extensions,
            shape: None,
        })
    }

    fn optional(&mut self) -> Result<Option<String>, &'static str> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err("invalid option flag"),
        }
    }

    fn extensions(&mut self) -> Result<Extensions, &'static str> {
        let smtputf8 = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err("invalid SMTPUTF8 flag"),
        };
        let ret = match self.u8()? {
            0 => None,
            1 => Some(Ret::Full),
            2 => Some(Ret::Hdrs),
            _ => return Err("invalid RET"),
        };
        let envid = self.optional()?;
        let count = self.u32()? as usize;
        // Each takes at least 2 bytes: a damaged count allocates no more than the payload holds.
        let mut recipients = Vec::with_capacity(count.min(self.0.len() / 2));
        for _ in 0..count {
            let notify = match self.u8()? {
                0 => None,
                bits if bits < 16 => Some(Notify::from_bits(bits)),
                _ => return Err("invalid NOTIFY"),
            };
            let orcpt = self.optional()?;
            recipients.push(RcptParams { notify, orcpt });
        }
        Ok(Extensions {
            smtputf8,
            ret,
            envid,
            recipients,
        })
    }

    fn recipient(&mut self) -> Result<RecipientState, &'static str> {
        let address = self.address()?;
        let done = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err("invalid entry flag"),
        };
        let attempts = self.u32()?;
        let next_attempt = from_micros(self.u64()?);
        let last_error = match self.u8()? {
            0 => None,
            1 => Some(self.string()?),
            _ => return Err("invalid error flag"),
        };
        Ok(RecipientState {
            address,
            done,
            attempts,
            next_attempt,
            last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn message(body: &[u8]) -> MessageRecord {
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        MessageRecord {
            id: QueueId::from_u64(0x1234),
            arrived: at,
            client: "client.example[192.0.2.1]".into(),
            sender: Address::null(),
            recipients: vec![
                RecipientState {
                    address: "a@example.net".parse().unwrap(),
                    done: false,
                    attempts: 0,
                    next_attempt: at,
                    last_error: None,
                },
                RecipientState {
                    address: "b@example.org".parse().unwrap(),
                    done: true,
                    attempts: 3,
                    next_attempt: at + Duration::from_mins(10),
                    last_error: Some("451 4.7.1 try later".into()),
                },
            ],
            body_len: body.len() as u64,
            held: false,
            extensions: None,
            shape: None,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let body = b"Subject: hi\r\n\r\nbody\r\n";
        let at = UNIX_EPOCH + Duration::from_micros(42);
        let id = QueueId::from_u64(7);
        let records = [
            Record::Message(message(body)),
            Record::Done { id, recipient: 3 },
            Record::Defer {
                id,
                recipient: 1,
                attempts: 2,
                next_attempt: at,
                error: "421 busy".into(),
            },
            Record::Delete { id },
            Record::Hold { id },
            Record::Release { id },
            Record::Requeue { id, at },
            Record::Message(MessageRecord {
                held: true,
                ..message(body)
            }),
            Record::Message(MessageRecord {
                extensions: Some(Arc::new(extensions())),
                ..message(body)
            }),
            Record::Message(MessageRecord {
                held: true,
                extensions: Some(Arc::new(Extensions::default())),
                ..message(body)
            }),
        ];
        for record in records {
            let body: &[u8] = if matches!(record, Record::Message(_)) {
                body
            } else {
                b""
            };
            let mut payload = Vec::new();
            encode(&record, body, &mut payload);
            assert!(payload.ends_with(body));
            assert_eq!(decode(&payload), Ok(record));
        }
    }

    /// Found by the `journal_record` fuzz target: `b@EXAMPLENET..` was kept as
    /// `b@examplenet.`, which read back from the journal as `b@examplenet`; and
    /// `b@B\u{2dc}CHER.example` as `b@xn--b cher-xxd.example`, which did not read back at all
    /// (the record counted as damage).
    #[test]
    fn an_address_reads_back_from_the_journal_as_it_was_written() {
        let mut record = message(b"x");
        for text in [
            "b@EXAMPLE.NET..",
            "b@Example.Net.",
            "b@b\u{fc}cher.example..",
            "b@a..b",
            "b@B\u{2dc}CHER.example",
        ] {
            record.recipients[0].address = text.parse().unwrap();
            let record = Record::Message(record.clone());
            let mut payload = Vec::new();
            encode(&record, b"x", &mut payload);
            assert_eq!(decode(&payload), Ok(record), "{text}");
        }
    }

    fn extensions() -> Extensions {
        Extensions {
            smtputf8: true,
            ret: Some(Ret::Hdrs),
            envid: Some("QQ314159".into()),
            recipients: vec![
                RcptParams {
                    notify: Some(Notify {
                        success: true,
                        failure: true,
                        ..Notify::default()
                    }),
                    orcpt: Some("rfc822;a@example.net".into()),
                },
                RcptParams::default(),
            ],
        }
    }

    /// A record written before messages kept their parameters still reads, as one without.
    #[test]
    fn a_message_record_of_the_first_format_reads_without_extensions() {
        let mut payload = vec![MESSAGE];
        payload.extend(0x1234_u64.to_le_bytes());
        payload.extend(1_700_000_000_123_456_u64.to_le_bytes());
        for text in ["client.example[192.0.2.1]", ""] {
            payload.extend((text.len() as u32).to_le_bytes());
            payload.extend(text.as_bytes());
        }
        payload.extend(1_u32.to_le_bytes());
        payload.extend(13_u32.to_le_bytes());
        payload.extend(b"a@example.net");
        payload.extend([0, 0, 0, 0, 0]);
        payload.extend(1_700_000_000_123_456_u64.to_le_bytes());
        payload.push(0);
        payload.extend(1_u32.to_le_bytes());
        payload.push(b'x');
        let Ok(Record::Message(record)) = decode(&payload) else {
            panic!("the old record did not decode");
        };
        assert_eq!(record.extensions, None);
        assert_eq!(record.recipients[0].address.as_str(), "a@example.net");
        assert_eq!(record.body_len, 1);
    }

    #[test]
    fn damaged_payloads_are_errors_not_panics() {
        let mut payload = Vec::new();
        encode(&Record::Message(message(b"xyz")), b"xyz", &mut payload);
        for cut in 0..payload.len() {
            assert!(decode(&payload[..cut]).is_err(), "cut at {cut}");
        }
        let extended = MessageRecord {
            extensions: Some(Arc::new(extensions())),
            ..message(b"xyz")
        };
        let mut long = Vec::new();
        encode(&Record::Message(extended), b"xyz", &mut long);
        for cut in 0..long.len() {
            assert!(decode(&long[..cut]).is_err(), "cut at {cut}");
        }
        let mut huge_count = payload.clone();
        // The recipient count follows kind, id, time, client and sender.
        let at = 1 + 8 + 8 + 4 + "client.example[192.0.2.1]".len() + 4;
        huge_count[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge_count).is_err());
        assert_eq!(decode(&[11]), Err("unknown record kind"));
    }
}
