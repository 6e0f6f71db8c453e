//! The embedded queue: its trait behaviour, recovery after a restart, a torn or damaged journal,
//! segment deletion and compaction, concurrency, and a real `kill -9`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mq_core::queue::Extensions;
use mq_core::queue::{
    AckResult, EmbeddedOptions, EmbeddedQueue, Entry, EntryState, NewMessage, Queue, QueueError,
    QueueId, Surgery, all_messages,
};
use mq_core::smtp::{Notify, RcptParams, Ret};
use mq_plugin_api::Address;
use smol::block_on;
use tempfile::TempDir;

fn address(text: &str) -> Address {
    text.parse().unwrap()
}

fn message(recipients: &[&str], body: &[u8]) -> NewMessage {
    NewMessage {
        sender: address("sender@example.org"),
        recipients: recipients.iter().map(|r| address(r)).collect(),
        body: body.to_vec(),
        client: "client.example[192.0.2.1]".into(),
        extensions: None,
    }
}

fn open(dir: &Path) -> EmbeddedQueue {
    EmbeddedQueue::open(dir, EmbeddedOptions::default()).unwrap()
}

/// Segments of 4 KiB, so that a few messages rotate the journal.
fn open_small(dir: &Path) -> EmbeddedQueue {
    let options = EmbeddedOptions {
        segment_size: 4096,
        ..EmbeddedOptions::default()
    };
    EmbeddedQueue::open(dir, options).unwrap()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
}

/// Where each record of a segment starts, read from the length fields of the framing.
fn record_offsets(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).unwrap();
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        offsets.push(at as u64);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        at += 8 + len as usize;
    }
    offsets
}

fn later(seconds: u64) -> SystemTime {
    SystemTime::now() + Duration::from_secs(seconds)
}

fn ids(entries: &[Entry]) -> Vec<(QueueId, u32)> {
    entries
        .iter()
        .map(|e| (e.queue_id, e.recipient_index))
        .collect()
}

#[test]
fn an_enqueued_message_lists_one_entry_per_recipient() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let body = b"Subject: hi\r\n\r\nhello\r\n";
    let id = block_on(queue.enqueue(message(&["a@example.net", "b@example.com"], body))).unwrap();
    let entries = queue.list();
    assert_eq!(ids(&entries), vec![(id, 0), (id, 1)]);
    for (entry, recipient) in entries.iter().zip(["a@example.net", "b@example.com"]) {
        assert_eq!(entry.sender, address("sender@example.org"));
        assert_eq!(entry.recipient, address(recipient));
        assert_eq!(entry.size, body.len() as u64);
        assert_eq!(entry.attempts, 0);
        assert_eq!(entry.state, EntryState::Ready);
        assert_eq!(entry.last_error, None);
    }
}

#[test]
fn the_count_follows_the_live_entries_through_acks_deletes_and_a_restart() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let counted = |queue: &EmbeddedQueue| (queue.count(), queue.list().len());
    assert_eq!(counted(&queue), (0, 0));
    let three = ["a@example.net", "b@example.net", "c@example.net"];
    let first = block_on(queue.enqueue(message(&three, b"x"))).unwrap();
    block_on(queue.enqueue(message(&["d@example.net"], b"y"))).unwrap();
    let deleted = block_on(queue.enqueue(message(&three[..2], b"z"))).unwrap();
    assert_eq!(counted(&queue), (6, 6));
    let taken = block_on(queue.take_due(SystemTime::now(), 2)).unwrap();
    assert!(taken.iter().all(|entry| entry.queue_id == first));
    block_on(queue.ack(&taken[0], AckResult::Delivered)).unwrap();
    let later = SystemTime::now() + Duration::from_hours(1);
    block_on(queue.defer(&taken[1], later, "451 try later".into())).unwrap();
    assert_eq!(counted(&queue), (5, 5));
    assert_eq!(block_on(queue.delete(&deleted)).unwrap(), 2);
    assert_eq!(counted(&queue), (3, 3));
    drop(queue);
    let queue = open(dir.path());
    assert_eq!(counted(&queue), (3, 3));
}

#[test]
fn the_body_comes_back_byte_for_byte() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let id = block_on(queue.enqueue(message(&["a@example.net"], &body))).unwrap();
    assert_eq!(&*block_on(queue.body(&id)).unwrap(), &body[..]);
    drop(queue);
    let queue = open(dir.path());
    assert_eq!(&*block_on(queue.body(&id)).unwrap(), &body[..]);
}

/// The body a delivery asks for right after the enqueue (kept from the write) and the one it
/// asks for again (read back from the journal) are the message's, and a deleted message has
/// none, whichever way it would have come.
#[test]
fn the_body_asked_for_at_once_and_again_is_the_same_and_a_deleted_message_has_none() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let id = block_on(queue.enqueue(message(&["a@example.net"], &body))).unwrap();
    assert_eq!(&*block_on(queue.body(&id)).unwrap(), &body[..]);
    assert_eq!(&*block_on(queue.body(&id)).unwrap(), &body[..]);

    let deleted = block_on(queue.enqueue(message(&["b@example.net"], b"gone"))).unwrap();
    block_on(queue.delete(&deleted)).unwrap();
    assert!(matches!(
        block_on(queue.body(&deleted)),
        Err(QueueError::NotFound(_))
    ));
    let taken = block_on(queue.take_due(SystemTime::now(), 10)).unwrap();
    let done = block_on(queue.enqueue(message(&["c@example.net"], b"done"))).unwrap();
    let entry = block_on(queue.take_due(SystemTime::now(), 10)).unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(entry[0].queue_id, done);
    block_on(queue.ack(&entry[0], AckResult::Delivered)).unwrap();
    assert!(matches!(
        block_on(queue.body(&done)),
        Err(QueueError::NotFound(_))
    ));
}

/// A body larger than a piece is left in the journal for delivery to read a piece at a time,
/// and reads back whole either way; a small one is handed over in memory.
#[test]
fn a_large_body_is_opened_where_it_lies_and_read_in_pieces() {
    use mq_core::queue::PIECE;
    use mq_core::smtp::client::{Pieces, Shape};

    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let mut body: Vec<u8> = b"Subject: large\r\n\r\n".to_vec();
    while body.len() < PIECE * 3 + 100 {
        body.extend_from_slice(b"a line of text, then another\r\n");
    }
    body.extend_from_slice("caf\u{e9} at the very end\r\n".as_bytes());
    let large = block_on(queue.enqueue(message(&["a@example.net"], &body))).unwrap();
    let small = block_on(queue.enqueue(message(&["b@example.net"], b"small\r\n"))).unwrap();

    let opened = block_on(queue.open_body(&small)).unwrap();
    assert_eq!(opened.in_memory().map(|b| &b[..]), Some(&b"small\r\n"[..]));
    let opened = block_on(queue.open_body(&large)).unwrap();
    assert!(opened.in_memory().is_none(), "{opened:?}");
    assert_eq!(opened.len(), body.len() as u64);
    assert_eq!(&*block_on(opened.load()).unwrap(), &body[..]);
    // The scan reads it all: the 8-bit byte is in its last piece.
    assert_eq!(block_on(opened.shape()).unwrap(), Shape::of(&body));
    assert!(block_on(opened.shape()).unwrap().eight_bit);
    let mut read = Vec::new();
    let mut buffer = Vec::new();
    while (read.len() as u64) < opened.len() {
        buffer = block_on(opened.piece(read.len() as u64, buffer)).unwrap();
        assert!(
            !buffer.is_empty() && buffer.len() <= PIECE,
            "{}",
            buffer.len()
        );
        read.extend_from_slice(&buffer);
    }
    assert_eq!(read, body);

    // After a restart it lies in the journal just the same.
    drop(queue);
    let queue = open(dir.path());
    let opened = block_on(queue.open_body(&large)).unwrap();
    assert!(opened.in_memory().is_none());
    assert_eq!(&*block_on(opened.load()).unwrap(), &body[..]);
}

/// A large body is scanned for its shape as it arrives, so delivery does not read it through
/// for that; after a restart the shape is read from the journal.
#[test]
fn a_large_body_s_shape_is_known_from_its_arrival_and_read_after_a_restart() {
    use std::os::unix::fs::FileExt;

    use mq_core::queue::PIECE;
    use mq_core::smtp::client::Shape;

    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    // 8-bit, a line that starts with a dot, and a line ending last: in every field of its
    // shape unlike a run of letters.
    let mut body = "Subject: caf\u{e9}\r\n\r\n.a dot first\r\n"
        .as_bytes()
        .to_vec();
    while body.len() < PIECE * 2 {
        body.extend_from_slice(b"a line of text\r\n");
    }
    let shape = Shape::of(&body);
    assert!(shape.eight_bit && !shape.as_is && shape.ends_with_newline);
    let id = block_on(queue.enqueue(message(&["a@example.net"], &body))).unwrap();

    // The body's bytes in the journal become letters: a scan now would find a shape of theirs.
    let segment = segments(dir.path()).remove(0);
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    let journal = fs::read(&segment).unwrap();
    let at = journal
        .windows(body.len())
        .position(|window| window == &body[..])
        .expect("the body is in the segment") as u64;
    let letters = vec![b'a'; body.len()];
    file.write_all_at(&letters, at).unwrap();
    let opened = block_on(queue.open_body(&id)).unwrap();
    assert_eq!(&*block_on(opened.load()).unwrap(), &letters[..]);
    assert_eq!(block_on(opened.shape()).unwrap(), shape);
    assert_ne!(Shape::of(&letters), shape);

    // After a restart it is read from the journal.
    file.write_all_at(&body, at).unwrap();
    drop(queue);
    let queue = open(dir.path());
    let opened = block_on(queue.open_body(&id)).unwrap();
    assert!(opened.in_memory().is_none());
    assert_eq!(block_on(opened.shape()).unwrap(), shape);
    file.write_all_at(&letters, at).unwrap();
    let opened = block_on(queue.open_body(&id)).unwrap();
    assert_eq!(block_on(opened.shape()).unwrap(), Shape::of(&letters));
}

#[test]
fn take_due_hands_out_each_due_entry_once() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let first =
        block_on(queue.enqueue(message(&["a@example.net", "b@example.net"], b"1"))).unwrap();
    let second = block_on(queue.enqueue(message(&["c@example.net"], b"2"))).unwrap();
    let now = SystemTime::now();
    let taken = block_on(queue.take_due(now, 2)).unwrap();
    assert_eq!(ids(&taken), vec![(first, 0), (first, 1)]);
    assert!(taken.iter().all(|e| e.state == EntryState::InFlight));
    let rest = block_on(queue.take_due(now, 10)).unwrap();
    assert_eq!(ids(&rest), vec![(second, 0)]);
    assert!(
        block_on(queue.take_due(later(3600), 10))
            .unwrap()
            .is_empty()
    );
    assert!(queue.list().iter().all(|e| e.state == EntryState::InFlight));
}

#[test]
fn deferred_entries_wait_for_their_time_longest_due_first() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    block_on(queue.enqueue(message(&["a@example.net", "b@example.net"], b"x"))).unwrap();
    let now = SystemTime::now();
    let taken = block_on(queue.take_due(now, 10)).unwrap();
    block_on(queue.defer(&taken[0], now + Duration::from_secs(20), "421 a".into())).unwrap();
    block_on(queue.defer(&taken[1], now + Duration::from_secs(10), "421 b".into())).unwrap();
    assert!(block_on(queue.take_due(now, 10)).unwrap().is_empty());
    let at = now + Duration::from_secs(15);
    assert_eq!(
        ids(&block_on(queue.take_due(at, 10)).unwrap()),
        vec![ids(&taken)[1]]
    );
    let at = now + Duration::from_secs(25);
    assert_eq!(
        ids(&block_on(queue.take_due(at, 10)).unwrap()),
        vec![ids(&taken)[0]]
    );
}

#[test]
fn defer_counts_attempts_and_survives_a_restart() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    block_on(queue.enqueue(message(&["a@example.net"], b"x"))).unwrap();
    let until = later(600);
    for attempt in 1..=2 {
        let entry = block_on(queue.take_due(until, 1)).unwrap().remove(0);
        let error = format!("451 4.3.0 attempt {attempt}");
        block_on(queue.defer(&entry, until, error)).unwrap();
    }
    let check = |entry: &Entry| {
        assert_eq!(entry.attempts, 2);
        assert_eq!(entry.state, EntryState::Deferred);
        assert_eq!(entry.last_error.as_deref(), Some("451 4.3.0 attempt 2"));
        // Times are kept to the microsecond.
        let off = entry
            .next_attempt
            .duration_since(until)
            .unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_micros(1));
    };
    check(&queue.list()[0]);
    drop(queue);
    check(&open(dir.path()).list()[0]);
}

#[test]
fn ack_removes_the_entry_and_the_message_goes_with_its_last() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let id = block_on(queue.enqueue(message(&["a@example.net", "b@example.net"], b"x"))).unwrap();
    let kept = block_on(queue.enqueue(message(&["c@example.net"], b"y"))).unwrap();
    let taken = block_on(queue.take_due(SystemTime::now(), 2)).unwrap();
    block_on(queue.ack(&taken[0], AckResult::Delivered)).unwrap();
    assert_eq!(ids(&queue.list()), vec![(id, 1), (kept, 0)]);
    drop(queue);
    let queue = open(dir.path());
    assert_eq!(ids(&queue.list()), vec![(id, 1), (kept, 0)]);
    let failed = AckResult::Failed {
        reason: "550 5.1.1 no such user".into(),
    };
    block_on(queue.ack(&taken[1], failed.clone())).unwrap();
    assert_eq!(ids(&queue.list()), vec![(kept, 0)]);
    assert!(matches!(
        block_on(queue.body(&id)),
        Err(QueueError::NotFound(_))
    ));
    assert!(matches!(
        block_on(queue.ack(&taken[1], failed)),
        Err(QueueError::NotFound(missing)) if missing == id
    ));
    drop(queue);
    assert_eq!(ids(&open(dir.path()).list()), vec![(kept, 0)]);
}

/// The journal's syncs so far.
fn syncs(queue: &EmbeddedQueue) -> u64 {
    queue.health().syncs
}

/// Waits until the journal has synced more than `than` times; panics after a minute.
fn wait_for_a_sync(queue: &EmbeddedQueue, than: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while syncs(queue) <= than {
        assert!(
            std::time::Instant::now() < deadline,
            "no sync came after {than}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    syncs(queue)
}

/// What a crash of mq (not of the machine) leaves: the journal's segments as they are now,
/// opened in a directory of their own.
fn as_a_crash_leaves_it(dir: &Path) -> (TempDir, EmbeddedQueue) {
    let copy = TempDir::new().unwrap();
    for segment in segments(dir) {
        fs::copy(&segment, copy.path().join(segment.file_name().unwrap())).unwrap();
    }
    let queue = open(copy.path());
    (copy, queue)
}

/// A queue whose delivery results wait at most `sync_later` for a sync.
fn open_syncing_later(dir: &Path, sync_later: Duration) -> EmbeddedQueue {
    let options = EmbeddedOptions {
        sync_later,
        ..EmbeddedOptions::default()
    };
    EmbeddedQueue::open(dir, options).unwrap()
}

#[test]
fn a_delivery_result_is_written_before_its_answer_and_synced_with_the_next_message() {
    let dir = TempDir::new().unwrap();
    // No sync comes from the wait within the test, however slow the machine.
    let queue = open_syncing_later(dir.path(), Duration::from_hours(1));
    let id = block_on(queue.enqueue(message(
        &["a@example.net", "b@example.net", "c@example.net"],
        b"x",
    )))
    .unwrap();
    let taken = block_on(queue.take_due(SystemTime::now(), 3)).unwrap();
    let before = syncs(&queue);
    assert!(before >= 1, "a new message is synced before its answer");

    // Answered once written, without a sync of its own...
    block_on(queue.ack(&taken[0], AckResult::Delivered)).unwrap();
    block_on(queue.defer(&taken[1], later(60), "451 4.3.0 try again".into())).unwrap();
    assert_eq!(syncs(&queue), before);
    // ...and on disk, as a crash of mq would leave it.
    let (_copy, crashed) = as_a_crash_leaves_it(dir.path());
    let entries = crashed.list();
    assert_eq!(ids(&entries), vec![(id, 1), (id, 2)]);
    assert_eq!(entries[0].attempts, 1, "{entries:?}");
    drop(crashed);

    // The next message's sync takes them along.
    block_on(queue.ack(&taken[2], AckResult::Delivered)).unwrap();
    assert_eq!(syncs(&queue), before);
    let kept = block_on(queue.enqueue(message(&["d@example.net"], b"y"))).unwrap();
    assert_eq!(syncs(&queue), before + 1);
    // An administrator's change is synced before its answer, as a new message is.
    block_on(queue.hold(&kept)).unwrap();
    assert_eq!(syncs(&queue), before + 2);
}

#[test]
fn a_delivery_result_is_synced_soon_when_no_message_comes() {
    let dir = TempDir::new().unwrap();
    let sync_later = Duration::from_millis(50);
    let queue = open_syncing_later(dir.path(), sync_later);
    block_on(queue.enqueue(message(&["a@example.net"], b"x"))).unwrap();
    let taken = block_on(queue.take_due(SystemTime::now(), 1)).unwrap();
    let before = syncs(&queue);
    block_on(queue.ack(&taken[0], AckResult::Delivered)).unwrap();
    let after = wait_for_a_sync(&queue, before);
    assert_eq!(after, before + 1);
    std::thread::sleep(sync_later * 4);
    assert_eq!(syncs(&queue), after, "nothing was left to sync");
}

#[test]
fn delete_removes_every_entry_of_a_message() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let recipients = ["a@example.net", "b@example.net", "c@example.net"];
    let id = block_on(queue.enqueue(message(&recipients, b"x"))).unwrap();
    let kept = block_on(queue.enqueue(message(&["d@example.net"], b"y"))).unwrap();
    let taken = block_on(queue.take_due(SystemTime::now(), 1)).unwrap();
    block_on(queue.ack(&taken[0], AckResult::Delivered)).unwrap();
    assert_eq!(block_on(queue.delete(&id)).unwrap(), 2);
    assert_eq!(ids(&queue.list()), vec![(kept, 0)]);
    assert!(matches!(
        block_on(queue.delete(&id)),
        Err(QueueError::NotFound(_))
    ));
    drop(queue);
    assert_eq!(ids(&open(dir.path()).list()), vec![(kept, 0)]);
}

#[test]
fn flush_makes_deferred_entries_due_now() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    block_on(queue.enqueue(message(&["a@example.net"], b"x"))).unwrap();
    let entry = block_on(queue.take_due(SystemTime::now(), 1))
        .unwrap()
        .remove(0);
    block_on(queue.defer(&entry, later(3600), "421 busy".into())).unwrap();
    assert!(
        block_on(queue.take_due(SystemTime::now(), 1))
            .unwrap()
            .is_empty()
    );
    queue.flush();
    let due = block_on(queue.take_due(SystemTime::now(), 1)).unwrap();
    assert_eq!(ids(&due), ids(&[entry]));
    assert_eq!(due[0].attempts, 1);
}

#[test]
fn a_held_message_is_never_due_until_released_even_across_restarts() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let held = block_on(queue.enqueue(message(&["a@example.net", "b@example.net"], b"x"))).unwrap();
    let other = block_on(queue.enqueue(message(&["c@example.net"], b"y"))).unwrap();
    assert_eq!(block_on(queue.hold(&held)).unwrap(), 2);
    let taken = block_on(queue.take_due(later(86_400), 10)).unwrap();
    assert_eq!(ids(&taken), vec![(other, 0)]);
    assert!(
        queue
            .list()
            .iter()
            .filter(|e| e.queue_id == held)
            .all(|e| e.state == EntryState::Held)
    );
    // A flush does not reach a held message.
    queue.flush();
    assert!(
        block_on(queue.take_due(later(86_400), 10))
            .unwrap()
            .is_empty()
    );
    drop(queue);

    let queue = open(dir.path());
    assert!(
        queue
            .list()
            .iter()
            .filter(|e| e.queue_id == held)
            .all(|e| e.state == EntryState::Held)
    );
    let due: Vec<_> = block_on(queue.take_due(later(86_400), 10)).unwrap();
    assert_eq!(
        ids(&due),
        vec![(other, 0)],
        "only the other message is due after a restart"
    );
    assert_eq!(block_on(queue.release(&held)).unwrap(), 2);
    let due = block_on(queue.take_due(SystemTime::now(), 10)).unwrap();
    assert_eq!(ids(&due), vec![(held, 0), (held, 1)]);
    drop(queue);
    let queue = open(dir.path());
    assert!(queue.list().iter().all(|e| e.state == EntryState::Ready));
    let missing = QueueId::from_u64(1);
    assert!(matches!(
        block_on(queue.hold(&missing)),
        Err(QueueError::NotFound(_))
    ));
}

#[test]
fn an_entry_in_flight_when_held_is_not_due_again_when_deferred() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let id = block_on(queue.enqueue(message(&["a@example.net"], b"x"))).unwrap();
    let taken = block_on(queue.take_due(SystemTime::now(), 1)).unwrap();
    block_on(queue.hold(&id)).unwrap();
    block_on(queue.defer(&taken[0], SystemTime::now(), "421 later".into())).unwrap();
    assert!(
        block_on(queue.take_due(later(86_400), 1))
            .unwrap()
            .is_empty()
    );
    assert_eq!(queue.list()[0].state, EntryState::Held);
}

#[test]
fn requeue_starts_entries_afresh_and_ends_a_hold() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let id = block_on(queue.enqueue(message(&["a@example.net"], b"x"))).unwrap();
    let taken = block_on(queue.take_due(SystemTime::now(), 1)).unwrap();
    block_on(queue.defer(&taken[0], later(86_400), "421 later".into())).unwrap();
    block_on(queue.hold(&id)).unwrap();
    assert_eq!(block_on(queue.requeue(&id)).unwrap(), 1);
    drop(queue);
    let queue = open(dir.path());
    let entry = &queue.list()[0];
    assert_eq!(
        (entry.state, entry.attempts, entry.last_error.clone()),
        (EntryState::Ready, 0, None)
    );
    assert_eq!(
        block_on(queue.take_due(SystemTime::now(), 1))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn flush_where_makes_only_the_picked_entries_due() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    block_on(queue.enqueue(message(&["a@one.example", "b@two.example"], b"x"))).unwrap();
    for entry in block_on(queue.take_due(SystemTime::now(), 2)).unwrap() {
        block_on(queue.defer(&entry, later(86_400), "421 later".into())).unwrap();
    }
    assert_eq!(queue.flush_where(&|_, to| to.domain_is("TWO.example")), 1);
    let due = block_on(queue.take_due(SystemTime::now(), 10)).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipient.as_str(), "b@two.example");
}

#[test]
fn many_messages_are_deleted_together() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let ids: Vec<QueueId> = (0..300u32)
        .map(|n| block_on(queue.enqueue(message(&["a@example.net"], &[n as u8]))).unwrap())
        .collect();
    let outcomes = block_on(Surgery::Delete.apply_all(&queue, &ids[..200]));
    assert_eq!(outcomes.len(), 200);
    assert!(
        outcomes
            .iter()
            .zip(&ids)
            .all(|((id, o), want)| id == want && o.as_ref().ok() == Some(&1))
    );
    assert_eq!(all_messages(&queue), ids[200..]);
    drop(queue);
    assert_eq!(open(dir.path()).count(), 100);
}

#[test]
fn held_messages_stay_held_when_compaction_copies_them_forward() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    let kept = block_on(queue.enqueue(message(&["a@example.net"], &[7; 1000]))).unwrap();
    block_on(queue.hold(&kept)).unwrap();
    let first_segment = segments(dir.path()).remove(0);
    for n in 0..40 {
        block_on(queue.enqueue(message(&["c@example.net"], &[n; 1000]))).unwrap();
        for entry in block_on(queue.take_due(SystemTime::now(), 10)).unwrap() {
            block_on(queue.ack(&entry, AckResult::Delivered)).unwrap();
        }
    }
    block_on(queue.maintain()).unwrap();
    assert!(!segments(dir.path()).contains(&first_segment));
    drop(queue);
    let queue = open_small(dir.path());
    assert_eq!(queue.list()[0].state, EntryState::Held);
    assert!(
        block_on(queue.take_due(later(86_400), 10))
            .unwrap()
            .is_empty()
    );
}

/// SMTPUTF8 and DSN parameters stay with a held message across compaction and a restart.
#[test]
fn a_messages_smtputf8_and_dsn_parameters_survive_compaction_and_a_restart() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    let extensions = Arc::new(Extensions {
        smtputf8: true,
        ret: Some(Ret::Full),
        envid: Some("QQ314159".into()),
        recipients: vec![
            RcptParams::default(),
            RcptParams {
                notify: Some(Notify {
                    never: true,
                    ..Notify::default()
                }),
                orcpt: Some("rfc822;b@example.net".into()),
            },
        ],
    });
    let with = NewMessage {
        extensions: Some(Arc::clone(&extensions)),
        ..message(&["a@example.net", "b@example.net"], &[7; 1000])
    };
    let kept = block_on(queue.enqueue(with)).unwrap();
    block_on(queue.hold(&kept)).unwrap();
    let first_segment = segments(dir.path()).remove(0);
    for n in 0..40 {
        block_on(queue.enqueue(message(&["c@example.net"], &[n; 1000]))).unwrap();
        for entry in block_on(queue.take_due(SystemTime::now(), 10)).unwrap() {
            assert_eq!(entry.extensions, None);
            block_on(queue.ack(&entry, AckResult::Delivered)).unwrap();
        }
    }
    block_on(queue.maintain()).unwrap();
    assert!(!segments(dir.path()).contains(&first_segment));
    drop(queue);
    let queue = open_small(dir.path());
    let entries = queue.list();
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        assert_eq!(entry.extensions.as_deref(), Some(&*extensions));
    }
    assert_eq!(
        entries[1]
            .extensions
            .as_ref()
            .unwrap()
            .recipient(1)
            .notify
            .map(|n| n.never),
        Some(true)
    );
}

#[test]
fn a_restart_recovers_every_entry_and_in_flight_ones_are_due_again() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let mut expected = Vec::new();
    for n in 0..10 {
        let body = format!("message {n}");
        let id = block_on(queue.enqueue(message(
            &["a@example.net", "b@example.net"],
            body.as_bytes(),
        )))
        .unwrap();
        expected.extend([(id, 0), (id, 1)]);
    }
    block_on(queue.take_due(SystemTime::now(), 5)).unwrap();
    drop(queue);
    let queue = open(dir.path());
    assert_eq!(ids(&queue.list()), expected);
    assert!(queue.list().iter().all(|e| e.state == EntryState::Ready));
    assert_eq!(
        block_on(queue.take_due(SystemTime::now(), 100))
            .unwrap()
            .len(),
        20
    );
    let newer = block_on(queue.enqueue(message(&["c@example.net"], b"z"))).unwrap();
    assert!(expected.iter().all(|&(id, _)| id < newer));
}

#[test]
fn garbage_after_the_last_record_is_dropped_on_reopen() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let a = block_on(queue.enqueue(message(&["a@example.net"], b"first"))).unwrap();
    let b = block_on(queue.enqueue(message(&["b@example.net"], b"second"))).unwrap();
    drop(queue);
    let segment = segments(dir.path()).remove(0);
    let len = fs::metadata(&segment).unwrap().len();
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0xAB; 100]).unwrap();
    drop(file);
    let queue = open(dir.path());
    assert_eq!(ids(&queue.list()), vec![(a, 0), (b, 0)]);
    assert_eq!(fs::metadata(&segment).unwrap().len(), len);
    // Appending goes on from the cut, and reads back.
    let c = block_on(queue.enqueue(message(&["c@example.net"], b"third"))).unwrap();
    drop(queue);
    let queue = open(dir.path());
    assert_eq!(ids(&queue.list()), vec![(a, 0), (b, 0), (c, 0)]);
    assert_eq!(&*block_on(queue.body(&c)).unwrap(), b"third");
}

#[test]
fn zeros_after_the_last_record_are_dropped_on_reopen() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let a = block_on(queue.enqueue(message(&["a@example.net"], b"first"))).unwrap();
    drop(queue);
    let segment = segments(dir.path()).remove(0);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0; 4096]).unwrap();
    drop(file);
    assert_eq!(ids(&open(dir.path()).list()), vec![(a, 0)]);
}

#[test]
fn a_last_record_cut_short_is_dropped_and_earlier_ones_survive() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let a = block_on(queue.enqueue(message(&["a@example.net"], &[b'a'; 3000]))).unwrap();
    block_on(queue.enqueue(message(&["b@example.net"], &[b'b'; 3000]))).unwrap();
    drop(queue);
    let segment = segments(dir.path()).remove(0);
    let len = fs::metadata(&segment).unwrap().len();
    for cut in [len - 1, len - 1500, record_offsets(&segment)[1] + 3] {
        OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let queue = open(dir.path());
        assert_eq!(ids(&queue.list()), vec![(a, 0)]);
        assert_eq!(&*block_on(queue.body(&a)).unwrap(), &[b'a'; 3000][..]);
    }
}

/// Flips one byte of the segment at `path`, `at` bytes into it.
fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// The files moved aside into `<dir>/corrupt`, and their bytes in all.
fn moved_aside(dir: &Path) -> (usize, u64) {
    let Ok(files) = fs::read_dir(dir.join("corrupt")) else {
        return (0, 0);
    };
    files.fold((0, 0), |(count, bytes), file| {
        (count + 1, bytes + file.unwrap().metadata().unwrap().len())
    })
}

#[test]
fn one_flipped_byte_mid_journal_loses_only_its_own_message() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let ids: Vec<QueueId> = (0..40u8)
        .map(|n| block_on(queue.enqueue(message(&["a@example.net"], &[n; 500]))).unwrap())
        .collect();
    drop(queue);
    let segment = segments(dir.path()).remove(0);
    let offsets = record_offsets(&segment);
    assert_eq!(offsets.len(), 40);
    let middle = fs::metadata(&segment).unwrap().len() / 2;
    let hit = offsets.partition_point(|&at| at <= middle) - 1;
    assert!(
        hit + 1 < offsets.len(),
        "the flip must be followed by whole records"
    );
    flip(&segment, middle);
    let queue = open(dir.path());
    let kept: Vec<QueueId> = queue.list().iter().map(|e| e.queue_id).collect();
    let mut expected = ids.clone();
    expected.remove(hit);
    assert_eq!(kept, expected, "{} entries after the restart", kept.len());
    let damaged = offsets[hit + 1] - offsets[hit];
    assert_eq!(moved_aside(dir.path()), (1, damaged));
    let health = queue.health();
    assert_eq!((health.corrupt_regions, health.corrupt_bytes), (1, damaged));
    for (n, id) in ids.iter().enumerate().skip(hit + 1) {
        assert_eq!(&*block_on(queue.body(id)).unwrap(), &[n as u8; 500][..]);
    }
}

#[test]
fn damaged_records_in_the_last_and_an_older_segment_lose_only_their_own_messages() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    let ids: Vec<QueueId> = (0..24u8)
        .map(|n| block_on(queue.enqueue(message(&["a@example.net"], &[n; 700]))).unwrap())
        .collect();
    drop(queue);
    let paths = segments(dir.path());
    assert!(paths.len() >= 3, "{paths:?}");
    let (older, last) = (&paths[0], paths.last().unwrap());
    let older_records = record_offsets(older);
    let last_records = record_offsets(last);
    assert!(older_records.len() >= 3 && last_records.len() >= 3);
    // Which message a record holds: its body is that message's number, repeated.
    let number = |path: &Path, record: usize| {
        let offsets = record_offsets(path);
        let end = offsets.get(record + 1).copied();
        let end = end.unwrap_or_else(|| fs::metadata(path).unwrap().len());
        fs::read(path).unwrap()[end as usize - 1] as usize
    };
    let damaged = [
        (older.as_path(), 0, 2),  // the first record's length
        (older.as_path(), 1, 6),  // a checksum
        (last.as_path(), 0, 300), // the first record's body
        (last.as_path(), 1, 8),   // the first byte of a payload: its kind
    ];
    let mut lost = BTreeSet::new();
    let mut flips = Vec::new();
    for &(path, record, at) in &damaged {
        lost.insert(number(path, record));
        flips.push((path, record_offsets(path)[record] + at));
    }
    for (path, at) in flips {
        flip(path, at);
    }
    let expected: Vec<QueueId> = (0..ids.len())
        .filter(|n| !lost.contains(n))
        .map(|n| ids[n])
        .collect();
    let check = |queue: &EmbeddedQueue| {
        let kept: Vec<QueueId> = queue.list().iter().map(|e| e.queue_id).collect();
        assert_eq!(kept, expected);
        for (n, id) in ids.iter().enumerate().filter(|(n, _)| !lost.contains(n)) {
            assert_eq!(&*block_on(queue.body(id)).unwrap(), &[n as u8; 700][..]);
        }
    };
    let queue = open_small(dir.path());
    check(&queue);
    let (files, bytes) = moved_aside(dir.path());
    assert!(
        files >= 2 && bytes >= 4 * 700,
        "{files} files, {bytes} bytes"
    );
    // The damage is gone from the journal: a restart finds nothing more to move aside, and
    // messages queued after it are kept too.
    let newer = block_on(queue.enqueue(message(&["b@example.net"], b"after"))).unwrap();
    drop(queue);
    let queue = open_small(dir.path());
    assert_eq!(moved_aside(dir.path()), (files, bytes));
    assert_eq!(queue.list().last().unwrap().queue_id, newer);
    assert_eq!(queue.list().len(), expected.len() + 1);
}

#[test]
fn a_queue_directory_opens_once_at_a_time() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    assert!(matches!(
        EmbeddedQueue::open(dir.path(), EmbeddedOptions::default()),
        Err(QueueError::InUse(_))
    ));
    drop(queue);
    open(dir.path());
}

#[test]
fn a_message_without_recipients_is_refused() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let refused = block_on(queue.enqueue(message(&[], b"x")));
    assert!(matches!(refused, Err(QueueError::Invalid(_))));
}

#[test]
fn segments_whose_messages_are_all_done_are_deleted() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    for n in 0..20 {
        block_on(queue.enqueue(message(&["a@example.net"], &[n; 1000]))).unwrap();
        for entry in block_on(queue.take_due(SystemTime::now(), 10)).unwrap() {
            block_on(queue.ack(&entry, AckResult::Delivered)).unwrap();
        }
    }
    block_on(queue.maintain()).unwrap();
    assert_eq!(segments(dir.path()).len(), 1);
    assert!(queue.list().is_empty());
}

#[test]
fn compaction_moves_live_messages_forward_and_old_segments_go() {
    let dir = TempDir::new().unwrap();
    let queue = open_small(dir.path());
    let body: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    let kept =
        block_on(queue.enqueue(message(&["a@example.net", "b@example.net"], &body))).unwrap();
    let taken = block_on(queue.take_due(SystemTime::now(), 2)).unwrap();
    block_on(queue.ack(&taken[0], AckResult::Delivered)).unwrap();
    let until = later(86_400);
    block_on(queue.defer(&taken[1], until, "421 4.7.0 later".into())).unwrap();
    let first_segment = segments(dir.path()).remove(0);
    for n in 0..40 {
        block_on(queue.enqueue(message(&["c@example.net"], &[n; 1000]))).unwrap();
        for entry in block_on(queue.take_due(SystemTime::now(), 10)).unwrap() {
            block_on(queue.ack(&entry, AckResult::Delivered)).unwrap();
        }
    }
    block_on(queue.maintain()).unwrap();
    let left = segments(dir.path());
    assert!(!left.contains(&first_segment), "{left:?}");
    assert!(left.len() <= 2, "{left:?}");
    let check = |queue: &EmbeddedQueue| {
        let entries = queue.list();
        assert_eq!(ids(&entries), vec![(kept, 1)]);
        assert_eq!(entries[0].attempts, 1);
        assert_eq!(entries[0].last_error.as_deref(), Some("421 4.7.0 later"));
        assert_eq!(&*block_on(queue.body(&kept)).unwrap(), &body[..]);
    };
    check(&queue);
    drop(queue);
    check(&open_small(dir.path()));
}

#[test]
fn concurrent_enqueues_get_distinct_ids_and_all_are_recovered() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    let per_thread = 25;
    let ids: Vec<QueueId> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..20u8)
            .map(|t| {
                let queue = &queue;
                scope.spawn(move || {
                    (0..per_thread)
                        .map(|n| {
                            let body = [t, n];
                            block_on(queue.enqueue(message(&["a@example.net"], &body))).unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let distinct: BTreeSet<QueueId> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 20 * usize::from(per_thread));
    drop(queue);
    let recovered: BTreeSet<QueueId> = open(dir.path()).list().iter().map(|e| e.queue_id).collect();
    assert_eq!(recovered, distinct);
}

#[test]
fn a_burst_of_messages_big_and_small_is_written_whole_and_in_order() {
    let dir = TempDir::new().unwrap();
    let queue = open(dir.path());
    // Enqueued all at once: while the writer syncs the big first one, the rest wait, and it
    // gathers them into batches of many frames (more buffers than one vectored write takes);
    // the other big ones make batches of more than its batch bytes.
    let bodies: Vec<Vec<u8>> = (0..1500usize)
        .map(|n| {
            let len = match n {
                0 => 16 << 20,
                n if n % 500 == 499 => 3 << 20,
                n => 1 + n % 700,
            };
            (0..len).map(|i| (n * 31 + i * 7) as u8).collect()
        })
        .collect();
    let enqueues = bodies
        .iter()
        .map(|body| queue.enqueue(message(&["a@example.net"], body)));
    let ids: Vec<QueueId> = block_on(futures::future::join_all(enqueues))
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    let check = |queue: &EmbeddedQueue| {
        assert_eq!(queue.list().len(), bodies.len());
        for (id, body) in ids.iter().zip(&bodies) {
            assert_eq!(&*block_on(queue.body(id)).unwrap(), &body[..], "{id}");
        }
    };
    check(&queue);
    drop(queue);
    let queue = open(dir.path());
    check(&queue);
    // Every frame starts where the one before it ends, up to the end of the segment.
    for path in segments(dir.path()) {
        let len = fs::metadata(&path).unwrap().len();
        let Some(&last) = record_offsets(&path).last() else {
            continue;
        };
        let last_len = fs::read(&path).unwrap()[last as usize..][..4]
            .try_into()
            .map(u32::from_le_bytes)
            .unwrap();
        assert_eq!(last + 8 + u64::from(last_len), len, "{}", path.display());
    }
}

/// Set in the environment of the child process of `a_killed_process_loses_no_acknowledged_message`
/// to the queue directory: the test binary, re-executed to run that test alone, then plays the
/// child's part ([`crash_child`]) instead of the test's.
const CRASH_CHILD: &str = "MQ_CRASH_CHILD";

/// A body that carries its own check: its seed, then bytes derived from the seed, of a length
/// derived from the seed.
fn checked_body(seed: u64) -> Vec<u8> {
    let len = 100 + (seed % 4000) as usize;
    let mut body = seed.to_le_bytes().to_vec();
    body.extend((0..len).map(|i| (seed as usize * 31 + i * 7) as u8));
    body
}

fn body_is_intact(body: &[u8]) -> bool {
    body.len() >= 8 && checked_body(u64::from_le_bytes(body[..8].try_into().unwrap())) == body
}

/// The process that `a_killed_process_loses_no_acknowledged_message` kills, over the queue in
/// `dir`. It enqueues from four threads and prints `queued <id>` as soon as each enqueue
/// returns; it acknowledges two messages of three, printing `acking <id>` before and
/// `done <id>` after. It runs until it is killed, or until its parent has gone and a line can
/// no longer be printed.
fn crash_child(dir: &std::ffi::OsStr) -> ! {
    let options = EmbeddedOptions {
        segment_size: 64 << 10,
        ..EmbeddedOptions::default()
    };
    let queue = EmbeddedQueue::open(Path::new(&dir), options).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let queue = &queue;
            scope.spawn(move || {
                for n in 0.. {
                    enqueue_and_maybe_ack(queue, thread << 32 | n);
                }
            });
        }
    });
    unreachable!("the child's threads end only by a panic")
}

fn enqueue_and_maybe_ack(queue: &EmbeddedQueue, seed: u64) {
    let message = NewMessage {
        body: checked_body(seed),
        ..message(&["a@example.net", "b@example.net"], b"")
    };
    let id = block_on(queue.enqueue(message)).unwrap();
    say(&format!("queued {id}"));
    // Two of three are done at once, so that segments are deleted and compacted as well.
    if !seed.is_multiple_of(3) {
        say(&format!("acking {id}"));
        for entry in queue.list().iter().filter(|e| e.queue_id == id) {
            block_on(queue.ack(entry, AckResult::Delivered)).unwrap();
        }
        say(&format!("done {id}"));
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

#[test]
fn a_killed_process_loses_no_acknowledged_message() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD) {
        crash_child(&dir);
    }
    let dir = TempDir::new().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_killed_process_loses_no_acknowledged_message",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    let mut queued = 0;
    while queued < 400 {
        let mut line = String::new();
        if output.read_line(&mut line).unwrap() == 0 {
            break;
        }
        queued += usize::from(line.starts_with("queued "));
        text.push_str(&line);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    output.read_to_string(&mut text).unwrap();
    assert!(queued >= 400, "the child stopped early:\n{text}");
    // A line cut short by the kill was not printed whole: only whole lines count.
    let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let said = |word: &str| -> BTreeSet<QueueId> {
        let prefix = format!("{word} ");
        whole
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .map(|id| id.parse().unwrap())
            .collect()
    };
    let (queued, acking, done) = (said("queued"), said("acking"), said("done"));

    let queue = open(dir.path());
    let mut recovered: BTreeMap<QueueId, Vec<u32>> = BTreeMap::new();
    for entry in queue.list() {
        recovered
            .entry(entry.queue_id)
            .or_default()
            .push(entry.recipient_index);
    }
    for (id, recipients) in &recovered {
        let body = block_on(queue.body(id)).unwrap();
        assert!(body_is_intact(&body), "message {id} came back damaged");
        assert!(
            recipients == &[0, 1] || acking.contains(id),
            "{id}: {recipients:?}"
        );
    }
    for id in queued.difference(&acking) {
        assert!(
            recovered.contains_key(id),
            "acknowledged message {id} was lost"
        );
    }
    for id in &done {
        assert!(
            !recovered.contains_key(id),
            "message {id} was done but came back"
        );
    }
}

/// A tmpfs mounted on a new temporary directory for one test, unmounted when dropped: a small
/// disk that can be filled. Mounting takes root, so the tests that use one are
/// `#[ignore = "needs root: mounts a tmpfs"]`; asked for (`-- --ignored`) where the machine
/// refuses the mount, they fail under `MQ_TEST_SERVICES=required` (as CI sets it) and otherwise
/// say why and pass.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(test: &str, options: &str) -> Option<Tmpfs> {
        let dir = TempDir::new().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match mounted {
            Ok(output) if output.status.success() => return Some(Tmpfs { dir }),
            Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            Err(error) => error.to_string(),
        };
        assert!(
            std::env::var("MQ_TEST_SERVICES").as_deref() != Ok("required"),
            "{test}: cannot mount a tmpfs to fill ({why}): run as root (MQ_TEST_SERVICES=required)"
        );
        eprintln!("{test}: SKIPPED: cannot mount a tmpfs to fill ({why}); run as root to test it");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file a failed assertion left open does not keep the mount.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The first `Some` that `attempt` returns, tried every 20 ms for up to 30 s.
fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Enqueues `body(n)` for n = 0, 1, … until the queue refuses one; returns the ids queued and
/// the refusal.
fn enqueue_until_refused(
    queue: &EmbeddedQueue,
    body: impl Fn(usize) -> Vec<u8>,
) -> (Vec<QueueId>, QueueError) {
    let mut queued = Vec::new();
    loop {
        assert!(queued.len() < 10_000, "the disk never filled");
        match block_on(queue.enqueue(message(&["a@example.net"], &body(queued.len())))) {
            Ok(id) => queued.push(id),
            Err(error) => return (queued, error),
        }
    }
}

/// Reopens the queue in `dir` and checks that it holds exactly `queued`, with `body(n)` for
/// message n.
fn assert_recovered(
    queue: EmbeddedQueue,
    dir: &Path,
    queued: &[QueueId],
    body: impl Fn(usize) -> Vec<u8>,
) {
    drop(queue);
    let queue = open_small(dir);
    // Nothing half-written was left mid-journal by the failed writes.
    assert_eq!(queue.health().corrupt_regions, 0);
    let listed: Vec<QueueId> = queue.list().iter().map(|e| e.queue_id).collect();
    assert_eq!(listed, queued);
    for (n, id) in queued.iter().enumerate() {
        assert_eq!(&*block_on(queue.body(id)).unwrap(), &body(n)[..], "{id}");
    }
}

fn patterned(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (n * 31 + i * 7) as u8).collect()
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn a_full_disk_refuses_mail_until_space_is_freed_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount("a_full_disk_refuses_mail", "size=1m,mode=0700") else {
        return;
    };
    let filler = disk.path().join("filler");
    fs::write(&filler, vec![1; 256 << 10]).unwrap();
    let dir = disk.path().join("queue");
    let queue = EmbeddedQueue::open(&dir, EmbeddedOptions::default()).unwrap();
    let body = |n| patterned(n, 16 << 10);
    let (mut queued, refused) = enqueue_until_refused(&queue, body);
    assert!(queued.len() >= 10, "{} queued", queued.len());
    assert!(matches!(refused, QueueError::Io { .. }), "{refused}");
    assert!(!queue.health().writable);
    let still_full = block_on(queue.enqueue(message(&["a@example.net"], &body(queued.len()))));
    assert!(still_full.is_err());

    fs::remove_file(&filler).unwrap();
    let n = queued.len();
    let id = eventually("a message queued once space is freed", || {
        block_on(queue.enqueue(message(&["a@example.net"], &body(n)))).ok()
    });
    queued.push(id);
    let health = queue.health();
    assert!(health.writable);
    assert!(health.write_failures >= 1, "{health:?}");
    assert_recovered(queue, &dir, &queued, body);
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn a_journal_segment_that_cannot_be_created_does_not_stop_the_queue() {
    let Some(disk) = Tmpfs::mount("a_journal_segment", "size=8m,nr_inodes=16,mode=0700") else {
        return;
    };
    let dir = disk.path().join("queue");
    let queue = open_small(&dir);
    // Every inode left taken: the next segment cannot be created.
    let mut fillers = Vec::new();
    while let Ok(()) = fs::write(disk.path().join(format!("f{}", fillers.len())), b"") {
        fillers.push(disk.path().join(format!("f{}", fillers.len())));
        assert!(fillers.len() < 100, "the inodes never ran out");
    }
    let body = |n| patterned(n, 1000);
    let (mut queued, refused) = enqueue_until_refused(&queue, body);
    assert!(!queued.is_empty());
    assert!(matches!(refused, QueueError::Io { .. }), "{refused}");
    assert!(refused.to_string().contains("create"), "{refused}");

    fs::remove_file(fillers.pop().unwrap()).unwrap();
    let n = queued.len();
    let id = eventually("a message queued once a segment can be created", || {
        block_on(queue.enqueue(message(&["a@example.net"], &body(n)))).ok()
    });
    queued.push(id);
    assert!(queue.health().writable);
    assert_recovered(queue, &dir, &queued, body);
}

/// The mode bits (`0o777`) of every directory and file under `dir`, and of `dir` itself.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut modes = vec![(
        dir.to_owned(),
        fs::metadata(dir).unwrap().permissions().mode() & 0o777,
    )];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modes.extend(self::modes(&path));
        } else {
            modes.push((
                path.clone(),
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            ));
        }
    }
    modes
}

#[test]
fn the_queue_directory_and_every_file_in_it_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let data = TempDir::new().unwrap();
    let dir = data.path().join("queue");
    let queue = open_small(&dir);
    for n in 0..12u8 {
        block_on(queue.enqueue(message(&["a@example.net"], &[n; 700]))).unwrap();
    }
    drop(queue);
    // Damage in the first segment, so that the queue fills `corrupt/` too.
    let first = segments(&dir).remove(0);
    flip(&first, record_offsets(&first)[1] + 20);
    let queue = open_small(&dir);
    assert_eq!(moved_aside(&dir).0, 1);
    let listed = modes(&dir);
    assert!(listed.len() >= 6, "{listed:?}");
    for (path, mode) in &listed {
        let private = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, private, "{} is {mode:o}", path.display());
    }
    drop(queue);

    // A queue made readable by others (as older versions of mq made it) is closed on open.
    for (path, _) in &listed {
        let open_mode = if path.is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(path, fs::Permissions::from_mode(open_mode)).unwrap();
    }
    drop(open_small(&dir));
    for (path, mode) in modes(&dir) {
        if path.extension().is_some_and(|e| e == "log") || path == dir || path.ends_with("lock") {
            let private = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, private, "{} is {mode:o}", path.display());
        }
    }
}
