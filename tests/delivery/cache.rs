//! The connection cache: a connection whose message went well stays open for the next job to
//! the same server, until it has been idle `connection_cache_time`; one the server closed in
//! the meantime is replaced without deferring the mail.

use std::time::Duration;

use crate::paced::{Pace, Paced};
use crate::support::{Harness, message};

const MESSAGES: usize = 5;

/// Sends `MESSAGES` messages to the relay one after the other, each once the one before was
/// delivered: every message is a job of its own.
fn one_at_a_time(harness: &Harness, server: &Paced) {
    for n in 0..MESSAGES {
        harness.send(
            "alice@local.test",
            &["bob@remote.test"],
            &message(&format!("one at a time {n}")),
        );
        harness.wait_for("the message", || server.accepted() == n + 1);
        harness.wait_for("the queue to empty", || harness.entries().is_empty());
    }
}

#[test]
fn messages_sent_one_after_the_other_share_one_cached_connection() {
    let relay = Paced::start(Pace::default());
    let harness = Harness::started(|o| {
        o.smarthost(relay.address());
        o.delivery.connection_cache_time = Duration::from_mins(1);
    });
    one_at_a_time(&harness, &relay);
    assert_eq!(
        relay.connections(),
        1,
        "every job reused the first connection"
    );
    assert_eq!(harness.delivery.idle_connections(), 1);
    // A transaction that ended leaves nothing to reset: no round trip is spent on RSET.
    assert_eq!(relay.resets(), 0, "no RSET between jobs");
}

#[test]
fn without_the_cache_each_job_opens_its_own_connection() {
    let relay = Paced::start(Pace::default());
    let harness = Harness::started(|o| {
        o.smarthost(relay.address());
        o.delivery.connection_cache_time = Duration::ZERO;
    });
    one_at_a_time(&harness, &relay);
    assert_eq!(relay.connections(), MESSAGES);
    assert_eq!(harness.delivery.idle_connections(), 0);
}

#[test]
fn a_connection_carries_no_more_than_messages_per_connection() {
    let relay = Paced::start(Pace::default());
    let harness = Harness::started(|o| {
        o.smarthost(relay.address());
        o.delivery.connection_cache_time = Duration::from_mins(1);
        o.delivery.messages_per_connection = 2;
    });
    one_at_a_time(&harness, &relay);
    // Messages 1-2, 3-4 and 5 on three connections.
    assert_eq!(relay.connections(), MESSAGES.div_ceil(2));
}

#[test]
fn an_idle_connection_is_closed_after_connection_cache_time() {
    let relay = Paced::start(Pace::default());
    let harness = Harness::started(|o| {
        o.smarthost(relay.address());
        o.delivery.connection_cache_time = Duration::from_millis(200);
    });
    harness.send("alice@local.test", &["bob@remote.test"], &message("idle"));
    harness.wait_for("the message", || relay.accepted() == 1);
    // The relay counts a session open until its QUIT.
    harness.wait_for("the idle connection's QUIT", || relay.open() == 0);
    assert_eq!(harness.delivery.idle_connections(), 0);
    assert_eq!(relay.connections(), 1);
}

#[test]
fn a_cached_connection_the_server_closed_is_replaced_without_a_deferral() {
    // The relay closes sessions idle for 100 ms; mq keeps them a minute. A deferral would hold
    // the second message for an hour, past the test's patience.
    let relay = Paced::start(Pace::default().idle_close(Duration::from_millis(100)));
    let harness = Harness::started(|o| {
        o.smarthost(relay.address());
        o.delivery.connection_cache_time = Duration::from_mins(1);
        o.delivery.retry.schedule = vec![Duration::from_hours(1)];
    });
    harness.send("alice@local.test", &["bob@remote.test"], &message("first"));
    harness.wait_for("the first message", || relay.accepted() == 1);
    harness.wait_for("the relay to close the idle session", || relay.open() == 0);
    assert_eq!(harness.delivery.idle_connections(), 1, "mq still holds it");

    let second = harness.send("alice@local.test", &["bob@remote.test"], &message("second"));
    harness.wait_for("the second message", || relay.accepted() == 2);
    harness.wait_for("its entry to go", || harness.entries_of(second).is_empty());
    assert_eq!(
        relay.connections(),
        2,
        "a new connection for the second message"
    );
}

#[test]
fn a_job_on_a_cached_connection_counts_the_messages_it_carried_before() {
    // One job at a time, and the relay slow to answer each final dot: messages 2 and 3 queue
    // while message 1 is delivered, then go out as one job of two batches on the connection
    // message 1 left in the cache. That connection may carry one more, not two.
    let relay = Paced::start(Pace::default().data_end_delay(Duration::from_millis(500)));
    let harness = Harness::started(|o| {
        o.smarthost(relay.address());
        o.delivery.concurrency = 1;
        o.delivery.connection_cache_time = Duration::from_mins(1);
        o.delivery.messages_per_connection = 2;
    });
    harness.send("alice@local.test", &["bob@remote.test"], &message("first"));
    harness.wait_for("the first message on its way", || relay.open() == 1);
    for n in 2..=3 {
        harness.send(
            "alice@local.test",
            &["bob@remote.test"],
            &message(&format!("queued {n}")),
        );
    }
    harness.wait_for("all three", || relay.accepted() == 3);
    assert_eq!(
        relay.connections(),
        2,
        "two messages per connection at most"
    );
}
