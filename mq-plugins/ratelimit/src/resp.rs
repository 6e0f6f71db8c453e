//! RESP2, the Redis wire protocol: commands encoded, replies parsed from a buffer.
//!
//! Parsing works on whatever bytes have arrived and says when a reply is not complete yet
//! (mini-redis's `Frame::check`), so the connection's reader only appends and retries.

use std::fmt;

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`: the server refused the command.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$3\r\nabc`.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*2\r\n...`.
    Array(Vec<Value>),
}

/// Bytes that are not a RESP2 reply, or one larger than this client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProtocolError(&'static str);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// The longest line, bulk string and array accepted: the plugin's replies are a few bytes, so
/// anything near these is a server that is not Redis.
const MAX_LINE: usize = 64 * 1024;
const MAX_BULK: usize = 16 * 1024 * 1024;
const MAX_ITEMS: usize = 1024 * 1024;
const MAX_DEPTH: usize = 8;

/// Appends the command `args` to `out`, as an array of bulk strings.
pub(crate) fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// The first reply in `buf` and the bytes it took, or `None` if it has not all arrived.
///
/// # Errors
///
/// The bytes are not a RESP2 reply.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, ProtocolError> {
    value(buf, 0, 0)
}

fn value(buf: &[u8], start: usize, depth: usize) -> Result<Option<(Value, usize)>, ProtocolError> {
    let Some((line, next)) = line(buf, start)? else {
        return Ok(None);
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Err(ProtocolError("empty line"));
    };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Some((Value::Simple(text()), next))),
        b'-' => Ok(Some((Value::Error(text()), next))),
        b':' => Ok(Some((Value::Int(number(rest)?), next))),
        b'$' => bulk(buf, next, number(rest)?),
        b'*' => array(buf, next, number(rest)?, depth),
        _ => Err(ProtocolError("unknown reply type")),
    }
}

fn bulk(buf: &[u8], start: usize, len: i64) -> Result<Option<(Value, usize)>, ProtocolError> {
    let Some(len) = length(len, MAX_BULK)? else {
        return Ok(Some((Value::Nil, start)));
    };
    let end = start + len;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtocolError("bulk string without CRLF"));
    }
    Ok(Some((Value::Bulk(buf[start..end].to_vec()), end + 2)))
}

fn array(
    buf: &[u8],
    mut at: usize,
    len: i64,
    depth: usize,
) -> Result<Option<(Value, usize)>, ProtocolError> {
    let Some(len) = length(len, MAX_ITEMS)? else {
        return Ok(Some((Value::Nil, at)));
    };
    if depth == MAX_DEPTH {
        return Err(ProtocolError("arrays nested too deep"));
    }
    let mut items = Vec::with_capacity(len.min(64));
    for _ in 0..len {
        let Some((item, next)) = value(buf, at, depth + 1)? else {
            return Ok(None);
        };
        items.push(item);
        at = next;
    }
    Ok(Some((Value::Array(items), at)))
}

/// The line at `start` without its CRLF, and where the next one starts.
fn line(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let rest = &buf[start.min(buf.len())..];
    // A line over the limit is refused whether or not its CRLF has arrived (a last CR may be
    // the start of it), so that a reply does not parse or fail depending on how its bytes
    // were split into reads.
    let seen = rest.len() - usize::from(rest.last() == Some(&b'\r'));
    match rest.windows(2).position(|pair| pair == b"\r\n") {
        Some(end) if end <= MAX_LINE => Ok(Some((&rest[..end], start + end + 2))),
        None if seen <= MAX_LINE => Ok(None),
        _ => Err(ProtocolError("line too long")),
    }
}

fn number(digits: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| digits.parse().ok())
        .ok_or(ProtocolError("invalid number"))
}

/// A length of `-1` is nil (`None`); other negative lengths and lengths over `max` are errors.
fn length(len: i64, max: usize) -> Result<Option<usize>, ProtocolError> {
    if len == -1 {
        return Ok(None);
    }
    match usize::try_from(len) {
        Ok(len) if len <= max => Ok(Some(len)),
        _ => Err(ProtocolError("invalid length")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Value {
        let (value, used) = parse(bytes).unwrap().expect("a whole reply");
        assert_eq!(used, bytes.len());
        value
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        encode(&[b"EVALSHA", b"ab", b"1", b""], &mut out);
        assert_eq!(
            out,
            b"*4\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn every_reply_type_parses() {
        assert_eq!(whole(b"+OK\r\n"), Value::Simple("OK".into()));
        assert_eq!(whole(b"-NOSCRIPT x\r\n"), Value::Error("NOSCRIPT x".into()));
        assert_eq!(whole(b":-12\r\n"), Value::Int(-12));
        assert_eq!(
            whole(b"$5\r\na\r\nbc\r\n"),
            Value::Bulk(b"a\r\nbc".to_vec())
        );
        assert_eq!(whole(b"$-1\r\n"), Value::Nil);
        assert_eq!(whole(b"*-1\r\n"), Value::Nil);
        assert_eq!(
            whole(b"*2\r\n:1\r\n*1\r\n$0\r\n\r\n"),
            Value::Array(vec![Value::Int(1), Value::Array(vec![Value::Bulk(vec![])])])
        );
    }

    #[test]
    fn a_reply_cut_anywhere_is_incomplete_and_the_next_one_is_left() {
        let bytes = b"*2\r\n$3\r\nabc\r\n:7\r\n+NEXT\r\n";
        let first = bytes.len() - b"+NEXT\r\n".len();
        for cut in 0..first {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(parse(bytes).unwrap().map(|(_, used)| used), Some(first));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b"?\r\n"[..],
            b"\r\n",
            b":x\r\n",
            b"$-2\r\n",
            b"$3\r\nabcd\r\n",
            b"*99999999999\r\n",
        ] {
            assert!(
                parse(bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        assert!(parse(deep.as_bytes()).is_err());
        assert!(parse(&vec![b'+'; MAX_LINE + 1]).is_err());
    }

    #[test]
    fn a_long_line_is_refused_however_it_arrives() {
        let mut line = vec![b'+'; MAX_LINE + 1];
        assert!(parse(&line).is_err(), "its end still to come");
        line.extend_from_slice(b"\r\n");
        assert!(parse(&line).is_err(), "whole");
        let mut longest = vec![b'+'; MAX_LINE];
        assert_eq!(parse(&longest), Ok(None));
        longest.push(b'\r');
        assert_eq!(parse(&longest), Ok(None));
        longest.push(b'\n');
        assert!(matches!(parse(&longest), Ok(Some((Value::Simple(_), _)))));
    }
}
