//! Delivery: what happens to a queued entry once it is due.
//!
//! - [`Delivery`] (`mod`): the shared state, and [`Delivery::start`], which runs the scheduler.
//! - `scheduler`: takes due entries and spreads them over the cores, one job per destination
//!   domain, fair between domains.
//! - `attempt`: one job: `queue_pickup`, the route, the SMTP client with the outbound hooks.
//! - `cache`: idle connections kept between jobs for the next message to the same server.
//! - `outcome`: `delivery_result`, ack / defer / bounce, and the log line of each attempt.
//! - `notices`: a message's bounce held until every job of its round is done, so that it
//!   names the recipients that failed at every domain.
//! - `myself`: mq among a route's servers (its addresses, loopback, its name in a greeting),
//!   so that mail never loops back into mq.
//! - [`route`]: local Maildir, a relay, or MX; [`retry`]: the schedule; [`throttle`]: per-domain
//!   limits; [`config`]: `[delivery]`.
//! - [`maildir`]: local delivery into `<data-dir>/mail/<domain>/<local-part>/`, the Maildir
//!   way (tmp, fsync, rename into new).
//! - [`stats`]: the counters `/metrics` shows: attempts by outcome and destination class,
//!   the delivery latency histogram, bounces, outbound TLS.
//! - [`dsn`]: the delivery status notification (RFC 3464) sent to the envelope sender when
//!   delivery fails for good or is delayed.

mod attempt;
mod cache;
pub mod config;
pub mod dsn;
pub mod maildir;
mod myself;
mod notices;
mod outcome;
pub mod retry;
pub mod route;
mod scheduler;
pub mod stats;
pub mod throttle;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::SystemTime;

use async_trait::async_trait;
use smol::channel::{Receiver, Sender};

pub use config::{DeliveryConfig, Smarthost, TlsMode};
pub use stats::DeliveryStats;

use crate::dns::{DnsConfig, Resolver};
use crate::queue::{
    AckResult, AttemptReport, Body, Entry, NewMessage, Origin, Queue, QueueAge, QueueError,
    QueueHealth, QueueId, QueueMetric,
};
use crate::runtime::{JobHandle, Runtime};
use crate::smtp::client::{ClientConfig, TlsPolicy};
use crate::smtp::tls;
use cache::ConnectionCache;
use maildir::Maildir;
use mq_plugin_api::Address;
use myself::Myself;
use notices::Notices;
use route::Route;
use throttle::Throttles;

/// Outbound delivery: the queue it takes from, its routes and limits. Shared by every core.
pub struct Delivery {
    config: DeliveryConfig,
    hostname: String,
    local_domains: Vec<String>,
    myself: Myself,
    queue: Arc<dyn Queue>,
    throttles: Throttles,
    /// Idle connections, for the next job to the same server.
    connections: ConnectionCache,
    maildir: Maildir,
    dns: DnsConfig,
    /// The client configuration of each relay's `ca_file`, loaded once.
    trust: BTreeMap<PathBuf, Arc<rustls::ClientConfig>>,
    in_flight: AtomicUsize,
    /// What the jobs of a round left for a sender, until the message's last job is done.
    notices: Notices,
    stats: DeliveryStats,
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("config", &self.config)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// Each worker core's resolver, with its own cache.
    static RESOLVER: RefCell<Option<Resolver>> = const { RefCell::new(None) };
}

impl Delivery {
    /// Delivery of what `queue` holds: local domains into Maildirs under `data_dir/mail`, the
    /// rest by `config`'s routes, in the name of `hostname`.
    pub fn new(
        config: DeliveryConfig,
        hostname: &str,
        local_domains: &[String],
        dns: DnsConfig,
        data_dir: &Path,
        queue: Arc<dyn Queue>,
    ) -> Arc<Delivery> {
        let (wake_tx, wake_rx) = smol::channel::bounded(1);
        for warning in config.warnings() {
            tracing::warn!("{warning}");
        }
        Arc::new(Delivery {
            trust: load_trust(&config),
            throttles: Throttles::new(throttle_config(&config)),
            connections: ConnectionCache::new(
                config.connection_cache_time,
                config.connection_reuse_time,
                config.messages_per_connection,
                config.concurrency,
            ),
            myself: Myself::new(hostname, config.allow_loopback_mx),
            config,
            hostname: hostname.to_owned(),
            local_domains: local_domains.to_vec(),
            queue,
            maildir: Maildir::new(data_dir.join("mail")),
            dns,
            in_flight: AtomicUsize::new(0),
            notices: Notices::default(),
            stats: DeliveryStats::default(),
            wake_tx,
            wake_rx,
        })
    }

    /// Runs the scheduler on worker 0 of `runtime` until the runtime shuts down; deliveries run
    /// on every core.
    pub fn start(self: &Arc<Delivery>, runtime: &Runtime) -> JobHandle<()> {
        let (delivery, spawner) = (Arc::clone(self), runtime.spawner());
        tracing::info!(concurrency = self.config.concurrency, "delivery started");
        runtime.spawn_on(0, move |worker| scheduler::run(worker, spawner, delivery))
    }

    /// Tells delivery where mq's SMTP server listens, so that it never sends mail there: a
    /// mail host at one of these addresses is mq itself. Only the first call counts.
    pub fn listening_on(&self, addresses: &[std::net::SocketAddr]) {
        self.myself.listening_on(addresses);
    }

    /// Tells the scheduler to look at the queue now (new mail, a flush).
    pub fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// The queue, wrapped so that new mail and flushes wake the scheduler at once: give this
    /// one to the SMTP server and the admin port.
    pub fn queue(self: &Arc<Delivery>) -> Arc<dyn Queue> {
        Arc::new(Waking {
            delivery: Arc::clone(self),
        })
    }

    /// The counters of attempts, latency, bounces and outbound TLS, for `/metrics`.
    pub fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// The throttles, to see connection counts.
    pub fn throttles(&self) -> &Throttles {
        &self.throttles
    }

    /// Where the scheduler files mail for `domain`: the smarthost's address when it goes
    /// there (one destination for every such domain), else the domain.
    fn destination(&self, domain: &str) -> String {
        let domain = domain.to_ascii_lowercase();
        match route::route(&self.config, &self.local_domains, &domain) {
            Route::Relay(relay) if self.config.smarthost.as_ref() == Some(&relay) => {
                relay.address.to_ascii_lowercase()
            }
            _ => domain,
        }
    }

    /// How many connections wait idle for their next message now.
    pub fn idle_connections(&self) -> usize {
        self.connections.idle()
    }

    /// This core's resolver.
    fn resolver(&self) -> Resolver {
        RESOLVER.with(|slot| {
            let mut slot = slot.borrow_mut();
            if let Some(resolver) = slot.as_ref() {
                return resolver.clone();
            }
            let resolver = Resolver::new(&self.dns).unwrap_or_else(|error| {
                // The defaults read /etc/resolv.conf and can fail the same way: fall back to a
                // local resolver named outright, which needs no file.
                tracing::error!(%error, "cannot set up the resolver; asking 127.0.0.1:53");
                let local = DnsConfig {
                    nameservers: vec![std::net::SocketAddr::from(([127, 0, 0, 1], 53))],
                    ..DnsConfig::default()
                };
                Resolver::new(&local)
                    .unwrap_or_else(|_| unreachable!("named nameservers need no file"))
            });
            slot.insert(resolver).clone()
        })
    }

    /// The TLS client configuration replacing the built-in one for a route: its relay's
    /// `ca_file`, if it names one.
    fn trust(&self, route: &Route) -> Option<Arc<rustls::ClientConfig>> {
        match route.clone() {
            Route::Relay(relay) => relay
                .ca_file
                .and_then(|file| self.trust.get(&file).cloned()),
            _ => None,
        }
    }

    /// The client settings for a route: the relay's, or those for MX hosts.
    fn client_config(&self, route: &Route) -> ClientConfig {
        let (mode, auth) = match route.clone() {
            Route::Relay(relay) => (relay.tls_mode(), relay.auth),
            _ => (self.config.tls, None),
        };
        let tls = match mode {
            TlsMode::Disabled => TlsPolicy::Disabled,
            TlsMode::Opportunistic => TlsPolicy::Opportunistic,
            TlsMode::Required => TlsPolicy::Required { verify: false },
            TlsMode::Verify => TlsPolicy::Required { verify: true },
        };
        let helo_name = self
            .config
            .helo_name
            .clone()
            .unwrap_or_else(|| self.hostname.clone());
        ClientConfig {
            helo_name,
            tls,
            auth,
            timeouts: self.config.timeouts,
        }
    }
}

/// The throttles as configured, and the smarthost's: a smarthost is one destination for every
/// domain it takes, so that its connections default to `concurrency`, not to the limit of one
/// destination domain.
fn throttle_config(config: &DeliveryConfig) -> throttle::ThrottleConfig {
    let mut throttle = config.throttle.clone();
    if let Some(relay) = &config.smarthost {
        let mut limits = throttle.default;
        limits.connections = config.concurrency;
        // Lowercase, as the keys of `[delivery.throttle.domains]` are read.
        let key = relay.address.to_ascii_lowercase();
        throttle.domains.entry(key).or_insert(limits);
    }
    throttle
}

/// The client configuration of every relay's `ca_file`. A file that cannot be loaded trusts
/// nothing, so that its relay gets no mail rather than mail over a connection verified against
/// other roots; `mq serve` and `mq check-config` refuse such a file before this.
fn load_trust(config: &DeliveryConfig) -> BTreeMap<PathBuf, Arc<rustls::ClientConfig>> {
    let files = config
        .smarthost
        .iter()
        .chain(config.routes.values())
        .filter_map(|relay| relay.ca_file.clone());
    files
        .map(|file| {
            let loaded = tls::client_config_from_ca_file(&file).unwrap_or_else(|error| {
                tracing::error!(%error, "relay ca_file not loaded: its relay is not trusted");
                tls::client_config_trusting_nothing()
            });
            (file, loaded)
        })
        .collect()
}

/// The queue, waking the scheduler when mail arrives or a flush is asked for.
struct Waking {
    delivery: Arc<Delivery>,
}

impl fmt::Debug for Waking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.delivery.queue.fmt(f)
    }
}

#[async_trait]
impl Queue for Waking {
    async fn enqueue(&self, message: NewMessage) -> Result<QueueId, QueueError> {
        let id = self.delivery.queue.enqueue(message).await?;
        self.delivery.wake();
        Ok(id)
    }

    async fn enqueue_from(
        &self,
        message: NewMessage,
        origin: &Origin,
    ) -> Result<QueueId, QueueError> {
        let id = self.delivery.queue.enqueue_from(message, origin).await?;
        self.delivery.wake();
        Ok(id)
    }

    async fn take_due(&self, now: SystemTime, max: usize) -> Result<Vec<Entry>, QueueError> {
        self.delivery.queue.take_due(now, max).await
    }

    fn report_attempt(&self, entry: &Entry, report: AttemptReport) {
        self.delivery.queue.report_attempt(entry, report);
    }

    async fn body(&self, id: &QueueId) -> Result<Arc<[u8]>, QueueError> {
        self.delivery.queue.body(id).await
    }

    async fn open_body(&self, id: &QueueId) -> Result<Body, QueueError> {
        self.delivery.queue.open_body(id).await
    }

    async fn ack(&self, entry: &Entry, result: AckResult) -> Result<(), QueueError> {
        self.delivery.queue.ack(entry, result).await
    }

    async fn defer(
        &self,
        entry: &Entry,
        until: SystemTime,
        error: String,
    ) -> Result<(), QueueError> {
        self.delivery.queue.defer(entry, until, error).await
    }

    fn list(&self) -> Vec<Entry> {
        self.delivery.queue.list()
    }

    fn count(&self) -> usize {
        self.delivery.queue.count()
    }

    fn age(&self) -> QueueAge {
        self.delivery.queue.age()
    }

    async fn delete(&self, id: &QueueId) -> Result<usize, QueueError> {
        self.delivery.queue.delete(id).await
    }

    fn health(&self) -> QueueHealth {
        self.delivery.queue.health()
    }

    fn metrics(&self) -> Vec<QueueMetric> {
        self.delivery.queue.metrics()
    }

    fn flush(&self) {
        self.delivery.queue.flush();
        self.delivery.wake();
    }

    fn flush_where(&self, which: &(dyn Fn(QueueId, &Address) -> bool + Sync)) -> usize {
        let flushed = self.delivery.queue.flush_where(which);
        self.delivery.wake();
        flushed
    }

    async fn hold(&self, id: &QueueId) -> Result<usize, QueueError> {
        self.delivery.queue.hold(id).await
    }

    async fn release(&self, id: &QueueId) -> Result<usize, QueueError> {
        let entries = self.delivery.queue.release(id).await?;
        self.delivery.wake();
        Ok(entries)
    }

    async fn requeue(&self, id: &QueueId) -> Result<usize, QueueError> {
        let entries = self.delivery.queue.requeue(id).await?;
        self.delivery.wake();
        Ok(entries)
    }
}
