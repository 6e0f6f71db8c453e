//! A server in the testkit: mq's SMTP session on in-memory connections, the plugins built once,
//! and a clock the test moves.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use mq_plugin_api::{HookId, Message};
use smol::LocalExecutor;

use super::clock::VirtualClock;
use super::duplex::{self, ClientEnd};
use super::queue::{RecordingQueue, label};
use super::transcript::{Live, Queued, Transcript};
use super::{Harness, Session, drive};
use crate::engine::Engine;
use crate::runtime::Worker;
use crate::smtp::{Cidr, Shared, SmtpConfig};

/// The name the testkit's server gives itself.
pub(crate) const HOSTNAME: &str = "mq.test";

/// mq's SMTP server with the plugins under test, each built once: any number of sessions run
/// against the same instances, and [`advance`](Server::advance) lets time pass between them.
///
/// Sessions run mq's own SMTP session (the one `mq serve` runs) over an in-memory connection;
/// what they queue is kept for their transcripts. Time is virtual: `Context::now` reads the
/// server's clock, and a plugin's `ctx.sleep` fires when the clock reaches it, so a test waits
/// for nothing. Made by [`testkit::server()`](super::server)`...start()`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let server = mq_core::testkit::server().local_domain("example.org").start();
/// let first = server.session().ehlo("client.example").quit().run();
/// server.advance(Duration::from_secs(300));
/// let second = server.session().ehlo("client.example").quit().run();
/// assert_eq!(first.to_string(), second.to_string());
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<Inner>,
}

struct Inner {
    executor: Rc<LocalExecutor<'static>>,
    clock: VirtualClock,
    live: Live,
    worker: Worker,
    engine: Rc<Engine>,
    queue: Arc<RecordingQueue>,
    local_domains: Vec<String>,
    /// The `[smtp]` settings sessions start from.
    smtp: SmtpConfig,
    tls: futures_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("clock", &self.inner.clock)
            .field("local_domains", &self.inner.local_domains)
            .finish_non_exhaustive()
    }
}

/// What a testkit session does besides its commands.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) client: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) relay_network: bool,
    pub(crate) local_domains: Vec<String>,
    /// Whether STARTTLS is offered (the testkit's sessions: always).
    pub(crate) starttls: bool,
    /// A recorded session's: the relay networks are the recorded fact alone.
    pub(crate) recorded: bool,
}

impl Server {
    pub(crate) fn new(mut harness: Harness) -> Server {
        let engine = Rc::new(harness.engine());
        let smtp = harness.smtp_settings();
        let executor = Rc::new(LocalExecutor::new());
        let clock = VirtualClock::new();
        let live = Live::new(clock.clone());
        let worker = Worker::standalone(
            Rc::clone(&engine),
            &executor,
            harness.dns.take(),
            Rc::new(clock.clone()),
            live.clone(),
        );
        Server {
            inner: Rc::new(Inner {
                executor,
                clock,
                live,
                worker,
                engine,
                queue: Arc::default(),
                local_domains: harness.local_domains,
                smtp,
                tls: no_certificate(),
            }),
        }
    }

    /// A scripted session against this server's plugins; add its commands, then
    /// [`run`](Session::run) it.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = mq_core::testkit::server().start();
    /// let transcript = server.session().ehlo("client.example").run();
    /// assert_eq!(transcript.lines(), ["C: EHLO client.example", "S: 250 mq.test"]);
    /// ```
    pub fn session(&self) -> Session {
        Session::on(self.clone())
    }

    /// Lets `duration` of virtual time pass: `Context::now` moves on by it, and every plugin
    /// timer due on the way (a `ctx.sleep`, in a hook or in a task a plugin spawned) fires, in
    /// order, at its time. Nothing waits in real time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let server = mq_core::testkit::server().start();
    /// let before = server.now();
    /// server.advance(Duration::from_secs(600));
    /// assert_eq!(server.now().duration_since(before).unwrap(), Duration::from_secs(600));
    /// ```
    pub fn advance(&self, duration: Duration) {
        let clock = &self.inner.clock;
        let target = clock.elapsed().saturating_add(duration);
        let executor = &self.inner.executor;
        while let Some(when) = clock.next_before(target) {
            clock.move_to(when);
            while executor.try_tick() {}
        }
        clock.move_to(target);
        while executor.try_tick() {}
    }

    /// What `Context::now` reads on this server's clock.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = mq_core::testkit::server().start();
    /// assert!(server.now() <= std::time::SystemTime::now());
    /// ```
    pub fn now(&self) -> std::time::SystemTime {
        mq_plugin_api::Clock::now(&self.inner.clock)
    }

    /// Runs one session: `script` plays the client on the in-memory connection while mq's
    /// session serves it, both on this server's executor and clock.
    pub(crate) fn run<F>(
        &self,
        connection: &Connection,
        script: impl FnOnce(ClientEnd, Live) -> F,
    ) -> Transcript
    where
        F: Future<Output = ()> + 'static,
    {
        let inner = &self.inner;
        let shows_connect = inner.engine.has_chain(HookId::SmtpInConnect);
        inner.live.begin(!shows_connect);
        if shows_connect {
            inner
                .live
                .client(format!("(connects from {})", connection.client));
        }
        let shared = Arc::new(
            Shared::standalone(
                self.config(connection),
                Arc::clone(&inner.queue) as Arc<dyn crate::queue::Queue>,
                connection.starttls.then(|| inner.tls.clone()),
            )
            .expect("the testkit's SMTP settings are valid"),
        );
        let queued_before = inner.queue.len();
        let (server_end, client_end) = duplex::pair(inner.live.clone());
        let session = crate::smtp::run_session(
            inner.worker.clone(),
            server_end,
            connection.client,
            connection.local,
            shared,
        );
        let session = inner.executor.spawn(session);
        let client = inner.executor.spawn(script(client_end, inner.live.clone()));
        drive(&inner.executor, &inner.clock, async {
            client.await;
            session.await;
        });
        let mut transcript = inner.live.take();
        for (id, message) in inner.queue.since(queued_before) {
            for recipient in &message.recipients {
                transcript.queue(Queued {
                    queue_id: label(id),
                    sender: message.sender.clone(),
                    recipient: recipient.clone(),
                    message: Message::from_vec(message.body.clone()),
                });
            }
        }
        transcript
    }

    /// The `[smtp]` settings of one session.
    fn config(&self, connection: &Connection) -> SmtpConfig {
        let mut config = self.inner.smtp.clone();
        if connection.recorded {
            config.relay_networks.clear();
            config.domains.clear();
        }
        let domains = self.inner.local_domains.iter();
        for domain in domains.chain(&connection.local_domains) {
            let domain = mq_plugin_api::normalize_domain(domain)
                .unwrap_or_else(|_| panic!("{domain:?} is no domain"));
            if !config.domains.contains(&domain) {
                config.domains.push(domain);
            }
        }
        if connection.relay_network {
            let ip = connection.client.ip();
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            let network: Cidr = format!("{ip}/{bits}").parse().expect("a host network");
            config.relay_networks.push(network);
        }
        config
    }
}

/// A STARTTLS acceptor for sessions whose connection upgrades without a handshake: it is never
/// asked for a certificate.
fn no_certificate() -> futures_rustls::TlsAcceptor {
    #[derive(Debug)]
    struct NoCertificate;

    impl rustls::server::ResolvesServerCert for NoCertificate {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCertificate));
    futures_rustls::TlsAcceptor::from(Arc::new(config))
}
