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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Delivery;
use super::outcome::{Notice, notify};
use crate::queue::QueueId;

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
    body: Option<Arc<[u8]>>,
    /// When the oldest of `notices` came in; `None` while there are none.
    since: Option<Instant>,
}

/// Notices of one message, ready to go to its sender.
#[derive(Debug)]
pub(crate) struct Ready {
    body: Option<Arc<[u8]>>,
    notices: Vec<Notice>,
}

impl Ready {
    /// `notices` of the message `body` (`None` when it could not be read), or nothing when
    /// there are none.
    pub(crate) fn new(body: Option<Arc<[u8]>>, notices: Vec<Notice>) -> Option<Ready> {
        (!notices.is_empty()).then_some(Ready { body, notices })
    }

    /// Queues the message's bounce and delay warning, then removes its failed entries (see
    /// [`notify`]).
    pub(crate) async fn send(self, delivery: &Delivery) {
        let body = self.body.as_deref().unwrap_or_default();
        notify(delivery, body, self.notices).await;
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
        body: Option<Arc<[u8]>>,
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
