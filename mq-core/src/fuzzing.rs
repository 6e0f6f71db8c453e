//! The parsers of outside input that are not public API, reached by the fuzz targets in
//! `fuzz/` (feature `fuzzing`, which only the fuzz crate turns on).
//!
//! Each item is a thin wrapper that calls the code mq runs, so that a target drives production
//! code and asserts on what it returns; nothing here is used by mq itself, and the feature
//! changes nothing else.
//!
//! - Journal: [`JournalRecord`] (decode, encode), [`frame_record`], [`read_segment`] (the
//!   segment reader over bytes instead of a file) and [`scan_damage`] (recovery's search for
//!   valid frames after damage).
//! - DNS: [`dns_query`] (the query mq sends) and [`dns_response`] (a response checked against
//!   the question and interpreted).
//! - SMTP client: [`parse_reply_in_pieces`] (the connection's resumable reply parser) and
//!   [`ehlo_extensions`].
//! - Admin port: [`admin_read_request`] and [`admin_guard`].

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};

use crate::admin::guard::Guard;
use crate::admin::http::{self, ReadError, Request};
use crate::dns::wire::{self, Answer};
use crate::queue::journal::{self, Framed, SegmentReader};
use crate::queue::record::{self, Record};
use crate::queue::salvage;
use crate::smtp::client::extensions::Extensions;
use crate::smtp::client::reply::ReplyParser;
use crate::smtp::client::{MalformedReply, ParsedReply};

/// A journal record, as recovery decodes it from a frame's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRecord(Record);

impl JournalRecord {
    /// Decodes a payload (a frame without its length and checksum).
    ///
    /// # Errors
    ///
    /// Why the payload is not a record.
    pub fn decode(payload: &[u8]) -> Result<JournalRecord, &'static str> {
        record::decode(payload).map(JournalRecord)
    }

    /// The payload the queue writes for this record with `body` (a message's, of its
    /// [`body_len`](JournalRecord::body_len); empty for the other records).
    pub fn encode(&self, body: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        record::encode_head(&self.0, &mut payload);
        payload.extend_from_slice(body);
        payload
    }

    /// The length of a message record's body, the payload's last bytes; 0 for other records.
    pub fn body_len(&self) -> u64 {
        match &self.0 {
            Record::Message(message) => message.body_len,
            _ => 0,
        }
    }
}

/// Whether `kind`, a payload's first byte, names a kind of record.
pub fn is_record_kind(kind: u8) -> bool {
    record::is_kind(kind)
}

/// The frame the queue appends for `record` and its `body`: length, checksum, payload.
pub fn frame_record(record: &JournalRecord, body: &[u8]) -> Vec<u8> {
    Framed::new(&record.0, body.to_vec()).parts().concat()
}

/// A segment's frames as recovery reads them: each frame's offset and payload, and where and
/// why reading stopped before the end, if it did.
pub fn read_segment(bytes: &[u8]) -> (Vec<(u64, Vec<u8>)>, Option<(u64, &'static str)>) {
    let mut reader = SegmentReader::new(bytes, bytes.len() as u64);
    let mut frames = Vec::new();
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => frames.push((frame.offset, frame.payload)),
            Ok(None) => return (frames, None),
            Err(journal::ReadError::Broken { offset, reason }) => {
                return (frames, Some((offset, reason)));
            }
            Err(journal::ReadError::Io(error)) => panic!("reading bytes failed: {error}"),
        }
    }
}

/// Where the valid frames and the damage lie in `bytes`, which start at a broken record, as
/// the salvage at startup finds them.
pub fn scan_damage(bytes: &[u8]) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    let scan = salvage::scan(bytes);
    (scan.frames, scan.damage)
}

/// The query the resolver sends for `name` and record type `rtype` with `id`, and the name as
/// hickory spells it (fully qualified); `None` if `name` is not a domain name.
pub fn dns_query(id: u16, name: &str, rtype: u16) -> Option<(String, Vec<u8>)> {
    let name = Name::from_ascii(name).ok()?;
    let query = wire::encode_query(id, &name, RecordType::from(rtype)).ok()?;
    Some((name.to_string(), query))
}

/// The id, name and type of the first question in a DNS message, if it parses and has one.
pub fn dns_question(bytes: &[u8]) -> Option<(u16, String, u16)> {
    let message = Message::from_vec(bytes).ok()?;
    let query = message.queries.first()?;
    Some((
        message.metadata.id,
        query.name().to_string(),
        u16::from(query.query_type()),
    ))
}

/// What a DNS response said, as the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsAnswer {
    /// Records of these types (after any CNAMEs), for `ttl` seconds.
    Records {
        /// Each record's type.
        types: Vec<u16>,
        /// Seconds the answer is kept.
        ttl: u32,
    },
    /// An alias whose target must be asked for.
    Alias {
        /// Seconds the answer is kept.
        ttl: u32,
    },
    /// The name does not exist.
    NxDomain {
        /// Seconds the answer is kept.
        ttl: u32,
    },
    /// The name has no records of the type.
    NoData {
        /// Seconds the answer is kept.
        ttl: u32,
    },
}

/// `bytes` as the resolver takes a response to query `id` for `name`/`rtype`: checked
/// against the question, then interpreted.
///
/// # Errors
///
/// The resolver's error, as text.
pub fn dns_response(bytes: &[u8], id: u16, name: &str, rtype: u16) -> Result<DnsAnswer, String> {
    let name = Name::from_ascii(name).map_err(|e| e.to_string())?;
    let rtype = RecordType::from(rtype);
    let message = wire::decode_response(bytes, id, &name, rtype).map_err(|e| e.to_string())?;
    let (answer, ttl) = wire::interpret(&message, &name, rtype).map_err(|e| e.to_string())?;
    Ok(match answer {
        Answer::Records(records) => DnsAnswer::Records {
            types: records
                .iter()
                .map(|data| u16::from(data.record_type()))
                .collect(),
            ttl,
        },
        Answer::Alias(_) => DnsAnswer::Alias { ttl },
        Answer::NxDomain => DnsAnswer::NxDomain { ttl },
        Answer::NoData => DnsAnswer::NoData { ttl },
    })
}

/// The reply at the start of `input` as a connection finds it when the bytes arrive `piece`
/// bytes a read: one [`ReplyParser`] given the growing buffer until it has an answer.
///
/// # Errors
///
/// As [`parse_reply`](crate::smtp::client::parse_reply).
pub fn parse_reply_in_pieces(
    input: &[u8],
    piece: usize,
) -> Result<Option<ParsedReply>, MalformedReply> {
    let mut parser = ReplyParser::default();
    let mut end = 0;
    loop {
        end = (end + piece.max(1)).min(input.len());
        match parser.parse(&input[..end])? {
            Some(reply) => return Ok(Some(reply)),
            None if end == input.len() => return Ok(None),
            None => {}
        }
    }
}

/// The extensions the client reads from the lines of an EHLO reply.
pub fn ehlo_extensions(lines: &[String]) -> Extensions {
    Extensions::from_ehlo(lines)
}

/// A request head as the admin port reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest(Request);

impl AdminRequest {
    /// The method.
    pub fn method(&self) -> &str {
        &self.0.method
    }

    /// The path, without its query.
    pub fn route(&self) -> &str {
        self.0.route()
    }

    /// The `Host` header.
    pub fn host(&self) -> Option<&str> {
        self.0.host.as_deref()
    }

    /// The `Authorization` header.
    pub fn authorization(&self) -> Option<&str> {
        self.0.authorization.as_deref()
    }
}

/// Reads a request head from `bytes` arriving `piece` bytes a read, as the admin port does;
/// the error is the status it answers with (400), or `None` when it answers nothing (the
/// client left before a whole head).
pub fn admin_read_request(bytes: &[u8], piece: usize) -> Result<AdminRequest, Option<u16>> {
    let mut stream = Pieces {
        bytes,
        piece: piece.max(1),
    };
    match smol::block_on(http::read_request(&mut stream)) {
        Ok(request) => Ok(AdminRequest(request)),
        Err(ReadError::Malformed) => Err(Some(400)),
        Err(ReadError::Gone) => Err(None),
    }
}

/// The status the admin port bound to `local` with `token` refuses `request` with, or `None`
/// if the request may go on to its route.
pub fn admin_guard(request: &AdminRequest, local: SocketAddr, token: Option<&str>) -> Option<u16> {
    let guard = Guard::new(local, token.map(str::to_owned));
    guard.check(&request.0).map(|response| response.status)
}

/// A stream that gives `bytes` at most `piece` at a time, then its end.
struct Pieces<'a> {
    bytes: &'a [u8],
    piece: usize,
}

impl futures::AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = self.piece.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Poll::Ready(Ok(n))
    }
}
