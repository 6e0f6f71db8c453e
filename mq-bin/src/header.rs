//! A message's header as sendmail submission completes it: the fields read off the message,
//! the recipients of `To`, `Cc` and `Bcc` (for `-t`), and the `From`, `Date` and `Message-ID`
//! fields added where missing, as Postfix's cleanup adds them to local submissions.

use crate::clock::rfc5322;

/// What a missing field is made of.
pub(crate) struct Missing<'a> {
    /// The envelope sender, for `From`.
    pub(crate) from: &'a str,
    pub(crate) full_name: Option<&'a str>,
    /// Seconds since the epoch, for `Date` and `Message-ID`.
    pub(crate) now: u64,
    /// The right side of `Message-ID`.
    pub(crate) hostname: &'a str,
}

/// A message as header lines and a body, with CRLF line ends.
pub(crate) struct Message {
    /// Each field with its continuation lines, without the final CRLF.
    fields: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    /// Splits `input` into fields and body; without `ignore_dots`, a line holding only `.`
    /// ends the message, as sendmail reads it. Lines end in CRLF afterwards.
    pub(crate) fn read(input: &[u8], ignore_dots: bool) -> Message {
        let mut lines: Vec<&[u8]> = Vec::new();
        for line in input.split_inclusive(|&b| b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if !ignore_dots && bare == b"." {
                break;
            }
            lines.push(bare);
        }
        let mut fields: Vec<String> = Vec::new();
        let mut rest = lines.as_slice();
        while let Some((line, after)) = rest.split_first() {
            let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
            match fields.last_mut() {
                Some(field) if continuation => {
                    field.push_str("\r\n");
                    field.push_str(&String::from_utf8_lossy(line));
                }
                _ if is_field(line) => fields.push(String::from_utf8_lossy(line).into_owned()),
                _ => break,
            }
            rest = after;
        }
        // The empty line between header and body belongs to neither.
        if rest.first().is_some_and(|line| line.is_empty()) {
            rest = &rest[1..];
        }
        let mut body = Vec::new();
        for line in rest {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
        Message { fields, body }
    }

    /// The value of every field named `name` (any case), unfolded.
    fn values(&self, name: &str) -> impl Iterator<Item = String> + '_ {
        let name = name.to_owned();
        self.fields.iter().filter_map(move |field| {
            let (field_name, value) = field.split_once(':')?;
            field_name
                .trim()
                .eq_ignore_ascii_case(&name)
                .then(|| value.replace("\r\n", ""))
        })
    }

    fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }

    /// Removes every field named `name`.
    pub(crate) fn remove(&mut self, name: &str) {
        self.fields.retain(|field| {
            field
                .split_once(':')
                .is_none_or(|(n, _)| !n.trim().eq_ignore_ascii_case(name))
        });
    }

    /// The addresses in the To, Cc and Bcc fields.
    pub(crate) fn recipients_from_headers(&self) -> Vec<String> {
        ["to", "cc", "bcc"]
            .iter()
            .flat_map(|name| self.values(name).collect::<Vec<_>>())
            .flat_map(|value| addresses(&value))
            .collect()
    }

    /// Adds `From`, `Date` and `Message-ID` where missing, after the fields already there.
    pub(crate) fn complete(&mut self, missing: &Missing<'_>) {
        if !self.has("from") {
            let from = match missing.full_name {
                Some(name) if !name.is_empty() => {
                    format!("From: {} <{}>", phrase(name), missing.from)
                }
                _ => format!("From: {}", missing.from),
            };
            self.fields.push(from);
        }
        if !self.has("date") {
            self.fields.push(format!("Date: {}", rfc5322(missing.now)));
        }
        if !self.has("message-id") {
            let unique = format!(
                "{:x}.{:x}.{:x}",
                missing.now,
                std::process::id(),
                // Two submissions in one second by one process id differ in their address.
                std::ptr::from_ref(self) as usize ^ nanos()
            );
            self.fields
                .push(format!("Message-ID: <{unique}@{}>", missing.hostname));
        }
    }

    /// Whether every header field is ASCII; one that is not needs SMTPUTF8 (RFC 6532).
    pub(crate) fn header_is_ascii(&self) -> bool {
        self.fields.iter().all(|field| field.is_ascii())
    }

    /// The whole message, CRLF line ends.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.body.len() + 512);
        for field in &self.fields {
            bytes.extend_from_slice(field.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn nanos() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize)
}

/// Whether `line` starts a header field: a name of printable characters, then a colon.
fn is_field(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(0) | None => false,
        Some(colon) => line[..colon].iter().all(|&b| (33..=126).contains(&b)),
    }
}

/// A display name as a phrase: quoted unless it is plain words.
fn phrase(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c));
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The addresses in an address list: `a@x, "B, b" <b@y>, group: c@z;`.
fn addresses(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut item, mut quoted, mut angle) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            ':' if !quoted && !angle => {
                // A group's name: its members follow.
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items
        .iter()
        .filter_map(|item| {
            let address = match (item.find('<'), item.rfind('>')) {
                (Some(start), Some(end)) if start < end => &item[start + 1..end],
                _ => without_comments(item),
            };
            let address = address.trim();
            (!address.is_empty()).then(|| address.to_owned())
        })
        .collect()
}

/// `a@x (Alice)` without its comment.
fn without_comments(item: &str) -> &str {
    item.split('(').next().unwrap_or(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Missing<'static> {
        Missing {
            from: "alice@example.org",
            full_name: Some("Alice Q. User"),
            now: 1_796_515_200,
            hostname: "mx.example.org",
        }
    }

    #[test]
    fn missing_fields_are_added_after_the_others() {
        let mut message = Message::read(b"Subject: hi\nTo: bob@example.net\n\nbody\n", false);
        message.complete(&missing());
        let text = String::from_utf8(message.into_bytes()).unwrap();
        assert!(text.starts_with(
            "Subject: hi\r\nTo: bob@example.net\r\nFrom: \"Alice Q. User\" <alice@example.org>\r\n\
             Date: Sun, 06 Dec 2026 00:00:00 +0000\r\nMessage-ID: <"
        ), "{text}");
        assert!(text.ends_with("@mx.example.org>\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn present_fields_are_kept_whatever_their_case() {
        let input =
            b"FROM: x@y\r\ndate: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <a@b>\r\n\r\nb\r\n";
        let mut message = Message::read(input, false);
        message.complete(&missing());
        assert_eq!(message.into_bytes(), input.to_vec());
    }

    #[test]
    fn a_lone_dot_ends_the_message_unless_dots_are_ignored() {
        let input = b"Subject: x\n\none\n.\ntwo\n";
        assert_eq!(Message::read(input, false).body, b"one\r\n");
        assert_eq!(Message::read(input, true).body, b"one\r\n.\r\ntwo\r\n");
    }

    #[test]
    fn a_message_without_a_header_gets_one() {
        let mut message = Message::read(b"just text\n", false);
        assert!(message.fields.is_empty());
        message.complete(&missing());
        let text = String::from_utf8(message.into_bytes()).unwrap();
        assert!(text.ends_with("\r\n\r\njust text\r\n"), "{text}");
    }

    #[test]
    fn recipients_come_from_to_cc_and_bcc_folded_and_grouped() {
        let input = b"To: \"Bob, B.\" <bob@example.net>,\n  carol@example.net (Carol)\n\
                      Cc: friends: dave@example.com, <erin@example.com>;\nBcc: frank\n\
                      Subject: x\n\nbody\n";
        let message = Message::read(input, false);
        assert_eq!(
            message.recipients_from_headers(),
            [
                "bob@example.net",
                "carol@example.net",
                "dave@example.com",
                "erin@example.com",
                "frank"
            ]
        );
    }
}
