//! The notices of one message held until every job of its round is done, so that its sender
//! gets one bounce (and one delay warning) for all its recipients that failed in that round,
//! whatever their domains, as Postfix's bounce(8) does for a queue file.
//!
//! The scheduler files a round's entries into batches, one per message and domain, each going
//! to a job. A message with batches at several domains is announced here with their number
//! ([`Notices::expect`]); each job hands in what its batch left for the sender when it is done
//! ([`Notices::finish`]), and the last one sends them all. The failed entries stay in the queue
//! meanwhile (in flight: no other job takes them), so that a crash before the bounce is queued
//! repeats the attempt and its bounce rather than losing them.
//!
//! # Why a bound
//!
//! A job stuck on a slow server (its timeouts run to minutes) must not hold the bounce of the
//! message's other domains that long, nor a batch that waits for a connection slot. The
//! scheduler sends what waited `[delivery] bounce_wait` ([`Notices::overdue`]); what jobs of
//! the round hand in after that goes out in a notice of its own. At shutdown every held notice
//! is sent at once ([`Notices::all`]), and a job that ends after that sends its own.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Delivery;
use super::outcome::{Notice, notify, quoted};
use crate::queue::{Body, QueueId};

/// A scheduler round: one take of due entries from the queue.
pub(crate) type Round = u64;

/// The notices of messages whose batches of one round are not all done, shared by every core.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    held: Mutex<HashMap<(Round, QueueId), Held>>,
}

/// What the finished batches of one message in one round left for its sender.
#[derive(Debug)]
struct Held {
    /// Batches of the round not yet done.
    batches: usize,
    notices: Vec<Notice>,
    /// The queued message, once a batch could read it.
    body: Option<Body>,
    /// When the oldest of `notices` came in; `None` while there are none.
    since: Option<Instant>,
}

/// Notices of one message, ready to go to its sender.
#[derive(Debug)]
pub(crate) struct Ready {
    body: Option<Body>,
    notices: Vec<Notice>,
}

impl Ready {
    /// `notices` of the message `body` (`None` when it could not be read), or nothing when
    /// there are none.
    pub(crate) fn new(body: Option<Body>, notices: Vec<Notice>) -> Option<Ready> {
        (!notices.is_empty()).then_some(Ready { body, notices })
    }

    /// Queues the message's bounce and delay warning, then removes its failed entries (see
    /// [`notify`]).
    pub(crate) async fn send(self, delivery: &Delivery) {
        let body = quoted(self.body.as_ref()).await;
        notify(delivery, &body, self.notices).await;
    }
}

impl Notices {
    /// Announces that message `id` has `batches` batches in `round`, each going to a job of
    /// its own.
    pub(crate) fn expect(&self, round: Round, id: QueueId, batches: usize) {
        let held = Held {
            batches,
            notices: Vec::new(),
            body: None,
            since: None,
        };
        self.lock().insert((round, id), held);
    }

    /// Takes what one batch of message `id` in `round` left for its sender; the message's
    /// notices when it was the last batch (or when the message is no longer held: its held
    /// notices went out already).
    pub(crate) fn finish(
        &self,
        round: Round,
        id: QueueId,
        body: Option<Body>,
        notices: Vec<Notice>,
    ) -> Option<Ready> {
        let mut held = self.lock();
        let Some(message) = held.get_mut(&(round, id)) else {
            return Ready::new(body, notices);
        };
        message.batches = message.batches.saturating_sub(1);
        if message.body.is_none() {
            message.body = body;
        }
        if !notices.is_empty() {
            message.since.get_or_insert_with(Instant::now);
            message.notices.extend(notices);
        }
        if message.batches > 0 {
            return None;
        }
        let message = held.remove(&(round, id))?;
        Ready::new(message.body, message.notices)
    }

    /// The notices that have waited `wait` or longer at `now`; the batches still to come of
    /// their messages send theirs apart.
    pub(crate) fn overdue(&self, now: Instant, wait: Duration) -> Vec<Ready> {
        let mut held = self.lock();
        let late = held
            .values_mut()
            .filter(|message| message.since.is_some_and(|since| now >= since + wait));
        late.filter_map(|message| {
            message.since = None;
            Ready::new(message.body.clone(), std::mem::take(&mut message.notices))
        })
        .collect()
    }

    /// Every held notice, at shutdown: the batches still to come send theirs apart.
    pub(crate) fn all(&self) -> Vec<Ready> {
        let held = std::mem::take(&mut *self.lock());
        held.into_values()
            .filter_map(|message| Ready::new(message.body, message.notices))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Round, QueueId), Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::*;
    use crate::queue::{Entry, EntryState};

    /// The refusal of recipient `index` of message `id`.
    fn refused(id: QueueId, index: u32) -> Notice {
        let now = SystemTime::now();
        Notice::refused(Entry {
            queue_id: id,
            recipient_index: index,
            sender: "alice@example.org".parse().unwrap(),
            recipient: format!("r{index}@d{index}.example").parse().unwrap(),
            size: 10,
            arrived: now,
            attempts: 0,
            next_attempt: now,
            last_error: None,
            state: EntryState::InFlight,
            relay: None,
            retry: None,
            extensions: None,
        })
    }

    /// The recipient indexes of `ready`'s notices.
    fn named(ready: &Ready) -> Vec<u32> {
        let notices = ready.notices.iter();
        notices.map(|n| n.entry().recipient_index).collect()
    }

    #[test]
    fn the_last_batch_of_a_message_gets_the_notices_of_every_batch() {
        let (notices, id) = (Notices::default(), QueueId::from_u64(1));
        notices.expect(7, id, 3);
        assert!(notices.finish(7, id, None, vec![refused(id, 0)]).is_none());
        assert!(notices.finish(7, id, None, Vec::new()).is_none());
        let ready = notices.finish(7, id, None, vec![refused(id, 2)]);
        assert_eq!(ready.as_ref().map(named), Some(vec![0, 2]));
        assert!(notices.all().is_empty(), "nothing left held");
    }

    #[test]
    fn a_message_whose_batches_all_went_well_has_nothing_to_send() {
        let (notices, id) = (Notices::default(), QueueId::from_u64(1));
        notices.expect(1, id, 2);
        assert!(notices.finish(1, id, None, Vec::new()).is_none());
        assert!(notices.finish(1, id, None, Vec::new()).is_none());
        assert!(notices.all().is_empty());
    }

    #[test]
    fn rounds_and_messages_are_held_apart() {
        let notices = Notices::default();
        let (one, two) = (QueueId::from_u64(1), QueueId::from_u64(2));
        notices.expect(1, one, 2);
        notices.expect(2, one, 2);
        notices.expect(1, two, 2);
        assert!(
            notices
                .finish(1, one, None, vec![refused(one, 0)])
                .is_none()
        );
        assert!(
            notices
                .finish(2, one, None, vec![refused(one, 1)])
                .is_none()
        );
        assert!(
            notices
                .finish(1, two, None, vec![refused(two, 0)])
                .is_none()
        );
        let ready = notices.finish(1, one, None, Vec::new());
        assert_eq!(ready.as_ref().map(named), Some(vec![0]));
    }

    #[test]
    fn notices_held_past_the_wait_go_and_later_ones_go_with_the_last_batch() {
        let (notices, id) = (Notices::default(), QueueId::from_u64(1));
        let wait = Duration::from_secs(10);
        notices.expect(1, id, 3);
        assert!(notices.finish(1, id, None, vec![refused(id, 0)]).is_none());
        let now = Instant::now();
        assert!(notices.overdue(now, wait).is_empty(), "not yet");
        let late = notices.overdue(now + wait, wait);
        assert_eq!(late.iter().map(named).collect::<Vec<_>>(), [vec![0]]);
        assert!(notices.overdue(now + wait, wait).is_empty(), "sent once");
        assert!(notices.finish(1, id, None, vec![refused(id, 1)]).is_none());
        let ready = notices.finish(1, id, None, vec![refused(id, 2)]);
        assert_eq!(ready.as_ref().map(named), Some(vec![1, 2]));
    }

    #[test]
    fn after_shutdown_took_the_held_notices_a_batch_sends_its_own() {
        let (notices, id) = (Notices::default(), QueueId::from_u64(1));
        notices.expect(1, id, 2);
        assert!(notices.finish(1, id, None, vec![refused(id, 0)]).is_none());
        let held = notices.all();
        assert_eq!(held.iter().map(named).collect::<Vec<_>>(), [vec![0]]);
        let ready = notices.finish(1, id, None, vec![refused(id, 1)]);
        assert_eq!(ready.as_ref().map(named), Some(vec![1]));
    }

    #[test]
    fn the_body_is_kept_from_the_batch_that_read_it() {
        let (notices, id) = (Notices::default(), QueueId::from_u64(1));
        notices.expect(1, id, 2);
        let body: Arc<[u8]> = Arc::from(&b"Subject: hi\r\n\r\nhi\r\n"[..]);
        assert!(
            notices
                .finish(1, id, Some(body.into()), Vec::new())
                .is_none()
        );
        let ready = notices.finish(1, id, None, vec![refused(id, 1)]);
        let kept = ready.and_then(|ready| ready.body);
        let kept = kept
            .as_ref()
            .and_then(Body::in_memory)
            .map(|body| &body[..]);
        assert_eq!(kept, Some(&b"Subject: hi\r\n\r\nhi\r\n"[..]));
    }
}
