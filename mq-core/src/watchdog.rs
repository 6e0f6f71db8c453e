//! Seeing a plugin block its worker, at the cost of one store per poll.
//!
//! Timing every poll would cost two clock reads (about 47 ns here), twice a whole plugin call.
//! Instead each worker publishes what it is polling in its [`Beat`], one relaxed store per poll,
//! and a watchdog thread samples every beat four times per threshold. A value that stays put
//! across samples spanning the threshold is a poll that held the worker at least that long, so
//! nothing shorter is ever reported; a poll may run up to one sampling interval past the
//! threshold before it is seen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use mq_plugin_api::HookId;

/// What one worker is polling: 0 when no plugin, else a tag naming the plugin, the hook and the
/// poll (so two polls in a row of one plugin differ).
#[derive(Debug, Default)]
pub struct Beat {
    current: AtomicU64,
}

impl Beat {
    /// A beat no watchdog reads, for engines run without one.
    pub fn unwatched() -> Arc<Beat> {
        Arc::default()
    }

    #[inline]
    pub(crate) fn enter(&self, tag: u64) {
        self.current.store(tag, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn idle(&self) {
        self.current.store(0, Ordering::Relaxed);
    }
}

/// Builds the tag of a poll.
#[inline]
pub(crate) fn tag(poll: u64, plugin: u16, hook: HookId) -> u64 {
    (poll << 24) | (u64::from(plugin) << 8) | hook as u64
}

fn untag(tag: u64) -> (usize, HookId) {
    let plugin = ((tag >> 8) & 0xffff) as usize;
    (plugin, HookId::ALL[(tag & 0xff) as usize % HookId::COUNT])
}

/// Slow polls of one plugin at one hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlowPolls {
    /// How many polls held a worker longer than the threshold.
    pub count: u64,
    /// The longest one seen, as sampled (a lower bound).
    pub longest: Duration,
}

/// The watchdog thread and what it found. Cloning shares it; it stops when the last clone is
/// dropped.
#[derive(Debug, Clone)]
pub struct Watchdog {
    shared: Arc<Shared>,
    _thread: Arc<Stopper>,
}

#[derive(Debug)]
struct Shared {
    threshold: Duration,
    interval: Duration,
    watched: Mutex<Vec<Watched>>,
    slow: Mutex<HashMap<(&'static str, HookId), SlowPolls>>,
    stop: AtomicBool,
}

#[derive(Debug)]
struct Watched {
    core: usize,
    beat: Arc<Beat>,
    names: Arc<[&'static str]>,
    seen: u64,
    since: Instant,
    reported: bool,
}

#[derive(Debug)]
struct Stopper {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for Stopper {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Watchdog {
    /// Starts a watchdog that reports polls longer than `threshold`.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread.
    pub fn start(threshold: Duration) -> Watchdog {
        let threshold = threshold.max(Duration::from_millis(1));
        let shared = Arc::new(Shared {
            threshold,
            interval: (threshold / 4).max(Duration::from_micros(500)),
            watched: Mutex::new(Vec::new()),
            slow: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        let for_thread = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("mq-watchdog".into())
            .spawn(move || for_thread.run())
            .expect("the watchdog thread starts");
        Watchdog {
            _thread: Arc::new(Stopper {
                shared: Arc::clone(&shared),
                thread: Some(thread),
            }),
            shared,
        }
    }

    /// A beat for worker `core`, whose engine's plugins are `names` (by index).
    pub fn watch(&self, core: usize, names: Arc<[&'static str]>) -> Arc<Beat> {
        let beat = Arc::new(Beat::default());
        let watched = Watched {
            core,
            beat: Arc::clone(&beat),
            names,
            seen: 0,
            since: Instant::now(),
            reported: false,
        };
        self.shared
            .watched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(watched);
        beat
    }

    /// The threshold.
    pub fn threshold(&self) -> Duration {
        self.shared.threshold
    }

    /// Slow polls seen so far, by plugin and hook.
    pub fn slow_polls(&self) -> HashMap<(&'static str, HookId), SlowPolls> {
        self.shared
            .slow
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Shared {
    fn run(&self) {
        while !self.stop.load(Ordering::Relaxed) {
            thread::sleep(self.interval);
            let now = Instant::now();
            let mut watched = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
            // An engine a reload replaced is gone once nothing but this list holds its beat.
            watched.retain(|worker| Arc::strong_count(&worker.beat) > 1);
            for worker in watched.iter_mut() {
                self.sample(worker, now);
            }
        }
    }

    fn sample(&self, worker: &mut Watched, now: Instant) {
        let current = worker.beat.current.load(Ordering::Relaxed);
        if current == worker.seen && current != 0 {
            let held = now - worker.since;
            if !worker.reported && held >= self.threshold {
                worker.reported = true;
                let (plugin, hook) = Self::name(worker, current);
                tracing::warn!(
                    plugin,
                    hook = hook.name(),
                    core = worker.core,
                    held_ms = held.as_millis() as u64,
                    "plugin is blocking its worker: a single poll has run longer than {:?}",
                    self.threshold
                );
                self.record(plugin, hook, held, true);
            }
            return;
        }
        if worker.reported {
            let held = now - worker.since;
            let (plugin, hook) = Self::name(worker, worker.seen);
            tracing::warn!(
                plugin,
                hook = hook.name(),
                core = worker.core,
                held_ms = held.as_millis() as u64,
                "plugin blocked its worker for about {held:?} in one poll"
            );
            self.record(plugin, hook, held, false);
        }
        worker.seen = current;
        worker.since = now;
        worker.reported = false;
    }

    fn name(worker: &Watched, tag: u64) -> (&'static str, HookId) {
        let (plugin, hook) = untag(tag);
        (worker.names.get(plugin).copied().unwrap_or("?"), hook)
    }

    fn record(&self, plugin: &'static str, hook: HookId, held: Duration, new: bool) {
        let mut slow = self.slow.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = slow.entry((plugin, hook)).or_default();
        entry.count += u64::from(new);
        entry.longest = entry.longest.max(held);
    }
}
