//! Queue ids: unique, sortable by arrival, and printable as 16 hex digits.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of an id below the arrival time, for ids made within one microsecond.
const COUNTER_BITS: u32 = 12;

/// The id of a queued message, shared by all its entries (one per recipient).
///
/// It is `unix microseconds << 12 | counter`, so ids sort by arrival; it prints as 16 uppercase
/// hex digits, the form the 250 reply and `mq queue` show.
///
/// # Examples
///
/// ```
/// use mq_core::queue::QueueId;
///
/// let id: QueueId = "0006123456789ABC".parse().unwrap();
/// assert_eq!(id.to_string(), "0006123456789ABC");
/// assert_eq!(id.as_u64(), 0x0006_1234_5678_9ABC);
/// assert!("12345".parse::<QueueId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u64);

impl QueueId {
    /// The id whose bits are `value`.
    pub fn from_u64(value: u64) -> QueueId {
        QueueId(value)
    }

    /// The id's bits.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

/// Why a string is not a [`QueueId`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseQueueIdError;

impl fmt::Display for ParseQueueIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a queue id is 16 hex digits")
    }
}

impl std::error::Error for ParseQueueIdError {}

impl FromStr for QueueId {
    type Err = ParseQueueIdError;

    fn from_str(text: &str) -> Result<QueueId, ParseQueueIdError> {
        // `from_str_radix` alone would take a sign and fewer digits.
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseQueueIdError);
        }
        u64::from_str_radix(text, 16)
            .map(QueueId)
            .map_err(|_| ParseQueueIdError)
    }
}

/// Hands out ids that grow strictly, even when the clock steps back or a microsecond holds more
/// than 4,096 messages (the time part then runs a little ahead).
#[derive(Debug, Default)]
pub(crate) struct IdSource {
    last: AtomicU64,
}

impl IdSource {
    /// A source whose ids all come after `seen`, the highest id found in the journal: an id is
    /// never reused after a restart, even with the clock set back.
    pub(crate) fn after(seen: Option<QueueId>) -> IdSource {
        IdSource {
            last: AtomicU64::new(seen.map_or(0, QueueId::as_u64)),
        }
    }

    /// The next id.
    pub(crate) fn next(&self) -> QueueId {
        let now = micros(SystemTime::now()) << COUNTER_BITS;
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last.saturating_add(1)))
            });
        // The closure always returns `Some`, so both arms hold the value it replaced.
        let last = previous.unwrap_or_else(|last| last);
        QueueId(now.max(last.saturating_add(1)))
    }
}

/// Microseconds since the Unix epoch; 0 before it, `u64::MAX` in 586,000 years.
pub(crate) fn micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The time `micros` microseconds after the Unix epoch.
pub(crate) fn from_micros(micros: u64) -> SystemTime {
    // Far beyond any real date, but it comes from disk: no panic on overflow.
    UNIX_EPOCH
        .checked_add(std::time::Duration::from_micros(micros))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_past_the_highest_seen() {
        let future = QueueId(u64::MAX / 2);
        let source = IdSource::after(Some(future));
        let first = source.next();
        assert!(first > future);
        assert!(source.next() > first);
    }

    #[test]
    fn parse_refuses_signs_and_short_forms() {
        assert!("+006123456789ABC".parse::<QueueId>().is_err());
        assert!("6123456789ABC".parse::<QueueId>().is_err());
        assert_eq!(
            "000000000000000a".parse::<QueueId>(),
            Ok(QueueId::from_u64(10))
        );
    }
}
