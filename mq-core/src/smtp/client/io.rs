//! The client's stream (plain, or TLS after STARTTLS) with its input buffer, and every read and
//! write bounded by its stage's timeout.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls_pki_types::ServerName;
use smol::{Async, Timer};

use super::data::{PieceReader, Stuffer, Wire};
use super::error::{ClientError, Stage};
use super::reply::{ParsedReply, ReplyParser};

type Stream = Either<Async<TcpStream>, Box<TlsStream<Async<TcpStream>>>>;

/// How much one read asks for: replies are short, and a pipelined batch's fit.
const READ_CHUNK: usize = 4096;

/// How much message one write hands over: the data-block timeout (RFC 5321 §4.5.3.2) bounds
/// each of these, so a slow but moving server is not cut off in the middle of a large message.
const WRITE_CHUNK: usize = 64 * 1024;

/// Runs `work`, or fails with `Timeout(stage)` after `timeout`.
async fn timed<T>(
    stage: Stage,
    timeout: Duration,
    work: impl Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    smol::future::or(work, async {
        Timer::after(timeout).await;
        Err(ClientError::Timeout(stage))
    })
    .await
}

/// A connection to a server.
#[derive(Debug)]
pub(super) struct Io {
    /// `None` only while the stream is being upgraded to TLS, and after a failed upgrade.
    stream: Option<Stream>,
    /// The read buffer, zeroed once when it grows: `input[..filled]` was read and not parsed
    /// yet.
    input: Vec<u8>,
    filled: usize,
    /// The reply coming in `input`, parsed as far as it has come.
    parser: ReplyParser,
}

impl Io {
    /// Opens a TCP connection to `address`.
    pub(super) async fn connect(address: SocketAddr, timeout: Duration) -> Result<Io, ClientError> {
        let connect = async {
            Async::<TcpStream>::connect(address)
                .await
                .map_err(ClientError::Connect)
        };
        let tcp = timed(Stage::Connect, timeout, connect).await?;
        // Commands are written whole (a pipelined batch in one write): no reason to wait for
        // more, as Nagle's algorithm would.
        tcp.get_ref()
            .set_nodelay(true)
            .map_err(ClientError::Connect)?;
        Ok(Io {
            stream: Some(Either::Left(tcp)),
            input: vec![0; READ_CHUNK],
            filled: 0,
            parser: ReplyParser::default(),
        })
    }

    pub(super) fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Either::Right(_)))
    }

    /// The TLS protocol version and cipher suite, once STARTTLS is done.
    pub(super) fn tls_parameters(&self) -> Option<(String, String)> {
        let Some(Either::Right(tls)) = &self.stream else {
            return None;
        };
        let session = tls.get_ref().1;
        let protocol = match session.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        };
        let cipher = format!("{:?}", session.negotiated_cipher_suite()?.suite());
        Some((protocol, cipher))
    }

    fn stream(&mut self, stage: Stage) -> Result<&mut Stream, ClientError> {
        let closed = || ClientError::Io(stage, io::ErrorKind::NotConnected.into());
        self.stream.as_mut().ok_or_else(closed)
    }

    /// Reads the next reply, waiting at most `timeout` for all of it.
    pub(super) async fn read_reply(
        &mut self,
        stage: Stage,
        timeout: Duration,
    ) -> Result<ParsedReply, ClientError> {
        timed(stage, timeout, async {
            loop {
                match self.parser.parse(&self.input[..self.filled]) {
                    Ok(Some(parsed)) => {
                        self.input.copy_within(parsed.consumed..self.filled, 0);
                        self.filled -= parsed.consumed;
                        return Ok(parsed);
                    }
                    Ok(None) => self.fill(stage).await?,
                    Err(error) => return Err(ClientError::Protocol(stage, error.to_string())),
                }
            }
        })
        .await
    }

    /// Reads more input; the end of the stream is an error, since a reply is due. A timeout
    /// still leaves the connection unusable: the reply it cut off may come later.
    async fn fill(&mut self, stage: Stage) -> Result<(), ClientError> {
        if self.input.len() - self.filled < READ_CHUNK / 2 {
            // A reply longer than the buffer so far (a long EHLO list): room for more.
            self.input.resize(self.filled + READ_CHUNK, 0);
        }
        let read = match self.stream.as_mut() {
            Some(stream) => stream.read(&mut self.input[self.filled..]).await,
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        self.filled += read.as_ref().map_or(0, |&read| read);
        match read {
            Ok(0) => Err(ClientError::Io(stage, io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => Ok(()),
            Err(error) => Err(ClientError::Io(stage, error)),
        }
    }

    /// Writes `bytes` and flushes them, within `timeout`.
    pub(super) async fn write(
        &mut self,
        stage: Stage,
        timeout: Duration,
        bytes: &[u8],
    ) -> Result<(), ClientError> {
        timed(stage, timeout, async {
            let stream = self.stream(stage)?;
            let io = |error| ClientError::Io(stage, error);
            stream.write_all(bytes).await.map_err(io)?;
            stream.flush().await.map_err(io)
        })
        .await
    }

    /// Writes a message's wire form, `timeout` bounding each block of it; a message in pieces
    /// is sent from its file by the kernel when it goes as it is on a plain connection and
    /// lies in the page cache ([`Pieces::in_file`](super::data::Pieces::in_file)), else read a
    /// piece at a time, each written before the next is read. The last block goes out with
    /// the final dot line in one write: one segment, and one call, for a message of one block.
    pub(super) async fn write_data(
        &mut self,
        timeout: Duration,
        wire: &Wire<'_>,
    ) -> Result<(), ClientError> {
        let Wire::Pieces {
            message,
            stuffed,
            tail,
            ..
        } = *wire
        else {
            let [body, tail] = wire.parts();
            return self.write_ending(timeout, body, tail).await;
        };
        let cannot_read = |error: io::Error| {
            let text = format!("cannot read the queued message: {error}");
            ClientError::Io(Stage::Data, io::Error::new(error.kind(), text))
        };
        if let (false, Some((file, offset)), Some(Either::Left(_))) =
            (stuffed, message.in_file(), &self.stream)
        {
            self.send_file(timeout, file, offset, message.len()).await?;
            return self.write_ending(timeout, &[], tail).await;
        }
        let (mut stuffer, mut out) = (Stuffer::default(), Vec::new());
        let (mut pieces, mut read) = (PieceReader::new(message), 0);
        let mut ended = false;
        while let Some(piece) = pieces.next().await.map_err(cannot_read)? {
            read += piece.len() as u64;
            ended = read >= message.len();
            if stuffed {
                out.clear();
                stuffer.push(piece, &mut out);
                if ended {
                    std::mem::take(&mut stuffer).finish(&mut out);
                }
                self.write_ending(timeout, &out, &[]).await?;
            } else {
                let tail = if ended { tail } else { &[] };
                self.write_ending(timeout, piece, tail).await?;
            }
        }
        if !ended {
            // An empty message: only its ending.
            out.clear();
            if stuffed {
                stuffer.finish(&mut out);
            } else {
                out.extend_from_slice(tail);
            }
            self.write_ending(timeout, &out, &[]).await?;
        }
        Ok(())
    }

    /// Has the kernel send `len` bytes of `file` from `offset` on the plain connection,
    /// `timeout` bounding each block of up to [`WRITE_CHUNK`] bytes.
    async fn send_file(
        &mut self,
        timeout: Duration,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<(), ClientError> {
        let Some(Either::Left(tcp)) = self.stream.as_ref() else {
            return Err(ClientError::Io(
                Stage::Data,
                io::ErrorKind::NotConnected.into(),
            ));
        };
        let io = |error| ClientError::Io(Stage::Data, error);
        let (mut at, end) = (offset, offset + len);
        while at < end {
            let block = (end - at).min(WRITE_CHUNK as u64) as usize;
            let stop = at + block as u64;
            timed(Stage::Data, timeout, async {
                while at < stop {
                    let left = (stop - at) as usize;
                    match rustix::fs::sendfile(tcp.get_ref(), file, Some(&mut at), left) {
                        Ok(0) => {
                            let error = io::ErrorKind::UnexpectedEof;
                            let text = "cannot read the queued message: it ended early";
                            return Err(io(io::Error::new(error, text)));
                        }
                        // Sent some; interrupted before any: on with the rest.
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(rustix::io::Errno::AGAIN) => tcp.writable().await.map_err(io)?,
                        Err(error) => return Err(io(error.into())),
                    }
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Writes `body` then `tail`, `timeout` bounding each block of up to [`WRITE_CHUNK`] bytes;
    /// the body's last block and `tail` go out in one vectored write.
    async fn write_ending(
        &mut self,
        timeout: Duration,
        body: &[u8],
        tail: &[u8],
    ) -> Result<(), ClientError> {
        let (head, last) = body.split_at(body.len().saturating_sub(1) / WRITE_CHUNK * WRITE_CHUNK);
        for block in head.chunks(WRITE_CHUNK) {
            self.write(Stage::Data, timeout, block).await?;
        }
        timed(Stage::Data, timeout, async {
            let stream = self.stream(Stage::Data)?;
            let io = |error| ClientError::Io(Stage::Data, error);
            let mut slices = [io::IoSlice::new(last), io::IoSlice::new(tail)];
            let mut slices = &mut slices[..];
            // Leading empty buffers would make a write of zero bytes look like a failure.
            io::IoSlice::advance_slices(&mut slices, 0);
            while !slices.is_empty() {
                match stream.write_vectored(slices).await.map_err(io)? {
                    0 => return Err(io(io::ErrorKind::WriteZero.into())),
                    written => io::IoSlice::advance_slices(&mut slices, written),
                }
            }
            stream.flush().await.map_err(io)
        })
        .await
    }

    /// Runs the TLS handshake after the server's `220` to STARTTLS.
    pub(super) async fn start_tls(
        &mut self,
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let Some(Either::Left(tcp)) = self.stream.take() else {
            return Err(ClientError::Protocol(
                Stage::StartTls,
                "TLS already active".into(),
            ));
        };
        // Whatever the server sent after its 220 came in plaintext, and must not be taken as
        // sent under TLS (RFC 3207 §4.2).
        self.filled = 0;
        self.parser = ReplyParser::default();
        let handshake = async {
            let connector = TlsConnector::from(config);
            connector.connect(name, tcp).await.map_err(ClientError::Tls)
        };
        let tls = timed(Stage::StartTls, timeout, handshake).await?;
        self.stream = Some(Either::Right(Box::new(tls)));
        Ok(())
    }

    /// Closes the connection (TLS `close_notify` first), ignoring errors.
    pub(super) async fn close(mut self, timeout: Duration) {
        if let Some(stream) = self.stream.as_mut() {
            let close = async {
                stream
                    .close()
                    .await
                    .map_err(|e| ClientError::Io(Stage::Quit, e))
            };
            let _ = timed(Stage::Quit, timeout, close).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::net::TcpListener;

    use super::*;
    use crate::smtp::client::MAX_REPLY;

    #[test]
    fn a_long_reply_trickling_in_two_bytes_at_a_time_is_scanned_once() {
        let mut reply = Vec::new();
        for _ in 0..MAX_REPLY / 64 - 40 {
            reply.extend_from_slice(b"250-");
            reply.extend_from_slice(&[b'x'; 58]);
            reply.extend_from_slice(b"\r\n");
        }
        reply.extend_from_slice(b"250 end\r\n");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        let sent = reply.clone();
        let server = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().expect("the client connects");
            tcp.set_nodelay(true).expect("no delay");
            for pair in sent.chunks(2) {
                tcp.write_all(pair).expect("the client reads");
            }
        });
        let patience = Duration::from_mins(2);
        let (parsed, scanned) = smol::block_on(async {
            let mut io = Io::connect(address, patience).await.expect("connected");
            let parsed = io.read_reply(Stage::Ehlo, patience).await;
            (parsed, io.parser.scanned())
        });
        server.join().expect("the server thread ends");
        let parsed = parsed.expect("the reply parses");
        assert_eq!(parsed.consumed, reply.len());
        assert_eq!(parsed.lines.last().map(String::as_str), Some("end"));
        assert_eq!(scanned, reply.len());
    }
}
