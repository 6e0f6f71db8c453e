//! Bodies just written, kept for the delivery that usually follows within milliseconds: it
//! takes its body from here instead of reading it back from the journal on a blocking thread
//! (a hand-off to another thread and back, a read and a copy per message).
//!
//! Bounded by bytes, and a body goes in only while there is room: when delivery falls behind,
//! what is here is the oldest of the new mail, which is what it takes next. A body leaves when
//! delivery takes it, or when its message is held or gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::QueueId;

/// What the bodies kept may add up to: a few hundred small messages, a few large ones.
pub(crate) const HOT_BYTES: usize = 1 << 20;

/// The bodies kept, shared by the queue and its writer.
#[derive(Debug, Default)]
pub(crate) struct Hot {
    bodies: HashMap<QueueId, Arc<[u8]>>,
    bytes: usize,
}

impl Hot {
    /// Keeps a copy of message `id`'s body, written a moment ago, if there is room.
    pub(crate) fn offer(&mut self, id: QueueId, body: &[u8]) {
        if self.bytes + body.len() <= HOT_BYTES && !self.bodies.contains_key(&id) {
            self.bytes += body.len();
            self.bodies.insert(id, Arc::from(body));
        }
    }

    /// The body of message `id`, if kept; it is kept no longer.
    pub(crate) fn take(&mut self, id: QueueId) -> Option<Arc<[u8]>> {
        let body = self.bodies.remove(&id)?;
        self.bytes -= body.len();
        Some(body)
    }

    /// Drops the body of message `id`, held or gone.
    pub(crate) fn forget(&mut self, id: QueueId) {
        self.take(id);
    }
}

/// Locks the bodies; what a panic left is still a valid map.
pub(crate) fn lock(hot: &Mutex<Hot>) -> MutexGuard<'_, Hot> {
    hot.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> QueueId {
        QueueId::from_u64(n)
    }

    #[test]
    fn a_body_is_taken_once_and_room_is_bounded() {
        let mut hot = Hot::default();
        hot.offer(id(1), &vec![1; 600 << 10]);
        // No room for a second one this large: it is read from the journal instead.
        hot.offer(id(2), &vec![2; 600 << 10]);
        assert_eq!(hot.take(id(2)), None);
        assert_eq!(hot.take(id(1)).map(|b| b.len()), Some(600 << 10));
        assert_eq!(hot.take(id(1)), None, "taken once");
        // The room is back.
        hot.offer(id(3), &vec![3; 600 << 10]);
        hot.forget(id(3));
        assert_eq!(hot.bytes, 0);
        assert!(hot.bodies.is_empty());
    }
}
