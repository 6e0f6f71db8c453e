//! Answers kept until their TTL runs out, in bounded space.
//!
//! Each worker has its own cache, so it needs no sharing beyond its resolver's clones. When it
//! is full, expired answers go first, then the oldest, down to 90% of capacity: one sweep pays
//! for the next tenth of inserts instead of one scan per insert.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RecordType};

use super::wire::Answer;

/// A question: the name (compared without regard to case, as DNS does) and the type.
pub(crate) type Key = (Name, RecordType);

/// Answers by question, each with when it expires.
#[derive(Debug)]
pub(crate) struct Cache {
    entries: HashMap<Key, Entry>,
    /// Keys in insertion order, with the sequence number they were inserted with; a key
    /// inserted again leaves a stale pair behind, skipped when seen.
    order: VecDeque<(Key, u64)>,
    next_seq: u64,
    capacity: usize,
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    expires: Instant,
    seq: u64,
}

impl Cache {
    /// An empty cache that holds at most `capacity` answers; 0 holds none.
    pub(crate) fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            capacity,
        }
    }

    /// The answer to `key` if it has not expired at `now`.
    pub(crate) fn get(&mut self, key: &Key, now: Instant) -> Option<Answer> {
        let entry = self.entries.get(key)?;
        if entry.expires > now {
            return Some(entry.answer.clone());
        }
        self.entries.remove(key);
        None
    }

    /// Keeps `answer` for `ttl` seconds from `now`; a TTL of 0 means "do not cache".
    pub(crate) fn insert(&mut self, key: Key, answer: Answer, ttl: u32, now: Instant) {
        if ttl == 0 || self.capacity == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires = now + Duration::from_secs(u64::from(ttl));
        self.order.push_back((key.clone(), seq));
        self.entries.insert(
            key,
            Entry {
                answer,
                expires,
                seq,
            },
        );
        if self.order.len() > 2 * self.capacity + 16 {
            self.forget_stale_order();
        }
    }

    /// How many answers are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, entry| entry.expires > now);
        let target = self.capacity - self.capacity.div_ceil(10);
        while self.entries.len() > target {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|entry| entry.seq == seq) {
                self.entries.remove(&key);
            }
        }
        self.forget_stale_order();
    }

    fn forget_stale_order(&mut self) {
        let entries = &self.entries;
        self.order
            .retain(|(key, seq)| entries.get(key).is_some_and(|entry| entry.seq == *seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> Key {
        (
            Name::from_ascii(format!("h{n}.example.")).unwrap(),
            RecordType::A,
        )
    }

    #[test]
    fn answers_expire_with_their_ttl_and_names_ignore_case() {
        let mut cache = Cache::new(10);
        let now = Instant::now();
        cache.insert(key(1), Answer::NoData, 5, now);
        cache.insert(key(2), Answer::NxDomain, 0, now);
        let upper = (Name::from_ascii("H1.EXAMPLE.").unwrap(), RecordType::A);
        assert_eq!(cache.get(&upper, now), Some(Answer::NoData));
        assert_eq!(cache.get(&key(2), now), None);
        assert_eq!(cache.get(&key(1), now + Duration::from_secs(5)), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_drops_the_expired_then_the_oldest() {
        let mut cache = Cache::new(10);
        let now = Instant::now();
        cache.insert(key(0), Answer::NoData, 1, now);
        for n in 1..10 {
            cache.insert(key(n), Answer::NoData, 60, now);
        }
        cache.insert(key(1), Answer::NxDomain, 60, now); // refreshed: now the newest
        let later = now + Duration::from_secs(2);
        cache.insert(key(10), Answer::NoData, 60, later);
        assert_eq!(cache.len(), 10, "only the expired one made room");
        cache.insert(key(11), Answer::NoData, 60, later);
        assert_eq!(cache.len(), 10, "evicted down to 9, then inserted");
        assert_eq!(cache.get(&key(2), later), None, "the oldest went");
        assert_eq!(cache.get(&key(1), later), Some(Answer::NxDomain));
        assert!(cache.order.len() <= 2 * 10 + 16);
    }

    #[test]
    fn a_cache_of_size_zero_keeps_nothing() {
        let mut cache = Cache::new(0);
        cache.insert(key(1), Answer::NoData, 60, Instant::now());
        assert_eq!(cache.len(), 0);
    }
}
