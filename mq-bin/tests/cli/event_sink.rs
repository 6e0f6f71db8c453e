//! An HTTP endpoint on loopback for the webhook plugin: it records each POSTed body, and can
//! hold its answers until the test lets them go, so that events stay queued in mq meanwhile.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::PATIENCE;

#[derive(Default)]
struct State {
    /// The bodies received, in order.
    bodies: Mutex<Vec<String>>,
    /// Whether answers are held; the condvar wakes the held ones when it is cleared.
    held: Mutex<bool>,
    released: Condvar,
    stop: Mutex<bool>,
}

/// The endpoint: one connection at a time on a std thread; dropping it stops it.
pub(crate) struct EventSink {
    address: SocketAddr,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl EventSink {
    /// An endpoint that answers 200 at once.
    #[cfg_attr(not(feature = "ratelimit"), allow(dead_code))]
    pub(crate) fn start() -> EventSink {
        EventSink::started(false)
    }

    /// An endpoint that reads each request but answers none until [`EventSink::release`].
    pub(crate) fn holding() -> EventSink {
        EventSink::started(true)
    }

    fn started(held: bool) -> EventSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("its address");
        let state = Arc::new(State {
            held: Mutex::new(held),
            ..State::default()
        });
        let serving = Arc::clone(&state);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if *serving.stop.lock().expect("the flag") {
                    return;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, &serving);
                }
            }
        });
        EventSink {
            address,
            state,
            thread: Some(thread),
        }
    }

    /// The URL for `[plugins.webhook] url`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/mq-events", self.address)
    }

    /// Answers the held request and every later one at once.
    pub(crate) fn release(&self) {
        *self.state.held.lock().expect("the flag") = false;
        self.state.released.notify_all();
    }

    /// Each body received so far, parsed.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        let bodies = self.state.bodies.lock().expect("the bodies").clone();
        bodies
            .iter()
            .map(|body| serde_json::from_str(body).expect("a JSON body"))
            .collect()
    }

    /// Waits, at most [`PATIENCE`], until `count` bodies have been received.
    pub(crate) fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.events().len() < count {
            assert!(Instant::now() < deadline, "{count} events did not arrive");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        *self.state.stop.lock().expect("the flag") = true;
        self.release();
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request, records its body, waits while answers are held, then answers 200.
fn answer(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut reader = BufReader::new(&stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8(body).expect("a UTF-8 body");
    state.bodies.lock().expect("the bodies").push(body);
    let held = state.held.lock().expect("the flag");
    let _released = state
        .released
        .wait_timeout_while(held, PATIENCE, |held| *held)
        .expect("the flag");
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}
