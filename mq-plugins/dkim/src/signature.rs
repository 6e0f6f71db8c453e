//! The `DKIM-Signature` field: which fields it covers, its tags, folding, and the signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mq_plugin_api::{Header, Message};
use ring::digest::Digest;

use crate::canonical;
use crate::config::Canonicalization;
use crate::key::{SignError, SigningKey};

/// The field name, as written.
pub(crate) const FIELD: &str = "DKIM-Signature";

/// Folded lines stay within RFC 5322's recommended 78 characters (a base64 run may end one past).
const WIDTH: usize = 78;

/// What one message's signatures share: the fields and canonicalization to sign with, the body
/// hash and the time.
#[derive(Debug)]
pub(crate) struct Signing<'a> {
    message: &'a Message,
    /// The fields to sign, each name once, in `h=` order.
    names: &'a [String],
    canonicalization: Canonicalization,
    body_hash: Digest,
    /// Seconds since the Unix epoch, for `t=`.
    time: u64,
}

impl<'a> Signing<'a> {
    /// Hashes the body of `message` once for all its signatures.
    pub(crate) fn new(
        message: &'a Message,
        names: &'a [String],
        canonicalization: Canonicalization,
        time: u64,
    ) -> Signing<'a> {
        let body_hash = canonical::body_hash(canonicalization.body, message.body());
        Signing {
            message,
            names,
            canonicalization,
            body_hash,
            time,
        }
    }

    /// The value of a `DKIM-Signature` field by `key` (everything after the colon, folded with
    /// CRLF and a tab, without the final line ending).
    pub(crate) fn sign(&self, key: &SigningKey) -> Result<String, SignError> {
        let signed = self.signed_fields();
        let mut value = Folded::default();
        value.word(&format!("v=1; a={};", key.algorithm()), " ");
        value.word(&format!("c={};", self.canonicalization), " ");
        value.word(&format!("d={};", key.domain), " ");
        value.word(&format!("s={};", key.selector), " ");
        value.word(&format!("t={};", self.time), " ");
        // `h=` is never empty: the plugin signs only messages with one `From`, and `From` must
        // be among the names.
        for (index, (name, _)) in signed.iter().enumerate() {
            let end = if index + 1 == signed.len() { ";" } else { ":" };
            match index {
                0 => value.word(&format!("h={name}{end}"), " "),
                _ => value.word(&format!("{name}{end}"), ""),
            }
        }
        value.word("bh=", " ");
        value.base64(&BASE64.encode(self.body_hash.as_ref()));
        value.text.push(';');
        value.word("b=", " ");
        let data = self.header_data(&signed, &value.text);
        value.base64(&BASE64.encode(key.sign(&data)?));
        Ok(value.text)
    }

    /// The fields to sign, bottom-up for a name that occurs more than once (RFC 6376 §5.4.2),
    /// with the name to list in `h=`. A name the message lacks is not listed.
    fn signed_fields(&self) -> Vec<(&'a str, &'a Header)> {
        let mut signed = Vec::new();
        for name in self.names {
            let fields: Vec<&Header> = self
                .message
                .headers()
                .iter()
                .filter(|h| h.is(name))
                .collect();
            signed.extend(fields.into_iter().rev().map(|h| (name.as_str(), h)));
        }
        signed
    }

    /// The bytes the signature covers: each signed field canonicalized, then this signature's
    /// own field with an empty `b=` and no final line ending (RFC 6376 §3.7).
    fn header_data(&self, signed: &[(&str, &Header)], unsigned_value: &str) -> Vec<u8> {
        let method = self.canonicalization.header;
        let mut data = Vec::new();
        for (_, field) in signed {
            canonical::header(method, field.name(), field.raw_value(), &mut data);
        }
        canonical::header(method, FIELD, unsigned_value.as_bytes(), &mut data);
        data.truncate(data.len() - 2);
        data
    }
}

/// The current time for `t=`.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A field value under construction, folded where the tag grammar allows white space.
#[derive(Debug)]
struct Folded {
    text: String,
    /// The length of the last line so far; the first starts after `DKIM-Signature:`.
    line: usize,
}

impl Default for Folded {
    fn default() -> Folded {
        Folded {
            text: String::new(),
            line: FIELD.len() + 1,
        }
    }
}

impl Folded {
    /// Appends `piece` after `separator`, or on a new line if it would not fit.
    fn word(&mut self, piece: &str, separator: &str) {
        if self.line + separator.len() + piece.len() > WIDTH {
            self.fold();
        } else {
            self.text.push_str(separator);
            self.line += separator.len();
        }
        self.text.push_str(piece);
        self.line += piece.len();
    }

    /// Appends base64 text, filling each line and folding between lines.
    fn base64(&mut self, mut rest: &str) {
        while !rest.is_empty() {
            if self.line >= WIDTH {
                self.fold();
            }
            let (line, more) = rest.split_at((WIDTH - self.line).min(rest.len()));
            self.text.push_str(line);
            self.line += line.len();
            rest = more;
        }
    }

    fn fold(&mut self) {
        self.text.push_str("\r\n\t");
        self.line = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_words_and_base64_within_the_width() {
        let mut value = Folded::default();
        value.word("v=1;", " ");
        value.word(&"x".repeat(70), " ");
        value.word("b=", " ");
        value.base64(&"A".repeat(200));
        for line in value.text.split("\r\n") {
            assert!(line.len() <= WIDTH, "{line:?}");
        }
        assert!(value.text.starts_with(" v=1;\r\n\t"));
        let joined: String = value.text.split("\r\n\t").collect();
        assert_eq!(
            joined,
            format!(" v=1;{} b={}", "x".repeat(70), "A".repeat(200))
        );
    }
}
