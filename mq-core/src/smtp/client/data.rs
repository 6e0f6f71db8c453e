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
    let mut stuffer = Stuffer::default();
    stuffer.push(message, &mut out);
    stuffer.finish(&mut out);
    out
}

/// [`dot_stuff`] of a message given a piece at a time: what one piece leaves for the next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stuffer {
    /// The next byte starts a line.
    line_start: bool,
    /// The last byte was a CR, whose line ending was written: an LF next is part of it.
    after_cr: bool,
}

impl Default for Stuffer {
    fn default() -> Stuffer {
        Stuffer {
            line_start: true,
            after_cr: false,
        }
    }
}

impl Stuffer {
    /// Appends the wire form of the next `piece` to `out`.
    pub(crate) fn push(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        out.reserve(piece.len() + piece.len() / 64);
        for &byte in piece {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.line_start = true;
                    self.after_cr = byte == b'\r';
                }
                _ => {
                    if self.line_start && byte == b'.' {
                        out.push(b'.');
                    }
                    out.push(byte);
                    self.line_start = false;
                }
            }
        }
    }

    /// Appends the end to `out`: a CRLF when the message did not end with a line ending, and
    /// the final dot line.
    pub(crate) fn finish(self, out: &mut Vec<u8>) {
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// What the client must know of a message before MAIL: its 8-bit bytes (for `BODY=8BITMIME`),
/// and whether it goes out as it is.
///
/// # Examples
///
/// ```
/// use mq_core::smtp::client::Shape;
///
/// let shape = Shape::of(b"Subject: caf\xc3\xa9\r\n\r\nhi\r\n");
/// assert!(shape.eight_bit && shape.as_is && shape.ends_with_newline);
/// // A line starting with a dot is doubled on the wire: not as it is.
/// assert!(!Shape::of(b"a\r\n.b\r\n").as_is);
///
/// // The same, fed a piece at a time.
/// let mut scan = Shape::scan();
/// scan.feed(b"a\r");
/// scan.feed(b"\n.b\r\n");
/// assert_eq!(scan.finish(), Shape::of(b"a\r\n.b\r\n"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shape {
    /// A byte above 127 is in it.
    pub eight_bit: bool,
    /// Every CR is followed by LF, every LF preceded by CR, and no line starts with a dot: it
    /// needs no [`dot_stuff`]ing, as messages received over SMTP do not.
    pub as_is: bool,
    /// It is empty or ends with a line ending: the final dot line follows at once.
    pub ends_with_newline: bool,
}

impl Shape {
    /// The shape of `message`.
    pub fn of(message: &[u8]) -> Shape {
        let mut scan = Shape::scan();
        scan.feed(message);
        scan.finish()
    }

    /// A scan of a message given a piece at a time.
    pub fn scan() -> ShapeScan {
        ShapeScan {
            eight_bit: false,
            as_is: true,
            last: None,
        }
    }
}

/// [`Shape`] of a message fed in pieces, in order.
#[derive(Debug, Clone)]
pub struct ShapeScan {
    eight_bit: bool,
    as_is: bool,
    /// The last byte fed so far.
    last: Option<u8>,
}

impl ShapeScan {
    /// Takes the next piece of the message.
    pub fn feed(&mut self, piece: &[u8]) {
        let Some(&first) = piece.first() else {
            return;
        };
        self.eight_bit = self.eight_bit || !piece.is_ascii();
        if self.as_is {
            // Across the seam, the byte before it; at the very start, no dot and no LF.
            let seam = match self.last {
                Some(last) => fits(last, first),
                None => first != b'.' && first != b'\n',
            };
            self.as_is = seam
                && crate::smtp::data::crlf_paired(piece)
                && memchr::memmem::find(piece, b"\n.").is_none();
        }
        self.last = piece.last().copied();
    }

    /// The shape of everything fed.
    pub fn finish(&self) -> Shape {
        Shape {
            eight_bit: self.eight_bit,
            // A CR at the very end has no LF after it.
            as_is: self.as_is && self.last != Some(b'\r'),
            ends_with_newline: matches!(self.last, None | Some(b'\n')),
        }
    }
}

/// Whether byte `b` may follow byte `a` in a message sent as it is: a CR only before an LF, an
/// LF only after a CR, and no dot after an LF.
#[inline]
fn fits(a: u8, b: u8) -> bool {
    ((a == b'\r') == (b == b'\n')) && !((a == b'\n') && (b == b'.'))
}

/// A message the client reads a piece at a time as it sends it, instead of holding it whole:
/// a large queued body, read from the queue's journal.
pub trait Pieces: Sync {
    /// Its length in bytes.
    fn len(&self) -> u64;

    /// Whether it has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The piece starting at `offset`, read into `buffer` in place of what it held: at least
    /// one byte while `offset` is short of [`len`](Pieces::len).
    fn piece(
        &self,
        offset: u64,
        buffer: Vec<u8>,
    ) -> futures::future::BoxFuture<'_, std::io::Result<Vec<u8>>>;

    /// The file the message lies in whole, from the offset given, when it does and the page
    /// cache holds it: a plain connection then has the kernel send it from there (`sendfile`),
    /// with no copy through a buffer of the client's.
    fn in_file(&self) -> Option<(&std::fs::File, u64)> {
        None
    }
}

/// Reads a [`Pieces`] message in order, a piece at a time, into one buffer.
pub(crate) struct PieceReader<'a> {
    message: &'a dyn Pieces,
    offset: u64,
    buffer: Vec<u8>,
}

impl<'a> PieceReader<'a> {
    pub(crate) fn new(message: &'a dyn Pieces) -> PieceReader<'a> {
        PieceReader {
            message,
            offset: 0,
            buffer: Vec::new(),
        }
    }

    /// The next piece; `None` after the last.
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        if self.offset >= self.message.len() {
            return Ok(None);
        }
        let buffer = std::mem::take(&mut self.buffer);
        self.buffer = self.message.piece(self.offset, buffer).await?;
        if self.buffer.is_empty() {
            let error = std::io::ErrorKind::UnexpectedEof;
            return Err(std::io::Error::new(error, "the message ended early"));
        }
        self.offset += self.buffer.len() as u64;
        Ok(Some(&self.buffer))
    }
}

/// The wire form of a message, borrowed from it where it needs no change.
pub(super) enum Wire<'a> {
    /// The message as it is (CRLF line endings, no line starting with a dot), then `tail`: the
    /// final dot line.
    Borrowed {
        message: &'a [u8],
        tail: &'static [u8],
    },
    /// [`dot_stuff`]'s copy.
    Stuffed(Vec<u8>),
    /// A message read a piece at a time: sent as it is then `tail`, or, when `stuffed`, each
    /// piece [dot-stuffed](dot_stuff) as it goes (`tail` empty: the stuffing ends it). `len`
    /// is the length on the wire.
    Pieces {
        message: &'a dyn Pieces,
        stuffed: bool,
        tail: &'static [u8],
        len: u64,
    },
}

impl std::fmt::Debug for Wire<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").field("len", &self.len()).finish()
    }
}

impl<'a> Wire<'a> {
    /// The wire form of `message` of `shape`, as [`dot_stuff`] makes it; uncopied when it is
    /// already CRLF-only with no line starting with a dot, as messages received over SMTP are.
    pub(super) fn of(message: &'a [u8], shape: Shape) -> Wire<'a> {
        if !shape.as_is {
            return Wire::Stuffed(dot_stuff(message));
        }
        Wire::Borrowed {
            message,
            tail: tail(shape),
        }
    }

    /// The wire form of `message` of `shape`, read a piece at a time as it is sent. One that
    /// does not go as it is is read through once first, to count its length on the wire.
    pub(super) async fn pieces(message: &'a dyn Pieces, shape: Shape) -> std::io::Result<Wire<'a>> {
        if shape.as_is {
            let tail = tail(shape);
            let len = message.len() + tail.len() as u64;
            return Ok(Wire::Pieces {
                message,
                stuffed: false,
                tail,
                len,
            });
        }
        let (mut stuffer, mut out, mut len) = (Stuffer::default(), Vec::new(), 0);
        let mut pieces = PieceReader::new(message);
        while let Some(piece) = pieces.next().await? {
            out.clear();
            stuffer.push(piece, &mut out);
            len += out.len() as u64;
        }
        out.clear();
        stuffer.finish(&mut out);
        len += out.len() as u64;
        Ok(Wire::Pieces {
            message,
            stuffed: true,
            tail: b"",
            len,
        })
    }

    /// The pieces to write, in order, of a message held whole; of one in pieces, what follows
    /// them.
    pub(super) fn parts(&self) -> [&[u8]; 2] {
        match self {
            Wire::Borrowed { message, tail } => [message, tail],
            Wire::Stuffed(data) => [data, &[]],
            Wire::Pieces { tail, .. } => [&[], tail],
        }
    }

    /// The length on the wire, the final dot line included.
    pub(super) fn len(&self) -> u64 {
        match self {
            Wire::Pieces { len, .. } => *len,
            _ => self.parts().iter().map(|part| part.len() as u64).sum(),
        }
    }
}

/// The final dot line after a message of `shape` sent as it is.
fn tail(shape: Shape) -> &'static [u8] {
    if shape.ends_with_newline {
        b".\r\n"
    } else {
        b"\r\n.\r\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form, borrowed or not, as one buffer.
    fn wire(message: &[u8]) -> (Vec<u8>, bool) {
        let wire = Wire::of(message, Shape::of(message));
        let borrowed = matches!(wire, Wire::Borrowed { .. });
        assert_eq!(wire.len(), wire.parts().concat().len() as u64);
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
    fn a_message_fed_in_pieces_has_the_shape_it_has_whole() {
        let cases: [&[u8]; 14] = [
            b"",
            b"a\r\nb\r\n",
            b"a\r\nb",
            b".hidden\r\n",
            b"a\r\n.b\r\n",
            b"a\nb\r\n",
            b"a\rb\r\n",
            b"a\r",
            b"\n",
            b"\r\n",
            b"a\n.\nMAIL FROM:<x>\r\n",
            b"caf\xc3\xa9\r\n",
            b"a\r\r\n",
            b"x\r\n\r\n..\r\n",
        ];
        for message in cases {
            let whole = Shape::of(message);
            assert_eq!(whole.as_is, Wire::of(message, whole).parts()[0] == message);
            assert_eq!(whole.eight_bit, !message.is_ascii());
            for split in 0..=message.len() {
                let mut scan = Shape::scan();
                scan.feed(&message[..split]);
                scan.feed(&message[split..]);
                assert_eq!(scan.finish(), whole, "{message:?} split at {split}");
            }
            let mut scan = Shape::scan();
            message.chunks(1).for_each(|byte| scan.feed(byte));
            assert_eq!(scan.finish(), whole, "{message:?} a byte at a time");
        }
    }

    #[test]
    fn a_message_stuffed_in_pieces_is_stuffed_as_it_is_whole() {
        let cases: [&[u8]; 10] = [
            b"",
            b"a\r\n.b\r\n",
            b".hidden\r\n",
            b"a\nb\r\n",
            b"a\rb\r\n",
            b"a\r",
            b"\r\n.\r\n..\r\n",
            b"a\r\r\n.\n.\r.x",
            b"a\n.\nMAIL FROM:<x>\r\n",
            b"no newline",
        ];
        for message in cases {
            let whole = dot_stuff(message);
            for split in 0..=message.len() {
                let (mut stuffer, mut out) = (Stuffer::default(), Vec::new());
                stuffer.push(&message[..split], &mut out);
                stuffer.push(&message[split..], &mut out);
                stuffer.finish(&mut out);
                assert_eq!(out, whole, "{message:?} split at {split}");
            }
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
