//! The message: a header block a plugin can edit, and the body as bytes.

use std::fmt;

/// A message as received after DATA: its header fields, parsed just enough to edit them, and
/// the body, kept byte for byte.
///
/// Parsing never fails and never loses bytes: a header block without the blank line that should
/// end it, a line that is not a header field, or bytes that are not UTF-8 all survive
/// [`to_bytes`](Message::to_bytes) unchanged, except that a missing blank line between header
/// and body is supplied. [`from_vec`](Message::from_vec) and
/// [`into_bytes`](Message::into_bytes) do the same as `parse` and `to_bytes` without copying the
/// body, for messages too large to hold twice.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::Message;
///
/// let mut message = Message::parse(b"Subject: hi\r\n\r\nbody\r\n");
/// message.headers_mut().prepend("X-Core", "0");
/// assert_eq!(message.headers().get("subject"), Some("hi"));
/// assert_eq!(message.to_bytes(), b"X-Core: 0\r\nSubject: hi\r\n\r\nbody\r\n");
/// ```
#[derive(Clone, Default)]
pub struct Message {
    headers: Headers,
    /// The body is `bytes[body_start..]`: [`from_vec`](Message::from_vec) leaves the header
    /// block it parsed in front of it, where [`into_bytes`](Message::into_bytes) writes the
    /// new one, so that the body moves once at most.
    bytes: Vec<u8>,
    body_start: usize,
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.headers == other.headers && self.body() == other.body()
    }
}

impl Eq for Message {}

// As the derived one was before the body kept its offset: the header fields and the body.
#[expect(
    clippy::missing_fields_in_debug,
    reason = "`bytes` and `body_start` are shown as the body they hold"
)]
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("headers", &self.headers)
            .field("body", &self.body())
            .finish()
    }
}

/// The header fields of a message, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    fields: Vec<Header>,
    /// The line ending the message uses (`\r\n` from SMTP, `\n` in files), for new fields.
    crlf: bool,
}

/// One header field: its name and its raw value (everything after the colon, folding and line
/// breaks included), so that an untouched field is written back exactly as it came.
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    name: Box<str>,
    raw_value: Box<[u8]>,
}

impl Message {
    /// Splits raw message bytes into header fields and body.
    pub fn parse(bytes: &[u8]) -> Message {
        let (headers, header_len) = Headers::parse(bytes);
        Message {
            headers,
            bytes: bytes[header_len..].to_vec(),
            body_start: 0,
        }
    }

    /// Splits raw message bytes into header fields and body as [`parse`](Message::parse) does,
    /// keeping the body where it is in the allocation `bytes` came in, so a large message is
    /// never copied whole.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::Message;
    ///
    /// let bytes = b"Subject: hi\r\n\r\nbody\r\n".to_vec();
    /// let message = Message::from_vec(bytes.clone());
    /// assert_eq!(message, Message::parse(&bytes));
    /// assert_eq!(message.body(), b"body\r\n");
    /// ```
    pub fn from_vec(bytes: Vec<u8>) -> Message {
        let (headers, header_len) = Headers::parse(&bytes);
        Message {
            headers,
            bytes,
            body_start: header_len,
        }
    }

    /// The whole message as bytes, as [`to_bytes`](Message::to_bytes) gives them, in the body's
    /// own allocation: the header block is written in front of the body, in place of the one
    /// [`from_vec`](Message::from_vec) parsed; the body moves (once) only when the two differ
    /// in length, in place when the spare capacity allows (and is reallocated once when it
    /// does not).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::Message;
    ///
    /// let mut message = Message::from_vec(b"Subject: hi\r\n\r\nbody\r\n".to_vec());
    /// message.headers_mut().prepend("X-Core", "0");
    /// let expected = message.to_bytes();
    /// assert_eq!(message.into_bytes(), expected);
    /// ```
    pub fn into_bytes(self) -> Vec<u8> {
        let mut head = Vec::with_capacity(self.headers.len_bytes() + 2);
        self.write_head(&mut head);
        let mut bytes = self.bytes;
        bytes.splice(..self.body_start, head);
        bytes
    }

    /// The header fields.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The header fields, to change them.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body: everything after the blank line that ends the header block.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }

    /// Replaces the body. Line endings are the caller's to keep consistent.
    pub fn set_body(&mut self, body: impl Into<Vec<u8>>) {
        self.bytes = body.into();
        self.body_start = 0;
    }

    /// The whole message as bytes: header fields, the blank line, the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = self.body();
        let mut out = Vec::with_capacity(self.headers.len_bytes() + 2 + body.len());
        self.write_head(&mut out);
        out.extend_from_slice(body);
        out
    }

    /// The header fields and the blank line that ends them.
    fn write_head(&self, out: &mut Vec<u8>) {
        self.headers.write_to(out);
        out.extend_from_slice(self.headers.newline());
    }
}

/// The field name if `line` starts with one: printable ASCII but colon, then a colon.
fn field_name(line: &[u8]) -> Option<&str> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let printable = |b: &u8| (33..=126).contains(b);
    if name.is_empty() || !name.iter().all(printable) {
        return None;
    }
    std::str::from_utf8(name).ok()
}

impl Headers {
    /// Parses the header block at the start of `bytes`: the fields, and how many bytes they and
    /// the blank line after them (when there is one) take. The rest is the body.
    fn parse(bytes: &[u8]) -> (Headers, usize) {
        // New fields follow the first line's ending; SMTP's CRLF when there is no line at all.
        let crlf = bytes
            .iter()
            .position(|&b| b == b'\n')
            .is_none_or(|n| n > 0 && bytes[n - 1] == b'\r');
        let mut fields: Vec<Header> = Vec::new();
        let mut rest = bytes;
        loop {
            let line_len = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |n| n + 1);
            let line = &rest[..line_len];
            if line.is_empty() || line == b"\n" || line == b"\r\n" {
                rest = &rest[line_len..];
                break;
            }
            // A last line without its line ending gets one, so that writing the message back
            // and parsing it again gives the same fields.
            let ended: std::borrow::Cow<'_, [u8]> = if line.ends_with(b"\n") {
                line.into()
            } else {
                [line, if crlf { &b"\r\n"[..] } else { b"\n" }]
                    .concat()
                    .into()
            };
            if matches!(line[0], b' ' | b'\t')
                && let Some(last) = fields.last_mut()
            {
                let mut value = std::mem::take(&mut last.raw_value).into_vec();
                value.extend_from_slice(&ended);
                last.raw_value = value.into_boxed_slice();
                rest = &rest[line_len..];
                continue;
            }
            // Not a header field: the header block ended without its blank line.
            let Some(name) = field_name(line) else { break };
            fields.push(Header {
                name: name.into(),
                raw_value: ended[name.len() + 1..].into(),
            });
            rest = &rest[line_len..];
        }
        (Headers { fields, crlf }, bytes.len() - rest.len())
    }

    /// The first field called `name` (compared without regard to case), its value trimmed;
    /// `None` if there is none or its value is not UTF-8. A folded value keeps its line breaks:
    /// [`Header::unfolded`] joins them.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|h| h.is(name)).and_then(Header::value_str)
    }

    /// Every field, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.fields.iter()
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Adds a field above all others, where trace fields such as `Received` go.
    pub fn prepend(&mut self, name: &str, value: impl AsRef<str>) {
        let field = self.make(name, value.as_ref());
        self.fields.insert(0, field);
    }

    /// Adds a field below all others.
    pub fn append(&mut self, name: &str, value: impl AsRef<str>) {
        let field = self.make(name, value.as_ref());
        self.fields.push(field);
    }

    /// Adds a field above all others whose value keeps its folding: each CRLF in `value` must
    /// be followed by a space or a tab (a fold, RFC 5322 §2.2.3) and is written with the
    /// message's own line ending. For long fields such as a `DKIM-Signature`.
    ///
    /// # Errors
    ///
    /// The name is not a field name, or the value has a CR or LF that is not a fold: nothing
    /// is added, so no field can smuggle in another.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut message = mq_plugin_api::Message::parse(b"Subject: x\r\n\r\nbody\r\n");
    /// let headers = message.headers_mut();
    /// headers.prepend_folded("X-Long", "a=1;\r\n\tb=2").unwrap();
    /// assert!(headers.prepend_folded("X-Bad", "a\r\nBcc: x@example.org").is_err());
    /// assert_eq!(message.to_bytes(), b"X-Long: a=1;\r\n\tb=2\r\nSubject: x\r\n\r\nbody\r\n");
    /// ```
    pub fn prepend_folded(&mut self, name: &str, value: &str) -> Result<(), FoldError> {
        let valid_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !valid_name {
            return Err(FoldError::Name);
        }
        let mut raw = Vec::with_capacity(value.len() + 3);
        raw.push(b' ');
        let mut rest = value.as_bytes();
        while let Some(at) = rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            let folds =
                rest[at..].starts_with(b"\r\n") && matches!(rest.get(at + 2), Some(b' ' | b'\t'));
            if !folds {
                return Err(FoldError::LineBreak);
            }
            raw.extend_from_slice(&rest[..at]);
            raw.extend_from_slice(self.newline());
            rest = &rest[at + 2..];
        }
        raw.extend_from_slice(rest);
        raw.extend_from_slice(self.newline());
        let field = Header {
            name: name.into(),
            raw_value: raw.into_boxed_slice(),
        };
        self.fields.insert(0, field);
        Ok(())
    }

    /// Removes every field called `name` and says how many there were.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.fields.len();
        self.fields.retain(|h| !h.is(name));
        before - self.fields.len()
    }

    /// Gives the first field called `name` the new value and removes the others of that name;
    /// says whether there was one. A message without the field is left as it is.
    pub fn replace(&mut self, name: &str, value: impl AsRef<str>) -> bool {
        let Some(first) = self.fields.iter().position(|h| h.is(name)) else {
            return false;
        };
        self.fields[first] = self.make(name, value.as_ref());
        let mut index = 0;
        self.fields.retain(|h| {
            index += 1;
            index - 1 == first || !h.is(name)
        });
        true
    }

    /// A new field. A name or value a plugin gives may not smuggle in another field or end the
    /// header block: characters a field name cannot hold are dropped from the name, and each CR
    /// or LF in the value becomes a space.
    fn make(&self, name: &str, value: &str) -> Header {
        let name: String = name
            .chars()
            .filter(|&c| c.is_ascii_graphic() && c != ':')
            .collect();
        let name = if name.is_empty() {
            "X-Invalid-Name".to_owned()
        } else {
            name
        };
        let mut raw = Vec::with_capacity(value.len() + 3);
        raw.push(b' ');
        raw.extend(
            value
                .bytes()
                .map(|b| if matches!(b, b'\r' | b'\n') { b' ' } else { b }),
        );
        raw.extend_from_slice(self.newline());
        Header {
            name: name.into(),
            raw_value: raw.into_boxed_slice(),
        }
    }

    fn newline(&self) -> &'static [u8] {
        if self.crlf { b"\r\n" } else { b"\n" }
    }

    fn len_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|h| h.name.len() + 1 + h.raw_value.len())
            .sum()
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for field in &self.fields {
            out.extend_from_slice(field.name.as_bytes());
            out.push(b':');
            out.extend_from_slice(&field.raw_value);
            if !field.raw_value.ends_with(b"\n") {
                out.extend_from_slice(self.newline());
            }
        }
    }
}

/// Why [`Headers::prepend_folded`] refused a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FoldError {
    /// The name is empty or holds a space, a colon or a control character.
    Name,
    /// The value has a CR or LF that is not CRLF followed by a space or a tab.
    LineBreak,
}

impl fmt::Display for FoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FoldError::Name => "not a header field name",
            FoldError::LineBreak => "a line break in a field value that is not a fold",
        })
    }
}

impl std::error::Error for FoldError {}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Header {
    /// The field name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the field is called `name`, compared without regard to ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Everything after the colon, folding and line break included.
    pub fn raw_value(&self) -> &[u8] {
        &self.raw_value
    }

    /// The value trimmed, or `None` if it is not UTF-8. A folded value keeps its line breaks:
    /// [`Header::unfolded`] joins them.
    pub fn value_str(&self) -> Option<&str> {
        let value = std::str::from_utf8(&self.raw_value).ok()?;
        Some(value.trim())
    }

    /// The value as one line: folding removed, non-UTF-8 bytes replaced.
    pub fn unfolded(&self) -> String {
        let text = String::from_utf8_lossy(&self.raw_value);
        text.split(['\r', '\n'])
            .filter(|s| !s.is_empty())
            .collect::<String>()
            .trim()
            .to_owned()
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.unfolded())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CRLF: &[u8] = b"From: a@example.org\r\nSubject: two\r\n  lines\r\n\r\nbody\r\n.. dot\r\n";

    #[test]
    fn round_trips_crlf_and_lf_byte_for_byte() {
        assert_eq!(Message::parse(CRLF).to_bytes(), CRLF);
        let lf = b"From: a@example.org\nSubject: two\n\tlines\n\nbody\n";
        assert_eq!(Message::parse(lf).to_bytes(), lf);
    }

    #[test]
    fn unfolds_values() {
        let message = Message::parse(CRLF);
        assert_eq!(
            message.headers().iter().nth(1).unwrap().unfolded(),
            "two  lines"
        );
        assert_eq!(message.body(), b"body\r\n.. dot\r\n");
    }

    #[test]
    fn a_line_that_is_no_field_starts_the_body() {
        let message = Message::parse(b"Subject: x\r\nnot a header\r\nmore\r\n");
        assert_eq!(message.headers().len(), 1);
        assert_eq!(message.body(), b"not a header\r\nmore\r\n");
        assert_eq!(
            message.to_bytes(),
            b"Subject: x\r\n\r\nnot a header\r\nmore\r\n"
        );
    }

    #[test]
    fn survives_garbage() {
        for bytes in [
            &b""[..],
            b"\r\n",
            b":\r\n",
            b" folded first\r\n",
            b"\xff\xfe: x\r\n",
            b"A:\xff\r\n\r\n",
            b"A: no line ending",
            b"A: b\r\n folded without ending",
            b"A: b\r\n\r",
            b"A: b\nC: lf only",
        ] {
            let message = Message::parse(bytes);
            let again = Message::parse(&message.to_bytes());
            assert_eq!(again, message);
        }
    }

    #[test]
    fn from_vec_and_into_bytes_agree_with_parse_and_to_bytes() {
        let long_body = "line of body text\r\n".repeat(5_000);
        let long = format!("Subject: big\r\n\r\n{long_body}");
        for bytes in [
            &b""[..],
            b"\r\n",
            b"\n",
            b"body only, no header\r\nsecond line\r\n",
            b"\r\nbody after an empty header block\r\n",
            b"A: no header end\r\nB: still header\r\n",
            b"A: no line ending",
            b"From: a@example.org\nSubject: bare\n\tLF folded\n\nbody\n",
            b"Subject: two\r\n  lines\r\n\tand three\r\n\r\nbody\r\n",
            b" folded first\r\nA: b\r\n\r\n",
            b"\xff\xfe: x\r\n\r\n\xff body\r\n",
            b"A:\xff\r\n\r\n\x80\x81",
            b"A: b\r\n\r",
            b"A: b\r\nnot a header\r\nmore\r\n",
            long.as_bytes(),
        ] {
            let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
            let parsed = Message::parse(bytes);
            let moved = Message::from_vec(bytes.to_vec());
            assert_eq!(moved, parsed, "{shown:?}");
            let expected = parsed.to_bytes();
            assert_eq!(moved.clone().into_bytes(), expected, "{shown:?}");

            // With fields added, as the server does before it queues a message.
            let mut stamped = Message::from_vec(bytes.to_vec());
            stamped
                .headers_mut()
                .prepend("Received", "from client.example");
            stamped.headers_mut().append("X-Last", "1");
            let expected = stamped.to_bytes();
            assert_eq!(stamped.into_bytes(), expected, "{shown:?}");
        }
    }

    #[test]
    fn a_big_body_stays_in_its_allocation() {
        let mut bytes = Vec::with_capacity(200_000);
        bytes.extend_from_slice(b"Subject: x\r\n\r\n");
        bytes.resize(100_000, b'a');
        let at = bytes.as_ptr();
        let mut message = Message::from_vec(bytes);
        assert_eq!(
            message.body().as_ptr(),
            at.wrapping_add(b"Subject: x\r\n\r\n".len())
        );
        message
            .headers_mut()
            .prepend("Received", "from client.example");
        let bytes = message.into_bytes();
        assert_eq!(bytes.as_ptr(), at);
        assert!(bytes.starts_with(b"Received: from client.example\r\nSubject: x\r\n\r\naaa"));
    }

    #[test]
    fn a_new_field_cannot_smuggle_in_another() {
        let mut message = Message::parse(b"Subject: x\r\n\r\nbody\r\n");
        message
            .headers_mut()
            .append("X-A", "1\r\nBcc: victim@example.org\r\n\r\nfake body");
        message.headers_mut().prepend("Bad Name:", "v");
        let again = Message::parse(&message.to_bytes());
        assert_eq!(again.headers().len(), 3);
        assert_eq!(again.headers().get("BadName"), Some("v"));
        assert_eq!(again.body(), b"body\r\n");
    }

    #[test]
    fn replace_keeps_the_first_position_and_drops_the_rest() {
        let mut message = Message::parse(b"A: 1\r\nB: 2\r\na: 3\r\n\r\n");
        assert!(message.headers_mut().replace("A", "new"));
        assert_eq!(message.to_bytes(), b"A: new\r\nB: 2\r\n\r\n");
        assert!(!message.headers_mut().replace("C", "x"));
        assert_eq!(message.headers_mut().remove("b"), 1);
    }
}
