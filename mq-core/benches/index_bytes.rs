//! Memory the embedded queue keeps per queued entry: the process's resident set (VmRSS) after a
//! warm-up of 2,000 messages and again after 40,000 more (one recipient, 1 KB bodies, as
//! `smtp-source` sends them). Nothing takes entries from the queue, so what grows is its
//! in-memory index (bodies stay in the journal); with no SMTP sessions or delivery in the
//! process, the figure is that of the index alone, allocator overhead included. Run with
//! `cargo bench -p mq-core --bench index_bytes`.

use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage, Queue};
use smol::LocalExecutor;

const SESSIONS: u64 = 20;
const WARM_UP: u64 = 2_000;
const MEASURED: u64 = 40_000;

fn message() -> NewMessage {
    NewMessage {
        sender: "sender@client.test".parse().unwrap(),
        recipients: vec!["user@remote.test".parse().unwrap()],
        body: vec![b'x'; 1024],
        client: "localhost[127.0.0.1]".into(),
        extensions: None,
    }
}

fn enqueue<'a>(queue: &'a EmbeddedQueue, executor: &LocalExecutor<'a>, count: u64) {
    smol::block_on(executor.run(async {
        let sessions: Vec<_> = (0..SESSIONS)
            .map(|session| {
                let share = count / SESSIONS + u64::from(session < count % SESSIONS);
                executor.spawn(async move {
                    for _ in 0..share {
                        queue.enqueue(message()).await.unwrap();
                    }
                })
            })
            .collect();
        for session in sessions {
            session.await;
        }
    }));
}

/// The process's resident set in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn main() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = EmbeddedOptions {
        fsync: false,
        ..EmbeddedOptions::default()
    };
    let queue = EmbeddedQueue::open(dir.path(), options).unwrap();
    let executor = LocalExecutor::new();
    enqueue(&queue, &executor, WARM_UP);
    let before = rss();
    enqueue(&queue, &executor, MEASURED);
    let after = rss();
    assert_eq!(queue.count(), (WARM_UP + MEASURED) as usize);
    println!(
        "RSS {} kB after {WARM_UP} entries, {} kB after {MEASURED} more: {} bytes per entry",
        before / 1024,
        after / 1024,
        after.saturating_sub(before) / MEASURED,
    );
}
