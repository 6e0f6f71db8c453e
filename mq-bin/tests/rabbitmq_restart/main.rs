//! The broker stopped and started under a running mq (`rabbitmqctl stop_app`/`start_app`):
//! mail gets 451 while it is away, mq reconnects by itself, and every message that got 250 is
//! delivered. A binary of its own: stopping the broker would disturb every other test using it.

#[path = "../rabbitmq/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use mq_core::testkit::sink::{Script, Sink};
use support::{Node, PATIENCE, broker, send};

/// Starts the broker's application again when dropped, so that a failing test leaves the
/// broker up for the rest.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = rabbitmqctl("start_app");
        let _ = rabbitmqctl("await_startup");
    }
}

fn rabbitmqctl(action: &str) -> bool {
    Command::new("rabbitmqctl")
        .arg(action)
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn mq_reconnects_after_a_broker_restart_and_delivers_every_accepted_message() {
    let Some(broker) = broker("restart") else {
        return;
    };
    let sink = Sink::start(Script::new());
    // The node relays: the inbox is the outbox, and its delivery goes to the sink.
    let node = Node::start(
        &broker.rabbit_section(""),
        &format!("[delivery]\nsmarthost = \"{}\"\n", sink.address()),
    );
    let mut accepted = BTreeSet::new();
    for i in 0..20 {
        let to = format!("before{i}@example.net");
        let (code, line) = send(
            node.smtp,
            "a@example.org",
            &[&to],
            "Subject: before\r\n\r\nx",
        );
        assert_eq!(code, 250, "{line}");
        accepted.insert(to);
    }
    let restart = Restart;
    assert!(rabbitmqctl("stop_app"), "rabbitmqctl stop_app");
    node.wait_for_log("lost the message broker");
    let (code, line) = send(
        node.smtp,
        "a@example.org",
        &["during@example.net"],
        "Subject: d\r\n\r\nx",
    );
    assert_eq!(code, 451, "no 250 while the broker is away: {line}");
    assert!(rabbitmqctl("start_app"), "rabbitmqctl start_app");
    drop(restart);
    // mq reconnects on its own, with back-off.
    let deadline = Instant::now() + PATIENCE;
    while node
        .log()
        .matches("connected to the message broker")
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "no reconnection:\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..20 {
        let to = format!("after{i}@example.net");
        let (code, line) = send(
            node.smtp,
            "a@example.org",
            &[&to],
            "Subject: after\r\n\r\nx",
        );
        assert_eq!(code, 250, "{line}");
        accepted.insert(to);
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let delivered: BTreeSet<String> = sink
            .messages()
            .into_iter()
            .flat_map(|message| message.rcpt_to)
            .collect();
        let missing: Vec<&String> = accepted.difference(&delivered).collect();
        if missing.is_empty() {
            assert!(!delivered.contains("during@example.net"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered: {missing:?}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
