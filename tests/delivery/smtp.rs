//! Remote delivery against the scripted sink: what each kind of answer does to the entry. A 2xx
//! removes it, a 4xx defers it until the next try, a lost connection or a silent server defers
//! it and never loses it.

use std::time::Duration;

use mq_core::queue::{Entry, EntryState};
use mq_core::testkit::sink::{Script, Sink};

use crate::support::{Harness, message};

/// Ten minutes: no second attempt within a test, well within the harness's maximum age (an hour).
const NO_RETRY: Duration = Duration::from_mins(10);

/// Whether `entries` is one entry deferred once, its last error containing `error`.
fn deferred_once(entries: &[Entry], error: &str) -> bool {
    matches!(entries, [entry] if entry.state == EntryState::Deferred
        && entry.attempts == 1
        && entry.last_error.as_deref().is_some_and(|e| e.contains(error)))
}

#[test]
fn a_message_the_server_takes_is_delivered_and_leaves_the_queue() {
    let sink = Sink::start(Script::new());
    let harness = Harness::started(|o| o.smarthost(sink.address()));
    let body = message("taken at once");
    harness.send("alice@local.test", &["bob@remote.test"], &body);
    harness.wait_for("the entry to go", || harness.entries().is_empty());

    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].mail_from, "alice@local.test");
    assert_eq!(messages[0].rcpt_to, ["bob@remote.test"]);
    assert_eq!(String::from_utf8_lossy(&messages[0].data), body);
    // The entry goes at the 250; the QUIT follows on the connection after it.
    harness.wait_for("the session to end with QUIT", || {
        sink.commands().last().map(String::as_str) == Some("QUIT")
    });
    assert_eq!(sink.commands()[0], "EHLO mq.test");
}

#[test]
fn a_tempfailed_message_is_deferred_with_the_reply_then_delivered_on_retry() {
    let sink =
        Sink::start(Script::new().tempfail_first(1, "451 4.3.0 Error: queue file write error"));
    let harness = Harness::started(|o| o.smarthost(sink.address()));
    let body = message("tempfailed once");
    let id = harness.send("alice@local.test", &["bob@remote.test"], &body);

    harness.wait_for("a deferral with the 451", || {
        deferred_once(
            &harness.entries_of(id),
            "451 4.3.0 Error: queue file write error",
        )
    });
    assert!(sink.messages().is_empty());
    harness.wait_for("the retry to deliver it", || harness.entries().is_empty());
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(String::from_utf8_lossy(&messages[0].data), body);
    let data_commands = sink.commands().iter().filter(|c| *c == "DATA").count();
    assert_eq!(data_commands, 2, "one attempt, one retry");
}

#[test]
fn a_connection_lost_mid_data_defers_the_entry_and_keeps_it() {
    let sink = Sink::start(Script::new().disconnect_mid_data());
    let harness = Harness::started(|o| {
        o.smarthost(sink.address());
        o.delivery.retry.schedule = vec![NO_RETRY];
    });
    let body = message("cut off");
    let id = harness.send("alice@local.test", &["bob@remote.test"], &body);

    harness.wait_for(
        "a deferral",
        || matches!(harness.entries_of(id).as_slice(), [e] if e.state == EntryState::Deferred),
    );
    let entries = harness.entries_of(id);
    assert_eq!(entries[0].attempts, 1);
    assert!(entries[0].last_error.is_some(), "{entries:#?}");
    assert!(sink.messages().is_empty());
    assert_eq!(
        harness.body(id).as_deref(),
        Some(body.as_str()),
        "the message is kept whole"
    );
}

#[test]
fn a_server_that_never_answers_holds_the_entry_in_flight_until_the_connection_ends() {
    let sink = Sink::start(Script::new().silent());
    let harness = Harness::started(|o| {
        o.smarthost(sink.address());
        o.delivery.retry.schedule = vec![NO_RETRY];
    });
    let id = harness.send(
        "alice@local.test",
        &["bob@remote.test"],
        &message("into the void"),
    );

    harness.wait_for("a connection", || sink.connections() == 1);
    std::thread::sleep(Duration::from_millis(300));
    let entries = harness.entries_of(id);
    assert!(
        matches!(entries.as_slice(), [e] if e.state == EntryState::InFlight && e.attempts == 0),
        "{entries:#?}"
    );
    // The server goes away, closing the connection under the client.
    drop(sink);
    harness.wait_for("a deferral", || {
        matches!(harness.entries_of(id).as_slice(), [e] if e.state == EntryState::Deferred && e.attempts == 1)
    });
}

#[test]
fn a_server_that_never_answers_is_given_up_on_after_the_client_timeouts() {
    let sink = Sink::start(Script::new().silent());
    let harness = Harness::started(|o| {
        o.smarthost(sink.address());
        o.delivery.retry.schedule = vec![NO_RETRY];
        o.delivery.timeouts.greeting = std::time::Duration::from_millis(300);
    });
    let id = harness.send(
        "alice@local.test",
        &["bob@remote.test"],
        &message("into the void"),
    );
    let deferred = crate::support::eventually(
        || matches!(harness.entries_of(id).as_slice(), [e] if e.state == EntryState::Deferred),
    );
    // Closes the silent session, so that the harness can shut down either way.
    drop(sink);
    assert!(
        deferred,
        "a silent server is given up on within the test's patience"
    );
}

/// A message of several pieces goes out read from the journal a piece at a time: it arrives
/// byte for byte, its 8-bit text in the last piece declared with `BODY=8BITMIME`, a line
/// starting with a dot past the first piece still doubled on the wire (the sink undoubles it).
#[test]
fn a_large_message_is_relayed_byte_for_byte_with_its_8bit_declared() {
    let sink = Sink::start(Script::new());
    let harness = Harness::started(|o| o.smarthost(sink.address()));
    let mut plain = String::from("From: alice@local.test\r\nSubject: large\r\n\r\n");
    while plain.len() < mq_core::queue::PIECE * 3 {
        plain.push_str("A line of a long message, as long as the others.\r\n");
    }
    let mut eight_bit = plain.clone();
    eight_bit.push_str("Caf\u{e9} au lait, at the very end.\r\n");
    let mut dotted = plain.clone();
    dotted.push_str(".a line that starts with a dot, far into the message\r\n");
    for body in [&plain, &eight_bit, &dotted] {
        harness.send("alice@local.test", &["bob@remote.test"], body);
    }
    harness.wait_for("the entries to go", || harness.entries().is_empty());

    let mut received: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| String::from_utf8(m.data.clone()).unwrap())
        .collect();
    received.sort_by_key(String::len);
    let mut sent = [plain, dotted, eight_bit];
    sent.sort_by_key(String::len);
    assert_eq!(received, sent);
    let mails: Vec<String> = sink
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("MAIL"))
        .collect();
    let eight_bit_mails: Vec<&String> = mails
        .iter()
        .filter(|m| m.ends_with(" BODY=8BITMIME"))
        .collect();
    assert_eq!(eight_bit_mails.len(), 1, "{mails:#?}");
    let size = sent.iter().find(|m| !m.is_ascii()).unwrap().len();
    assert!(
        eight_bit_mails[0].contains(&format!(" SIZE={size} ")),
        "{mails:#?}"
    );
}
