//! The writer's faults: a write that failed, the back-off before the next try, and what the
//! metrics page shows of them.
//!
//! A full disk, a failing one, or too many open files make a write, a sync or a new segment
//! fail. The queue then answers with a temporary error (the SMTP server's `451 4.3.0`), and
//! must go on by itself once the cause is gone: nothing restarts it. Retries are spaced by a
//! back-off (0.1 s, doubling, at most 5 s), so that a broken disk is not hammered nor the log
//! flooded; a request that comes before the next try gets the last error at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::QueueHealth;
use super::error::QueueError;
use super::salvage::Damage;

/// The first wait before a write is tried again, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the metrics page shows of the journal, shared by the writer and the queue.
#[derive(Debug)]
pub(crate) struct Health {
    writable: AtomicBool,
    write_failures: AtomicU64,
    syncs: AtomicU64,
    damage: Damage,
}

impl Health {
    /// A writable journal, with the damage its recovery moved aside.
    pub(crate) fn new(damage: Damage) -> Health {
        Health {
            writable: AtomicBool::new(true),
            write_failures: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            damage,
        }
    }

    /// Counts a sync of the journal.
    pub(crate) fn synced(&self) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> QueueHealth {
        QueueHealth {
            writable: self.writable.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            corrupt_regions: self.damage.regions,
            corrupt_bytes: self.damage.bytes,
        }
    }
}

/// A fault the writer is in: since when, how many tries failed, and when to try again.
#[derive(Debug)]
pub(crate) struct Fault {
    since: Instant,
    failures: u64,
    backoff: Duration,
    retry_at: Instant,
    error: QueueError,
}

impl Fault {
    /// Records a failed write: starts a fault, or doubles the back-off of the current one.
    pub(crate) fn failed(fault: &mut Option<Fault>, error: &QueueError, health: &Health) {
        health.write_failures.fetch_add(1, Ordering::Relaxed);
        health.writable.store(false, Ordering::Relaxed);
        let now = Instant::now();
        let next = match fault.take() {
            None => {
                tracing::error!(%error, retry_in = ?FIRST_BACKOFF, "queue writes fail; new mail is refused with a temporary error until a retry succeeds");
                Fault {
                    since: now,
                    failures: 1,
                    backoff: FIRST_BACKOFF,
                    retry_at: now + FIRST_BACKOFF,
                    error: error.duplicate(),
                }
            }
            Some(old) => {
                let backoff = (old.backoff * 2).min(MAX_BACKOFF);
                tracing::warn!(%error, failures = old.failures + 1, retry_in = ?backoff, "queue writes still fail");
                Fault {
                    failures: old.failures + 1,
                    backoff,
                    retry_at: now + backoff,
                    error: error.duplicate(),
                    ..old
                }
            }
        };
        *fault = Some(next);
    }

    /// The last error, until it is time to try again.
    pub(crate) fn may_retry(&self) -> Result<(), QueueError> {
        if Instant::now() < self.retry_at {
            Err(self.error())
        } else {
            Ok(())
        }
    }

    /// The error that caused the fault, for a caller.
    pub(crate) fn error(&self) -> QueueError {
        self.error.duplicate()
    }

    /// A write succeeded: the fault is over.
    pub(crate) fn ended(self, health: &Health) {
        health.writable.store(true, Ordering::Relaxed);
        tracing::warn!(
            failures = self.failures,
            lasted = ?self.since.elapsed(),
            "queue writes succeed again; new mail is accepted"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn disk_full() -> QueueError {
        QueueError::io("write journal", io::Error::from_raw_os_error(28))
    }

    #[test]
    fn the_back_off_doubles_up_to_its_bound_and_a_success_ends_the_fault() {
        let health = Health::new(Damage::default());
        let mut fault = None;
        let mut waits = Vec::new();
        for _ in 0..10 {
            Fault::failed(&mut fault, &disk_full(), &health);
            waits.push(fault.as_ref().unwrap().backoff);
        }
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        let fault = fault.unwrap();
        assert!(matches!(fault.may_retry(), Err(QueueError::Io { .. })));
        assert_eq!(health.snapshot().write_failures, 10);
        assert!(!health.snapshot().writable);
        fault.ended(&health);
        assert!(health.snapshot().writable);
    }
}
