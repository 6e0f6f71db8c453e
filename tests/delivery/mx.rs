//! MX routes from the DNS server the test runs on loopback: the preferred host first and the
//! next when it refuses, the domain's own address without MX records, a null MX bounced without
//! a try, and an answer truncated over UDP asked again over TCP.

use std::net::{Ipv4Addr, SocketAddr};

use mq_core::testkit::sink::{Script, Sink};

use crate::paced::{Pace, Paced};
use crate::support::{Harness, message};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A harness sending MX mail to `sink`'s port.
fn harness_for(sink: &Sink) -> Harness {
    let port = sink.address().port();
    Harness::started(|o| o.delivery.mx_port = port)
}

#[test]
fn a_preferred_mx_that_refuses_at_greeting_passes_the_mail_to_the_next() {
    let sink = Sink::start(Script::new());
    // The preferred host: the same port on another loopback address, greeting with 421.
    let down = SocketAddr::from(([127, 0, 0, 2], sink.address().port()));
    let refuser = Paced::start_on(
        down,
        Pace::default().greeting("421 4.3.2 Service shutting down"),
    );
    let harness = harness_for(&sink);
    // Listed out of order: preference decides, not the order of the answer.
    harness
        .dns
        .add_mx("pref.test", 20, "mx2.pref.test")
        .add_mx("pref.test", 10, "mx1.pref.test");
    harness
        .dns
        .add_a("mx1.pref.test", Ipv4Addr::new(127, 0, 0, 2))
        .add_a("mx2.pref.test", LOOPBACK);
    let body = message("through the second mx");
    harness.send("alice@local.test", &["bob@pref.test"], &body);

    harness.wait_for("delivery", || harness.entries().is_empty());
    assert_eq!(refuser.ip(), down.ip());
    assert_eq!(
        refuser.connections(),
        1,
        "the preferred host was tried first"
    );
    assert_eq!(sink.connections(), 1);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["bob@pref.test"]);
}

#[test]
fn a_domain_without_mx_records_gets_its_mail_at_its_own_address() {
    let sink = Sink::start(Script::new());
    let harness = harness_for(&sink);
    harness.dns.add_a("implicit.test", LOOPBACK);
    harness.send(
        "alice@local.test",
        &["bob@implicit.test"],
        &message("to the a record"),
    );

    harness.wait_for("delivery", || harness.entries().is_empty());
    assert_eq!(sink.messages()[0].rcpt_to, ["bob@implicit.test"]);
}

#[test]
fn a_null_mx_bounces_at_once_without_a_retry_with_status_5_1_10() {
    let sink = Sink::start(Script::new());
    let harness = harness_for(&sink);
    harness.dns.add_mx("nomail.test", 0, ".");
    let id = harness.send(
        "alice@local.test",
        &["bob@nomail.test"],
        &message("to nowhere"),
    );

    let mut most_attempts = 0;
    harness.wait_for("the bounce", || {
        let original = harness.entries_of(id);
        most_attempts = original
            .iter()
            .map(|e| e.attempts)
            .fold(most_attempts, u32::max);
        original.is_empty() && !harness.mailbox("alice@local.test").is_empty()
    });
    assert_eq!(most_attempts, 0, "never deferred");
    assert_eq!(sink.connections(), 0);
    let bounce = &harness.mailbox("alice@local.test")[0];
    assert!(
        bounce.contains(
            "\r\nFinal-Recipient: rfc822; bob@nomail.test\r\nAction: failed\r\nStatus: 5.1.10\r\n"
        ),
        "RFC 7505 §4.3's status: {bounce}"
    );
    assert!(bounce.contains("null mx"), "{bounce}");
}

#[test]
fn an_answer_truncated_over_udp_is_asked_again_over_tcp() {
    let sink = Sink::start(Script::new());
    let harness = harness_for(&sink);
    harness
        .dns
        .add_mx("truncated.test", 10, "mx.truncated.test")
        .truncate_udp("truncated.test");
    harness.dns.add_a("mx.truncated.test", LOOPBACK);
    harness.send(
        "alice@local.test",
        &["bob@truncated.test"],
        &message("over tcp"),
    );

    harness.wait_for("delivery", || harness.entries().is_empty());
    assert_eq!(sink.messages()[0].rcpt_to, ["bob@truncated.test"]);
    assert!(harness.dns.udp_queries() > 0);
    assert!(
        harness.dns.tcp_queries() > 0,
        "the MX query was asked again over TCP"
    );
}
