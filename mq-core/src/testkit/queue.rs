//! The queue under the testkit's sessions: it keeps what the session queued, in memory, for the
//! transcript, and hands out ids `1`, `2`, ... (`QUEUE1`, `QUEUE2` in transcripts).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use crate::queue::{AckResult, Entry, NewMessage, Queue, QueueError, QueueId};

/// Every message queued, with its id, in order.
#[derive(Debug, Default)]
pub(crate) struct RecordingQueue {
    messages: Mutex<Vec<(QueueId, NewMessage)>>,
}

impl RecordingQueue {
    /// The messages queued from the `from`th on.
    pub(crate) fn since(&self, from: usize) -> Vec<(QueueId, NewMessage)> {
        let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        messages.get(from..).unwrap_or_default().to_vec()
    }

    /// How many messages were queued.
    pub(crate) fn len(&self) -> usize {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// How a transcript names the message queued as `id`.
pub(crate) fn label(id: QueueId) -> String {
    format!("QUEUE{}", id.as_u64())
}

#[async_trait::async_trait]
impl Queue for RecordingQueue {
    async fn enqueue(&self, message: NewMessage) -> Result<QueueId, QueueError> {
        let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        let id = QueueId::from_u64(messages.len() as u64 + 1);
        messages.push((id, message));
        Ok(id)
    }

    async fn take_due(&self, _now: SystemTime, _max: usize) -> Result<Vec<Entry>, QueueError> {
        Ok(Vec::new())
    }

    async fn body(&self, id: &QueueId) -> Result<Arc<[u8]>, QueueError> {
        let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        messages
            .iter()
            .find(|(queued, _)| queued == id)
            .map(|(_, message)| Arc::from(message.body.as_slice()))
            .ok_or(QueueError::NotFound(*id))
    }

    async fn ack(&self, entry: &Entry, _result: AckResult) -> Result<(), QueueError> {
        Err(QueueError::NotFound(entry.queue_id))
    }

    async fn defer(
        &self,
        entry: &Entry,
        _until: SystemTime,
        _error: String,
    ) -> Result<(), QueueError> {
        Err(QueueError::NotFound(entry.queue_id))
    }

    fn list(&self) -> Vec<Entry> {
        Vec::new()
    }

    async fn delete(&self, id: &QueueId) -> Result<usize, QueueError> {
        Err(QueueError::NotFound(*id))
    }

    fn flush(&self) {}
}
