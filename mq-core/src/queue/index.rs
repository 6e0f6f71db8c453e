//! The in-memory state of the queue: every live message, its entries, where its body lies, and
//! what each journal segment still holds.
//!
//! Only [`Index::apply`] changes durable state, and only after the record it applies is synced
//! (by the writer) or read back (by recovery), in journal order: so the index is always what a
//! replay of the journal would give, plus what is kept in memory only (entries in flight, a
//! flush). Compaction relies on that to copy a message's state forward.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::hash::Hash;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mq_plugin_api::Address;

use super::error::QueueError;
use super::id::{from_micros, micros};
use super::record::{MessageRecord, RecipientState, Record};
use super::{Entry, EntryState, QueueId};
use crate::smtp::client::Shape;

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
    shape: Option<Shape>,
    /// When its message arrived, in microseconds since the epoch.
    arrived: u64,
}

/// How long after its arrival a body written by this process is taken to be in the page cache.
const RECENT: Duration = Duration::from_mins(1);

impl BodyRef {
    /// Whether the body arrived in this process less than a minute ago: the page cache holds
    /// it then, unless memory ran short meanwhile. A large body is scanned as it arrives, so
    /// its shape being known tells that it arrived in this process.
    pub(crate) fn recent(&self) -> bool {
        let age = micros(SystemTime::now()).saturating_sub(self.arrived);
        self.shape.is_some() && age < RECENT.as_micros() as u64
    }

    /// What delivery must know before it sends the body, when the body was scanned as it
    /// arrived; `None` after a restart.
    pub(crate) fn shape(&self) -> Option<Shape> {
        self.shape
    }

    /// The body's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Where the body starts in its segment's file.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Its segment's file.
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// A read of it that failed.
    pub(crate) fn error(&self, error: std::io::Error) -> QueueError {
        let action = format!("read a body from journal segment {}", self.segment);
        QueueError::io(action, error)
    }

    /// Reads the body with one positioned read. The file stays readable even if its segment
    /// is deleted meanwhile: the open handle keeps it.
    pub(crate) fn read(&self) -> Result<Vec<u8>, QueueError> {
        let mut body = vec![0; self.len as usize];
        self.file
            .read_exact_at(&mut body, self.offset)
            .map_err(|e| self.error(e))?;
        Ok(body)
    }

    /// [`read`](BodyRef::read) into a shared buffer, allocated once: delivery hands it to
    /// every transaction of the message without copying it again.
    pub(crate) fn read_shared(&self) -> Result<Arc<[u8]>, QueueError> {
        // A `TrustedLen` iterator collects into one allocation of the right size.
        let mut body: Arc<[u8]> = std::iter::repeat_n(0, self.len as usize).collect();
        let buffer = Arc::get_mut(&mut body).unwrap_or_else(|| unreachable!("just made"));
        self.file
            .read_exact_at(buffer, self.offset)
            .map_err(|e| self.error(e))?;
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

/// A live message as the index keeps it, small because a queue may hold millions: times in
/// microseconds since the epoch (the journal's unit), client and addresses shared with every
/// message that has the same (see [`Interned`]), one recipient without an allocation of its own.
#[derive(Debug)]
struct Stored {
    arrived: u64,
    /// A thin pointer: `Arc<String>` is half the size of `Arc<str>`.
    client: Arc<String>,
    sender: Arc<Address>,
    slots: Slots,
    /// The message's current record, whose last field is the body.
    record: Placement,
    body_len: u64,
    /// Entries not yet done.
    live: u32,
    /// On hold: no entry is due (none is in `due`) until it is released.
    held: bool,
    /// Known when the body arrived in this process (see [`MessageRecord::shape`]); it fits
    /// beside `live` and `held`, in what would be padding.
    shape: Option<Shape>,
    extensions: Option<Arc<super::Extensions>>,
}

/// A message's recipients: most messages have one.
#[derive(Debug)]
enum Slots {
    One(Slot),
    Many(Box<[Slot]>),
}

#[derive(Debug)]
struct Slot {
    address: Arc<Address>,
    /// The due time, in microseconds since the epoch.
    next_attempt: u64,
    /// Boxed: a thin pointer, since only deferred entries have one.
    #[expect(clippy::box_collection, reason = "8 bytes in every slot instead of 16")]
    last_error: Option<Box<String>>,
    attempts: u32,
    /// Delivered, or failed for good: the entry is gone.
    done: bool,
    /// Handed out by `take_due`; in memory only, so a restart makes it due again.
    in_flight: bool,
}

/// The due entries that are not in flight, by due time (microseconds since the epoch), then id
/// and recipient.
type DueKey = (u64, QueueId, u32);

/// One copy of each client name and address in use: messages from the same client, sender or
/// to the same recipient share it. A value leaves the table with the last message that holds it.
#[derive(Debug)]
struct Interned<T: ?Sized>(HashSet<Arc<T>>);

impl<T: ?Sized> Default for Interned<T> {
    fn default() -> Self {
        Interned(HashSet::new())
    }
}

impl<T: ?Sized + Hash + Eq> Interned<T> {
    fn get<V: Into<Arc<T>> + std::borrow::Borrow<T>>(&mut self, value: V) -> Arc<T> {
        if let Some(shared) = self.0.get(value.borrow()) {
            return Arc::clone(shared);
        }
        let shared: Arc<T> = value.into();
        self.0.insert(Arc::clone(&shared));
        shared
    }

    /// Drops the table's copy once `value` (about to be dropped) and the table are its last
    /// holders.
    fn release(&mut self, value: &Arc<T>) {
        if Arc::strong_count(value) == 2 {
            self.0.remove(&**value);
        }
    }
}

/// The live messages by id: a vector sorted by id, since new ids come in increasing order.
/// A removed message leaves a hole (`None`) until holes are half of it, when the vector is
/// compacted; lookups are binary searches.
///
/// A message whose id is below the vector's last one (a copy compaction moved forward, read
/// back on recovery after newer messages) waits in `early`, so that recovery never shifts the
/// vector; it joins the vector when the vector is next compacted.
#[derive(Debug, Default)]
struct Messages {
    slots: Vec<(QueueId, Option<Stored>)>,
    holes: usize,
    early: BTreeMap<QueueId, Stored>,
}

impl Messages {
    fn position(&self, id: QueueId) -> Result<usize, usize> {
        self.slots.binary_search_by_key(&id, |(id, _)| *id)
    }

    fn get(&self, id: QueueId) -> Option<&Stored> {
        match self.position(id) {
            Ok(at) => self.slots[at].1.as_ref(),
            Err(_) => self.early.get(&id),
        }
    }

    fn get_mut(&mut self, id: QueueId) -> Option<&mut Stored> {
        match self.position(id) {
            Ok(at) => self.slots[at].1.as_mut(),
            Err(_) => self.early.get_mut(&id),
        }
    }

    fn contains_key(&self, id: QueueId) -> bool {
        self.get(id).is_some()
    }

    /// Adds a message not in the map.
    fn insert(&mut self, id: QueueId, stored: Stored) {
        if self.slots.last().is_none_or(|(last, _)| *last < id) {
            self.slots.push((id, Some(stored)));
            return;
        }
        match self.position(id) {
            Ok(at) => {
                if self.slots[at].1.replace(stored).is_none() {
                    self.holes -= 1;
                }
            }
            Err(_) => {
                self.early.insert(id, stored);
            }
        }
    }

    fn remove(&mut self, id: QueueId) -> Option<Stored> {
        let Ok(at) = self.position(id) else {
            return self.early.remove(&id);
        };
        let stored = self.slots[at].1.take()?;
        self.holes += 1;
        if self.holes * 2 >= self.slots.len() {
            self.compact();
        }
        Some(stored)
    }

    /// Closes the holes and merges `early` in, in one pass.
    fn compact(&mut self) {
        let slots = std::mem::take(&mut self.slots);
        let early = std::mem::take(&mut self.early);
        let mut early = early.into_iter().peekable();
        let mut merged = Vec::with_capacity(slots.len() - self.holes + early.len());
        for (id, stored) in slots {
            while let Some(first) = early.next_if(|(first, _)| *first < id) {
                merged.push((first.0, Some(first.1)));
            }
            if stored.is_some() {
                merged.push((id, stored));
            }
        }
        merged.extend(early.map(|(id, stored)| (id, Some(stored))));
        self.slots = merged;
        self.holes = 0;
    }

    /// The messages in id order.
    fn iter(&self) -> impl Iterator<Item = (&QueueId, &Stored)> {
        let slots = self.slots.iter();
        let slots = slots.filter_map(|(id, stored)| Some((id, stored.as_ref()?)));
        in_order(slots, self.early.iter())
    }

    /// The messages in id order.
    fn iter_mut(&mut self) -> impl Iterator<Item = (&QueueId, &mut Stored)> {
        let slots = self.slots.iter_mut();
        let slots = slots.filter_map(|(id, stored)| Some((&*id, stored.as_mut()?)));
        in_order(slots, self.early.iter_mut())
    }

    fn values(&self) -> impl Iterator<Item = &Stored> {
        self.iter().map(|(_, stored)| stored)
    }
}

/// Merges two iterators sorted by id.
fn in_order<'a, T>(
    a: impl Iterator<Item = (&'a QueueId, T)>,
    b: impl Iterator<Item = (&'a QueueId, T)>,
) -> impl Iterator<Item = (&'a QueueId, T)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some((x, _)), Some((y, _))) if y < x => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// Everything the queue knows about its live messages and its segments.
#[derive(Debug, Default)]
pub(crate) struct Index {
    messages: Messages,
    due: BTreeSet<DueKey>,
    clients: Interned<String>,
    /// Senders and recipients.
    addresses: Interned<Address>,
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
        if let Some(stored) = self.messages.get_mut(message.id) {
            let old = std::mem::replace(&mut stored.record, at);
            let live = stored.live as usize;
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
                let due = micros(recipient.next_attempt);
                self.due.insert((due, message.id, index as u32));
            }
        }
        let mut recipients = message.recipients.into_iter().map(|state| Slot {
            address: self.addresses.get(state.address),
            next_attempt: micros(state.next_attempt),
            last_error: state.last_error.map(Box::new),
            attempts: state.attempts,
            done: state.done,
            in_flight: false,
        });
        let slots = match (recipients.next(), recipients.len()) {
            (Some(one), 0) => Slots::One(one),
            (first, _) => Slots::Many(first.into_iter().chain(recipients).collect()),
        };
        let stored = Stored {
            arrived: micros(message.arrived),
            client: self.clients.get(message.client),
            sender: self.addresses.get(message.sender),
            slots,
            live: live as u32,
            record: at,
            body_len: message.body_len,
            held: message.held,
            shape: message.shape,
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
        let Some(stored) = self.messages.get_mut(id) else {
            return 0;
        };
        let Some(slot) = stored.live_slot(recipient) else {
            return 0;
        };
        slot.done = true;
        self.due.remove(&(slot.next_attempt, id, recipient));
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
        let Some(stored) = self.messages.get_mut(id) else {
            return 0;
        };
        let held = stored.held;
        let Some(slot) = stored.live_slot(recipient) else {
            return 0;
        };
        let next_attempt = micros(next_attempt);
        self.due.remove(&(slot.next_attempt, id, recipient));
        if !held {
            self.due.insert((next_attempt, id, recipient));
        }
        slot.attempts = attempts;
        slot.next_attempt = next_attempt;
        slot.last_error = Some(Box::new(error));
        slot.in_flight = false;
        1
    }

    /// Removes a message with all its entries; returns how many were live.
    fn remove(&mut self, id: QueueId) -> usize {
        let Some(stored) = self.messages.remove(id) else {
            return 0;
        };
        for (index, slot) in stored.slots().iter().enumerate() {
            self.due.remove(&(slot.next_attempt, id, index as u32));
            self.addresses.release(&slot.address);
        }
        self.clients.release(&stored.client);
        self.addresses.release(&stored.sender);
        self.count_record(stored.record, false);
        self.live -= stored.live as usize;
        stored.live as usize
    }

    /// Puts a message on hold: its waiting entries leave `due`, and one in flight does not come
    /// back to it when deferred. Returns how many entries are live.
    fn hold(&mut self, id: QueueId) -> usize {
        let Some(stored) = self.messages.get_mut(id) else {
            return 0;
        };
        stored.held = true;
        for (index, slot) in stored.slots().iter().enumerate() {
            self.due.remove(&(slot.next_attempt, id, index as u32));
        }
        stored.live as usize
    }

    /// Releases a held message: its waiting entries are due at their times again. Returns how
    /// many entries are live.
    fn release(&mut self, id: QueueId) -> usize {
        let Some(stored) = self.messages.get_mut(id) else {
            return 0;
        };
        if stored.held {
            stored.held = false;
            for (index, slot) in stored.slots().iter().enumerate() {
                if !slot.done && !slot.in_flight {
                    self.due.insert((slot.next_attempt, id, index as u32));
                }
            }
        }
        stored.live as usize
    }

    /// Starts every waiting entry of a message afresh, due at `at`, and ends a hold. An entry in
    /// flight is left to its attempt. Returns how many entries are live.
    fn requeue(&mut self, id: QueueId, at: SystemTime) -> usize {
        let Some(stored) = self.messages.get_mut(id) else {
            return 0;
        };
        stored.held = false;
        let at = micros(at);
        for (index, slot) in stored.slots_mut().iter_mut().enumerate() {
            if slot.done || slot.in_flight {
                continue;
            }
            let index = index as u32;
            self.due.remove(&(slot.next_attempt, id, index));
            slot.attempts = 0;
            slot.next_attempt = at;
            slot.last_error = None;
            self.due.insert((at, id, index));
        }
        stored.live as usize
    }

    /// How many entries are live, without listing them.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The attempts so far of a live entry.
    pub(crate) fn attempts(&self, id: QueueId, recipient: u32) -> Option<u32> {
        let slot = self.messages.get(id)?.slots().get(recipient as usize)?;
        (!slot.done).then_some(slot.attempts)
    }

    /// Whether the message has live entries.
    pub(crate) fn contains(&self, id: QueueId) -> bool {
        self.messages.contains_key(id)
    }

    /// Where the message's body lies.
    pub(crate) fn body(&self, id: QueueId) -> Option<BodyRef> {
        let stored = self.messages.get(id)?;
        let segment = self.segments.get(&stored.record.segment)?;
        Some(BodyRef {
            segment: stored.record.segment,
            file: Arc::clone(&segment.file),
            offset: stored.record.offset + stored.record.len - stored.body_len,
            len: stored.body_len,
            shape: stored.shape,
            arrived: stored.arrived,
        })
    }

    /// Hands out up to `max` entries due at `now`, longest-due first, and marks them in flight.
    pub(crate) fn take_due(&mut self, now: SystemTime, max: usize) -> Vec<Entry> {
        let now = micros(now);
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(&key) = self.due.first().filter(|key| key.0 <= now) else {
                break;
            };
            self.due.remove(&key);
            let (_, id, recipient) = key;
            if let Some(stored) = self.messages.get_mut(id) {
                if let Some(slot) = stored.slots_mut().get_mut(recipient as usize) {
                    slot.in_flight = true;
                }
                taken.push(stored.entry(id, recipient as usize));
            }
        }
        taken
    }

    /// How many entries are live.
    pub(crate) fn live_entries(&self) -> usize {
        self.messages
            .values()
            .map(|stored| stored.live as usize)
            .sum()
    }

    /// Every live entry, in id and recipient order.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::new();
        for (&id, stored) in self.messages.iter() {
            for (index, slot) in stored.slots().iter().enumerate() {
                if !slot.done {
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
            for slot in stored.slots().iter().filter(|slot| !slot.done) {
                age.add(
                    from_micros(stored.arrived),
                    !slot.in_flight && slot.attempts > 0,
                );
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
        let now = micros(now);
        let mut flushed = 0;
        for (&id, stored) in self.messages.iter_mut() {
            if stored.held {
                continue;
            }
            for (index, slot) in stored.slots_mut().iter_mut().enumerate() {
                if slot.done || slot.in_flight || slot.attempts == 0 {
                    continue;
                }
                if !which(id, &slot.address) {
                    continue;
                }
                flushed += 1;
                self.due.remove(&(slot.next_attempt, id, index as u32));
                slot.next_attempt = slot.next_attempt.min(now);
                self.due.insert((slot.next_attempt, id, index as u32));
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
    fn slots(&self) -> &[Slot] {
        match &self.slots {
            Slots::One(slot) => std::slice::from_ref(slot),
            Slots::Many(slots) => slots,
        }
    }

    fn slots_mut(&mut self) -> &mut [Slot] {
        match &mut self.slots {
            Slots::One(slot) => std::slice::from_mut(slot),
            Slots::Many(slots) => slots,
        }
    }

    fn live_slot(&mut self, recipient: u32) -> Option<&mut Slot> {
        let slot = self.slots_mut().get_mut(recipient as usize)?;
        (!slot.done).then_some(slot)
    }

    fn entry(&self, id: QueueId, index: usize) -> Entry {
        let slot = &self.slots()[index];
        let state = match (slot.in_flight, self.held, slot.attempts) {
            (true, _, _) => EntryState::InFlight,
            (false, true, _) => EntryState::Held,
            (false, false, 0) => EntryState::Ready,
            (false, false, _) => EntryState::Deferred,
        };
        Entry {
            queue_id: id,
            recipient_index: index as u32,
            sender: Address::clone(&self.sender),
            recipient: Address::clone(&slot.address),
            size: self.body_len,
            arrived: from_micros(self.arrived),
            attempts: slot.attempts,
            next_attempt: from_micros(slot.next_attempt),
            last_error: slot.last_error.as_deref().cloned(),
            state,
            relay: None,
            retry: None,
            extensions: self.extensions.clone(),
        }
    }

    fn snapshot(&self, id: QueueId) -> MessageRecord {
        MessageRecord {
            id,
            arrived: from_micros(self.arrived),
            client: String::clone(&self.client),
            sender: Address::clone(&self.sender),
            recipients: self.slots().iter().map(Slot::state).collect(),
            body_len: self.body_len,
            held: self.held,
            extensions: self.extensions.clone(),
            shape: self.shape,
        }
    }
}

impl Slot {
    fn state(&self) -> RecipientState {
        RecipientState {
            address: Address::clone(&self.address),
            done: self.done,
            attempts: self.attempts,
            next_attempt: from_micros(self.next_attempt),
            last_error: self.last_error.as_deref().cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn message(id: u64, client: &str, sender: &str, recipients: &[&str]) -> Record {
        let address = |text: &str| text.parse::<Address>().expect("a valid address");
        Record::Message(MessageRecord {
            id: QueueId::from_u64(id),
            arrived: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + id),
            client: client.into(),
            sender: address(sender),
            recipients: recipients
                .iter()
                .map(|text| RecipientState {
                    address: address(text),
                    done: false,
                    attempts: 0,
                    next_attempt: UNIX_EPOCH + Duration::from_micros(id),
                    last_error: None,
                })
                .collect(),
            body_len: 10,
            held: false,
            extensions: None,
            shape: None,
        })
    }

    fn index() -> Index {
        let mut index = Index::default();
        let file = tempfile::tempfile().expect("a temporary segment file");
        index.add_segment(1, Arc::new(file), 0);
        index
    }

    fn apply(index: &mut Index, record: Record) -> usize {
        let at = Placement {
            segment: 1,
            offset: 0,
            len: 100,
        };
        index.apply(record, at)
    }

    fn listed(index: &Index) -> Vec<(u64, u32)> {
        let entries = index.entries();
        let ids = entries.iter();
        ids.map(|e| (e.queue_id.as_u64(), e.recipient_index))
            .collect()
    }

    #[test]
    fn messages_read_out_of_id_order_are_listed_in_id_order_and_removed_by_id() {
        let mut index = index();
        for id in [10, 30, 20, 5] {
            let recipients = ["a@example.net", "b@example.net"];
            assert_eq!(
                apply(&mut index, message(id, "c", "s@example.org", &recipients)),
                2
            );
        }
        let all = [
            (5, 0),
            (5, 1),
            (10, 0),
            (10, 1),
            (20, 0),
            (20, 1),
            (30, 0),
            (30, 1),
        ];
        assert_eq!(listed(&index), all);
        let id = |id| QueueId::from_u64(id);
        assert_eq!(apply(&mut index, Record::Delete { id: id(10) }), 2);
        assert_eq!(apply(&mut index, Record::Delete { id: id(10) }), 0);
        assert!(!index.contains(id(10)));
        let done = |recipient| Record::Done {
            id: id(20),
            recipient,
        };
        assert_eq!(apply(&mut index, done(0)), 1);
        assert_eq!(apply(&mut index, done(1)), 1);
        assert!(!index.contains(id(20)));
        // 5 and 20 came below the highest id and waited beside the vector; removing 10 made
        // half of it holes, which merged them in. 25 waits beside it in turn.
        assert!(index.messages.early.is_empty());
        assert_eq!(
            apply(&mut index, message(25, "c", "s@example.org", &["a@x.test"])),
            1
        );
        assert_eq!(index.messages.early.len(), 1);
        assert_eq!(listed(&index), [(5, 0), (5, 1), (25, 0), (30, 0), (30, 1)]);
        assert_eq!(index.live(), 5);
        assert_eq!(index.live_entries(), 5);
        assert_eq!(index.attempts(id(25), 0), Some(0));
        let due = index.take_due(UNIX_EPOCH + Duration::from_micros(25), 10);
        let due: Vec<_> = due.iter().map(|e| e.queue_id.as_u64()).collect();
        assert_eq!(due, [5, 5, 25]);
    }

    #[test]
    fn a_client_or_address_is_kept_once_and_goes_with_its_last_message() {
        let mut index = index();
        let rcpts = ["user@remote.test"];
        apply(
            &mut index,
            message(1, "client", "sender@client.test", &rcpts),
        );
        apply(
            &mut index,
            message(2, "client", "sender@client.test", &rcpts),
        );
        apply(&mut index, message(3, "other", "user@remote.test", &rcpts));
        assert_eq!(index.clients.0.len(), 2);
        assert_eq!(index.addresses.0.len(), 2);
        let entries = index.entries();
        assert_eq!(entries[0].sender.as_str(), "sender@client.test");
        assert_eq!(entries[0].recipient.as_str(), "user@remote.test");
        let id = QueueId::from_u64;
        apply(&mut index, Record::Delete { id: id(1) });
        assert_eq!((index.clients.0.len(), index.addresses.0.len()), (2, 2));
        apply(&mut index, Record::Delete { id: id(3) });
        assert_eq!((index.clients.0.len(), index.addresses.0.len()), (1, 2));
        apply(
            &mut index,
            Record::Done {
                id: id(2),
                recipient: 0,
            },
        );
        assert_eq!((index.clients.0.len(), index.addresses.0.len()), (0, 0));
    }
}
