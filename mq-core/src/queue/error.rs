//! What can go wrong in a queue.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::QueueId;

/// Why a queue operation failed.
///
/// # Examples
///
/// ```
/// use mq_core::queue::{QueueError, QueueId};
///
/// let err = QueueError::NotFound(QueueId::from_u64(0xAB));
/// assert_eq!(err.to_string(), "no queued message 00000000000000AB");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum QueueError {
    /// A read, write or sync failed; `action` says which, on which file.
    Io {
        /// What the queue was doing, e.g. `sync /var/mq/queue/journal-0000000000000001.log`.
        action: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// No live entry of this message (or the one asked for) is queued.
    NotFound(QueueId),
    /// The message cannot be queued at all: no recipients, or too large for one record.
    Invalid(&'static str),
    /// Another process (or another queue in this one) has the queue directory open.
    InUse(PathBuf),
    /// The queue is shut down.
    Closed,
    /// The broker behind the queue is unreachable or did not confirm; try again later.
    Unavailable(String),
    /// The queue's backend cannot do this (per-message commands or holds on the RabbitMQ queue).
    Unsupported(&'static str),
}

impl QueueError {
    /// An I/O error with what was being done when it happened.
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> QueueError {
        QueueError::Io {
            action: action.into(),
            source,
        }
    }
}

impl QueueError {
    /// The same error for another caller of a failed batch (`io::Error` is not `Clone`).
    pub(crate) fn duplicate(&self) -> QueueError {
        match self {
            QueueError::Io { action, source } => QueueError::Io {
                action: action.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            QueueError::NotFound(id) => QueueError::NotFound(*id),
            QueueError::Invalid(why) => QueueError::Invalid(why),
            QueueError::InUse(dir) => QueueError::InUse(dir.clone()),
            QueueError::Closed => QueueError::Closed,
            QueueError::Unavailable(why) => QueueError::Unavailable(why.clone()),
            QueueError::Unsupported(what) => QueueError::Unsupported(what),
        }
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::Io { action, source } => write!(f, "cannot {action}: {source}"),
            QueueError::NotFound(id) => write!(f, "no queued message {id}"),
            QueueError::Invalid(why) => write!(f, "message cannot be queued: {why}"),
            QueueError::InUse(dir) => write!(f, "queue {} is in use", dir.display()),
            QueueError::Closed => f.write_str("queue is closed"),
            QueueError::Unavailable(why) => write!(f, "message broker unavailable: {why}"),
            QueueError::Unsupported(what) => {
                write!(f, "this queue backend does not support {what}")
            }
        }
    }
}

impl std::error::Error for QueueError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueueError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
