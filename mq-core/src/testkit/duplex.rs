//! An in-memory connection between the testkit's scripted client and the real session.
//!
//! The session reads and writes its end as it would a TCP connection; STARTTLS "upgrades" it
//! without a handshake (the session's side of TLS is rustls's, tested on real sockets). The
//! client side knows when the session waits for its next input, so a script sends a command
//! and takes every reply the session gave before it waited again.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::io::{AsyncRead, AsyncWrite};

use super::transcript::Live;
use crate::smtp::SessionStream;

/// The TLS the session is told it negotiated.
pub(crate) const TLS_PROTOCOL: &str = "TLSv1.3";
pub(crate) const TLS_CIPHER: &str = "TLS13_AES_128_GCM_SHA256";

#[derive(Default)]
struct Pipe {
    /// Sent by the client, not yet read by the session.
    to_server: Vec<u8>,
    /// Written by the session, not yet taken by the client.
    to_client: Vec<u8>,
    /// The client closed its side: the session reads the end.
    client_closed: bool,
    /// The session closed its side (or dropped it).
    server_closed: bool,
    /// The session waits to read and nothing is there.
    server_waiting: bool,
    server_waker: Option<Waker>,
    client_waker: Option<Waker>,
}

impl Pipe {
    fn wake_client(&mut self) {
        if let Some(waker) = self.client_waker.take() {
            waker.wake();
        }
    }
}

/// A connected pair: the session's end and the client's.
pub(crate) fn pair(live: Live) -> (ServerEnd, ClientEnd) {
    let pipe = Rc::new(RefCell::new(Pipe::default()));
    (
        ServerEnd {
            pipe: Rc::clone(&pipe),
            live,
        },
        ClientEnd { pipe },
    )
}

/// The session's end: what it writes is also written into the transcript.
pub(crate) struct ServerEnd {
    pipe: Rc<RefCell<Pipe>>,
    live: Live,
}

impl AsyncRead for ServerEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.pipe.borrow_mut();
        if !pipe.to_server.is_empty() {
            let n = buf.len().min(pipe.to_server.len());
            buf[..n].copy_from_slice(&pipe.to_server[..n]);
            pipe.to_server.drain(..n);
            pipe.server_waiting = false;
            return Poll::Ready(Ok(n));
        }
        if pipe.client_closed {
            return Poll::Ready(Ok(0));
        }
        pipe.server_waiting = true;
        pipe.server_waker = Some(cx.waker().clone());
        pipe.wake_client();
        Poll::Pending
    }
}

impl AsyncWrite for ServerEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut pipe = self.pipe.borrow_mut();
        if pipe.client_closed && pipe.server_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        pipe.to_client.extend_from_slice(buf);
        pipe.wake_client();
        drop(pipe);
        self.live.server_wrote(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut pipe = self.pipe.borrow_mut();
        pipe.server_closed = true;
        pipe.wake_client();
        Poll::Ready(Ok(()))
    }
}

impl Drop for ServerEnd {
    fn drop(&mut self) {
        let mut pipe = self.pipe.borrow_mut();
        pipe.server_closed = true;
        pipe.wake_client();
    }
}

impl SessionStream for ServerEnd {
    async fn start_tls(
        &mut self,
        _acceptor: &futures_rustls::TlsAcceptor,
        _timeout: Duration,
    ) -> io::Result<(String, String)> {
        Ok((TLS_PROTOCOL.to_owned(), TLS_CIPHER.to_owned()))
    }
}

/// The scripted client's end.
pub(crate) struct ClientEnd {
    pipe: Rc<RefCell<Pipe>>,
}

/// What the session answered to one input.
pub(crate) struct Answer {
    /// The bytes it wrote.
    pub(crate) bytes: Vec<u8>,
    /// Whether it closed the connection.
    pub(crate) closed: bool,
}

impl ClientEnd {
    /// Sends `bytes` to the session.
    pub(crate) fn send(&self, bytes: &[u8]) {
        let mut pipe = self.pipe.borrow_mut();
        pipe.to_server.extend_from_slice(bytes);
        pipe.server_waiting = false;
        if let Some(waker) = pipe.server_waker.take() {
            waker.wake();
        }
    }

    /// Closes the client's side: the session reads the end of its input.
    pub(crate) fn close(&self) {
        let mut pipe = self.pipe.borrow_mut();
        pipe.client_closed = true;
        pipe.server_waiting = false;
        if let Some(waker) = pipe.server_waker.take() {
            waker.wake();
        }
    }

    /// Waits until the session waits for input again (or closed the connection) and takes
    /// what it wrote meanwhile.
    pub(crate) async fn answer(&self) -> Answer {
        poll_fn(|cx| {
            let mut pipe = self.pipe.borrow_mut();
            let waiting = pipe.server_waiting && pipe.to_server.is_empty();
            if waiting || pipe.server_closed {
                return Poll::Ready(Answer {
                    bytes: std::mem::take(&mut pipe.to_client),
                    closed: pipe.server_closed,
                });
            }
            pipe.client_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
