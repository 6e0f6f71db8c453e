//! Token buckets: a checked limit, the bucket arithmetic, and the in-process store that the
//! worker cores share.
//!
//! The Redis backend runs the same arithmetic as a Lua script (`redis.rs`); the two must agree.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{LimitConfig, LimitKey};

/// One configured limit, ready to use.
#[derive(Debug, Clone)]
pub(crate) struct Limit {
    pub(crate) key: LimitKey,
    /// `key:rate/per`, the part of a bucket's key that tells its limit apart from the others:
    /// two processes with the same limit find the same Redis bucket.
    name: String,
    /// The most tokens the bucket holds.
    capacity: f64,
    /// Tokens gained per second.
    refill: f64,
}

impl Limit {
    pub(crate) fn new(config: &LimitConfig) -> Limit {
        Limit {
            key: config.key,
            name: format!(
                "{}:{}/{}ms",
                config.key.name(),
                config.rate,
                config.per.as_millis()
            ),
            capacity: f64::from(config.capacity()),
            refill: f64::from(config.rate) / config.per.as_secs_f64(),
        }
    }

    /// The key of the bucket for `value` (an address, a user, a domain) under this limit.
    pub(crate) fn bucket(&self, value: &str) -> String {
        format!("{}:{value}", self.name)
    }

    pub(crate) fn capacity(&self) -> f64 {
        self.capacity
    }

    /// Tokens gained per millisecond, the unit of Redis's clock in the script.
    pub(crate) fn refill_per_ms(&self) -> f64 {
        self.refill / 1000.0
    }

    /// How long an empty bucket takes to fill up: after that long unused, a bucket is the same
    /// as none, so it may be forgotten.
    pub(crate) fn time_to_fill(&self) -> Duration {
        Duration::from_secs_f64(self.capacity / self.refill)
    }
}

/// A bucket's state: its tokens when last touched.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// When the bucket is full again if nobody takes from it: then it may be dropped.
    full_at: Instant,
}

impl Bucket {
    fn full(limit: &Limit, now: Instant) -> Bucket {
        Bucket {
            tokens: limit.capacity,
            updated: now,
            full_at: now,
        }
    }

    /// Refills for the time since the last call, then takes one token if there is one.
    fn take(&mut self, limit: &Limit, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.refill).min(limit.capacity);
        self.updated = self.updated.max(now);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        let missing = limit.capacity - self.tokens;
        self.full_at = self.updated + Duration::from_secs_f64(missing / limit.refill);
        allowed
    }
}

/// The memory backend: every bucket of the plugin in one map behind one mutex, shared by the
/// instances on all cores through `PluginConfig::shared`.
///
/// # Why one mutex
///
/// - The lock is taken once per limited step (a connection, a MAIL, a RCPT), not on every
///   hook call, and held for one hash lookup and a few float operations: far below what an SMTP
///   round trip costs, so a handful of cores never queue on it for long.
/// - A sharded map would add a dependency or a hand-rolled shard array for no measured gain.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    buckets: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    map: HashMap<String, Bucket>,
    /// The size at which the next sweep drops full buckets; doubles with the live set, so
    /// sweeping costs O(1) per insert on average.
    sweep_at: usize,
}

/// The smallest map that is swept: below it, full buckets cost less than sweeping.
const MIN_SWEEP: usize = 4096;

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore {
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }
}

impl MemoryStore {
    /// Takes a token from the bucket of `value` under `limit`: whether the step may go on.
    pub(crate) fn take(&self, limit: &Limit, value: &str, now: Instant) -> bool {
        // A poisoned lock only means another core panicked between two float operations; the
        // map is still a map of buckets, at worst one bucket a token off.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let key = limit.bucket(value);
        if let Some(bucket) = buckets.map.get_mut(&key) {
            return bucket.take(limit, now);
        }
        buckets.sweep(now);
        let mut bucket = Bucket::full(limit, now);
        let allowed = bucket.take(limit, now);
        buckets.map.insert(key, bucket);
        allowed
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap().map.len()
    }
}

impl Buckets {
    /// Drops the buckets that are full by now, when the map has grown enough to be worth it.
    fn sweep(&mut self, now: Instant) {
        if self.map.len() < self.sweep_at {
            return;
        }
        self.map.retain(|_, bucket| bucket.full_at > now);
        self.sweep_at = (self.map.len() * 2).max(MIN_SWEEP);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: u32, per: Duration, burst: Option<u32>) -> Limit {
        Limit::new(&LimitConfig {
            key: LimitKey::SenderDomain,
            rate,
            per,
            burst,
        })
    }

    #[test]
    fn a_bucket_lets_through_its_capacity_then_refuses() {
        let (store, now) = (MemoryStore::default(), Instant::now());
        let limit = limit(2, Duration::from_mins(1), None);
        let taken: Vec<bool> = (0..3).map(|_| store.take(&limit, "a", now)).collect();
        assert_eq!(taken, [true, true, false]);
    }

    #[test]
    fn burst_sets_the_capacity_and_rate_the_refill() {
        let (store, now) = (MemoryStore::default(), Instant::now());
        let limit = limit(1, Duration::from_secs(10), Some(3));
        let taken: Vec<bool> = (0..4).map(|_| store.take(&limit, "a", now)).collect();
        assert_eq!(taken, [true, true, true, false]);
        assert!(!store.take(&limit, "a", now + Duration::from_secs(9)));
        assert!(store.take(&limit, "a", now + Duration::from_secs(19)));
        assert!(!store.take(&limit, "a", now + Duration::from_secs(19)));
    }

    #[test]
    fn refill_never_exceeds_the_capacity() {
        let (store, now) = (MemoryStore::default(), Instant::now());
        let limit = limit(2, Duration::from_secs(1), None);
        assert!(store.take(&limit, "a", now));
        let later = now + Duration::from_hours(1);
        let taken: Vec<bool> = (0..3).map(|_| store.take(&limit, "a", later)).collect();
        assert_eq!(taken, [true, true, false]);
    }

    #[test]
    fn values_and_limits_have_their_own_buckets() {
        let (store, now) = (MemoryStore::default(), Instant::now());
        let (one, other) = (
            limit(1, Duration::from_mins(1), None),
            limit(1, Duration::from_secs(1), None),
        );
        assert!(store.take(&one, "a", now));
        assert!(!store.take(&one, "a", now));
        assert!(store.take(&one, "b", now));
        assert!(store.take(&other, "a", now));
    }

    #[test]
    fn a_clock_read_late_does_not_take_tokens_back() {
        let (store, now) = (MemoryStore::default(), Instant::now());
        let limit = limit(1, Duration::from_secs(1), Some(2));
        assert!(store.take(&limit, "a", now + Duration::from_secs(1)));
        assert!(store.take(&limit, "a", now));
        assert!(!store.take(&limit, "a", now));
    }

    #[test]
    fn full_buckets_are_swept_once_the_map_is_large() {
        let (store, now) = (MemoryStore::default(), Instant::now());
        let limit = limit(1, Duration::from_secs(1), None);
        for n in 0..MIN_SWEEP {
            store.take(&limit, &n.to_string(), now);
        }
        assert_eq!(store.len(), MIN_SWEEP);
        // A second later every bucket is full again, so the next new key sweeps them all.
        store.take(&limit, "new", now + Duration::from_secs(1));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn time_to_fill_is_capacity_over_refill() {
        let limit = limit(100, Duration::from_mins(1), Some(20));
        assert_eq!(limit.time_to_fill(), Duration::from_secs(12));
        assert_eq!(
            limit.bucket("example.org"),
            "sender_domain:100/60000ms:example.org"
        );
    }
}
