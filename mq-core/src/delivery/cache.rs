//! Idle connections kept open between jobs, as Postfix's scache: a job whose last transaction
//! ended well leaves its connection here (after an RSET that shows the server is still there),
//! and the next job to the same server takes it instead of connecting, greeting and saying
//! EHLO again.
//!
//! A connection is kept per endpoint and identity ([`Key`]: address, host name, TLS policy,
//! trust, AUTH user, EHLO name), never handed to a job that would have opened it differently.
//! It is closed (QUIT) after `[delivery] connection_cache_time` idle, once it has carried
//! `messages_per_connection` messages or lived `connection_reuse_time`, and when delivery
//! stops. At most as many idle connections are kept as deliveries may run at once
//! (`concurrency`), and per endpoint as its destination may have open
//! (`[delivery.throttle] connections`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::smtp::client::{ClientConfig, Connection, TlsPolicy};

/// What a cached connection must match to be reused: where it goes, and how it was opened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    address: SocketAddr,
    host: String,
    tls: TlsPolicy,
    /// The relay's `ca_file`, whose roots verified the server.
    trust: Option<PathBuf>,
    /// The AUTH user the session logged in as.
    user: Option<String>,
    helo: String,
}

impl Key {
    /// The key of a connection to `host` at `address`, opened with `config` and `trust`.
    pub(crate) fn new(
        address: SocketAddr,
        host: &str,
        config: &ClientConfig,
        trust: Option<PathBuf>,
    ) -> Key {
        Key {
            address,
            host: host.to_owned(),
            tls: config.tls,
            trust,
            user: config.auth.as_ref().map(|(user, _)| user.clone()),
            helo: config.helo_name.clone(),
        }
    }
}

/// A connection waiting for its next job.
struct Idle {
    connection: Connection,
    /// When it was left here.
    since: Instant,
}

/// The idle connections of every destination, shared by every worker core.
pub(crate) struct ConnectionCache {
    /// How long a connection waits idle; zero turns the cache off.
    idle_time: Duration,
    /// How long a connection may be reused after it was opened.
    reuse_time: Duration,
    /// Messages one connection carries at most.
    reuse_count: usize,
    /// Idle connections at most, over all endpoints.
    limit: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    idle: HashMap<Key, Vec<Idle>>,
    count: usize,
    /// When the connection idle longest is due to close, if any is idle.
    next_expiry: Option<Instant>,
}

impl ConnectionCache {
    pub(crate) fn new(
        idle_time: Duration,
        reuse_time: Duration,
        reuse_count: usize,
        limit: usize,
    ) -> ConnectionCache {
        ConnectionCache {
            idle_time,
            reuse_time,
            reuse_count: reuse_count.max(1),
            limit,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection for `key`, the one left most recently (the likeliest to be alive).
    pub(crate) fn take(&self, key: &Key) -> Option<Connection> {
        if self.idle_time.is_zero() {
            return None;
        }
        let mut state = self.state();
        let list = state.idle.get_mut(key)?;
        let idle = list.pop();
        if list.is_empty() {
            state.idle.remove(key);
        }
        let idle = idle?;
        state.count -= 1;
        Some(idle.connection)
    }

    /// Whether `connection` may carry more mail after this job: ready, not worn out by its
    /// messages or age. Such a connection is worth the RSET that precedes [`put`](Self::put).
    pub(crate) fn wants(&self, connection: &Connection) -> bool {
        !self.idle_time.is_zero()
            && connection.is_ready()
            && connection.transactions() < self.reuse_count
            && connection.age() < self.reuse_time
    }

    /// Keeps `connection` for the next job to `key`, or gives it back (`Some`) to be closed
    /// when the cache is full (`per_key` idle for this endpoint, or its global limit).
    pub(crate) fn put(
        &self,
        key: Key,
        connection: Connection,
        per_key: usize,
    ) -> Option<Connection> {
        let mut state = self.state();
        let here = state.idle.get(&key).map_or(0, Vec::len);
        if state.count >= self.limit || here >= per_key.max(1) {
            return Some(connection);
        }
        let now = Instant::now();
        state.idle.entry(key).or_default().push(Idle {
            connection,
            since: now,
        });
        state.count += 1;
        let expiry = now + self.idle_time;
        state.next_expiry = Some(state.next_expiry.map_or(expiry, |next| next.min(expiry)));
        None
    }

    /// Takes out the connections idle for `connection_cache_time` or longer at `now` (all of
    /// them with `all`), for the caller to close.
    pub(crate) fn expired(&self, now: Instant, all: bool) -> Vec<Connection> {
        let mut state = self.state();
        if !all && state.next_expiry.is_none_or(|next| next > now) {
            return Vec::new();
        }
        let idle_time = self.idle_time;
        let mut closing = Vec::new();
        let mut next: Option<Instant> = None;
        state.idle.retain(|_, list| {
            let (gone, kept): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                .into_iter()
                .partition(|idle| all || now.duration_since(idle.since) >= idle_time);
            closing.extend(gone.into_iter().map(|idle| idle.connection));
            for idle in &kept {
                let expiry = idle.since + idle_time;
                next = Some(next.map_or(expiry, |n| n.min(expiry)));
            }
            *list = kept;
            !list.is_empty()
        });
        state.count -= closing.len();
        state.next_expiry = next;
        closing
    }

    /// How many connections are idle now.
    pub(crate) fn idle(&self) -> usize {
        self.state().count
    }
}
