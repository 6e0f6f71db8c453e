//! The message as it goes out after `354`: CRLF line endings only, dot-stuffed, and the final
//! `.` line.

/// The wire form of `message` after DATA (RFC 5321 §4.5.2): every line ending made CRLF, a `.`
/// doubled at the start of each line, a CRLF added when the message does not end with one, and
/// the final `.` CRLF.
///
/// A bare LF ends a line, and so does a bare CR: the receiver then sees exactly the lines we
/// counted, so `\n.\n` in a message can never end it early on a lenient server after us (SMTP
/// smuggling).
///
/// # Examples
///
/// ```
/// use mq_core::smtp::client::dot_stuff;
///
/// assert_eq!(dot_stuff(b"a\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
/// assert_eq!(dot_stuff(b"no newline"), b"no newline\r\n.\r\n");
/// assert_eq!(dot_stuff(b""), b".\r\n");
/// ```
pub fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 5);
    let mut line_start = true;
    let mut bytes = message.iter().peekable();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\r' | b'\n' => {
                if byte == b'\r' {
                    bytes.next_if_eq(&&b'\n');
                }
                out.extend_from_slice(b"\r\n");
                line_start = true;
            }
            _ => {
                if line_start && byte == b'.' {
                    out.push(b'.');
                }
                out.push(byte);
                line_start = false;
            }
        }
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// The wire form of a message, borrowed from it where it needs no change.
#[derive(Debug)]
pub(super) enum Wire<'a> {
    /// The message as it is (CRLF line endings, no line starting with a dot), then `tail`: the
    /// final dot line.
    Borrowed {
        message: &'a [u8],
        tail: &'static [u8],
    },
    /// [`dot_stuff`]'s copy.
    Stuffed(Vec<u8>),
}

impl<'a> Wire<'a> {
    /// The wire form of `message`, as [`dot_stuff`] makes it; uncopied when it is already
    /// CRLF-only with no line starting with a dot, as messages received over SMTP are.
    pub(super) fn of(message: &'a [u8]) -> Wire<'a> {
        if !sendable_as_is(message) {
            return Wire::Stuffed(dot_stuff(message));
        }
        let tail: &'static [u8] = if message.is_empty() || message.ends_with(b"\r\n") {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        };
        Wire::Borrowed { message, tail }
    }

    /// The pieces to write, in order.
    pub(super) fn parts(&self) -> [&[u8]; 2] {
        match self {
            Wire::Borrowed { message, tail } => [message, tail],
            Wire::Stuffed(data) => [data, &[]],
        }
    }

    /// The length on the wire, the final dot line included.
    pub(super) fn len(&self) -> usize {
        self.parts().iter().map(|part| part.len()).sum()
    }
}

/// Whether `message` goes out unchanged before its final dot line: every CR is followed by
/// LF, every LF preceded by CR, and no line starts with a dot.
fn sendable_as_is(message: &[u8]) -> bool {
    if message.first() == Some(&b'.') {
        return false;
    }
    memchr::memchr2_iter(b'\r', b'\n', message).all(|at| match message[at] {
        b'\r' => message.get(at + 1) == Some(&b'\n'),
        _ => at > 0 && message[at - 1] == b'\r' && message.get(at + 1) != Some(&b'.'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form, borrowed or not, as one buffer.
    fn wire(message: &[u8]) -> (Vec<u8>, bool) {
        let wire = Wire::of(message);
        let borrowed = matches!(wire, Wire::Borrowed { .. });
        assert_eq!(wire.len(), wire.parts().concat().len());
        (wire.parts().concat(), borrowed)
    }

    #[test]
    fn the_wire_form_is_dot_stuffs_whether_borrowed_or_copied() {
        let cases: [(&[u8], bool); 12] = [
            (b"", true),
            (b"a\r\nb\r\n", true),
            (b"a\r\nb", true),
            (b"a\r\n\r\nbody ends. here.\r\n", true),
            (b".hidden\r\n", false),
            (b"a\r\n.b\r\n", false),
            (b"a\nb\r\n", false),
            (b"a\rb\r\n", false),
            (b"a\r\n", true),
            (b"a\r", false),
            (b"\n", false),
            (b"a\n.\nMAIL FROM:<x>\r\n", false),
        ];
        for (message, as_is) in cases {
            let (sent, borrowed) = wire(message);
            assert_eq!(
                sent,
                dot_stuff(message),
                "{:?}",
                String::from_utf8_lossy(message)
            );
            assert_eq!(borrowed, as_is, "{:?}", String::from_utf8_lossy(message));
        }
    }

    #[test]
    fn leading_dots_are_doubled_and_others_kept() {
        assert_eq!(
            dot_stuff(b".\r\n..\r\na.b\r\n"),
            b"..\r\n...\r\na.b\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"."), b"..\r\n.\r\n");
    }

    #[test]
    fn every_line_ending_becomes_crlf() {
        assert_eq!(dot_stuff(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd\r\n.\r\n");
        assert_eq!(dot_stuff(b"a\r\r\n"), b"a\r\n\r\n.\r\n");
        assert_eq!(dot_stuff(b"\n\n"), b"\r\n\r\n.\r\n");
    }

    #[test]
    fn a_message_as_mq_inject_reads_it_from_a_file() {
        let block = dot_stuff(b"Subject: x\n\n.hidden\r\nmixed\r\n..two\nlast");
        assert_eq!(
            block,
            b"Subject: x\r\n\r\n..hidden\r\nmixed\r\n...two\r\nlast\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b"\n"), b"\r\n.\r\n");
    }

    #[test]
    fn a_smuggled_end_of_data_stays_data() {
        let stuffed = dot_stuff(b"a\n.\nMAIL FROM:<x>\r\n");
        assert_eq!(stuffed, b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n");
    }

    #[test]
    fn a_message_ending_in_crlf_gets_no_extra_line() {
        assert_eq!(dot_stuff(b"body\r\n"), b"body\r\n.\r\n");
        assert_eq!(dot_stuff(b"body\n"), b"body\r\n.\r\n");
    }

    #[test]
    fn eight_bit_bytes_pass_through() {
        assert_eq!(dot_stuff(b"\xc3\xa9\r\n"), b"\xc3\xa9\r\n.\r\n");
    }
}
