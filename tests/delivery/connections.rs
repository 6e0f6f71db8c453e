//! Connections: a domain's throttle holds how many are open at once, while an unthrottled
//! domain beside it opens several; messages waiting for one domain share one connection; a
//! smarthost is one destination whose connections default to the delivery's concurrency.

use std::time::Duration;

use mq_core::delivery::throttle::Limits;
use mq_core::testkit::sink::{Script, Sink};

use crate::paced::{Pace, Paced};
use crate::support::{Harness, enqueue, message};

const MESSAGES: usize = 10;

#[test]
fn a_domain_throttled_to_one_connection_never_gets_two_at_once() {
    // The throttled domain answers late, so that its connections last and a second one would
    // overlap the first. The free one answers only once two of its sessions were open at once:
    // an event, not a window in which a loaded machine must happen to open the second.
    let throttled = Paced::start(Pace::default().data_end_delay(Duration::from_millis(100)));
    let free = Paced::start(Pace::default().answer_once_open(2));
    let harness = Harness::started(|o| {
        o.route("throttled.test", throttled.address());
        o.route("free.test", free.address());
        o.delivery.concurrency = 50;
        // One message per connection, so every message asks the throttle for a connection.
        o.delivery.messages_per_connection = 1;
        let mut one = Limits::default();
        one.connections = 1;
        o.delivery
            .throttle
            .domains
            .insert("throttled.test".into(), one);
    });
    for n in 0..MESSAGES {
        harness.send(
            "alice@local.test",
            &["bob@throttled.test"],
            &message(&format!("throttled {n}")),
        );
        harness.send(
            "alice@local.test",
            &["bob@free.test"],
            &message(&format!("free {n}")),
        );
    }

    let mut most_permits = 0;
    harness.wait_for("every message", || {
        most_permits = most_permits.max(harness.delivery.throttles().connections("throttled.test"));
        harness.entries().is_empty()
    });
    assert_eq!(throttled.accepted(), MESSAGES);
    assert_eq!(
        throttled.connections(),
        MESSAGES,
        "one connection per message"
    );
    assert_eq!(
        throttled.max_open(),
        1,
        "the throttled domain never had two connections"
    );
    assert_eq!(most_permits, 1);
    assert_eq!(free.accepted(), MESSAGES);
    assert!(
        free.max_open() > 1,
        "unthrottled, the same load opens several connections"
    );
}

#[test]
fn messages_waiting_for_one_domain_share_one_connection() {
    let sink = Sink::start(Script::new());
    let mut harness = Harness::new(|o| o.smarthost(sink.address()));
    // Queued before the scheduler runs, so that it finds them all due at once.
    for n in 0..5 {
        enqueue(
            &*harness.base,
            "alice@local.test",
            &["bob@remote.test"],
            &message(&format!("reuse {n}")),
        );
    }
    harness.start();

    harness.wait_for("every message", || harness.entries().is_empty());
    // The last entry goes at its 250; the QUIT follows on the connection after it.
    harness.wait_for("the QUIT", || sink.commands().iter().any(|c| c == "QUIT"));
    assert_eq!(sink.messages().len(), 5);
    assert_eq!(sink.connections(), 1);
    let commands = sink.commands();
    let count = |verb: &str| commands.iter().filter(|c| c.starts_with(verb)).count();
    assert_eq!(
        (count("EHLO"), count("MAIL FROM"), count("QUIT")),
        (1, 5, 1),
        "{commands:#?}"
    );
}

#[test]
fn zero_messages_per_connection_is_taken_as_one_and_mail_still_goes() {
    let sink = Sink::start(Script::new());
    let harness = Harness::started(|o| {
        o.smarthost(sink.address());
        o.delivery.messages_per_connection = 0;
    });
    harness.send(
        "alice@local.test",
        &["bob@remote.test"],
        &message("zero per connection"),
    );
    harness.wait_for("delivery", || harness.entries().is_empty());
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn a_silent_domain_holds_only_its_own_connections_and_the_others_go_on() {
    // The silent server never greets: every connection to it waits out the greeting timeout,
    // so it holds delivery slots; its throttle keeps it to two of them.
    let silent = Sink::start(Script::new().silent());
    let live = Sink::start(Script::new());
    let harness = Harness::started(|o| {
        o.route("silent.test", silent.address());
        o.route("live.test", live.address());
        o.delivery.concurrency = 3;
        o.delivery.messages_per_connection = 1;
        o.delivery.timeouts.greeting = Duration::from_secs(30);
        o.delivery.throttle.default.connections = 2;
    });
    for n in 0..MESSAGES {
        harness.send(
            "alice@local.test",
            &["bob@silent.test"],
            &message(&format!("silent {n}")),
        );
    }
    for n in 0..MESSAGES {
        harness.send(
            "alice@local.test",
            &["bob@live.test"],
            &message(&format!("live {n}")),
        );
    }
    harness.wait_for("the live domain's mail", || {
        live.messages().len() == MESSAGES
    });
    assert!(
        harness.delivery.throttles().connections("silent.test") <= 2,
        "the silent domain holds no more than its throttle allows"
    );
    assert_eq!(
        harness
            .entries()
            .iter()
            .filter(|e| e.recipient.domain() == "silent.test")
            .count(),
        MESSAGES,
        "the silent domain's mail is still queued, none lost"
    );
    // Closes the silent sessions so that the harness can shut down.
    drop(silent);
}

#[test]
fn a_smarthost_may_have_as_many_connections_as_delivery_has_slots() {
    // The relay answers only once twelve sessions are open at once: more than the default
    // throttle of one destination domain (10), which the smarthost does not have.
    let relay = Paced::start(Pace::default().answer_once_open(12));
    let harness = Harness::started(|o| {
        o.smarthost(relay.address());
        o.delivery.concurrency = 20;
        o.delivery.messages_per_connection = 1;
        o.delivery.connection_cache_time = Duration::ZERO;
    });
    assert_eq!(
        harness
            .delivery
            .throttles()
            .connection_limit(&relay.address().to_string()),
        20
    );
    assert_eq!(
        harness.delivery.throttles().connection_limit("remote.test"),
        10
    );
    // One domain: its own default limit of 10 would hold the relay's replies forever.
    for n in 0..20 {
        harness.send(
            "alice@local.test",
            &["bob@remote.test"],
            &message(&format!("smarthost {n}")),
        );
    }
    harness.wait_for("every message", || harness.entries().is_empty());
    assert_eq!(relay.accepted(), 20);
    assert!(relay.max_open() >= 12, "{} open at most", relay.max_open());
}
