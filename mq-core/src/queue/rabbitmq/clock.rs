//! [`Clock`]: the time limits of publishes and confirms, on one timer.
//!
//! # Why
//!
//! Every message is published and confirmed under a time limit (`confirm_timeout`). A timer
//! per limit (`smol::Timer`) registers with the reactor, which wakes the reactor's thread each
//! time: at a thousand messages a second, thousands of wake-ups for limits that almost never
//! expire. Here a limit is an entry in a map, and the link's thread looks at the map every
//! [`TICK`], waking only the waits whose limit passed: a limit fires up to one tick late.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the clock looks for expired limits: how late a limit may fire.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Waits under a time limit, checked on one timer for all of them (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Clock {
    /// The waits whose limit has not passed yet, by limit.
    waiting: Mutex<BTreeMap<(Instant, u64), Waker>>,
    ids: AtomicU64,
}

impl Clock {
    /// `future`'s output, or `timed_out()` if `limit` passes first.
    pub(crate) async fn within<T, E>(
        &self,
        limit: Duration,
        future: impl Future<Output = Result<T, E>>,
        timed_out: impl FnOnce() -> E,
    ) -> Result<T, E> {
        let expiry = Expiry {
            clock: self,
            key: (
                Instant::now() + limit,
                self.ids.fetch_add(1, Ordering::Relaxed),
            ),
        };
        smol::future::or(future, async {
            expiry.await;
            Err(timed_out())
        })
        .await
    }

    /// Wakes the waits whose limit is `now` or earlier; the link's thread calls it every
    /// [`TICK`].
    pub(crate) fn fire(&self, now: Instant) {
        let due = {
            let mut waiting = self.waiting();
            let later = waiting.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *waiting, later)
        };
        for waker in due.into_values() {
            waker.wake();
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Instant, u64), Waker>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ready once its limit passed.
struct Expiry<'a> {
    clock: &'a Clock,
    /// The limit, and an id that tells apart waits with the same limit.
    key: (Instant, u64),
}

impl Future for Expiry<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.key.0 {
            return Poll::Ready(());
        }
        self.clock.waiting().insert(self.key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Expiry<'_> {
    fn drop(&mut self) {
        self.clock.waiting().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_fires_on_the_tick_after_it_passed_and_not_before() {
        let clock = Clock::default();
        let waited = smol::block_on(async {
            let wait = clock.within(
                Duration::from_millis(50),
                std::future::pending::<Result<(), &str>>(),
                || "late",
            );
            let ticks = async {
                // Nothing expires on a tick before the limit.
                clock.fire(Instant::now());
                smol::Timer::after(Duration::from_millis(80)).await;
                clock.fire(Instant::now());
                std::future::pending::<Result<(), &str>>().await
            };
            smol::future::or(wait, ticks).await
        });
        assert_eq!(waited, Err("late"));
        assert!(clock.waiting().is_empty());
    }

    #[test]
    fn a_future_done_in_time_leaves_nothing_waiting() {
        let clock = Clock::default();
        let done = smol::block_on(clock.within(
            Duration::from_secs(30),
            async { Ok::<_, &str>(7) },
            || "late",
        ));
        assert_eq!(done, Ok(7));
        assert!(clock.waiting().is_empty());
    }
}
