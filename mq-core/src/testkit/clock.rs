//! Virtual time: the clock a test controls. `Context::now` and `Context::sleep` read it, and the
//! engine's call deadlines run on it, so a test lets hours pass without waiting.
//!
//! The clock moves in two ways only: [`Server::advance`](super::Server::advance), which fires
//! every timer due on the way; and, while a plugin call waits on a timer it started (a
//! `ctx.sleep` inside a hook) and nothing else can run, to the earliest timer. A call that waits
//! on real input (a DNS reply from a test server) alone moves nothing: its real wait is waited.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use mq_plugin_api::Clock;

/// A test's clock; clones share it.
#[derive(Clone)]
pub(crate) struct VirtualClock {
    inner: Rc<Inner>,
}

struct Inner {
    /// What `now` reads at the start.
    system: SystemTime,
    /// What `instant` reads at the start.
    instant: Instant,
    /// Virtual time passed since the start.
    elapsed: Cell<Duration>,
    /// Waiting timers by when they fire and their number.
    timers: RefCell<BTreeMap<(Duration, u64), Waiting>>,
    next: Cell<u64>,
    /// The number the first timer of the running plugin call got, while a call runs.
    call_began: Cell<Option<u64>>,
}

struct Waiting {
    waker: Option<Waker>,
    /// The engine's deadline of a call: it alone never moves the clock.
    deadline: bool,
}

impl VirtualClock {
    /// A clock that starts at the system's time now, and then moves only when told.
    pub(crate) fn new() -> VirtualClock {
        VirtualClock {
            inner: Rc::new(Inner {
                system: SystemTime::now(),
                instant: Instant::now(),
                elapsed: Cell::new(Duration::ZERO),
                timers: RefCell::new(BTreeMap::new()),
                next: Cell::new(0),
                call_began: Cell::new(None),
            }),
        }
    }

    /// Virtual time passed since the start.
    pub(crate) fn elapsed(&self) -> Duration {
        self.inner.elapsed.get()
    }

    /// A plugin call begins: timers it starts may move the clock.
    pub(crate) fn call_begins(&self) {
        self.inner.call_began.set(Some(self.inner.next.get()));
    }

    /// The plugin call ended.
    pub(crate) fn call_ends(&self) {
        self.inner.call_began.set(None);
    }

    /// Moves the clock to the earliest timer if the running plugin call waits on a timer of
    /// its own, and wakes what is due; false if nothing moved.
    pub(crate) fn move_to_waited_timer(&self) -> bool {
        let Some(began) = self.inner.call_began.get() else {
            return false;
        };
        let (first, waited) = {
            let timers = self.inner.timers.borrow();
            let waited = timers
                .iter()
                .any(|(&(_, number), waiting)| number >= began && !waiting.deadline);
            (timers.keys().next().map(|&(when, _)| when), waited)
        };
        match first {
            Some(when) if waited => {
                self.move_to(when);
                true
            }
            _ => false,
        }
    }

    /// When the next timer fires, if one is before `limit`.
    pub(crate) fn next_before(&self, limit: Duration) -> Option<Duration> {
        let timers = self.inner.timers.borrow();
        let &(when, _) = timers.keys().next()?;
        (when <= limit).then_some(when)
    }

    /// Moves the clock forward to `when` (never back) and wakes the timers due.
    pub(crate) fn move_to(&self, when: Duration) {
        if when > self.inner.elapsed.get() {
            self.inner.elapsed.set(when);
        }
        let now = self.inner.elapsed.get();
        let mut timers = self.inner.timers.borrow_mut();
        let due: Vec<(Duration, u64)> = timers.range(..=(now, u64::MAX)).map(|(&k, _)| k).collect();
        let wakers: Vec<Waker> = due
            .into_iter()
            .filter_map(|key| timers.remove(&key).and_then(|waiting| waiting.waker))
            .collect();
        drop(timers);
        for waker in wakers {
            waker.wake();
        }
    }
}

impl fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualClock")
            .field("elapsed", &self.elapsed())
            .field("timers", &self.inner.timers.borrow().len())
            .finish()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        self.inner.system + self.elapsed()
    }

    fn instant(&self) -> Instant {
        self.inner.instant + self.elapsed()
    }

    fn sleep(&self, duration: Duration, deadline: bool) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(Sleep {
            inner: Rc::clone(&self.inner),
            when: self.elapsed().saturating_add(duration),
            deadline,
            key: None,
        })
    }
}

/// A timer on the virtual clock; dropping it takes it out of the clock.
struct Sleep {
    inner: Rc<Inner>,
    when: Duration,
    deadline: bool,
    key: Option<(Duration, u64)>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.inner.elapsed.get() >= this.when {
            if let Some(key) = this.key.take() {
                this.inner.timers.borrow_mut().remove(&key);
            }
            return Poll::Ready(());
        }
        let key = *this.key.get_or_insert_with(|| {
            let number = this.inner.next.get();
            this.inner.next.set(number + 1);
            (this.when, number)
        });
        this.inner.timers.borrow_mut().insert(
            key,
            Waiting {
                waker: Some(cx.waker().clone()),
                deadline: this.deadline,
            },
        );
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner.timers.borrow_mut().remove(&key);
        }
    }
}
