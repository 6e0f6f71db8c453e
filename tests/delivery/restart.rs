//! A restart mid-delivery loses nothing. Messages are queued in a data directory; a child
//! process (this test binary, re-executed to run only this test, which in the child delivers
//! instead: [`deliver_until_killed`]) delivers them to a paced sink that answers the first few
//! and holds the replies to the rest; the child is killed with SIGKILL while those are in
//! flight; then delivery starts again on the same directory, to a second sink. Every message is
//! accepted by one of the sinks at least once: duplicates are allowed (a message whose 250 came
//! just before the kill), loss is not.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;

use mq_tests::child::{ChildTest, serve_until_killed};

use crate::paced::{Pace, Paced};
use crate::support::{Harness, PATIENCE, enqueue, eventually, message, open_queue};

/// Set in the child's environment to the data directory: it tells the re-executed test that
/// it is the child.
const DATA_DIR: &str = "MQ_DELIVERY_RESTART_DATA_DIR";
/// Set in the child's environment to the sink's address.
const SINK: &str = "MQ_DELIVERY_RESTART_SINK";
/// The test this file holds, by its path in the test binary: the child runs it too.
const TEST: &str = "restart::a_delivery_killed_mid_flight_and_restarted_loses_no_message";
/// What the child prints once its scheduler runs.
const DELIVERING: &str = "DELIVERING";
const MESSAGES: usize = 12;
/// Messages the first sink answers; it holds the replies to the rest, so that they are in
/// flight, unanswered, however long the kill takes to come.
const ANSWERED: usize = 6;

/// The delivery settings of both lives: a few messages per connection, several connections.
fn configure(options: &mut crate::support::Options, sink: SocketAddr) {
    options.smarthost(sink);
    options.delivery.messages_per_connection = 3;
}

/// The child: delivery over the data directory `dir` to the sink at `sink`, until it is killed
/// or its stdin closes.
fn deliver_until_killed(dir: &Path, sink: &str) -> ! {
    let sink: SocketAddr = sink.parse().expect("the sink's address");
    let _harness = Harness::started_in(dir, |o| configure(o, sink));
    serve_until_killed(DELIVERING);
}

fn start_child(dir: &Path, sink: SocketAddr) -> ChildTest {
    let sink = sink.to_string();
    let env = [(DATA_DIR, dir.as_os_str()), (SINK, OsStr::new(&sink))];
    ChildTest::start(TEST, &env, DELIVERING, PATIENCE).0
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
    if let (Some(dir), Ok(sink)) = (std::env::var_os(DATA_DIR), std::env::var(SINK)) {
        deliver_until_killed(Path::new(&dir), &sink);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = Paced::start(Pace::default().answer_first(ANSWERED));
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

    let mut child = start_child(dir.path(), first.address());
    assert!(
        eventually(|| first.accepted() == ANSWERED && first.received().len() > ANSWERED),
        "the child delivers, and a delivery waits for its reply"
    );
    child.kill();
    // What the first life delivered: the sink's 250 was sent. The messages held were not.
    let delivered = first.accepted_messages();
    assert_eq!(delivered.len(), ANSWERED);

    let second = Paced::start(Pace::default());
    let harness = Harness::started_in(dir.path(), |o| configure(o, second.address()));
    let left = harness.entries().len();
    assert!(
        left >= MESSAGES - ANSWERED,
        "the kill left the unanswered ones to deliver: {left}"
    );
    harness.wait_for("the rest", || harness.entries().is_empty());
    let arrived: BTreeSet<String> = subjects(&delivered)
        .union(&subjects(&second.accepted_messages()))
        .cloned()
        .collect();
    let missing: Vec<&String> = sent.difference(&arrived).collect();
    assert!(missing.is_empty(), "lost across the restart: {missing:?}");
}
