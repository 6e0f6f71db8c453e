//! The SMTP server: one `SO_REUSEPORT` listener per worker core, connection limits, and the
//! state every session shares.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use mq_plugin_api::Reply;
use smol::Async;

use super::auth::Credentials;
use super::auth_guard::{AuthGuard, AuthStats};
use super::client_key::client_key;
use super::config::SmtpConfig;
use super::recipients::Recipients;
use crate::queue::Queue;
use crate::runtime::{JobHandle, Runtime, Worker};

/// What the sessions of all cores share. A reload makes a new one with new settings and the
/// same counters (see [`Server::prepare`]); a session keeps the one it was accepted under.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) config: SmtpConfig,
    pub(crate) queue: Arc<dyn Queue>,
    pub(crate) credentials: Option<Arc<Credentials>>,
    pub(crate) recipients: Recipients,
    pub(crate) auth_guard: Arc<AuthGuard>,
    pub(crate) tls: Option<futures_rustls::TlsAcceptor>,
    pub(crate) stats: Arc<Stats>,
    connections: Arc<Mutex<HashMap<IpAddr, usize>>>,
    total: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Counters for the metrics page: atomics, touched once per connection, command or message.
#[derive(Debug)]
pub struct Stats {
    /// Sessions accepted since start.
    pub sessions: AtomicU64,
    /// Sessions open now.
    pub active: AtomicU64,
    /// Messages queued.
    pub messages: AtomicU64,
    /// Bytes of messages queued.
    pub bytes: AtomicU64,
    /// Sessions that completed a STARTTLS handshake.
    pub tls: AtomicU64,
    /// Password checks: running now, at most at once, refused.
    pub auth: Arc<AuthStats>,
    /// Replies sent, by code (index `code - 200`).
    replies: Box<[AtomicU64]>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            sessions: AtomicU64::new(0),
            active: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            tls: AtomicU64::new(0),
            auth: Arc::default(),
            replies: (200..600).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Stats {
    pub(crate) fn reply(&self, code: u16) {
        if let Some(counter) = self.replies.get(usize::from(code).wrapping_sub(200)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Replies sent so far, by code, codes never sent left out.
    pub fn replies(&self) -> Vec<(u16, u64)> {
        let sent = self.replies.iter().map(|c| c.load(Ordering::Relaxed));
        (200..600).zip(sent).filter(|&(_, n)| n > 0).collect()
    }
}

/// A connection counted against the limits; dropping it frees its place.
pub(crate) struct Slot {
    shared: Arc<Shared>,
    /// The client's key in the per-client count, unless the client is exempt.
    counted: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.total.fetch_sub(1, Ordering::Relaxed);
        self.shared.stats.active.fetch_sub(1, Ordering::Relaxed);
        let Some(key) = self.counted else { return };
        let mut connections = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = connections.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                connections.remove(&key);
            }
        }
    }
}

impl Shared {
    /// The state of a server no listener serves: the testkit's sessions run on it, with `tls`
    /// for STARTTLS and the AUTH users and recipient map `config` names.
    #[cfg(feature = "testkit")]
    pub(crate) fn standalone(
        config: SmtpConfig,
        queue: Arc<dyn Queue>,
        tls: Option<futures_rustls::TlsAcceptor>,
    ) -> Result<Shared, ServerError> {
        let (_, credentials) = read_tls_and_users(&SmtpConfig {
            tls: None,
            ..config.clone()
        })?;
        let recipients = Recipients::new(&config).map_err(ServerError::Recipients)?;
        Ok(Shared {
            auth_guard: Arc::new(AuthGuard::new(&config.auth)),
            config,
            queue,
            credentials,
            recipients,
            tls,
            stats: Arc::default(),
            connections: Arc::default(),
            total: Arc::default(),
        })
    }

    /// A place for a connection from `ip`, or the 421 reply that turns it away. Clients of
    /// the exempt networks are not counted per client; IPv6 clients are counted per network.
    pub(crate) fn admit(self: &Arc<Shared>, ip: IpAddr) -> Result<Slot, Reply> {
        let counted = (!self.config.is_exempt_from_connection_limit(ip))
            .then(|| client_key(ip, self.config.ipv6_prefix));
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut exempt = 0;
        let from_ip = match counted {
            Some(key) => connections.entry(key).or_insert(0),
            None => &mut exempt,
        };
        let host = &self.config.hostname;
        if counted.is_some() && *from_ip >= self.config.max_connections_per_ip {
            return Err(Reply::new(
                421,
                "4.7.0",
                format!("{host} Error: too many connections from {ip}"),
            ));
        }
        if self.total.load(Ordering::Relaxed) >= self.config.max_connections {
            return Err(Reply::new(
                421,
                "4.3.2",
                format!("{host} Error: too many connections"),
            ));
        }
        *from_ip += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        self.stats.sessions.fetch_add(1, Ordering::Relaxed);
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        Ok(Slot {
            shared: Arc::clone(self),
            counted,
        })
    }

    /// Whether `ip` may relay without AUTH.
    pub(crate) fn may_relay(&self, ip: IpAddr) -> bool {
        self.config
            .relay_networks
            .iter()
            .any(|net| net.contains(ip))
    }
}

/// A running SMTP server: its listeners on every worker core.
#[derive(Debug)]
pub struct Server {
    /// The settings new connections are accepted under.
    current: Arc<RwLock<Arc<Shared>>>,
    stats: Arc<Stats>,
    local: SocketAddr,
    listeners: Vec<JobHandle<()>>,
}

/// Why the server could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerError {
    /// The listening address could not be bound.
    Bind(SocketAddr, io::Error),
    /// The TLS certificate or key could not be loaded.
    Tls(super::tls::TlsError),
    /// A password hash in `[smtp.auth.users]` is not one mq knows.
    Auth(super::auth::AuthError),
    /// `[smtp] local_recipient_map` cannot be read or has a bad line.
    Recipients(super::recipient_map::RecipientMapError),
    /// `[smtp.auth] users_file` cannot be read or has a bad line.
    UsersFile(String),
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerError::Bind(address, error) => write!(f, "cannot listen on {address}: {error}"),
            ServerError::Tls(error) => write!(f, "[smtp.tls]: {error}"),
            ServerError::Auth(error) => write!(f, "[smtp.auth]: {error}"),
            ServerError::Recipients(error) => write!(f, "[smtp]: {error}"),
            ServerError::UsersFile(error) => write!(f, "[smtp.auth] {error}"),
        }
    }
}

impl std::error::Error for ServerError {}

impl Server {
    /// Binds `config.listen` on every worker of `runtime` and starts serving, queueing accepted
    /// mail in `queue`.
    ///
    /// # Errors
    ///
    /// The address cannot be bound, or the TLS or AUTH settings are wrong.
    pub fn start(
        runtime: &Runtime,
        config: SmtpConfig,
        queue: Arc<dyn Queue>,
    ) -> Result<Server, ServerError> {
        let listeners = Listeners::bind(config.listen, runtime.workers())?;
        Server::start_on(runtime, config, queue, listeners)
    }

    /// Starts serving on `listeners`, bound before (as root, say, before giving up root's
    /// rights), one per worker of `runtime`; otherwise as [`start`](Server::start).
    ///
    /// # Errors
    ///
    /// The TLS or AUTH settings are wrong, or `listeners` were bound for another number of
    /// workers.
    pub fn start_on(
        runtime: &Runtime,
        config: SmtpConfig,
        queue: Arc<dyn Queue>,
        listeners: Listeners,
    ) -> Result<Server, ServerError> {
        let Listeners { local, sockets } = listeners;
        if sockets.len() != runtime.workers() {
            let error = io::Error::other("not one listening socket per worker");
            return Err(ServerError::Bind(local, error));
        }
        let (tls, credentials) = read_tls_and_users(&config)?;
        let recipients = Recipients::new(&config).map_err(ServerError::Recipients)?;
        let auth_guard = Arc::new(AuthGuard::new(&config.auth));
        let shared = Arc::new(Shared {
            config,
            queue,
            credentials,
            recipients,
            auth_guard,
            tls,
            stats: Arc::default(),
            connections: Arc::default(),
            total: Arc::default(),
        });
        let stats = Arc::clone(&shared.stats);
        let current = Arc::new(RwLock::new(shared));
        let listeners = sockets
            .into_iter()
            .enumerate()
            .map(|(core, socket)| {
                let current = Arc::clone(&current);
                runtime.spawn_on(core, move |worker| accept_loop(worker, socket, current))
            })
            .collect();
        tracing::info!(address = %local, cores = runtime.workers(), "smtp server listening");
        Ok(Server {
            current,
            stats,
            local,
            listeners,
        })
    }

    /// The address the server listens on (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// New settings for the connections accepted from [`install`](Server::install) on: limits,
    /// timeouts, names, relay networks, the TLS certificate and the AUTH users, read anew.
    /// `config.listen` is not looked at: the listeners stay as they are.
    ///
    /// # Errors
    ///
    /// The TLS files or the local recipient map cannot be loaded, or an AUTH hash is not one mq
    /// knows; nothing changed.
    pub fn prepare(&self, config: SmtpConfig) -> Result<Prepared, ServerError> {
        let (tls, credentials) = read_tls_and_users(&config)?;
        let recipients = Recipients::new(&config).map_err(ServerError::Recipients)?;
        let running = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        Ok(Prepared(Arc::new(Shared {
            config,
            credentials,
            recipients,
            tls,
            ..Shared::clone(&running)
        })))
    }

    /// Accepts the next connections under `prepared`. Sessions already open keep the settings
    /// they began with; the connection limits count them all the same.
    pub fn install(&self, prepared: Prepared) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = prepared.0;
    }

    /// Waits until every listener stopped (the runtime began shutting down).
    pub fn wait(self) {
        for listener in self.listeners {
            listener.wait();
        }
    }
}

/// The SMTP port bound once per worker and not yet served, for [`Server::start_on`].
///
/// # Examples
///
/// ```
/// let listeners = mq_core::smtp::Listeners::bind("127.0.0.1:0".parse()?, 2)?;
/// assert_ne!(listeners.local_addr().port(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Listeners {
    local: SocketAddr,
    sockets: Vec<TcpListener>,
}

impl Listeners {
    /// Binds `address` `count` times (one socket per worker core, `SO_REUSEPORT`), after
    /// proving that no other process holds it.
    ///
    /// # Errors
    ///
    /// The address cannot be bound.
    pub fn bind(address: SocketAddr, count: usize) -> Result<Listeners, ServerError> {
        let local = claim(address).map_err(|e| ServerError::Bind(address, e))?;
        let sockets = (0..count)
            .map(|_| reuseport_listener(local))
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| ServerError::Bind(local, e))?;
        Ok(Listeners { local, sockets })
    }

    /// The address bound (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Proves that no other socket holds `address` and returns it with its real port (for port
/// 0, the one the kernel picked).
///
/// # Why
///
/// The cores' listeners share the port through `SO_REUSEPORT`, which also lets any other
/// process of the same user that sets it (a second mq) join in, the kernel then splitting the
/// mail between two queues. A socket bound without `SO_REUSEPORT` fails with "address already
/// in use" when anything else holds the port, so binding one first, then closing it, proves
/// the port free. Only a server binding the same port in the instant between the two binds
/// could still slip in; sharing one socket between the cores instead would close that window,
/// but all cores would wake for each connection instead of the kernel handing it to one.
fn claim(address: SocketAddr) -> io::Result<SocketAddr> {
    use socket2::{Domain, Socket, Type};
    let probe = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    probe.set_reuse_address(true)?;
    probe.bind(&address.into())?;
    probe.listen(1)?;
    probe
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("a listener without an IP address"))
}

/// Settings made by [`Server::prepare`], not yet in use.
#[derive(Debug)]
pub struct Prepared(Arc<Shared>);

/// The STARTTLS acceptor and the AUTH users `config` names, read from their files and hashes.
fn read_tls_and_users(
    config: &SmtpConfig,
) -> Result<
    (
        Option<futures_rustls::TlsAcceptor>,
        Option<Arc<Credentials>>,
    ),
    ServerError,
> {
    let tls = match &config.tls {
        Some(files) => Some(futures_rustls::TlsAcceptor::from(
            super::tls::server_config(&files.cert, &files.key).map_err(ServerError::Tls)?,
        )),
        None => None,
    };
    let users = config.auth.all_users().map_err(ServerError::UsersFile)?;
    let credentials = if users.is_empty() {
        None
    } else {
        Some(Arc::new(
            Credentials::new(users).map_err(ServerError::Auth)?,
        ))
    };
    Ok((tls, credentials))
}

/// A listening socket that other cores may bind too, the kernel spreading connections.
fn reuseport_listener(address: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Accepts connections on this core until shutdown begins; each session is a tracked task, so
/// shutdown waits for it.
async fn accept_loop(worker: Worker, socket: TcpListener, current: Arc<RwLock<Arc<Shared>>>) {
    // A listener on a wildcard address asks each connection where it arrived.
    let listening = socket
        .local_addr()
        .ok()
        .filter(|a| !a.ip().is_unspecified());
    let listener = match Async::new(socket) {
        Ok(listener) => listener,
        Err(error) => {
            return tracing::error!(core = worker.core(), %error, "cannot register the listener");
        }
    };
    loop {
        let accepted = smol::future::or(async { Some(accept(&listener).await) }, async {
            worker.stopping().await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, peer))) => {
                let local =
                    listening.unwrap_or_else(|| stream.get_ref().local_addr().unwrap_or(peer));
                let shared = Arc::clone(&current.read().unwrap_or_else(PoisonError::into_inner));
                let stream = super::conn::Stream::Plain(stream);
                if let Some(dir) = shared.config.record.clone() {
                    let relay = shared.may_relay(peer.ip());
                    let starttls = shared.tls.is_some();
                    let stream = super::record::Recorder::new(
                        stream,
                        dir,
                        peer,
                        local,
                        &shared.config,
                        relay,
                        starttls,
                    );
                    let session = super::session::run(worker.clone(), stream, peer, local, shared);
                    worker.spawn(session).detach();
                } else {
                    let session = super::session::run(worker.clone(), stream, peer, local, shared);
                    worker.spawn(session).detach();
                }
            }
            Some(Err(error)) => {
                tracing::warn!(core = worker.core(), %error, "accept failed");
                smol::Timer::after(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The next connection, non-blocking from the start (`accept4`), so that registering it takes
/// no further system call.
async fn accept(listener: &Async<TcpListener>) -> io::Result<(Async<TcpStream>, SocketAddr)> {
    use rustix::net::{SocketFlags, acceptfrom_with};
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let (fd, peer) = listener
        .read_with(|listener| acceptfrom_with(listener, flags).map_err(io::Error::from))
        .await?;
    let peer = peer
        .and_then(|peer| SocketAddr::try_from(peer).ok())
        .ok_or_else(|| io::Error::other("a connection without a peer address"))?;
    Ok((Async::new_nonblocking(TcpStream::from(fd))?, peer))
}
