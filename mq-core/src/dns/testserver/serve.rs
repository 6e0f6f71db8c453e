//! The test server's sockets: UDP datagrams and TCP connections on one executor.

use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, LocalExecutor, Timer};

use super::zone::{self, Zone};

/// What the test thread and the server thread share.
#[derive(Debug, Default)]
pub(super) struct State {
    zone: Mutex<Zone>,
    /// Queries received over UDP, answered or not.
    pub(super) udp_queries: AtomicUsize,
    /// Queries received over TCP, answered or not.
    pub(super) tcp_queries: AtomicUsize,
}

impl State {
    /// The zone, locked. A test that panicked while filling it has failed already.
    pub(super) fn zone(&self) -> MutexGuard<'_, Zone> {
        self.zone.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn respond(&self, request: &[u8], udp: bool) -> Option<(Vec<u8>, std::time::Duration)> {
        zone::respond(&self.zone(), request, udp)
    }
}

/// Answers datagrams, each in its own task so that a delayed answer holds up no other.
pub(super) async fn serve_udp(
    executor: &LocalExecutor<'_>,
    socket: Arc<Async<UdpSocket>>,
    state: Arc<State>,
) -> io::Result<()> {
    let mut buffer = vec![0; 4096];
    loop {
        let (len, peer) = socket.recv_from(&mut buffer).await?;
        state.udp_queries.fetch_add(1, Ordering::SeqCst);
        let Some((response, delay)) = state.respond(&buffer[..len], true) else {
            continue;
        };
        let socket = Arc::clone(&socket);
        executor
            .spawn(async move {
                Timer::after(delay).await;
                let _ = socket.send_to(&response, peer).await;
            })
            .detach();
    }
}

/// Accepts connections, each served in its own task.
pub(super) async fn serve_tcp(
    executor: &LocalExecutor<'_>,
    listener: Async<TcpListener>,
    state: Arc<State>,
) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let state = Arc::clone(&state);
        executor
            .spawn(async move { serve_connection(stream, &state).await })
            .detach();
    }
}

/// Length-prefixed queries, answered one after the other until the client closes.
async fn serve_connection(mut stream: Async<TcpStream>, state: &State) -> io::Result<()> {
    loop {
        let mut prefix = [0; 2];
        stream.read_exact(&mut prefix).await?;
        let mut request = vec![0; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut request).await?;
        state.tcp_queries.fetch_add(1, Ordering::SeqCst);
        let Some((response, delay)) = state.respond(&request, false) else {
            continue;
        };
        Timer::after(delay).await;
        let len = u16::try_from(response.len()).map_err(io::Error::other)?;
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&response).await?;
    }
}
