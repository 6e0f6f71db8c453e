//! A restart mid-delivery loses nothing. Messages are queued in a data directory; a child
//! process (this test binary, re-executed to run only
//! [`delivers_until_killed_when_the_restart_test_starts_it`]) delivers them to a paced sink
//! that answers each message late; the child is killed with SIGKILL while deliveries are in
//! flight; then delivery starts again on the same directory. Every message reaches the sink at
//! least once: duplicates are allowed (a message whose 250 came just before the kill), loss is
//! not.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mq_tests::child::{ChildTest, serve_until_killed};

use crate::paced::{Pace, Paced};
use crate::support::{Harness, PATIENCE, enqueue, eventually, message, open_queue};

/// Set in the child's environment to the data directory; without it the child test does
/// nothing.
const DATA_DIR: &str = "MQ_DELIVERY_RESTART_DATA_DIR";
/// Set in the child's environment to the sink's address.
const SINK: &str = "MQ_DELIVERY_RESTART_SINK";
/// What the child prints once its scheduler runs.
const DELIVERING: &str = "DELIVERING";
const MESSAGES: usize = 12;
/// Messages the sink has received (not all answered) when the child is killed.
const KILL_AFTER: usize = 6;

/// The delivery settings of both lives: a few messages per connection, several connections.
fn configure(options: &mut crate::support::Options, sink: SocketAddr) {
    options.smarthost(sink);
    options.delivery.messages_per_connection = 3;
}

/// The child: delivery over the data directory in `$MQ_DELIVERY_RESTART_DATA_DIR` to the sink
/// at `$MQ_DELIVERY_RESTART_SINK`, until it is killed or its stdin closes. A no-op in a normal
/// test run.
#[test]
fn delivers_until_killed_when_the_restart_test_starts_it() {
    let (Some(dir), Some(sink)) = (std::env::var_os(DATA_DIR), std::env::var(SINK).ok()) else {
        return;
    };
    let sink: SocketAddr = sink.parse().expect("the sink's address");
    let _harness = Harness::started_in(Path::new(&dir), |o| configure(o, sink));
    serve_until_killed(DELIVERING);
}

fn start_child(dir: &Path, sink: SocketAddr) -> ChildTest {
    let sink = sink.to_string();
    let env = [(DATA_DIR, dir.as_os_str()), (SINK, OsStr::new(&sink))];
    let name = "restart::delivers_until_killed_when_the_restart_test_starts_it";
    ChildTest::start(name, &env, DELIVERING, PATIENCE).0
}

/// The Subjects of `messages`.
fn subjects(messages: &[String]) -> BTreeSet<String> {
    messages
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_delivery_killed_mid_flight_and_restarted_loses_no_message() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sink = Paced::start(Pace::default().data_end_delay(Duration::from_millis(300)));
    let queue = open_queue(&dir.path().join("queue"));
    let sent: BTreeSet<String> = (0..MESSAGES).map(|n| format!("restart {n}")).collect();
    for subject in &sent {
        enqueue(
            &queue,
            "alice@local.test",
            &["bob@remote.test"],
            &message(subject),
        );
    }
    drop(queue);

    let mut child = start_child(dir.path(), sink.address());
    assert!(
        eventually(|| sink.received().len() >= KILL_AFTER),
        "the child delivers"
    );
    child.kill();
    let before = sink.received().len();
    assert!(
        before < MESSAGES,
        "killed mid-delivery: {before} of {MESSAGES} received"
    );

    let harness = Harness::started_in(dir.path(), |o| configure(o, sink.address()));
    let left = harness.entries().len();
    assert!(left > 0, "the kill left entries to deliver");
    harness.wait_for("the rest", || harness.entries().is_empty());
    let received = sink.received();
    let arrived = subjects(&received);
    let missing: Vec<&String> = sent.difference(&arrived).collect();
    assert!(missing.is_empty(), "lost across the restart: {missing:?}");
    assert!(received.len() >= MESSAGES);
}
