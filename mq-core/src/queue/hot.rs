//! Bodies just written, kept for the delivery that usually follows within milliseconds: it
//! takes its body from here instead of reading it back from the journal on a blocking thread
//! (a hand-off to another thread and back, a read and a copy per message).
//!
//! Bounded by bytes, and a body goes in only while there is room: when delivery falls behind,
//! what is here is the oldest of the new mail, which is what it takes next. A body leaves when
//! delivery takes it, or when its message is held or gone.
//!
//! Only bodies no larger than a [`PIECE`] are kept: delivery reads a larger one a piece at a
//! time from the journal (see [`super::Body`]), holding a piece, where a kept body would be held
//! whole until its delivery ends, outside this bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{PIECE, QueueId};

/// What the bodies kept may add up to: a few hundred small messages, a few large ones.
pub(crate) const HOT_BYTES: usize = 1 << 20;

/// The bodies kept, shared by the queue and its writer.
#[derive(Debug, Default)]
pub(crate) struct Hot {
    bodies: HashMap<QueueId, Arc<[u8]>>,
    bytes: usize,
}

impl Hot {
    /// Keeps a copy of message `id`'s body, written a moment ago, if there is room and it is
    /// no larger than a piece.
    pub(crate) fn offer(&mut self, id: QueueId, body: &[u8]) {
        let room = self.bytes + body.len() <= HOT_BYTES;
        if room && body.len() <= PIECE && !self.bodies.contains_key(&id) {
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

    /// A body larger than a piece is read from the journal a piece at a time: kept, it would be
    /// held whole by its delivery, outside the bound.
    #[test]
    fn a_body_larger_than_a_piece_is_not_kept_even_with_room() {
        let mut hot = Hot::default();
        hot.offer(id(1), &vec![1; PIECE + 1]);
        assert_eq!(hot.take(id(1)), None);
        assert_eq!(hot.bytes, 0);
        hot.offer(id(2), &vec![2; PIECE]);
        assert_eq!(hot.take(id(2)).map(|b| b.len()), Some(PIECE));
    }

    #[test]
    fn a_body_is_taken_once_and_room_is_bounded() {
        let mut hot = Hot::default();
        let fit = (HOT_BYTES / PIECE) as u64;
        for n in 0..fit {
            hot.offer(id(n), &vec![1; PIECE]);
        }
        // No room for one more: it is read from the journal instead.
        hot.offer(id(fit), &vec![2; PIECE]);
        assert_eq!(hot.take(id(fit)), None);
        assert_eq!(hot.take(id(0)).map(|b| b.len()), Some(PIECE));
        assert_eq!(hot.take(id(0)), None, "taken once");
        // The room is back, but not for a body larger than a piece.
        hot.offer(id(fit + 1), &vec![3; PIECE + 1]);
        assert_eq!(hot.take(id(fit + 1)), None);
        hot.offer(id(fit + 2), &vec![3; PIECE]);
        for n in (1..fit).chain([fit + 2]) {
            hot.forget(id(n));
        }
        assert_eq!(hot.bytes, 0);
        assert!(hot.bodies.is_empty());
    }
}
