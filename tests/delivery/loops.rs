//! Mail loops: a domain whose MX host is mq itself, told by its address (loopback, or where mq
//! listens) or by a greeting that gives mq's own hostname. Each bounces once with 5.4.6 instead
//! of going round mq until the hop limit (or the disk) stops it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use mq_core::testkit::sink::{Script, Sink};

use crate::support::{HOSTNAME, Harness, free_port, message};

/// Sends a message from alice (local) to `bob@domain`, waits for the bounce, and checks it
/// says the mail loops; returns the bounce.
fn bounces_as_a_loop(harness: &Harness, domain: &str) -> String {
    let recipient = format!("bob@{domain}");
    let id = harness.send(
        "alice@local.test",
        &[recipient.as_str()],
        &message("round and round"),
    );
    harness.wait_for("the bounce", || {
        harness.entries_of(id).is_empty() && !harness.mailbox("alice@local.test").is_empty()
    });
    let bounces = harness.mailbox("alice@local.test");
    assert_eq!(bounces.len(), 1, "{bounces:#?}");
    let bounce = bounces[0].clone();
    assert!(
        bounce.contains(&format!(
            "\r\nFinal-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.4.6\r\n"
        )),
        "{bounce}"
    );
    assert!(
        bounce.contains(&format!("mail for {domain} loops back to myself")),
        "{bounce}"
    );
    bounce
}

#[test]
fn a_domain_whose_mx_is_on_loopback_bounces_with_5_4_6_and_mq_never_takes_a_copy() {
    let port = free_port();
    let harness = Harness::started(|o| {
        o.delivery.mx_port = port;
        o.delivery.allow_loopback_mx = false;
    });
    let server = harness.serve_smtp(SocketAddr::from(([127, 0, 0, 1], port)), |_| {});
    harness
        .dns
        .add_mx("loop.test", 10, "mx.loop.test")
        .add_a("mx.loop.test", [127, 0, 0, 1].into());

    bounces_as_a_loop(&harness, "loop.test");
    assert_eq!(server.stats().sessions.load(Ordering::SeqCst), 0);
    assert_eq!(server.stats().messages.load(Ordering::SeqCst), 0);
}

#[test]
fn an_mx_host_at_the_address_mq_listens_on_is_mq_even_with_loopback_mx_allowed() {
    let port = free_port();
    let harness = Harness::started(|o| o.delivery.mx_port = port);
    // Another name in the greeting, so that only the address tells.
    let server = harness.serve_smtp(SocketAddr::from(([127, 0, 0, 1], port)), |config| {
        config.hostname = "other-name.test".into();
    });
    harness
        .dns
        .add_mx("self.test", 10, "mx.self.test")
        .add_a("mx.self.test", [127, 0, 0, 1].into());

    bounces_as_a_loop(&harness, "self.test");
    assert_eq!(server.stats().sessions.load(Ordering::SeqCst), 0);
    assert_eq!(server.stats().messages.load(Ordering::SeqCst), 0);
}

#[test]
fn a_server_greeting_with_mqs_own_hostname_is_mq_and_gets_no_mail() {
    let sink = Sink::start(Script::new().greeting(&format!("220 {HOSTNAME} ESMTP")));
    let harness = Harness::started(|o| o.delivery.mx_port = sink.address().port());
    harness
        .dns
        .add_mx("mirror.test", 10, "mx.mirror.test")
        .add_a("mx.mirror.test", [127, 0, 0, 1].into());

    bounces_as_a_loop(&harness, "mirror.test");
    assert_eq!(sink.connections(), 1, "one attempt");
    assert!(sink.messages().is_empty());
    assert!(
        !sink.commands().iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        sink.commands()
    );
}
