//! Enqueue throughput of the embedded queue: 5 KB messages from 20 concurrent tasks (as 20 SMTP
//! sessions would), each waiting for its message to be durable, as a 250 reply must.
//!
//! Each sample opens a fresh queue in a new directory under the target directory (a real disk,
//! not a tmpfs), so the journal's size does not grow across samples. Criterion reports
//! messages per second; `no_fsync` is the same without the sync, the ceiling group commit is
//! measured against.

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage, Queue};
use smol::LocalExecutor;

const SESSIONS: u64 = 20;
const BODY: usize = 5_000;

fn message() -> NewMessage {
    NewMessage {
        sender: "sender@example.org".parse().unwrap(),
        recipients: vec!["rcpt@example.net".parse().unwrap()],
        body: vec![b'x'; BODY],
        client: "client.example[192.0.2.1]".into(),
        extensions: None,
    }
}

/// Enqueues `count` messages from `SESSIONS` tasks on one executor; returns the time taken.
fn enqueue(root: &Path, options: EmbeddedOptions, count: u64) -> Duration {
    let dir = tempfile::tempdir_in(root).unwrap();
    let queue = EmbeddedQueue::open(dir.path(), options).unwrap();
    let executor = LocalExecutor::new();
    let elapsed = smol::block_on(executor.run(async {
        let start = Instant::now();
        let sessions: Vec<_> = (0..SESSIONS)
            .map(|session| {
                let share = count / SESSIONS + u64::from(session < count % SESSIONS);
                let queue = &queue;
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
        start.elapsed()
    }));
    // The executor, then the queue (its writer joined), then the directory are dropped here.
    elapsed
}

fn throughput(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut group = c.benchmark_group("queue_enqueue_5kb_20_sessions");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    for (name, fsync) in [("fsync", true), ("no_fsync", false)] {
        let options = EmbeddedOptions {
            fsync,
            ..EmbeddedOptions::default()
        };
        group.bench_function(name, |b| {
            b.iter_custom(|count| enqueue(root, options, count));
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
