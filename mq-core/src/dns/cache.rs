//! Answers kept until their TTL runs out, in bounded space.
//!
//! Each worker has its own cache, so it needs no sharing beyond its resolver's clones. It is
//! bounded twice: by answers, and by bytes, since one answer may hold thousands of records.
//! When either is full, expired answers go first, then the oldest, down to 90% of capacity:
//! one sweep pays for the next tenth of inserts instead of one scan per insert. An answer
//! larger than a tenth of the bytes is not kept at all.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable as _;

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
    /// The most bytes the entries may weigh together (see [`weight`]).
    max_bytes: usize,
    /// What the entries weigh now.
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    expires: Instant,
    seq: u64,
    weight: usize,
}

impl Cache {
    /// An empty cache that holds at most `capacity` answers weighing `max_bytes` together; 0
    /// for either holds none.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            capacity,
            max_bytes,
            bytes: 0,
        }
    }

    /// The answer to `key` if it has not expired at `now`.
    pub(crate) fn get(&mut self, key: &Key, now: Instant) -> Option<Answer> {
        let entry = self.entries.get(key)?;
        if entry.expires > now {
            return Some(entry.answer.clone());
        }
        self.remove(key);
        None
    }

    /// Keeps `answer` for `ttl` seconds from `now`; a TTL of 0 means "do not cache".
    pub(crate) fn insert(&mut self, key: Key, answer: Answer, ttl: u32, now: Instant) {
        let weight = weight(&key, &answer);
        if ttl == 0 || self.capacity == 0 || weight > self.max_bytes / 10 {
            return;
        }
        self.remove(&key);
        if self.entries.len() >= self.capacity || self.bytes + weight > self.max_bytes {
            self.make_room(now, weight);
        }
        self.bytes += weight;
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
                weight,
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

    /// What the answers kept weigh together.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.weight;
        }
    }

    /// Drops the expired answers, then the oldest, until 90% of both bounds is left with room
    /// for `incoming` bytes.
    fn make_room(&mut self, now: Instant, incoming: usize) {
        let mut freed = 0;
        self.entries.retain(|_, entry| {
            let keep = entry.expires > now;
            if !keep {
                freed += entry.weight;
            }
            keep
        });
        self.bytes -= freed;
        let target = self.capacity - self.capacity.div_ceil(10);
        let target_bytes = (self.max_bytes - self.max_bytes.div_ceil(10)).saturating_sub(incoming);
        while self.entries.len() > target || self.bytes > target_bytes {
            let Some((key, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|entry| entry.seq == seq) {
                self.remove(&key);
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

/// Roughly the bytes an answer holds: its records' wire size, and the frames around them.
fn weight(key: &Key, answer: &Answer) -> usize {
    let records = match answer {
        Answer::Records(records) => records
            .iter()
            .map(|record| size_of::<RData>() + record.to_bytes().map_or(0, |bytes| bytes.len()))
            .sum(),
        Answer::Alias(name) => name.len(),
        Answer::NxDomain | Answer::NoData => 0,
    };
    size_of::<Entry>() + 2 * size_of::<Key>() + key.0.len() + records
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
        let mut cache = Cache::new(10, 1 << 20);
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
        let mut cache = Cache::new(10, 1 << 20);
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

    fn records(count: usize) -> Answer {
        let mx = |n: usize| {
            let exchange = Name::from_ascii(format!("mx{n}.example.")).unwrap();
            RData::MX(hickory_proto::rr::rdata::MX::new(10, exchange))
        };
        Answer::Records((0..count).map(mx).collect())
    }

    #[test]
    fn the_cache_holds_no_more_bytes_than_its_bound_however_large_the_answers() {
        let max_bytes = 64 * 1024;
        let mut cache = Cache::new(10_000, max_bytes);
        let now = Instant::now();
        cache.insert(key(0), records(3000), 60, now);
        assert_eq!(
            cache.len(),
            0,
            "an answer over a tenth of the bound is not kept"
        );
        for n in 1..200 {
            cache.insert(key(n), records(20), 60, now);
            assert!(cache.bytes() <= max_bytes, "{} bytes", cache.bytes());
        }
        assert!(cache.len() < 199, "the oldest answers made room");
        assert!(
            cache.get(&key(199 - 1), now).is_some(),
            "the newest is kept"
        );
        let kept: usize = cache
            .entries
            .iter()
            .map(|(k, e)| weight(k, &e.answer))
            .sum();
        assert_eq!(kept, cache.bytes());
    }

    #[test]
    fn a_cache_of_size_zero_keeps_nothing() {
        let mut cache = Cache::new(0, 1 << 20);
        cache.insert(key(1), Answer::NoData, 60, Instant::now());
        assert_eq!(cache.len(), 0);
    }
}
