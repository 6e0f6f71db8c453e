//! A loopback HTTP server that records what it is sent and answers as told, and one worker
//! core (an executor and a `Context`) to run the plugin and its sender task on.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mq_plugin_api::{Address, Context, DeliveryResult, DeliveryState, Plugin, PluginConfig, Reply};
use mq_plugin_webhook::Webhook;
use smol::LocalExecutor;

/// Far longer than anything here takes on loopback (milliseconds): only a hang reaches it.
const PATIENCE: Duration = Duration::from_secs(10);

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The request line and headers, lines ending in CRLF.
    pub(crate) head: String,
    pub(crate) body: String,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Request>>,
    /// Status codes for the next requests, in order; then 200.
    statuses: Mutex<VecDeque<u16>>,
    stop: AtomicBool,
}

/// An HTTP/1.1 server on a std thread, one connection at a time. Dropping it stops it and
/// closes its port.
pub(crate) struct Server {
    address: SocketAddr,
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// A server on a free loopback port.
    pub(crate) fn start() -> Server {
        Server::start_on(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A server on `address`, such as the port of a server that was stopped.
    pub(crate) fn start_on(address: SocketAddr) -> Server {
        let listener = TcpListener::bind(address).expect("the test port is free");
        let address = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let serving = Arc::clone(&state);
        let thread = std::thread::spawn(move || serve(&listener, &serving));
        Server {
            address,
            state,
            thread: Some(thread),
        }
    }

    /// Answers the next requests with these codes, in order, then 200 again.
    pub(crate) fn answer_first(&self, statuses: &[u16]) {
        self.state.statuses.lock().unwrap().extend(statuses);
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    pub(crate) fn url(&self) -> String {
        url(self.address)
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The `queue_id` of each body received, in order.
    pub(crate) fn queue_ids(&self) -> Vec<String> {
        let id = |r: &Request| -> String {
            let body: serde_json::Value = serde_json::from_str(&r.body).expect("a JSON body");
            body["queue_id"].as_str().unwrap().to_owned()
        };
        self.requests().iter().map(id).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, state: &State) {
    for stream in listener.incoming() {
        if state.stop.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(stream) = stream {
            let _ = answer(stream, state);
        }
    }
}

fn answer(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(PATIENCE))?;
    let mut reader = BufReader::new(&stream);
    let (mut head, mut length) = (String::new(), 0);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8(body).expect("a UTF-8 body");
    state.requests.lock().unwrap().push(Request { head, body });
    let status = state.statuses.lock().unwrap().pop_front().unwrap_or(200);
    write!(
        stream,
        "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// A loopback address nobody listens on: a server that is down.
pub(crate) fn closed_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub(crate) fn url(address: SocketAddr) -> String {
    tracing_ready();
    format!("http://{address}/mq-events")
}

/// Makes tracing keep its list of subscribers before a test runs the plugin, so that
/// `logged` sees every line. Until the process has made a first subscriber, a log call site
/// met for the first time asks only its own thread's (none) whether it is wanted, taking no
/// lock: a test thread descheduled there can store "never" for it after `logged` installed
/// its subscriber on another thread, and that test then misses the plugin's lines (seen
/// in 3 of 240 runs of this binary). Once one was made, a call site's first look and a new
/// subscriber's take turns.
fn tracing_ready() {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        drop(tracing::Dispatch::new(
            tracing::subscriber::NoSubscriber::default(),
        ));
    });
}

/// The plugin for core 0, built from a `[plugins.webhook]` section.
pub(crate) fn webhook(section: &str) -> Webhook {
    tracing_ready();
    let table = toml::from_str(section).expect("the test section is TOML");
    Webhook::new(&PluginConfig::new("webhook", 0, table)).expect("the test section is valid")
}

/// Attempt `n`'s result for entry `Q{n}`, deferred by ten minutes after a 451.
pub(crate) fn event(n: u32) -> DeliveryResult {
    tracing_ready();
    let sender: Address = "a@example.org".parse().unwrap();
    let recipient: Address = format!("b{n}@example.net").parse().unwrap();
    let reply = Reply::new(451, "4.7.1", "greylisted, try again later");
    let state = DeliveryState::Deferred(Duration::from_mins(10));
    DeliveryResult::new(format!("Q{n}"), n, (sender, recipient), Some(reply), state)
}

/// One worker core: an executor that lives across hook calls, as a worker's does.
pub(crate) struct Core {
    executor: Rc<LocalExecutor<'static>>,
    ctx: Context,
}

impl Core {
    pub(crate) fn new() -> Core {
        let executor = Rc::new(LocalExecutor::new());
        let ctx = mq_plugin_api::Host::new(0, Rc::clone(&executor)).into_context();
        Core { executor, ctx }
    }

    /// A core on which `plugin` has started, as the engine starts it: its sender task spawned.
    pub(crate) fn started(plugin: &Webhook) -> Core {
        let mut core = Core::new();
        core.start(plugin);
        core
    }

    /// Runs the plugin's `start` on this core.
    pub(crate) fn start(&mut self, plugin: &Webhook) {
        smol::block_on(self.executor.run(plugin.start(&mut self.ctx)));
    }

    /// Runs the plugin's `stop` on this core.
    pub(crate) fn stop(&mut self, plugin: &Webhook) {
        smol::block_on(self.executor.run(plugin.stop(&mut self.ctx)));
    }

    /// Runs the observer once and checks that it finished on its first poll: it never waits,
    /// whatever the server does.
    pub(crate) fn report(&mut self, plugin: &Webhook, event: &DeliveryResult) {
        let mut call = plugin.observe_delivery_result(&self.ctx, event);
        let poll = call
            .as_mut()
            .poll(&mut std::task::Context::from_waker(Waker::noop()));
        assert!(poll.is_ready(), "delivery_result waited");
    }

    /// Runs the executor (the sender task) until `done`, or fails the test after `PATIENCE`.
    pub(crate) fn run_until(&self, what: &str, done: impl Fn() -> bool) {
        run_until(&self.executor, what, done);
    }

    /// Whether no task lives on the core: no sender task was started, or every one ended.
    pub(crate) fn is_idle(&self) -> bool {
        self.executor.is_empty()
    }
}

/// Runs `executor` until `done`, or fails the test after `PATIENCE`.
pub(crate) fn run_until(executor: &LocalExecutor<'static>, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    smol::block_on(executor.run(async {
        while !done() {
            assert!(Instant::now() < deadline, "still waiting for {what}");
            smol::Timer::after(Duration::from_millis(2)).await;
        }
    }));
}

/// The plugin's log lines (its target at `debug` and above) while `body` runs on this thread,
/// without times and with the OS's error number left out, as a snapshot shows them.
pub(crate) fn logged(body: impl FnOnce()) -> Vec<String> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("mq_plugin_webhook=debug")
        .with_writer(move || Captured(Arc::clone(&writer)))
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, body);
    let text = String::from_utf8(buffer.lock().unwrap().clone()).expect("UTF-8 log lines");
    text.lines().map(without_os_error).collect()
}

/// `line` with ` (os error 111)` (whose number differs between systems) removed.
fn without_os_error(line: &str) -> String {
    let mut out = line.to_owned();
    while let Some(start) = out.find(" (os error ") {
        let end = out[start..].find(')').map_or(out.len(), |i| start + i + 1);
        out.replace_range(start..end, "");
    }
    out
}

/// A log writer appending to a shared buffer.
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
