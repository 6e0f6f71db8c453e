//! Delivery's counters for `/metrics`: attempts by outcome and destination class, the latency
//! of delivered entries, bounces queued and outbound TLS sessions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::route::Route;

/// Where an entry goes, as the metrics label it (`class="local"`, `"relay"`, `"mx"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Class {
    /// A local domain's Maildir.
    Local,
    /// A smarthost or a relay configured for the domain.
    Relay,
    /// The domain's MX hosts.
    Mx,
}

impl Class {
    /// Every class, in the order the page lists them.
    pub const ALL: [Class; 3] = [Class::Local, Class::Relay, Class::Mx];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Class::Local => "local",
            Class::Relay => "relay",
            Class::Mx => "mx",
        }
    }

    pub(crate) fn of(route: &Route) -> Class {
        match route {
            Route::Local => Class::Local,
            Route::Relay(_) => Class::Relay,
            Route::Mx => Class::Mx,
        }
    }
}

/// How an attempt ended for an entry, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// Delivered (`status=sent`).
    Delivered,
    /// Deferred: tried again later.
    Deferred,
    /// Failed for good: bounced to the sender.
    Bounced,
}

impl AttemptResult {
    /// Every outcome, in the order the page lists them.
    pub const ALL: [AttemptResult; 3] = [
        AttemptResult::Delivered,
        AttemptResult::Deferred,
        AttemptResult::Bounced,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            AttemptResult::Delivered => "delivered",
            AttemptResult::Deferred => "deferred",
            AttemptResult::Bounced => "bounced",
        }
    }
}

/// The upper bounds, in seconds, of the buckets of `mq_delivery_latency_seconds`: from
/// arrival to delivery, so from a fast relay's tens of milliseconds to a day of retries.
pub const LATENCY_BOUNDS_SECONDS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0,
];

/// Delivery's counters, shared by every core; relaxed atomics, read at each scrape.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_core::delivery::DeliveryStats;
/// use mq_core::delivery::stats::{AttemptResult, Class};
///
/// let stats = DeliveryStats::default();
/// stats.record(Class::Relay, AttemptResult::Delivered, Duration::from_millis(80));
/// stats.record(Class::Relay, AttemptResult::Deferred, Duration::from_secs(3));
/// assert_eq!(stats.attempts(Class::Relay, AttemptResult::Delivered), 1);
/// let (buckets, count, sum_micros) = stats.latency();
/// assert_eq!((buckets[1], count, sum_micros), (1, 1, 80_000)); // at or under 0.1 s
/// ```
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Attempts, by class × outcome.
    attempts: [[AtomicU64; 3]; 3],
    /// Delivered entries whose arrival-to-delivery time fell in each bucket (not cumulative);
    /// the last one counts those above every bound.
    latency: [AtomicU64; LATENCY_BOUNDS_SECONDS.len() + 1],
    /// The sum of those times, in microseconds.
    latency_sum_micros: AtomicU64,
    /// Bounces queued for senders: one per message and attempt, for all its recipients that
    /// failed in it; delay warnings are not counted.
    pub bounces: AtomicU64,
    /// Outbound sessions that completed STARTTLS.
    pub tls: AtomicU64,
}

impl DeliveryStats {
    /// Counts an attempt; a delivered one's `latency` (arrival to delivery) goes into the
    /// histogram.
    pub fn record(&self, class: Class, result: AttemptResult, latency: Duration) {
        self.attempts[class as usize][result as usize].fetch_add(1, Ordering::Relaxed);
        if result == AttemptResult::Delivered {
            let seconds = latency.as_secs_f64();
            let bucket = LATENCY_BOUNDS_SECONDS
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(LATENCY_BOUNDS_SECONDS.len());
            self.latency[bucket].fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
        }
    }

    /// The attempts counted for `class` ending in `result`.
    pub fn attempts(&self, class: Class, result: AttemptResult) -> u64 {
        self.attempts[class as usize][result as usize].load(Ordering::Relaxed)
    }

    /// The latency histogram: the count at or under each of [`LATENCY_BOUNDS_SECONDS`]
    /// (cumulative, as Prometheus wants it), the total count and the sum in microseconds.
    pub fn latency(&self) -> (Vec<u64>, u64, u64) {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(LATENCY_BOUNDS_SECONDS.len());
        for bucket in &self.latency[..LATENCY_BOUNDS_SECONDS.len()] {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push(running);
        }
        let count = running + self.latency[LATENCY_BOUNDS_SECONDS.len()].load(Ordering::Relaxed);
        (
            cumulative,
            count,
            self.latency_sum_micros.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative() {
        let stats = DeliveryStats::default();
        stats.record(
            Class::Mx,
            AttemptResult::Delivered,
            Duration::from_millis(30),
        );
        stats.record(Class::Mx, AttemptResult::Delivered, Duration::from_secs(2));
        stats.record(
            Class::Mx,
            AttemptResult::Delivered,
            Duration::from_secs(200_000),
        );
        stats.record(
            Class::Relay,
            AttemptResult::Deferred,
            Duration::from_secs(1),
        );
        let (buckets, count, sum) = stats.latency();
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[5], 2);
        assert_eq!(*buckets.last().unwrap(), 2);
        assert_eq!(count, 3);
        assert_eq!(sum, 200_002_030_000);
        assert_eq!(stats.attempts(Class::Mx, AttemptResult::Delivered), 3);
        assert_eq!(stats.attempts(Class::Relay, AttemptResult::Deferred), 1);
        assert_eq!(stats.attempts(Class::Local, AttemptResult::Delivered), 0);
    }
}
