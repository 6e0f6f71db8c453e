//! What every delivery test needs: a data directory with its queue, a runtime, a DNS server on
//! loopback that every resolver asks, the delivery over them, and bounded waits.
//!
//! The defaults suit tests: retries after one second, the hostname `mq.test`, one local domain,
//! [`LOCAL`], whose Maildirs the tests read (bounces go there when the sender is local), and MX
//! records that may point at loopback, where the tests' servers listen
//! (`allow_loopback_mx`, off by default in mq).

use std::io::{BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mq_core::delivery::{Delivery, DeliveryConfig, Smarthost};
use mq_core::dns::{DnsConfig, TestServer};
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Entry, NewMessage, Queue, QueueId};
use mq_core::smtp::{Server, SmtpConfig};
use mq_core::{Registry, Runtime};
use tempfile::TempDir;

/// The name delivery gives in EHLO and in its bounces.
pub(crate) const HOSTNAME: &str = "mq.test";

/// The local domain: its mail goes into Maildirs under the data directory.
pub(crate) const LOCAL: &str = "local.test";

/// The longest any wait lasts: far longer than any delivery here takes (a few seconds with
/// retries). A ceiling, never the expectation.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// Turns the embedded queue into the queue delivery gets.
pub(crate) type WrapQueue = Box<dyn FnOnce(Arc<EmbeddedQueue>) -> Arc<dyn Queue>>;

/// How a harness is set up; [`Options::default`] is the tests' baseline.
pub(crate) struct Options {
    /// `[delivery]`: retries after one second, an entry kept an hour, MX hosts on loopback.
    pub(crate) delivery: DeliveryConfig,
    /// Worker cores.
    pub(crate) workers: usize,
    /// The plugins of this binary that run; every other linked plugin is disabled.
    pub(crate) plugins: Vec<&'static str>,
    /// Wraps the embedded queue before delivery gets it, to watch what delivery does to it.
    pub(crate) wrap_queue: Option<WrapQueue>,
    /// TOML for the enabled plugins' sections (`[plugins.aliases]` ...).
    pub(crate) plugin_config: String,
}

impl Default for Options {
    fn default() -> Options {
        let mut delivery = DeliveryConfig::default();
        delivery.retry.schedule = vec![Duration::from_secs(1)];
        delivery.retry.max_age = Duration::from_hours(1);
        // The test DNS server's MX records point at sinks on loopback.
        delivery.allow_loopback_mx = true;
        Options {
            delivery,
            workers: 2,
            plugins: Vec::new(),
            wrap_queue: None,
            plugin_config: String::new(),
        }
    }
}

impl Options {
    /// Sends everything not local to `address`.
    pub(crate) fn smarthost(&mut self, address: SocketAddr) {
        self.delivery.smarthost = Some(Smarthost::new(address.to_string()));
    }

    /// Sends mail for `domain` to `address`.
    pub(crate) fn route(&mut self, domain: &str, address: SocketAddr) {
        self.delivery
            .routes
            .insert(domain.to_owned(), Smarthost::new(address.to_string()));
    }
}

/// Delivery over a queue in a data directory, with its runtime and DNS server. Dropping it
/// shuts the runtime down, which waits for deliveries in flight: drop a server that never
/// answers before the harness.
pub(crate) struct Harness {
    /// The DNS server every resolver of this delivery asks.
    pub(crate) dns: TestServer,
    pub(crate) delivery: Arc<Delivery>,
    /// The queue as the SMTP server would get it: enqueueing wakes the scheduler.
    pub(crate) queue: Arc<dyn Queue>,
    /// The queue itself: enqueueing wakes nothing.
    pub(crate) base: Arc<EmbeddedQueue>,
    runtime: Option<Runtime>,
    data: PathBuf,
    /// Removed after the runtime and the queue are gone.
    _dir: Option<TempDir>,
}

impl Harness {
    /// A harness over a fresh data directory, configured by `configure`, its scheduler not yet
    /// started.
    pub(crate) fn new(configure: impl FnOnce(&mut Options)) -> Harness {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().to_owned();
        Harness::in_dir(&data, Some(dir), configure)
    }

    /// [`Harness::new`] with the scheduler running.
    pub(crate) fn started(configure: impl FnOnce(&mut Options)) -> Harness {
        let mut harness = Harness::new(configure);
        harness.start();
        harness
    }

    /// A harness over the data directory `data`, which outlives it, with the scheduler
    /// running.
    pub(crate) fn started_in(data: &Path, configure: impl FnOnce(&mut Options)) -> Harness {
        let mut harness = Harness::in_dir(data, None, configure);
        harness.start();
        harness
    }

    /// A harness over the data directory `data` (its queue in `data/queue`, its Maildirs in
    /// `data/mail`), which `dir`, if any, removes when the harness is dropped.
    pub(crate) fn in_dir(
        data: &Path,
        dir: Option<TempDir>,
        configure: impl FnOnce(&mut Options),
    ) -> Harness {
        let mut options = Options::default();
        configure(&mut options);
        let dns = TestServer::start();
        let base = Arc::new(open_queue(&data.join("queue")));
        let config = mq_tests::config_enabling(&options.plugins, &options.plugin_config);
        let plan = Registry::linked()
            .expect("distinct plugin names")
            .plan(&config)
            .expect("a plan");
        let runtime = Runtime::start(&plan, options.workers).expect("the runtime starts");
        let locals = [LOCAL.to_owned()];
        let queue: Arc<dyn Queue> = match options.wrap_queue {
            Some(wrap) => wrap(Arc::clone(&base)),
            None => base.clone(),
        };
        let delivery = Delivery::new(
            options.delivery,
            HOSTNAME,
            &locals,
            dns_config(&dns),
            data,
            queue,
        );
        Harness {
            dns,
            queue: delivery.queue(),
            delivery,
            base,
            runtime: Some(runtime),
            data: data.to_owned(),
            _dir: dir,
        }
    }

    /// Starts mq's SMTP server on `listen`, named [`HOSTNAME`], with [`LOCAL`] as its domain,
    /// queueing into this harness's queue, as `mq serve` does; delivery learns where it listens.
    pub(crate) fn serve_smtp(
        &self,
        listen: SocketAddr,
        configure: impl FnOnce(&mut SmtpConfig),
    ) -> Server {
        let mut config = SmtpConfig::default();
        config.listen = listen;
        HOSTNAME.clone_into(&mut config.hostname);
        config.domains = vec![LOCAL.to_owned()];
        configure(&mut config);
        let runtime = self.runtime.as_ref().expect("the runtime runs");
        let server = Server::start(runtime, config, Arc::clone(&self.queue)).expect("it starts");
        self.delivery.listening_on(&[server.local_addr()]);
        server
    }

    /// [`serve_smtp`](Harness::serve_smtp) on a free loopback port.
    pub(crate) fn smtp(&self, configure: impl FnOnce(&mut SmtpConfig)) -> Server {
        self.serve_smtp(SocketAddr::from(([127, 0, 0, 1], 0)), configure)
    }

    /// Starts the scheduler.
    pub(crate) fn start(&mut self) {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime runs until the harness drops");
        drop(self.delivery.start(runtime));
    }

    /// Queues `body` from `sender` to `recipients`, waking the scheduler.
    pub(crate) fn send(&self, sender: &str, recipients: &[&str], body: &str) -> QueueId {
        enqueue(&*self.queue, sender, recipients, body)
    }

    /// Every live entry.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.queue.list()
    }

    /// The live entries of message `id`.
    pub(crate) fn entries_of(&self, id: QueueId) -> Vec<Entry> {
        self.entries()
            .into_iter()
            .filter(|e| e.queue_id == id)
            .collect()
    }

    /// The queued copy of message `id`, while it has entries.
    pub(crate) fn body(&self, id: QueueId) -> Option<String> {
        let body = smol::block_on(self.queue.body(&id)).ok()?;
        Some(String::from_utf8(body.to_vec()).expect("the tests queue UTF-8"))
    }

    /// The messages in `address`'s Maildir (`new/`), oldest name first.
    pub(crate) fn mailbox(&self, address: &str) -> Vec<String> {
        let (local, domain) = address.rsplit_once('@').expect("an address with a domain");
        let new = self
            .data
            .join("mail")
            .join(domain.to_ascii_lowercase())
            .join(local)
            .join("new");
        let Ok(files) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = files
            .map(|f| f.expect("a directory entry").path())
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("a delivered message"))
            .collect()
    }

    /// Waits until `condition` holds; panics after [`PATIENCE`] with `what` and the queue.
    pub(crate) fn wait_for(&self, what: &str, condition: impl FnMut() -> bool) {
        assert!(
            eventually(condition),
            "timed out waiting for {what}; the queue holds {:#?}",
            self.entries()
        );
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown();
        }
    }
}

/// The queue in `dir`, without fsync: the tests kill processes, never the machine.
pub(crate) fn open_queue(dir: &Path) -> EmbeddedQueue {
    let options = EmbeddedOptions {
        fsync: false,
        ..EmbeddedOptions::default()
    };
    EmbeddedQueue::open(dir, options).expect("the queue opens")
}

/// A resolver configuration that asks `server` only. No test here waits for a DNS timeout, so
/// the timeout is far beyond what a loopback answer takes on a loaded machine: a lookup that
/// timed out would turn into a deferral a test did not expect.
pub(crate) fn dns_config(server: &TestServer) -> DnsConfig {
    let mut config = DnsConfig::default();
    config.nameservers = vec![server.address()];
    config.timeout = Duration::from_secs(10);
    config
}

/// Queues `body` from `sender` to `recipients` in `queue`.
pub(crate) fn enqueue(queue: &dyn Queue, sender: &str, recipients: &[&str], body: &str) -> QueueId {
    let message = NewMessage {
        sender: sender.parse().expect("a sender address"),
        recipients: recipients
            .iter()
            .map(|r| r.parse().expect("a recipient address"))
            .collect(),
        body: body.as_bytes().to_vec(),
        client: "test.example[127.0.0.1]".into(),
        extensions: None,
    };
    smol::block_on(queue.enqueue(message)).expect("the queue takes the message")
}

/// A port of `127.0.0.1` that was free a moment ago, for a server whose port must be known
/// before it starts (see [`mq_core::testkit::unused_port`]).
pub(crate) fn free_port() -> u16 {
    mq_core::testkit::unused_port().port()
}

/// A small message with a fixed header: `subject` names it.
pub(crate) fn message(subject: &str) -> String {
    format!(
        "From: Alice <alice@local.test>\r\nTo: Bob <bob@remote.test>\r\nSubject: {subject}\r\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nMessage-ID: <{}@local.test>\r\n\r\n\
         Hello Bob,\r\n.a line that starts with a dot\r\n",
        subject.replace(' ', "-")
    )
}

/// Polls `condition` every 10 ms for up to [`PATIENCE`]; whether it came to hold.
pub(crate) fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !condition() {
        if start.elapsed() > PATIENCE {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Sends `lines` to the SMTP server at `address` one at a time, reading the greeting first and
/// a whole reply after each line, except inside DATA (up to the lone dot); the replies, each
/// multi-line reply as its last line.
pub(crate) fn smtp(address: SocketAddr, lines: &[impl AsRef<str>]) -> Vec<String> {
    let stream = TcpStream::connect(address).expect("the server accepts");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    let mut writer = stream.try_clone().expect("a second handle");
    let mut reader = BufReader::new(stream);
    let mut replies = vec![read_reply(&mut reader)];
    let mut in_data = false;
    for line in lines {
        let line = line.as_ref();
        writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("the server reads");
        if in_data && line != "." {
            continue;
        }
        let reply = read_reply(&mut reader);
        in_data = reply.starts_with("354");
        replies.push(reply);
    }
    replies
}

/// One reply, multi-line ones as their last line.
fn read_reply(reader: &mut impl std::io::BufRead) -> String {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        assert!(!line.is_empty(), "the server closed the connection");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_owned();
        }
    }
}
