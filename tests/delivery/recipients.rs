//! Recipients as a client gives them over SMTP, through the server into delivery: each mailbox
//! gets one copy however often the transaction names it (itself, through an alias, in other
//! spellings of its domain), and a domain in any spelling follows the route of its one form.

use mq_core::delivery::DeliveryConfig;
use mq_core::testkit::sink::{Script, Sink};

use crate::support::{Harness, LOCAL, message, smtp};

/// The dialogue that sends `body` from a remote sender to `recipients`, then quits.
fn transaction(recipients: &[String], body: &str) -> Vec<String> {
    let mut lines = vec![
        "EHLO client.test".to_owned(),
        "MAIL FROM:<alice@remote.test>".to_owned(),
    ];
    lines.extend(recipients.iter().map(|r| format!("RCPT TO:<{r}>")));
    lines.push("DATA".to_owned());
    // Dot-stuffed, as RFC 5321 §4.5.2 wants.
    let stuffed = |line: &str| match line.strip_prefix('.') {
        Some(_) => format!(".{line}"),
        None => line.to_owned(),
    };
    lines.extend(body.trim_end().split("\r\n").map(stuffed));
    lines.extend([".".to_owned(), "QUIT".to_owned()]);
    lines
}

/// Runs [`transaction`] against `harness`'s SMTP server and checks that every RCPT got `250`
/// and the message was queued.
fn send_over_smtp(harness: &Harness, recipients: &[String], body: &str) {
    let server = harness.smtp(|_| {});
    let lines = transaction(recipients, body);
    let replies = smtp(server.local_addr(), &lines);
    let rcpt_replies = &replies[3..3 + recipients.len()];
    assert!(
        rcpt_replies.iter().all(|r| r == "250 2.1.5 Ok"),
        "{replies:?}"
    );
    assert!(
        replies[replies.len() - 2].starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
}

#[test]
fn a_recipient_named_a_hundred_times_gets_one_copy() {
    let harness = Harness::started(|_| {});
    let recipients = vec![format!("b@{LOCAL}"); 100];
    send_over_smtp(&harness, &recipients, &message("a hundred times"));

    harness.wait_for("delivery", || harness.entries().is_empty());
    assert_eq!(harness.mailbox("b@local.test").len(), 1);
}

#[test]
fn other_spellings_of_the_domain_are_one_recipient_but_another_case_of_the_local_part_is_not() {
    let harness = Harness::started(|_| {});
    let recipients = [
        "b@local.test",
        "b@LOCAL.TEST.",
        "b@Local.Test",
        "B@local.test",
    ];
    let recipients: Vec<String> = recipients.iter().map(|r| (*r).to_owned()).collect();
    send_over_smtp(&harness, &recipients, &message("mixed case"));

    harness.wait_for("delivery", || harness.entries().is_empty());
    let copies = harness.mailbox("b@local.test");
    assert_eq!(copies.len(), 1);
    assert!(copies[0].contains("\r\nDelivered-To: b@local.test\r\n"));
    // Local parts are compared exactly: mq's Maildirs keep their case.
    assert_eq!(harness.mailbox("B@local.test").len(), 1);
}

#[test]
fn an_alias_named_a_hundred_times_gets_each_member_one_copy() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let members: Vec<String> = (0..10).map(|i| format!("m{i}@{LOCAL}")).collect();
    let map = dir.path().join("virtual");
    std::fs::write(&map, format!("list@{LOCAL} {}\n", members.join(", "))).expect("the map");
    let harness = Harness::started(|o| {
        o.plugins = vec!["aliases"];
        o.plugin_config = format!("[plugins.aliases]\nmap = '{}'\n", map.display());
    });
    let recipients = vec![format!("list@{LOCAL}"); 100];
    send_over_smtp(&harness, &recipients, &message("to the list"));

    harness.wait_for("delivery", || harness.entries().is_empty());
    let copies: Vec<usize> = members.iter().map(|m| harness.mailbox(m).len()).collect();
    assert_eq!(copies, [1; 10]);
}

/// `[delivery.routes]` as an operator writes it, `routes` a TOML table body.
fn routes(toml: &str) -> DeliveryConfig {
    toml::from_str(&format!("[routes]\n{toml}")).expect("a valid [delivery] section")
}

#[test]
fn a_domain_with_a_trailing_dot_and_capitals_follows_the_route_of_its_lower_case_form() {
    let routed = Sink::start(Script::new());
    let elsewhere = Sink::start(Script::new());
    let harness = Harness::started(|o| {
        o.smarthost(elsewhere.address());
        o.delivery.routes = routes(&format!("\"Loop.Test.\" = \"{}\"", routed.address())).routes;
    });
    send_over_smtp(&harness, &["y@LOOP.TEST.".to_owned()], &message("routed"));

    harness.wait_for("delivery", || harness.entries().is_empty());
    let messages = routed.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].rcpt_to, ["y@loop.test"]);
    assert!(elsewhere.messages().is_empty());
}

#[test]
fn a_unicode_domain_follows_the_route_of_its_punycode_form() {
    let routed = Sink::start(Script::new());
    let elsewhere = Sink::start(Script::new());
    let harness = Harness::started(|o| {
        o.smarthost(elsewhere.address());
        o.delivery.routes = routes(&format!("\"bücher.test\" = \"{}\"", routed.address())).routes;
    });
    send_over_smtp(
        &harness,
        &["y@BÜCHER.test".to_owned()],
        &message("punycode"),
    );

    harness.wait_for("delivery", || harness.entries().is_empty());
    let messages = routed.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0].rcpt_to, ["y@xn--bcher-kva.test"]);
    assert!(elsewhere.messages().is_empty());
}
