//! Server replies off the wire: `250-first line` … `250 last line`, into a [`Reply`].
//!
//! [`parse_reply`] is a pure function over the bytes read so far, which a fuzz target can call on
//! anything; the connection keeps a [`ReplyParser`] that resumes where its last read ended. Neither
//! panics: whatever is not a well-formed reply is a [`MalformedReply`].

use std::fmt;

use mq_plugin_api::Reply;

/// The longest reply taken, all lines together: a server that sends more is misbehaving, and the
/// client must not buffer without bound.
pub const MAX_REPLY: usize = 64 * 1024;

/// A complete reply, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// The code from the first line, the enhanced status code when every line starts with one
    /// of the code's class, and the lines' texts joined with a space.
    pub reply: Reply,
    /// Each line's text after the code and separator, enhanced status code included; EHLO's
    /// extensions are read from these.
    pub lines: Vec<String>,
    /// How many bytes of the input the reply took, line endings included.
    pub consumed: usize,
}

/// Why the input is not a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedReply {
    /// The reply is longer than [`MAX_REPLY`] bytes.
    TooLong,
    /// A line does not start with a code from 200 to 599.
    BadCode(String),
    /// A code is followed by neither a space, a hyphen nor the line's end.
    BadSeparator(String),
}

impl fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedReply::TooLong => write!(f, "reply longer than {MAX_REPLY} bytes"),
            MalformedReply::BadCode(line) => write!(f, "no reply code in {line:?}"),
            MalformedReply::BadSeparator(line) => write!(f, "bad separator in {line:?}"),
        }
    }
}

impl std::error::Error for MalformedReply {}

/// Parses the reply at the start of `input`: `Ok(None)` while it is incomplete.
///
/// Lines end in CRLF or a bare LF. The code is the first line's; later lines are only checked
/// to carry one. Text that is not UTF-8 is taken lossily, and control characters become spaces
/// (as [`Reply::new`] does).
///
/// # Errors
///
/// The input does not start with a well-formed reply, or the reply is longer than
/// [`MAX_REPLY`].
///
/// # Examples
///
/// ```
/// use mq_core::smtp::client::parse_reply;
///
/// let parsed = parse_reply(b"250-mx.example\r\n250 2.0.0 PIPELINING\r\nnext").unwrap().unwrap();
/// assert_eq!(parsed.reply.code(), 250);
/// assert_eq!(parsed.lines, ["mx.example", "2.0.0 PIPELINING"]);
/// assert_eq!(parsed.consumed, 38);
/// assert_eq!(parse_reply(b"250-mx.example\r\n250 PIPE").unwrap(), None);
/// assert!(parse_reply(b"hello\r\n").is_err());
/// ```
pub fn parse_reply(input: &[u8]) -> Result<Option<ParsedReply>, MalformedReply> {
    ReplyParser::default().parse(input)
}

/// [`parse_reply`] over input that grows between calls: each call looks only at the bytes the
/// last one had not seen, so a reply that trickles in a few bytes a read costs time in
/// proportion to its length, not to its length squared.
///
/// Each call's input must extend the last call's (the connection's buffer, appended to) until
/// a reply or an error comes out; then the parser starts over, at the start of the input it is
/// given next (the buffer with that reply drained). Input shorter than what was seen starts
/// over too.
#[derive(Debug, Default)]
pub(crate) struct ReplyParser {
    /// Where the first line not yet parsed starts.
    line_start: usize,
    /// How far the search for that line's end has got.
    searched: usize,
    /// The first line's code.
    code: u16,
    /// The texts of the lines parsed so far.
    lines: Vec<String>,
    /// Bytes searched for a line end over the parser's life: what tests check stays linear.
    scanned: usize,
}

impl ReplyParser {
    /// The reply at the start of `input`, as [`parse_reply`] finds it.
    pub(crate) fn parse(&mut self, input: &[u8]) -> Result<Option<ParsedReply>, MalformedReply> {
        if input.len() < self.searched {
            self.start_over();
        }
        let result = self.advance(input);
        if !matches!(result, Ok(None)) {
            self.start_over();
        }
        result
    }

    /// Bytes searched for a line end so far, over every reply.
    #[cfg(test)]
    pub(crate) fn scanned(&self) -> usize {
        self.scanned
    }

    fn start_over(&mut self) {
        self.line_start = 0;
        self.searched = 0;
        self.code = 0;
        self.lines.clear();
    }

    /// Takes the complete lines past what was seen; `Ok(None)` while the last is incomplete.
    fn advance(&mut self, input: &[u8]) -> Result<Option<ParsedReply>, MalformedReply> {
        loop {
            let unseen = &input[self.searched..];
            let Some(newline) = unseen.iter().position(|&b| b == b'\n') else {
                self.scanned += unseen.len();
                self.searched = input.len();
                if input.len() > MAX_REPLY {
                    return Err(MalformedReply::TooLong);
                }
                return Ok(None);
            };
            self.scanned += newline + 1;
            let end = self.searched + newline + 1;
            if end > MAX_REPLY {
                return Err(MalformedReply::TooLong);
            }
            let line = &input[self.line_start..end - 1];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let (line_code, last, text) = split_line(line)?;
            if self.lines.is_empty() {
                self.code = line_code;
            }
            self.lines.push(text);
            (self.line_start, self.searched) = (end, end);
            if last {
                let lines = std::mem::take(&mut self.lines);
                let reply = to_reply(self.code, &lines);
                return Ok(Some(ParsedReply {
                    reply,
                    lines,
                    consumed: end,
                }));
            }
        }
    }
}

/// One line, without its ending: its code, whether it is the last, and its text.
fn split_line(line: &[u8]) -> Result<(u16, bool, String), MalformedReply> {
    let shown = || String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
    let code = match line {
        [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => return Err(MalformedReply::BadCode(shown())),
    };
    let last = match line.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        Some(_) => return Err(MalformedReply::BadSeparator(shown())),
    };
    let text = line.get(4..).unwrap_or_default();
    Ok((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// The reply of `code` with `lines`: the enhanced status code is taken when every line starts
/// with the same one of the code's class (RFC 2034 §4), and dropped from each line's text.
fn to_reply(code: u16, lines: &[String]) -> Reply {
    let enhanced = lines
        .first()
        .and_then(|line| enhanced_code(code, line))
        .filter(|enhanced| {
            lines
                .iter()
                .all(|line| enhanced_code(code, line) == Some(enhanced))
        });
    let texts = lines.iter().map(|line| match enhanced {
        Some(enhanced) => line[enhanced.len()..].trim_start_matches(' '),
        None => line.as_str(),
    });
    let text = texts.collect::<Vec<_>>().join(" ");
    Reply::new(code, enhanced.unwrap_or(""), text)
}

/// The enhanced status code at the start of `line` (`class.subject.detail`, RFC 3463), if its
/// class is the reply code's.
fn enhanced_code(code: u16, line: &str) -> Option<&str> {
    let word = line.split(' ').next()?;
    let mut parts = word.split('.');
    let class = parts.next()?;
    let numbers = [parts.next()?, parts.next()?];
    let digits = |part: &str, max: usize| {
        (1..=max).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    let ok = parts.next().is_none()
        && class.len() == 1
        && class.as_bytes()[0] == b'0' + (code / 100) as u8
        && numbers.iter().all(|part| digits(part, 3));
    ok.then_some(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> ParsedReply {
        parse_reply(input.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn a_single_line_reply_with_an_enhanced_code() {
        let parsed = parse("550 5.1.1 <bad@example.net>: no such user\r\n");
        assert_eq!(parsed.reply.code(), 550);
        assert_eq!(parsed.reply.enhanced(), Some("5.1.1"));
        assert_eq!(parsed.reply.text(), "<bad@example.net>: no such user");
        assert_eq!(parsed.consumed, 43);
    }

    #[test]
    fn a_multi_line_reply_joins_its_texts() {
        let parsed =
            parse("451-4.3.0 first\r\n451-4.3.0 second\r\n451 4.3.0 third\r\n250 next\r\n");
        assert_eq!(parsed.reply.to_string(), "451 4.3.0 first second third");
        assert_eq!(parsed.lines.len(), 3);
        assert_eq!(parsed.consumed, 52);
    }

    #[test]
    fn an_enhanced_code_is_taken_only_when_it_matches_the_class_on_every_line() {
        assert_eq!(parse("250 5.1.0 odd\r\n").reply.enhanced(), None);
        assert_eq!(parse("250-2.1.0 a\r\n250 b\r\n").reply.enhanced(), None);
        assert_eq!(parse("250 2.1000.0 x\r\n").reply.enhanced(), None);
        assert_eq!(parse("250 2.1.0.1 x\r\n").reply.enhanced(), None);
        assert_eq!(parse("250 2.1.0\r\n").reply.enhanced(), Some("2.1.0"));
        assert_eq!(parse("250 2.1.0\r\n").reply.text(), "");
    }

    #[test]
    fn bare_codes_bare_lf_and_other_codes_on_later_lines_are_taken() {
        assert_eq!(parse("220\r\n").reply.code(), 220);
        assert_eq!(parse("354 go ahead\n").consumed, 13);
        assert_eq!(parse("250-a\r\n251 b\r\n").reply.code(), 250);
    }

    #[test]
    fn an_incomplete_reply_asks_for_more() {
        for input in ["", "25", "250 ok", "250-a\r\n", "250-a\r\n250 b"] {
            assert_eq!(parse_reply(input.as_bytes()), Ok(None), "{input:?}");
        }
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        for input in [
            "\r\n",
            "\n",
            "2\r\n",
            "25\r\n",
            "hello\r\n",
            "199 x\r\n",
            "600 x\r\n",
            "-50 x\r\n",
            "250-a\r\nxyz\r\n",
            "25a ok\r\n",
            "2\u{e9}0 x\r\n",
        ] {
            let error = parse_reply(input.as_bytes()).unwrap_err();
            assert!(matches!(error, MalformedReply::BadCode(_)), "{input:?}");
        }
        for input in ["250x\r\n", "250\tok\r\n", "250-a\r\n250_b\r\n"] {
            let error = parse_reply(input.as_bytes()).unwrap_err();
            assert!(
                matches!(error, MalformedReply::BadSeparator(_)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn control_characters_and_invalid_utf8_are_cleaned() {
        let parsed = parse_reply(b"250 a\x00b\xffc\r\n").unwrap().unwrap();
        assert_eq!(parsed.reply.text(), "a b\u{fffd}c");
    }

    #[test]
    fn a_reply_past_the_limit_is_refused() {
        let endless = vec![b'2'; MAX_REPLY + 1];
        assert_eq!(parse_reply(&endless), Err(MalformedReply::TooLong));
        let mut long = Vec::new();
        for _ in 0..MAX_REPLY / 8 {
            long.extend_from_slice(b"250-abc\r\n");
        }
        long.extend_from_slice(b"250 end\r\n");
        assert_eq!(parse_reply(&long), Err(MalformedReply::TooLong));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let input: Vec<u8> = (0..seed % 40)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"0123456789 -.\r\nAZ\xff"[(seed % 18) as usize]
                })
                .collect();
            let _ = parse_reply(&input);
        }
    }

    /// A reply of about 60 KB in lines of 64 bytes, and its line count.
    fn long_reply() -> (Vec<u8>, usize) {
        let mut reply = Vec::new();
        let lines = MAX_REPLY / 64 - 40;
        for _ in 1..lines {
            reply.extend_from_slice(b"250-");
            reply.extend_from_slice(&[b'x'; 58]);
            reply.extend_from_slice(b"\r\n");
        }
        reply.extend_from_slice(b"250 end\r\n");
        (reply, lines)
    }

    #[test]
    fn a_reply_fed_two_bytes_at_a_time_is_scanned_once() {
        let (reply, lines) = long_reply();
        let mut parser = ReplyParser::default();
        let mut parsed = None;
        for end in (2..=reply.len()).step_by(2).chain([reply.len()]) {
            if let Some(done) = parser.parse(&reply[..end]).unwrap() {
                parsed = Some(done);
                break;
            }
        }
        let parsed = parsed.expect("the whole reply parses");
        assert_eq!(parsed.consumed, reply.len());
        assert_eq!(parsed.lines.len(), lines);
        assert_eq!(parsed, parse_reply(&reply).unwrap().unwrap());
        assert_eq!(parser.scanned(), reply.len());
    }

    #[test]
    fn a_parser_starts_over_after_each_reply() {
        let mut parser = ReplyParser::default();
        let mut input = b"250-a\r\n2".to_vec();
        assert_eq!(parser.parse(&input), Ok(None));
        input.extend_from_slice(b"50 b\r\n220 next");
        assert_eq!(parser.parse(&input).unwrap().unwrap().lines, ["a", "b"]);
        input.drain(..14);
        assert_eq!(parser.parse(&input), Ok(None));
        input.extend_from_slice(b"\r\n");
        assert_eq!(parser.parse(&input).unwrap().unwrap().reply.code(), 220);
        assert_eq!(
            parser.parse(b"hello\r\n").map(|_| ()),
            Err(MalformedReply::BadCode("hello".into()))
        );
        assert_eq!(
            parser.parse(b"250 ok\r\n").unwrap().unwrap().reply.code(),
            250
        );
    }
}
