//! What stands between password guessing and the server's memory and CPU: a bound on the
//! password checks running at once, and a count of failed logins per client address across
//! connections.
//!
//! # Why
//!
//! - An Argon2 check fills its memory cost (19 MiB with the default parameters) for as long as
//!   it runs; unbounded, a few hundred sessions each sending one wrong password take gigabytes.
//!   A check is CPU-bound, so more at once than there are cores only queues work inside the
//!   kernel: [`AuthGuard::verify`] lets `max_verifications` run and the rest wait, and answers
//!   `454 4.7.0` past `max_waiting` waiters.
//! - The checks run on `max_verifications` threads of their own, started once: the allocator
//!   keeps an arena per thread, and a pool that starts fresh threads (as `smol::unblock`'s does
//!   after idling) leaves a freed Argon2 block behind in each new thread's arena.
//! - Reconnecting resets anything a session counts, so failures are counted per client address
//!   for `failure_window`; past `max_failures` the address's next AUTH is refused with `421` and
//!   the connection closed, as Postfix's anvil-based limits do.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mq_plugin_api::Reply;
use smol::lock::Semaphore;

use super::auth::Credentials;
use super::config::AuthConfig;

/// Client addresses remembered at most; past it, expired entries are dropped, and while the
/// table stays full new addresses are not counted (memory stays bounded under a spoofing flood).
const MAX_TRACKED: usize = 65_536;

/// Counters of the password checks, for the metrics page.
#[derive(Debug, Default)]
pub struct AuthStats {
    /// Password checks running now.
    pub in_flight: AtomicU64,
    /// The most checks that ever ran at once.
    pub peak: AtomicU64,
    /// AUTH commands answered 454 because too many checks were waiting.
    pub busy: AtomicU64,
    /// AUTH commands refused because their client address failed too often.
    pub locked_out: AtomicU64,
}

/// The bounds one server's sessions share.
#[derive(Debug)]
pub(crate) struct AuthGuard {
    slots: Arc<Semaphore>,
    /// The checkers' queue; dropping the guard closes it and their threads end.
    jobs: smol::channel::Sender<Job>,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// One password check, run on a checker thread.
type Job = Box<dyn FnOnce() + Send>;

/// One address's failures in its current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

/// Why a password was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Too many checks wait already: `454 4.7.0`, try again later.
    Busy,
}

impl AuthGuard {
    pub(crate) fn new(config: &AuthConfig) -> AuthGuard {
        let (jobs, queue) = smol::channel::unbounded::<Job>();
        for n in 0..config.verifications() {
            let queue = queue.clone();
            let thread = std::thread::Builder::new().name(format!("mq-auth-{n}"));
            // Without threads the checks would wait forever: a system that cannot start one
            // cannot run mq either.
            thread
                .spawn(move || {
                    while let Ok(job) = queue.recv_blocking() {
                        job();
                    }
                })
                .expect("a password-checking thread");
        }
        AuthGuard {
            slots: Arc::new(Semaphore::new(config.verifications())),
            jobs,
            waiting: AtomicUsize::new(0),
            max_waiting: config.max_waiting,
            max_failures: config.max_failures,
            window: config.failure_window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Checks `password` off the executor once a slot is free; the slot is held until the
    /// check ends, even if the session went away meanwhile.
    pub(crate) async fn verify(
        &self,
        credentials: Arc<Credentials>,
        user: String,
        password: String,
        stats: &Arc<AuthStats>,
    ) -> Result<bool, Refusal> {
        let slot = if let Some(slot) = self.slots.try_acquire_arc() {
            slot
        } else {
            // Counted down when the wait ends, or when the session is dropped meanwhile.
            let waiter = Waiter(&self.waiting);
            if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                stats.busy.fetch_add(1, Ordering::Relaxed);
                return Err(Refusal::Busy);
            }
            let slot = self.slots.acquire_arc().await;
            drop(waiter);
            slot
        };
        let running = stats.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        stats.peak.fetch_max(running, Ordering::AcqRel);
        let stats = Arc::clone(stats);
        let (answer, matched) = smol::channel::bounded(1);
        let job = Box::new(move || {
            let matched = credentials.verify(&user, &password);
            // Counted out before the session hears the answer.
            stats.in_flight.fetch_sub(1, Ordering::AcqRel);
            drop(slot);
            let _ = answer.try_send(matched);
        });
        // The checkers live as long as the guard, which the caller borrows.
        let _ = self.jobs.try_send(job);
        Ok(matched.recv().await.unwrap_or(false))
    }

    /// Whether `ip` has failed too often in its window; `max_failures = 0` never refuses.
    pub(crate) fn locked_out(&self, ip: IpAddr) -> bool {
        if self.max_failures == 0 {
            return false;
        }
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        failures
            .get(&ip)
            .is_some_and(|f| f.since.elapsed() < self.window && f.count >= self.max_failures)
    }

    /// Counts a failed login from `ip`.
    pub(crate) fn failed(&self, ip: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&ip) {
            failures.retain(|_, f| f.since.elapsed() < self.window);
            if failures.len() >= MAX_TRACKED {
                return;
            }
        }
        let now = Instant::now();
        let entry = failures.entry(ip).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.duration_since(entry.since) >= self.window {
            *entry = Failures {
                since: now,
                count: 0,
            };
        }
        entry.count = entry.count.saturating_add(1);
    }
}

/// A session waiting for a slot, counted in `AuthGuard::waiting` while it lives.
struct Waiter<'a>(&'a AtomicUsize);

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Refusal {
    /// The reply for this refusal.
    pub(crate) fn reply(self) -> Reply {
        match self {
            Refusal::Busy => Reply::new(454, "4.7.0", "Temporary authentication failure"),
        }
    }
}

/// The reply to an AUTH from an address that failed too often; the connection is closed after
/// it.
pub(crate) fn locked_out_reply(hostname: &str, ip: IpAddr) -> Reply {
    Reply::new(
        421,
        "4.7.0",
        format!("{hostname} Error: too many failed authentications from {ip}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max_failures: u32, window: Duration) -> AuthGuard {
        AuthGuard::new(&AuthConfig {
            max_failures,
            failure_window: window,
            ..AuthConfig::default()
        })
    }

    #[test]
    fn an_address_is_locked_out_after_max_failures_and_others_are_not() {
        let guard = guard(3, Duration::from_mins(1));
        let (one, other) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
        for _ in 0..2 {
            guard.failed(one);
        }
        assert!(!guard.locked_out(one));
        guard.failed(one);
        assert!(guard.locked_out(one));
        assert!(!guard.locked_out(other));
    }

    #[test]
    fn failures_expire_with_their_window_and_zero_turns_the_limit_off() {
        let guard = guard(1, Duration::ZERO);
        let ip = [192, 0, 2, 1].into();
        guard.failed(ip);
        assert!(!guard.locked_out(ip), "a window of zero has always passed");
        let off = self::guard(0, Duration::from_mins(1));
        off.failed(ip);
        assert!(!off.locked_out(ip));
    }
}
