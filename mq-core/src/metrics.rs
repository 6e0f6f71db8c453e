//! Counters per plugin × hook, kept per core in plain cells: nothing shared on the hot path.

use std::cell::Cell;
use std::time::Duration;

use mq_plugin_api::metrics::MetricFamily;
use mq_plugin_api::{Control, HookId};

/// Upper bounds of the latency buckets for calls that had to wait, in microseconds; a last
/// bucket takes everything above.
pub const LATENCY_BOUNDS_MICROS: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000, 30_000_000,
];

const BUCKETS: usize = LATENCY_BOUNDS_MICROS.len() + 1;

/// One plugin × hook on one core.
#[derive(Debug, Default)]
pub(crate) struct HookCounters {
    continues: Cell<u64>,
    completes: Cell<u64>,
    retries: Cell<u64>,
    rejects: Cell<u64>,
    timeouts: Cell<u64>,
    panics: Cell<u64>,
    waited: [Cell<u64>; BUCKETS],
    waited_micros: Cell<u64>,
}

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

impl HookCounters {
    #[inline]
    pub(crate) fn control(&self, control: Control) {
        bump(match control {
            Control::Continue => &self.continues,
            Control::Complete => &self.completes,
            Control::Retry => &self.retries,
        });
    }

    pub(crate) fn reject(&self) {
        bump(&self.rejects);
    }

    pub(crate) fn timeout(&self) {
        bump(&self.timeouts);
    }

    pub(crate) fn panic(&self) {
        bump(&self.panics);
    }

    pub(crate) fn waited(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BUCKETS - 1);
        bump(&self.waited[bucket]);
        self.waited_micros
            .set(self.waited_micros.get().saturating_add(micros));
    }

    pub(crate) fn snapshot(&self, plugin: &'static str, hook: HookId) -> HookMetrics {
        HookMetrics {
            plugin,
            hook,
            observer: false,
            continues: self.continues.get(),
            completes: self.completes.get(),
            retries: self.retries.get(),
            rejects: self.rejects.get(),
            timeouts: self.timeouts.get(),
            panics: self.panics.get(),
            slow_polls: 0,
            waited: self.waited.each_ref().map(Cell::get),
            waited_micros: self.waited_micros.get(),
        }
    }
}

/// The counters of one plugin at one hook, read from one core or summed over several.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HookMetrics {
    /// The plugin.
    pub plugin: &'static str,
    /// The hook.
    pub hook: HookId,
    /// Whether these are the counters of the plugin's observer of the hook rather than of its
    /// chain hook. An observer's finished calls count as `continues`; it never completes,
    /// retries or rejects.
    pub observer: bool,
    /// Calls that returned `Continue` (a reject counts here too, and in `rejects`).
    pub continues: u64,
    /// Calls that returned `Complete`.
    pub completes: u64,
    /// Calls that returned `Retry`.
    pub retries: u64,
    /// Calls that set a reply.
    pub rejects: u64,
    /// Calls dropped at their deadline.
    pub timeouts: u64,
    /// Calls that panicked.
    pub panics: u64,
    /// Polls that held the worker longer than the slow-poll threshold.
    pub slow_polls: u64,
    /// Calls that had to wait, by latency bucket (see [`LATENCY_BOUNDS_MICROS`]).
    pub waited: [u64; BUCKETS],
    /// The total latency of calls that had to wait, in microseconds.
    pub waited_micros: u64,
}

impl HookMetrics {
    /// Every call: each ends in a control, a timeout or a panic.
    pub fn calls(&self) -> u64 {
        self.continues + self.completes + self.retries + self.timeouts + self.panics
    }

    /// Calls that had to wait (returned Pending on their first poll).
    pub fn waited_calls(&self) -> u64 {
        self.waited.iter().sum()
    }

    fn add(&mut self, other: &HookMetrics) {
        self.continues += other.continues;
        self.completes += other.completes;
        self.retries += other.retries;
        self.rejects += other.rejects;
        self.timeouts += other.timeouts;
        self.panics += other.panics;
        self.slow_polls += other.slow_polls;
        for (mine, theirs) in self.waited.iter_mut().zip(other.waited) {
            *mine += theirs;
        }
        self.waited_micros += other.waited_micros;
    }
}

/// Counters for every plugin × hook that has a chain entry, and the metrics the plugins
/// declared themselves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    entries: Vec<HookMetrics>,
    /// The plugins' own metrics, summed over every core: [`Runtime::metrics`](crate::Runtime::metrics)
    /// reads them.
    families: Vec<MetricFamily>,
}

impl Metrics {
    pub(crate) fn new(entries: Vec<HookMetrics>) -> Metrics {
        Metrics {
            entries,
            families: Vec::new(),
        }
    }

    /// The metrics the plugins declared, by plugin then name (see [`mq_plugin_api::metrics`]).
    pub fn families(&self) -> &[MetricFamily] {
        &self.families
    }

    pub(crate) fn set_families(&mut self, families: Vec<MetricFamily>) {
        self.families = families;
    }

    /// Every entry, by plugin then hook.
    pub fn iter(&self) -> impl Iterator<Item = &HookMetrics> {
        self.entries.iter()
    }

    /// The entry of `plugin`'s chain hook at `hook`.
    pub fn get(&self, plugin: &str, hook: HookId) -> Option<&HookMetrics> {
        self.entries
            .iter()
            .find(|m| m.plugin == plugin && m.hook == hook && !m.observer)
    }

    /// The entry of `plugin`'s observer of `hook`.
    pub fn observer(&self, plugin: &str, hook: HookId) -> Option<&HookMetrics> {
        self.entries
            .iter()
            .find(|m| m.plugin == plugin && m.hook == hook && m.observer)
    }

    /// Adds another core's counters to these.
    pub fn merge(&mut self, other: &Metrics) {
        for theirs in &other.entries {
            match self.entries.iter_mut().find(|m| {
                m.plugin == theirs.plugin && m.hook == theirs.hook && m.observer == theirs.observer
            }) {
                Some(mine) => mine.add(theirs),
                None => self.entries.push(theirs.clone()),
            }
        }
        self.entries.sort_by_key(|m| (m.plugin, m.hook, m.observer));
    }

    pub(crate) fn add_slow_polls(&mut self, plugin: &'static str, hook: HookId, count: u64) {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|m| m.plugin == plugin && m.hook == hook && !m.observer)
        {
            entry.slow_polls += count;
        }
    }
}
