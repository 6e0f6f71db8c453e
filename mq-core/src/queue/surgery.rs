//! An administrator's changes to many messages at once: delete, hold, release, requeue.
//!
//! Each change is one journal record per message; asked for all at once, the records share
//! the writer's syncs (group commit), so that deleting thousands of messages costs a few syncs,
//! not one each.

use std::fmt;
use std::str::FromStr;

use futures::future::join_all;

use super::{Queue, QueueError, QueueId};

/// How many changes are in flight together: the writer batches what waits, and this keeps the
/// queue's request channel from filling with one command's requests.
const AT_ONCE: usize = 1024;

/// What an administrator does to a message.
///
/// # Examples
///
/// ```
/// use mq_core::queue::Surgery;
///
/// assert_eq!("hold".parse::<Surgery>(), Ok(Surgery::Hold));
/// assert_eq!(Surgery::Requeue.to_string(), "requeue");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Surgery {
    /// [`Queue::delete`]: every entry goes.
    Delete,
    /// [`Queue::hold`]: no entry is delivered until released.
    Hold,
    /// [`Queue::release`]: a held message's entries are due again.
    Release,
    /// [`Queue::requeue`]: every entry starts afresh, due now.
    Requeue,
}

impl Surgery {
    /// Every kind, in the order the admin port documents them.
    pub const ALL: [Surgery; 4] = [
        Surgery::Delete,
        Surgery::Hold,
        Surgery::Release,
        Surgery::Requeue,
    ];

    /// The change's name, as in `mq queue <name>` and `POST /queue/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            Surgery::Delete => "delete",
            Surgery::Hold => "hold",
            Surgery::Release => "release",
            Surgery::Requeue => "requeue",
        }
    }

    /// What was done, as Postfix's postsuper says it: `Deleted`, `Placed on hold`, ….
    pub fn done(self) -> &'static str {
        match self {
            Surgery::Delete => "Deleted",
            Surgery::Hold => "Placed on hold",
            Surgery::Release => "Released from hold",
            Surgery::Requeue => "Requeued",
        }
    }

    /// Applies the change to message `id`; how many entries it has (had, for a delete).
    ///
    /// # Errors
    ///
    /// [`QueueError::NotFound`] if no such message is queued, and the queue's own errors.
    pub async fn apply(self, queue: &dyn Queue, id: &QueueId) -> Result<usize, QueueError> {
        match self {
            Surgery::Delete => queue.delete(id).await,
            Surgery::Hold => queue.hold(id).await,
            Surgery::Release => queue.release(id).await,
            Surgery::Requeue => queue.requeue(id).await,
        }
    }

    /// Applies the change to every message in `ids`, many at a time, and returns each one's
    /// outcome, in the order of `ids`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, EntryState, NewMessage, Queue, Surgery};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default())?;
    /// smol::block_on(async {
    ///     let id = queue.enqueue(NewMessage {
    ///         sender: "a@example.org".parse().unwrap(),
    ///         recipients: vec!["b@example.net".parse().unwrap()],
    ///         body: b"\r\n".to_vec(),
    ///         client: "localhost".into(),
    ///         extensions: None,
    ///     }).await?;
    ///     let outcomes = Surgery::Hold.apply_all(&queue, &[id]).await;
    ///     assert_eq!(outcomes[0].1.as_ref().ok(), Some(&1));
    ///     assert_eq!(queue.list()[0].state, EntryState::Held);
    ///     Ok::<(), mq_core::queue::QueueError>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn apply_all(
        self,
        queue: &dyn Queue,
        ids: &[QueueId],
    ) -> Vec<(QueueId, Result<usize, QueueError>)> {
        let mut outcomes = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(AT_ONCE) {
            let changes = chunk.iter().map(|id| async move {
                let outcome = self.apply(queue, id).await;
                (*id, outcome)
            });
            outcomes.extend(join_all(changes).await);
        }
        outcomes
    }
}

impl fmt::Display for Surgery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Surgery {
    type Err = String;

    fn from_str(text: &str) -> Result<Surgery, String> {
        Surgery::ALL
            .into_iter()
            .find(|s| s.name() == text)
            .ok_or_else(|| format!("unknown queue change {text:?}"))
    }
}

/// The ids of every queued message, each once, in id order.
pub fn all_messages(queue: &dyn Queue) -> Vec<QueueId> {
    let mut ids: Vec<QueueId> = queue.list().iter().map(|e| e.queue_id).collect();
    ids.dedup();
    ids
}
