//! The in-memory state of the queue: every live message, its entries, where its body lies, and
//! what each journal segment still holds.
//!
//! Only [`Index::apply`] changes durable state, and only after the record it applies is synced
//! (by the writer) or read back (by recovery), in journal order: so the index is always what a
//! replay of the journal would give, plus what is kept in memory only (entries in flight, a
//! flush). Compaction relies on that to copy a message's state forward.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use mq_plugin_api::Address;

use super::error::QueueError;
use super::record::{MessageRecord, RecipientState, Record};
use super::{Entry, EntryState, QueueId};

/// Where a record was written: segment, offset of its frame, and the frame's length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// Where a body can be read: its segment's file, and its place in it.
#[derive(Debug, Clone)]
pub(crate) struct BodyRef {
    segment: u64,
    file: Arc<File>,
    offset: u64,
    len: u64,
}

impl BodyRef {
    /// Reads the body with one positioned read. The file stays readable even if its segment
    /// is deleted meanwhile: the open handle keeps it.
    pub(crate) fn read(&self) -> Result<Vec<u8>, QueueError> {
        let mut body = vec![0; self.len as usize];
        self.file
            .read_exact_at(&mut body, self.offset)
            .map_err(|e| {
                let action = format!("read a body from journal segment {}", self.segment);
                QueueError::io(action, e)
            })?;
        Ok(body)
    }

    /// [`read`](BodyRef::read) into a shared buffer, allocated once: delivery hands it to
    /// every transaction of the message without copying it again.
    pub(crate) fn read_shared(&self) -> Result<Arc<[u8]>, QueueError> {
        // A `TrustedLen` iterator collects into one allocation of the right size.
        let mut body: Arc<[u8]> = std::iter::repeat_n(0, self.len as usize).collect();
        let buffer = Arc::get_mut(&mut body).unwrap_or_else(|| unreachable!("just made"));
        self.file.read_exact_at(buffer, self.offset).map_err(|e| {
            let action = format!("read a body from journal segment {}", self.segment);
            QueueError::io(action, e)
        })?;
        Ok(body)
    }
}

/// A journal segment and how much of it is still needed.
#[derive(Debug)]
struct Segment {
    file: Arc<File>,
    /// The file's length.
    bytes: u64,
    /// Messages whose current `Message` record is here, and those records' bytes.
    live: usize,
    live_bytes: u64,
}

#[derive(Debug)]
struct Stored {
    arrived: SystemTime,
    client: String,
    sender: Address,
    slots: Vec<Slot>,
    /// Entries not yet done.
    live: usize,
    /// The message's current record, whose last field is the body.
    record: Placement,
    body_len: u64,
    /// On hold: no entry is due (none is in `due`) until it is released.
    held: bool,
    extensions: Option<Arc<super::Extensions>>,
}

#[derive(Debug)]
struct Slot {
    state: RecipientState,
    /// Handed out by `take_due`; in memory only, so a restart makes it due again.
    in_flight: bool,
}

/// The due entries that are not in flight, by due time, then id and recipient.
type DueKey = (SystemTime, QueueId, u32);

/// Everything the queue knows about its live messages and its segments.
#[derive(Debug, Default)]
pub(crate) struct Index {
    messages: BTreeMap<QueueId, Stored>,
    due: BTreeSet<DueKey>,
    segments: BTreeMap<u64, Segment>,
    /// The segment being appended to.
    current: u64,
    /// The highest id in any record read or written, so that new ids come after it.
    highest_id: Option<QueueId>,
    /// Live entries in all: the sum of the messages' `live`.
    live: usize,
}

impl Index {
    /// Adds a segment (an existing one on recovery, or a new one), which becomes the current.
    pub(crate) fn add_segment(&mut self, seq: u64, file: Arc<File>, bytes: u64) {
        let segment = Segment {
            file,
            bytes,
            live: 0,
            live_bytes: 0,
        };
        self.segments.insert(seq, segment);
        self.current = seq;
    }

    /// Sets a segment's length: after an append, or after recovery cut a torn tail off it.
    pub(crate) fn set_segment_len(&mut self, seq: u64, bytes: u64) {
        if let Some(segment) = self.segments.get_mut(&seq) {
            segment.bytes = bytes;
        }
    }

    /// The highest id in any record applied so far.
    pub(crate) fn highest_id(&self) -> Option<QueueId> {
        self.highest_id
    }

    /// Applies a synced record; returns how many live entries it touched (0: none, as when an
    /// acknowledgement lost a race with a delete).
    pub(crate) fn apply(&mut self, record: Record, at: Placement) -> usize {
        self.highest_id = self.highest_id.max(Some(record.id()));
        match record {
            Record::Message(message) => self.put_message(message, at),
            Record::Done { id, recipient } => self.done(id, recipient),
            Record::Defer {
                id,
                recipient,
                attempts,
                next_attempt,
                error,
            } => self.deferred(id, recipient, attempts, next_attempt, error),
            Record::Delete { id } => self.remove(id),
            Record::Hold { id } => self.hold(id),
            Record::Release { id } => self.release(id),
            Record::Requeue { id, at } => self.requeue(id, at),
        }
    }

    /// A new message, or a known one copied forward by compaction: then only its record moved,
    /// and the state in memory is already what the copy says (or newer, in memory only).
    fn put_message(&mut self, message: MessageRecord, at: Placement) -> usize {
        self.count_record(at, true);
        if let Some(stored) = self.messages.get_mut(&message.id) {
            let old = std::mem::replace(&mut stored.record, at);
            let live = stored.live;
            self.count_record(old, false);
            return live;
        }
        let live = message.recipients.iter().filter(|r| !r.done).count();
        if live == 0 {
            // Never written; kept from counting a record no message holds.
            self.count_record(at, false);
            return 0;
        }
        for (index, recipient) in message.recipients.iter().enumerate() {
            if !recipient.done && !message.held {
                self.due
                    .insert((recipient.next_attempt, message.id, index as u32));
            }
        }
        let stored = Stored {
            arrived: message.arrived,
            client: message.client,
            sender: message.sender,
            slots: message.recipients.into_iter().map(Slot::new).collect(),
            live,
            record: at,
            body_len: message.body_len,
            held: message.held,
            extensions: message.extensions,
        };
        self.messages.insert(message.id, stored);
        self.live += live;
        live
    }

    fn count_record(&mut self, at: Placement, add: bool) {
        if let Some(segment) = self.segments.get_mut(&at.segment) {
            if add {
                segment.live += 1;
                segment.live_bytes += at.len;
            } else {
                segment.live -= 1;
                segment.live_bytes -= at.len;
            }
        }
    }

    fn done(&mut self, id: QueueId, recipient: u32) -> usize {
        let Some(stored) = self.messages.get_mut(&id) else {
            return 0;
        };
        let Some(slot) = stored.live_slot(recipient) else {
            return 0;
        };
        slot.state.done = true;
        self.due.remove(&(slot.state.next_attempt, id, recipient));
        stored.live -= 1;
        self.live -= 1;
        if stored.live == 0 {
            self.remove(id);
        }
        1
    }

    fn deferred(
        &mut self,
        id: QueueId,
        recipient: u32,
        attempts: u32,
        next_attempt: SystemTime,
        error: String,
    ) -> usize {
        let Some(stored) = self.messages.get_mut(&id) else {
            return 0;
        };
        let held = stored.held;
        let Some(slot) = stored.live_slot(recipient) else {
            return 0;
        };
        self.due.remove(&(slot.state.next_attempt, id, recipient));
        if !held {
            self.due.insert((next_attempt, id, recipient));
        }
        slot.state.attempts = attempts;
        slot.state.next_attempt = next_attempt;
        slot.state.last_error = Some(error);
        slot.in_flight = false;
        1
    }

    /// Removes a message with all its entries; returns how many were live.
    fn remove(&mut self, id: QueueId) -> usize {
        let Some(stored) = self.messages.remove(&id) else {
            return 0;
        };
        for (index, slot) in stored.slots.iter().enumerate() {
            self.due
                .remove(&(slot.state.next_attempt, id, index as u32));
        }
        self.count_record(stored.record, false);
        self.live -= stored.live;
        stored.live
    }

    /// Puts a message on hold: its waiting entries leave `due`, and one in flight does not come
    /// back to it when deferred. Returns how many entries are live.
    fn hold(&mut self, id: QueueId) -> usize {
        let Some(stored) = self.messages.get_mut(&id) else {
            return 0;
        };
        stored.held = true;
        for (index, slot) in stored.slots.iter().enumerate() {
            self.due
                .remove(&(slot.state.next_attempt, id, index as u32));
        }
        stored.live
    }

    /// Releases a held message: its waiting entries are due at their times again. Returns how
    /// many entries are live.
    fn release(&mut self, id: QueueId) -> usize {
        let Some(stored) = self.messages.get_mut(&id) else {
            return 0;
        };
        if stored.held {
            stored.held = false;
            for (index, slot) in stored.slots.iter().enumerate() {
                if !slot.state.done && !slot.in_flight {
                    self.due.insert((slot.state.next_attempt, id, index as u32));
                }
            }
        }
        stored.live
    }

    /// Starts every waiting entry of a message afresh, due at `at`, and ends a hold. An entry in
    /// flight is left to its attempt. Returns how many entries are live.
    fn requeue(&mut self, id: QueueId, at: SystemTime) -> usize {
        let Some(stored) = self.messages.get_mut(&id) else {
            return 0;
        };
        stored.held = false;
        for (index, slot) in stored.slots.iter_mut().enumerate() {
            if slot.state.done || slot.in_flight {
                continue;
            }
            let index = index as u32;
            self.due.remove(&(slot.state.next_attempt, id, index));
            slot.state.attempts = 0;
            slot.state.next_attempt = at;
            slot.state.last_error = None;
            self.due.insert((at, id, index));
        }
        stored.live
    }

    /// How many entries are live, without listing them.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The attempts so far of a live entry.
    pub(crate) fn attempts(&self, id: QueueId, recipient: u32) -> Option<u32> {
        let slot = self.messages.get(&id)?.slots.get(recipient as usize)?;
        (!slot.state.done).then_some(slot.state.attempts)
    }

    /// Whether the message has live entries.
    pub(crate) fn contains(&self, id: QueueId) -> bool {
        self.messages.contains_key(&id)
    }

    /// Where the message's body lies.
    pub(crate) fn body(&self, id: QueueId) -> Option<BodyRef> {
        let stored = self.messages.get(&id)?;
        let segment = self.segments.get(&stored.record.segment)?;
        Some(BodyRef {
            segment: stored.record.segment,
            file: Arc::clone(&segment.file),
            offset: stored.record.offset + stored.record.len - stored.body_len,
            len: stored.body_len,
        })
    }

    /// Hands out up to `max` entries due at `now`, longest-due first, and marks them in flight.
    pub(crate) fn take_due(&mut self, now: SystemTime, max: usize) -> Vec<Entry> {
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(&key) = self.due.first().filter(|key| key.0 <= now) else {
                break;
            };
            self.due.remove(&key);
            let (_, id, recipient) = key;
            if let Some(stored) = self.messages.get_mut(&id) {
                stored.slots[recipient as usize].in_flight = true;
                taken.push(stored.entry(id, recipient as usize));
            }
        }
        taken
    }

    /// How many entries are live.
    pub(crate) fn live_entries(&self) -> usize {
        self.messages.values().map(|stored| stored.live).sum()
    }

    /// Every live entry, in id and recipient order.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (&id, stored) in &self.messages {
            for (index, slot) in stored.slots.iter().enumerate() {
                if !slot.state.done {
                    entries.push(stored.entry(id, index));
                }
            }
        }
        entries
    }

    /// Deferred entries and the oldest arrival, without copying any entry.
    pub(crate) fn age(&self) -> super::QueueAge {
        let mut age = super::QueueAge::default();
        for stored in self.messages.values() {
            for slot in stored.slots.iter().filter(|slot| !slot.state.done) {
                age.add(stored.arrived, !slot.in_flight && slot.state.attempts > 0);
            }
        }
        age
    }

    /// Makes every deferred entry that is not in flight or held, and whose message id and
    /// recipient `which` picks, due at `now`; returns how many it made due.
    pub(crate) fn flush(
        &mut self,
        now: SystemTime,
        which: &dyn Fn(QueueId, &Address) -> bool,
    ) -> usize {
        let mut flushed = 0;
        for (&id, stored) in &mut self.messages {
            if stored.held {
                continue;
            }
            for (index, slot) in stored.slots.iter_mut().enumerate() {
                let state = &mut slot.state;
                if state.done || slot.in_flight || state.attempts == 0 {
                    continue;
                }
                if !which(id, &state.address) {
                    continue;
                }
                flushed += 1;
                self.due.remove(&(state.next_attempt, id, index as u32));
                state.next_attempt = state.next_attempt.min(now);
                self.due.insert((state.next_attempt, id, index as u32));
            }
        }
        flushed
    }
}

impl Index {
    /// The oldest segment, if no live message's record is in it and it is not the current one:
    /// it can be deleted. Only the oldest: a later segment may hold the `Done` records that keep
    /// an older segment's entries from coming back.
    pub(crate) fn dead_oldest(&self) -> Option<u64> {
        let (&seq, segment) = self.segments.first_key_value()?;
        (seq != self.current && segment.live == 0).then_some(seq)
    }

    pub(crate) fn remove_segment(&mut self, seq: u64) {
        self.segments.remove(&seq);
    }

    /// The oldest segment if it should be compacted: it is two or more segments behind the
    /// current one, it still holds live messages, and at least half of the journal is garbage.
    ///
    /// The garbage rule keeps compaction from chasing its own tail: copying live messages
    /// forward fills new segments, which would otherwise make the next one old enough in turn.
    pub(crate) fn compaction_candidate(&self) -> Option<u64> {
        let (&oldest, segment) = self.segments.first_key_value()?;
        let (total, live) = self
            .segments
            .values()
            .fold((0, 0), |(t, l), s| (t + s.bytes, l + s.live_bytes));
        let old_enough = oldest.saturating_add(2) <= self.current;
        (old_enough && segment.live > 0 && live * 2 <= total).then_some(oldest)
    }

    /// Snapshots live messages whose record is in `seq`, up to about `budget` bytes (at least
    /// one), as records to append, each with where its body is read from.
    pub(crate) fn compaction_chunk(&self, seq: u64, budget: u64) -> Vec<(MessageRecord, BodyRef)> {
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let in_segment = self
            .messages
            .iter()
            .filter(|(_, s)| s.record.segment == seq);
        for (&id, stored) in in_segment {
            if bytes >= budget {
                break;
            }
            bytes += stored.record.len;
            if let Some(body) = self.body(id) {
                chunk.push((stored.snapshot(id), body));
            }
        }
        chunk
    }
}

impl Stored {
    fn live_slot(&mut self, recipient: u32) -> Option<&mut Slot> {
        let slot = self.slots.get_mut(recipient as usize)?;
        (!slot.state.done).then_some(slot)
    }

    fn entry(&self, id: QueueId, index: usize) -> Entry {
        let slot = &self.slots[index];
        let state = match (slot.in_flight, self.held, slot.state.attempts) {
            (true, _, _) => EntryState::InFlight,
            (false, true, _) => EntryState::Held,
            (false, false, 0) => EntryState::Ready,
            (false, false, _) => EntryState::Deferred,
        };
        Entry {
            queue_id: id,
            recipient_index: index as u32,
            sender: self.sender.clone(),
            recipient: slot.state.address.clone(),
            size: self.body_len,
            arrived: self.arrived,
            attempts: slot.state.attempts,
            next_attempt: slot.state.next_attempt,
            last_error: slot.state.last_error.clone(),
            state,
            relay: None,
            retry: None,
            extensions: self.extensions.clone(),
        }
    }

    fn snapshot(&self, id: QueueId) -> MessageRecord {
        MessageRecord {
            id,
            arrived: self.arrived,
            client: self.client.clone(),
            sender: self.sender.clone(),
            recipients: self.slots.iter().map(|s| s.state.clone()).collect(),
            body_len: self.body_len,
            held: self.held,
            extensions: self.extensions.clone(),
        }
    }
}

impl Slot {
    fn new(state: RecipientState) -> Slot {
        Slot {
            state,
            in_flight: false,
        }
    }
}
