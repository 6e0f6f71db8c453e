//! One client connection: the stream (plain, or TLS after STARTTLS), buffered input that keeps
//! pipelined commands, and buffered replies flushed only when the server must wait for input.
//!
//! The session is generic over its stream ([`SessionStream`]): a TCP connection in production,
//! an in-memory one under the testkit, which so drives the one real session.

use std::cell::RefCell;
use std::io;
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use mq_plugin_api::Reply;
use smol::{Async, Timer};

use super::data::{DataError, DataReader};
use crate::deadline::{Deadline, Deadlines};

/// A byte stream a session runs on; STARTTLS upgrades it in place.
pub(crate) trait SessionStream: AsyncRead + AsyncWrite + Unpin {
    /// Runs the TLS handshake as the server; on success returns the protocol version and
    /// cipher suite, and the stream reads and writes through TLS from then on.
    async fn start_tls(
        &mut self,
        acceptor: &futures_rustls::TlsAcceptor,
        timeout: Duration,
    ) -> io::Result<(String, String)>;
}

/// The byte stream under a session on a TCP connection.
pub(crate) enum Stream {
    Plain(Async<TcpStream>),
    Tls(Box<futures_rustls::server::TlsStream<Async<TcpStream>>>),
    /// Only while the stream is being upgraded.
    Upgrading,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(stream) => Pin::new(stream).poll_close(cx),
            Stream::Tls(stream) => Pin::new(stream).poll_close(cx),
            Stream::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

impl SessionStream for Stream {
    async fn start_tls(
        &mut self,
        acceptor: &futures_rustls::TlsAcceptor,
        timeout: Duration,
    ) -> io::Result<(String, String)> {
        let Stream::Plain(plain) = std::mem::replace(self, Stream::Upgrading) else {
            return Err(io::Error::other("TLS already started"));
        };
        let accept = smol::future::or(acceptor.accept(plain), async {
            Timer::after(timeout).await;
            Err(io::ErrorKind::TimedOut.into())
        });
        let tls = accept.await?;
        let (protocol, cipher) = super::tls::describe(tls.get_ref().1);
        *self = Stream::Tls(Box::new(tls));
        Ok((protocol, cipher))
    }
}

/// What waiting for input came to.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// The client closed the connection.
    Closed,
    /// The client did not finish its line (or message line) within the timeout.
    TimedOut,
    /// The connection failed.
    Io(io::Error),
}

/// A line the client sent.
pub(crate) enum Line {
    /// A line, without its line ending.
    Complete(Vec<u8>),
    /// A line longer than allowed; it was read to its end and dropped.
    TooLong,
}

const READ_CHUNK: usize = 16 * 1024;
/// Read buffers a worker keeps for its next connections.
const SPARE_BUFFERS: usize = 64;

thread_local! {
    /// Read buffers of this worker's closed connections: a new connection takes one instead of
    /// zeroing a fresh one, which cost a short session a tenth of its instructions. What a
    /// buffer held before is never read: a connection reads only what it received itself.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A connection with its buffers.
pub(crate) struct Conn<S: SessionStream = Stream> {
    stream: S,
    /// Read buffer, initialised once (zeroed when it grows, or left by an earlier connection of
    /// this worker): `input[start..end]` is read and not yet used.
    input: Vec<u8>,
    /// How much of `input` is used up.
    start: usize,
    /// How much of `input` holds what was read.
    end: usize,
    output: Vec<u8>,
    /// How long sending may wait for the client to read: one that never reads must not hold its
    /// session, and its connection slot, for ever.
    write_timeout: Duration,
    /// The worker's deadlines, for the read timeouts.
    deadlines: Deadlines,
}

impl<S: SessionStream> Conn<S> {
    pub(crate) fn new(stream: S, write_timeout: Duration, deadlines: Deadlines) -> Conn<S> {
        Conn {
            stream,
            input: SPARE
                .with_borrow_mut(Vec::pop)
                .unwrap_or_else(|| vec![0; READ_CHUNK]),
            start: 0,
            end: 0,
            output: Vec::with_capacity(512),
            write_timeout,
            deadlines,
        }
    }

    /// Queues a reply; it goes out at the next flush.
    pub(crate) fn reply(&mut self, reply: &Reply) {
        use std::io::Write as _;
        // Writing to a Vec cannot fail.
        let _ = write!(self.output, "{reply}\r\n");
    }

    /// Queues a multi-line reply: `code-line` for all lines but the last, `code line` for it.
    pub(crate) fn reply_lines(&mut self, code: u16, lines: &[String]) {
        use std::io::Write as _;
        for (index, line) in lines.iter().enumerate() {
            let separator = if index + 1 == lines.len() { ' ' } else { '-' };
            let _ = write!(self.output, "{code}{separator}{line}\r\n");
        }
    }

    /// Sends the queued replies.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let (stream, output) = (&mut self.stream, &self.output);
        let write = async move {
            stream.write_all(output).await?;
            stream.flush().await
        };
        let sent = within(self.write_timeout, write).await;
        // Sent, or given up on: never sent again.
        self.output.clear();
        sent
    }

    /// Whether the client has sent more than was read: pipelined commands wait in the buffer.
    fn buffered(&self) -> &[u8] {
        &self.input[self.start..self.end]
    }

    /// The next line, at most `max` bytes with its line ending. Replies are flushed before the
    /// server waits, so a pipelining client gets its replies in one write.
    ///
    /// `timeout` bounds the whole line, not each read (Postfix's `smtpd_per_record_deadline`):
    /// a client that trickles a byte at a time cannot hold its session for ever.
    pub(crate) async fn read_line(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Line, ConnError> {
        let mut too_long = false;
        let mut deadline = self.deadlines.after(timeout);
        loop {
            if let Some(newline) = self.buffered().iter().position(|&b| b == b'\n') {
                let line = &self.input[self.start..self.start + newline];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                self.start += newline + 1;
                return Ok(if too_long || newline + 1 > max {
                    Line::TooLong
                } else {
                    Line::Complete(line)
                });
            }
            if self.buffered().len() > max {
                // Keep reading to the line's end, without keeping what is read.
                too_long = true;
                self.start = self.end;
            }
            self.fill(&mut deadline).await?;
        }
    }

    /// Reads a message after the 354 reply, up to its `CRLF . CRLF`. `timeout` bounds each line
    /// of the message, not each read, as it does a command line.
    pub(crate) async fn read_data(
        &mut self,
        limit: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, DataError> {
        let mut data = DataReader::new(limit);
        let mut deadline = self.deadlines.after(timeout);
        loop {
            let (used, ended) = data.feed(self.buffered());
            // Searched from the end, where a line ending usually is within a few bytes.
            let line_ended = memchr::memrchr(b'\n', &self.buffered()[..used]).is_some();
            self.start += used;
            if ended {
                return data.finish();
            }
            if line_ended {
                deadline = self.deadlines.after(timeout);
            }
            self.fill(&mut deadline)
                .await
                .map_err(|error| match error {
                    ConnError::Io(error) => DataError::Io(error),
                    ConnError::TimedOut => DataError::Io(io::ErrorKind::TimedOut.into()),
                    ConnError::Closed => DataError::Io(io::ErrorKind::UnexpectedEof.into()),
                })?;
        }
    }

    /// Flushes the replies, then reads more input into the free end of the buffer. A read
    /// dropped half-way (shutdown) leaves the buffer as it was.
    async fn fill(&mut self, deadline: &mut Deadline) -> Result<(), ConnError> {
        self.flush().await.map_err(ConnError::Io)?;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 && self.input.len() - self.end < READ_CHUNK / 2 {
            self.input.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.input.len() - self.end < READ_CHUNK / 2 {
            // A line longer than the buffer so far: room for more.
            self.input.resize(self.end + READ_CHUNK, 0);
        }
        let end = self.end;
        let read = smol::future::or(
            async {
                self.stream
                    .read(&mut self.input[end..])
                    .await
                    .map_err(ConnError::Io)
            },
            async {
                deadline.await;
                Err(ConnError::TimedOut)
            },
        )
        .await?;
        self.end += read;
        if read == 0 {
            Err(ConnError::Closed)
        } else {
            Ok(())
        }
    }

    /// Drops whatever the client sent beyond what was read: after STARTTLS, plaintext pipelined
    /// behind the command must not be taken as sent under TLS (RFC 3207 §4.2).
    pub(crate) fn discard_input(&mut self) {
        (self.start, self.end) = (0, 0);
    }

    /// Upgrades the stream to TLS; on success returns the protocol version and cipher suite.
    pub(crate) async fn start_tls(
        &mut self,
        acceptor: &futures_rustls::TlsAcceptor,
        timeout: Duration,
    ) -> io::Result<(String, String)> {
        self.stream.start_tls(acceptor, timeout).await
    }

    /// Sends the queued replies and closes the connection.
    pub(crate) async fn close(mut self) {
        let _ = self.flush().await;
        let _ = within(self.write_timeout, self.stream.close()).await;
    }
}

impl<S: SessionStream> Drop for Conn<S> {
    fn drop(&mut self) {
        let input = std::mem::take(&mut self.input);
        // One that grew for a long line goes back to the allocator.
        if input.len() == READ_CHUNK {
            SPARE.with_borrow_mut(|spare| {
                if spare.len() < SPARE_BUFFERS {
                    spare.push(input);
                }
            });
        }
    }
}

/// `future`'s output, or a `TimedOut` error once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    future: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    smol::future::or(future, async {
        Timer::after(timeout).await;
        Err(io::ErrorKind::TimedOut.into())
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::net::TcpListener;

    use smol::LocalExecutor;

    use super::*;

    /// A connected pair on loopback: the client's end and the server's, as a `Conn`.
    fn pair(deadlines: &Deadlines) -> (TcpStream, Conn) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let server = Async::new(server).expect("register");
        let conn = Conn::new(
            Stream::Plain(server),
            Duration::from_secs(5),
            deadlines.clone(),
        );
        (client, conn)
    }

    #[test]
    fn a_new_connection_reuses_a_closed_ones_buffer_and_sees_only_its_own_input() {
        let executor = LocalExecutor::new();
        let deadlines = Deadlines::new(&executor);
        smol::block_on(executor.run(async {
            SPARE.with_borrow_mut(Vec::clear);
            let (mut client, mut conn) = pair(&deadlines);
            client
                .write_all(b"EHLO a-rather-long-client-name.example\r\n")
                .expect("write");
            let Line::Complete(line) = conn.read_line(512, Duration::from_secs(5)).await.unwrap()
            else {
                panic!("a line too long")
            };
            assert_eq!(line, b"EHLO a-rather-long-client-name.example");
            drop(conn);
            assert_eq!(SPARE.with_borrow(Vec::len), 1);

            let (mut client, mut conn) = pair(&deadlines);
            assert_eq!(SPARE.with_borrow(Vec::len), 0, "the buffer was taken");
            client.write_all(b"QUIT\r\n").expect("write");
            let Line::Complete(line) = conn.read_line(512, Duration::from_secs(5)).await.unwrap()
            else {
                panic!("a line too long")
            };
            assert_eq!(line, b"QUIT");
            // Closed by the client: nothing more, whatever the buffer held before.
            drop(client);
            assert!(matches!(
                conn.read_line(512, Duration::from_secs(5)).await,
                Err(ConnError::Closed)
            ));
        }));
    }

    #[test]
    fn a_buffer_grown_for_a_long_line_is_not_kept() {
        let executor = LocalExecutor::new();
        let deadlines = Deadlines::new(&executor);
        smol::block_on(executor.run(async {
            SPARE.with_borrow_mut(Vec::clear);
            let (mut client, mut conn) = pair(&deadlines);
            let mut long = vec![b'x'; 3 * READ_CHUNK];
            long.extend_from_slice(b"\r\n");
            client.write_all(&long).expect("write");
            let line = conn
                .read_line(4 * READ_CHUNK, Duration::from_secs(5))
                .await
                .unwrap();
            assert!(matches!(line, Line::Complete(line) if line.len() == 3 * READ_CHUNK));
            drop(conn);
            assert_eq!(SPARE.with_borrow(Vec::len), 0);
        }));
    }
}
