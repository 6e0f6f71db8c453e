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

#[cfg(test)]
mod tests {
    use super::*;

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
