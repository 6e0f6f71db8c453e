//! Coarse deadlines for the long timeouts of a worker's connections.
//!
//! A session waits for its client under a timeout (minutes, by RFC 5321 §4.5.3.2) at every
//! read, and almost every read finishes long before it. An async-io timer per read would be
//! registered with the reactor, which wakes the thread blocked on it each time, and dropped again
//! moments later. Here a read's deadline is an entry in its worker's ordered map instead, a
//! few nanoseconds to add and remove, and one sweeper task per worker expires the entries on a
//! fixed tick while there are any. A deadline therefore fires between its instant and one
//! [`TICK`] after it, never before.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use smol::{LocalExecutor, Timer};

/// How late a deadline may fire.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// A worker's deadlines; clones share them. Only for the worker thread that made them.
#[derive(Clone)]
pub(crate) struct Deadlines {
    inner: Rc<RefCell<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Waiting deadlines by instant; the number tells apart deadlines at the same instant.
    waiting: BTreeMap<(Instant, u64), Waker>,
    next: u64,
    /// The sweeper's waker while it rests because nothing waits.
    resting: Option<Waker>,
}

impl Deadlines {
    /// Deadlines swept by a task on `executor`, which lives as long as the executor does.
    pub(crate) fn new(executor: &LocalExecutor<'static>) -> Deadlines {
        let deadlines = Deadlines {
            inner: Rc::new(RefCell::new(Inner::default())),
        };
        executor.spawn(sweep(Rc::clone(&deadlines.inner))).detach();
        deadlines
    }

    /// A future that resolves once `timeout` has passed (up to [`TICK`] later).
    pub(crate) fn after(&self, timeout: Duration) -> Deadline {
        Deadline {
            inner: Rc::clone(&self.inner),
            when: Instant::now() + timeout,
            key: None,
        }
    }

    /// How many deadlines wait.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.inner.borrow().waiting.len()
    }
}

/// One deadline; dropping it before it fires takes it out of its worker's map.
pub(crate) struct Deadline {
    inner: Rc<RefCell<Inner>>,
    when: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.when {
            this.forget();
            return Poll::Ready(());
        }
        let mut inner = this.inner.borrow_mut();
        if let Some(key) = this.key
            && let Some(waker) = inner.waiting.get_mut(&key)
        {
            waker.clone_from(cx.waker());
            return Poll::Pending;
        }
        let key = (this.when, inner.next);
        inner.next += 1;
        inner.waiting.insert(key, cx.waker().clone());
        this.key = Some(key);
        let sweeper = inner.resting.take();
        drop(inner);
        if let Some(sweeper) = sweeper {
            sweeper.wake();
        }
        Poll::Pending
    }
}

impl Deadline {
    fn forget(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner.borrow_mut().waiting.remove(&key);
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        self.forget();
    }
}

/// Rests while no deadline waits; otherwise wakes every [`TICK`] and fires what is due.
async fn sweep(inner: Rc<RefCell<Inner>>) {
    loop {
        std::future::poll_fn(|cx| {
            let mut state = inner.borrow_mut();
            if state.waiting.is_empty() {
                state.resting = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        // Keeps ticking until a tick finds nothing waiting, so a connection that reads one
        // line at a time does not restart the tick at every read.
        loop {
            Timer::after(TICK).await;
            let now = Instant::now();
            let due = {
                let mut state = inner.borrow_mut();
                let mut due = Vec::new();
                while let Some(entry) = state.waiting.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    due.push(entry.remove());
                }
                due
            };
            let idle = due.is_empty() && inner.borrow().waiting.is_empty();
            due.into_iter().for_each(Waker::wake);
            if idle {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_a_worker<T>(test: impl AsyncFnOnce(Deadlines) -> T) -> T {
        let executor = LocalExecutor::new();
        let deadlines = Deadlines::new(&executor);
        smol::block_on(executor.run(test(deadlines)))
    }

    #[test]
    fn a_deadline_fires_once_its_timeout_has_passed_never_before() {
        let waited = on_a_worker(async |deadlines| {
            let start = Instant::now();
            deadlines.after(Duration::from_millis(250)).await;
            start.elapsed()
        });
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        // Late by a tick, give or take a loaded machine; never stuck.
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[test]
    fn dropped_and_fired_deadlines_leave_nothing_waiting() {
        on_a_worker(async |deadlines| {
            let pending: Vec<_> = (0..100)
                .map(|_| deadlines.after(Duration::from_mins(1)))
                .collect();
            for mut deadline in pending {
                // Polled once: registered.
                assert!(futures::poll!(&mut deadline).is_pending());
                drop(deadline);
            }
            assert_eq!(deadlines.waiting(), 0);
            deadlines.after(Duration::from_millis(10)).await;
            assert_eq!(deadlines.waiting(), 0);
        });
    }

    #[test]
    fn an_earlier_deadline_fires_first_whatever_the_order_they_were_made_in() {
        let order = on_a_worker(async |deadlines| {
            let order = Rc::new(RefCell::new(Vec::new()));
            let wait = |millis: u64| {
                let (order, deadline) = (
                    Rc::clone(&order),
                    deadlines.after(Duration::from_millis(millis)),
                );
                async move {
                    deadline.await;
                    order.borrow_mut().push(millis);
                }
            };
            // A second apart: the order could only come out wrong if the worker, kept off the
            // CPU for a whole second, polled two of them once both had passed.
            futures::join!(wait(2000), wait(100), wait(1000));
            Rc::try_unwrap(order).expect("one owner").into_inner()
        });
        assert_eq!(order, [100, 1000, 2000]);
    }

    #[test]
    fn a_read_that_wins_the_race_drops_its_deadline() {
        on_a_worker(async |deadlines| {
            let (sender, receiver) = smol::channel::bounded::<()>(1);
            let mut race = Box::pin(smol::future::or(
                async { receiver.recv().await.is_ok() },
                async {
                    deadlines.after(Duration::from_mins(1)).await;
                    false
                },
            ));
            assert!(futures::poll!(race.as_mut()).is_pending());
            assert_eq!(deadlines.waiting(), 1);
            sender.try_send(()).expect("room for one");
            assert!(race.as_mut().await);
            drop(race);
            assert_eq!(deadlines.waiting(), 0);
        });
    }
}
