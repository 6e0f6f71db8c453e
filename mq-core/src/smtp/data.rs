//! Reading the message after DATA: dot-unstuffing, the size limit, no bare line endings and no
//! NUL characters.
//!
//! Only `CRLF . CRLF` ends a message. A bare LF or bare CR anywhere refuses the message, but
//! reading goes on to the real end, so that `\n.\n` (or `\r.\r\n`) can never end a message here
//! nor smuggle a second one past a server after us: what follows it is data, and data is
//! refused. A NUL byte refuses the message the same way: a server after us that drops NULs
//! would read different lines, or a different end of data, than mq did.

use futures::io::{AsyncBufRead, AsyncBufReadExt};

/// Why a message was not taken.
#[derive(Debug)]
pub enum DataError {
    /// The message is larger than the limit; it was read to its end and dropped.
    TooBig,
    /// The message holds a bare LF or bare CR; it was read to its end and dropped.
    BareLineEnding,
    /// The message holds a NUL character; it was read to its end and dropped.
    Nul,
    /// The connection closed or failed before the end of the message.
    Io(std::io::Error),
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataError::TooBig => f.write_str("message too big"),
            DataError::BareLineEnding => f.write_str("bare <CR> or <LF> in message"),
            DataError::Nul => f.write_str("NUL character in message"),
            DataError::Io(error) => write!(f, "connection lost during DATA: {error}"),
        }
    }
}

impl std::error::Error for DataError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line that followed a CRLF (or the start of the data).
    LineStart,
    /// The line so far is a single `.`.
    Dot,
    /// The line so far is `.` CR.
    DotCr,
    /// Inside a line.
    Inside,
    /// After a CR inside a line.
    Cr,
}

/// What a reader holds before it must grow.
const INITIAL_CAPACITY: usize = 16 * 1024;

/// A DATA reader: feed it the bytes the client sends; it says when the message ended.
#[derive(Debug)]
pub struct DataReader {
    state: State,
    body: Vec<u8>,
    limit: usize,
    too_big: bool,
    bare: bool,
    nul: bool,
}

impl DataReader {
    /// A reader that keeps at most `limit` bytes of message.
    pub fn new(limit: usize) -> DataReader {
        DataReader {
            state: State::LineStart,
            // Room for a short message from the start, instead of a dozen reallocations.
            body: Vec::with_capacity(limit.min(INITIAL_CAPACITY)),
            limit,
            too_big: false,
            bare: false,
            nul: false,
        }
    }

    /// Takes bytes from `input`; returns how many it used and whether the message ended (the
    /// bytes after the end belong to the next command).
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut index = 0;
        // Whole plain lines go in at once while there are any; off for the rest of the input
        // once something else is in the way, so that no byte is searched twice for them.
        let mut lines = true;
        while index < input.len() {
            if lines && matches!(self.state, State::LineStart | State::Inside) {
                match plain_lines(&input[index..], self.state == State::LineStart) {
                    Some(0) => {}
                    Some(plain) => {
                        self.emit(&input[index..index + plain]);
                        index += plain;
                        self.state = State::LineStart;
                        continue;
                    }
                    None => lines = false,
                }
            }
            if self.state == State::Inside {
                // Inside a line only CR, LF and NUL mean anything: the bytes before the next one
                // go in at once, which is most of a message.
                let rest = &input[index..];
                let run = memchr::memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                if run > 0 {
                    self.emit(&rest[..run]);
                    index += run;
                    continue;
                }
            }
            index += 1;
            if self.step(input[index - 1]) {
                return (index, true);
            }
        }
        (input.len(), false)
    }

    /// The message, once [`feed`](DataReader::feed) said it ended.
    ///
    /// # Errors
    ///
    /// The message was too big, held a bare line ending or a NUL character.
    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        if self.bare {
            Err(DataError::BareLineEnding)
        } else if self.too_big {
            Err(DataError::TooBig)
        } else if self.nul {
            Err(DataError::Nul)
        } else {
            Ok(self.body)
        }
    }

    /// How many message bytes were kept so far (none past the limit).
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether no message byte was seen yet.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.body.len() + bytes.len() > self.limit {
            self.too_big = true;
        } else {
            self.body.extend_from_slice(bytes);
        }
    }

    /// One byte; true when it ended the message.
    fn step(&mut self, byte: u8) -> bool {
        // Otherwise a NUL is a byte like any other: it refuses the message once it has ended.
        self.nul |= byte == 0;
        self.state = match (self.state, byte) {
            (State::DotCr, b'\n') => return true,
            (State::Cr, b'\n') => {
                self.emit(b"\r\n");
                State::LineStart
            }
            (State::LineStart, b'.') => State::Dot,
            (State::Dot, b'\r') => State::DotCr,
            (State::LineStart | State::Inside, b'\r') => State::Cr,
            (State::Cr | State::DotCr, _) => self.bare_cr(byte),
            (_, b'\n') => self.bare_lf(),
            // The first dot of a line that holds more is the sender's stuffing: it was dropped.
            (State::LineStart | State::Dot | State::Inside, _) => self.inside(byte),
        };
        false
    }

    fn inside(&mut self, byte: u8) -> State {
        self.emit(&[byte]);
        State::Inside
    }

    /// A LF without its CR. What follows is no line start, so `\n.\n` ends nothing.
    fn bare_lf(&mut self) -> State {
        self.bare = true;
        self.emit(b"\n");
        State::Inside
    }

    /// A CR followed by `byte`, which is not LF.
    fn bare_cr(&mut self, byte: u8) -> State {
        self.bare = true;
        self.emit(b"\r");
        match byte {
            b'\r' => State::Cr,
            _ => self.inside(byte),
        }
    }
}

/// The length of the plain lines at the start of `input`: whole lines, each ending in CRLF, up
/// to the first line that starts with a dot, holding no NUL and no bare CR or LF, which need
/// nothing from the reader but to be kept. `line_start` says a line starts at `input[0]`.
/// `Some(0)` when that line starts with a dot; `None` when no line ends in `input` before the
/// first dot line, or one of them is not plain.
fn plain_lines(input: &[u8], line_start: bool) -> Option<usize> {
    if line_start && input.first() == Some(&b'.') {
        return Some(0);
    }
    let until = memchr::memmem::find(input, b"\n.").map_or(input.len(), |at| at + 1);
    let end = memchr::memrchr(b'\n', &input[..until])? + 1;
    let lines = &input[..end];
    // The byte before `input` is no CR (the reader would be after one): an LF first is bare.
    let plain = lines[0] != b'\n' && memchr::memchr(0, lines).is_none() && crlf_paired(lines);
    plain.then_some(end)
}

/// Whether every CR in `bytes` is followed by an LF and every LF follows a CR, looking only
/// within `bytes` (a CR last or an LF first is the caller's to judge).
///
/// One pass over every pair with no early exit: a loop the compiler turns into vector code,
/// several times faster than a search that stops at each CR and LF.
#[expect(
    clippy::needless_bitwise_bool,
    reason = "`&&` would stop at each pair and keep the loop from being vectorized: 14 times the instructions"
)]
pub(crate) fn crlf_paired(bytes: &[u8]) -> bool {
    let pairs = bytes.iter().zip(bytes.get(1..).unwrap_or_default());
    pairs.fold(true, |paired, (&a, &b)| {
        paired & ((a == b'\r') == (b == b'\n'))
    })
}

/// Reads a message from `reader` up to its `CRLF . CRLF`, keeping at most `limit` bytes.
///
/// # Errors
///
/// The connection failed or closed before the end, or the message is refused (too big, bare
/// line ending, NUL) after it was read to its end.
pub async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Vec<u8>, DataError> {
    let mut data = DataReader::new(limit);
    loop {
        let input = reader.fill_buf().await.map_err(DataError::Io)?;
        if input.is_empty() {
            return Err(DataError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let (used, ended) = data.feed(input);
        reader.consume_unpin(used);
        if ended {
            return data.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], limit: usize) -> (Result<Vec<u8>, DataError>, usize) {
        let mut data = DataReader::new(limit);
        let (used, ended) = data.feed(input);
        assert!(
            ended,
            "the message ends in {:?}",
            String::from_utf8_lossy(input)
        );
        (data.finish(), used)
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_unstuffs_dots() {
        let (body, used) = read(
            b"Subject: x\r\n\r\n..leading\r\n.x\r\nend\r\n.\r\nQUIT\r\n",
            1000,
        );
        assert_eq!(body.unwrap(), b"Subject: x\r\n\r\n.leading\r\nx\r\nend\r\n");
        assert_eq!(used, 37, "everything up to the end, not the QUIT after it");
        let (body, _) = read(b".\r\n", 1000);
        assert_eq!(body.unwrap(), b"");
    }

    #[test]
    fn a_bare_lf_dot_lf_ends_nothing_and_refuses_the_message() {
        let smuggled = b"a\r\n\n.\nMAIL FROM:<evil@example.org>\r\n.\r\n";
        let (body, used) = read(smuggled, 1000);
        assert!(matches!(body, Err(DataError::BareLineEnding)));
        assert_eq!(used, smuggled.len());
    }

    #[test]
    fn bare_cr_variants_are_refused_and_end_nothing() {
        for input in [
            &b"a\r.\r\nb\r\n.\r\n"[..],
            b"a\r\n.\r.\r\n.\r\n",
            b"a\rb\r\n.\r\n",
            b"a\r\r\n.\r\n",
            b"\n.\r\n.\r\n",
        ] {
            let (body, used) = read(input, 1000);
            assert!(
                matches!(body, Err(DataError::BareLineEnding)),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(used, input.len(), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_nul_anywhere_refuses_the_message_after_its_end() {
        for input in [
            &b"a\0b\r\n.\r\n"[..],
            b"\0\r\n.\r\n",
            b".\0\r\n.\r\n",
            b"a\r\n\0.\r\n.\r\n",
        ] {
            let (body, used) = read(input, 1000);
            assert!(
                matches!(body, Err(DataError::Nul)),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(used, input.len(), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_message_over_the_limit_is_read_to_its_end_and_refused() {
        let (body, used) = read(b"0123456789\r\n.\r\nNOOP\r\n", 5);
        assert!(matches!(body, Err(DataError::TooBig)));
        assert_eq!(used, 15);
    }

    /// What feeding `input` in pieces of `piece` bytes comes to: the bytes the message took,
    /// and its result.
    fn fed(input: &[u8], piece: usize) -> Option<(usize, Result<Vec<u8>, String>)> {
        let mut data = DataReader::new(1000);
        let mut used = 0;
        for chunk in input.chunks(piece) {
            let (taken, ended) = data.feed(chunk);
            used += taken;
            if ended {
                return Some((used, data.finish().map_err(|e| e.to_string())));
            }
        }
        None
    }

    /// Plain lines taken at once read as the same message as every byte stepped through: a
    /// byte at a time, no line is ever whole in the input.
    #[test]
    fn lines_taken_at_once_read_as_every_byte_stepped_through() {
        let mut cases: Vec<Vec<u8>> = [
            &b"a\r\nb\r\n.\r\n"[..],
            b"Subject: x\r\n\r\n..leading\r\n.x\r\nend\r\n.\r\nQUIT\r\n",
            b"line\r\n\n.\nMAIL FROM:<x>\r\n.\r\n",
            b"line\r\nbare\rcr\r\n.\r\n",
            b"line\r\nnul\0\r\n.\r\n",
            b"\r\n\r\n.\r\n",
            b"a\r\n.\r.\r\n.\r\n",
            b"over the limit\r\n".repeat(80).as_slice(),
        ]
        .iter()
        .map(|case| case.to_vec())
        .collect();
        cases[7].extend_from_slice(b".\r\n");
        // And a few hundred made of the bytes that matter, from a fixed seed.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..400 {
            let mut case = Vec::new();
            for _ in 0..40 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pick: &[u8] = match seed % 9 {
                    0 => b"\r\n",
                    1 => b"\r",
                    2 => b"\n",
                    3 => b".",
                    4 => b"\0",
                    5 => b"\r\n.\r\n",
                    _ => b"text",
                };
                case.extend_from_slice(pick);
            }
            cases.push(case);
        }
        for case in cases {
            let stepped = fed(&case, 1);
            for piece in [case.len().max(1), 7, 64] {
                assert_eq!(
                    fed(&case, piece),
                    stepped,
                    "{:?} in pieces of {piece}",
                    String::from_utf8_lossy(&case)
                );
            }
        }
    }

    #[test]
    fn plain_lines_stop_before_a_dot_line_and_anything_else() {
        assert_eq!(plain_lines(b"a\r\nb\r\n.\r\n", true), Some(6));
        assert_eq!(plain_lines(b"a\r\nb\r\npartial", true), Some(6));
        assert_eq!(plain_lines(b".a\r\n", true), Some(0));
        assert_eq!(plain_lines(b".a\r\n", false), Some(4));
        assert_eq!(plain_lines(b"partial", true), None);
        assert_eq!(plain_lines(b"\r\n", false), Some(2));
        assert_eq!(plain_lines(b"\n", true), None);
        assert_eq!(plain_lines(b"a\nb\r\n", true), None);
        assert_eq!(plain_lines(b"a\0\r\n", true), None);
    }

    #[test]
    fn input_split_anywhere_gives_the_same_message() {
        let input = b"A: b\r\n\r\n..x\r\ny\r\n.\r\n";
        for split in 0..input.len() {
            let mut data = DataReader::new(100);
            let (used, ended) = data.feed(&input[..split]);
            assert_eq!((used, ended), (split, false));
            assert_eq!(data.feed(&input[split..]), (input.len() - split, true));
            assert_eq!(data.finish().unwrap(), b"A: b\r\n\r\n.x\r\ny\r\n");
        }
    }
}
