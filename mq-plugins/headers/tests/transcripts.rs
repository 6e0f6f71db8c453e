//! The `headers` plugin through the testkit: transcripts of whole dialogues, snapshotted.

use mq_core::testkit;
use mq_plugin_headers as _;

const MESSAGE: &str = "Received: from relay.example\r\nX-Originating-IP: [198.51.100.7]\r\n\
                       X-Mailer: Old Mailer 1.0\r\nx-mailer: again\r\nSubject: hello\r\n\r\nbody\r\n";

/// A full section through the registered factory, as `mq serve` would build it.
const SECTION: &str = r#"
    remove = ["X-Originating-IP"]

    [[replace]]
    name = "X-Mailer"
    value = "mq"

    [[add]]
    name = "X-Relayed-By"
    value = "mq.example"
    position = "top"

    [[add]]
    name = "X-Policy"
    value = "checked"
"#;

#[test]
fn removes_replaces_and_adds_in_that_order() {
    let transcript = testkit::session()
        .registered("headers", SECTION)
        .relay_network()
        .ehlo("client.example")
        .mail_from("a@example.org")
        .rcpt_to("b@example.net")
        .data(MESSAGE)
        .quit()
        .run();
    insta::assert_snapshot!(transcript);
    let queued = &transcript.queued()[0].message;
    let names: Vec<&str> = queued
        .headers()
        .iter()
        .map(mq_plugin_api::Header::name)
        .collect();
    assert_eq!(
        names,
        [
            "X-Relayed-By",
            "Received",
            "Received",
            "X-Mailer",
            "Subject",
            "X-Policy"
        ]
    );
}

#[test]
fn an_empty_section_changes_nothing() {
    let transcript = testkit::session()
        .registered("headers", "")
        .relay_network()
        .ehlo("client.example")
        .mail_from("a@example.org")
        .rcpt_to("b@example.net")
        .data(MESSAGE)
        .run();
    insta::assert_snapshot!(transcript);
    assert_eq!(
        as_sent(&transcript.queued()[0].message.to_bytes()),
        MESSAGE.as_bytes()
    );
}

#[test]
fn a_disabled_plugin_is_in_no_chain() {
    let transcript = testkit::session()
        .registered_with("headers", "enabled = false", "remove = [\"Subject\"]")
        .relay_network()
        .ehlo("client.example")
        .mail_from("a@example.org")
        .rcpt_to("b@example.net")
        .data(MESSAGE)
        .run();
    assert!(
        !transcript.to_string().contains("headers →"),
        "{transcript}"
    );
    assert_eq!(
        transcript.queued()[0].message.headers().get("Subject"),
        Some("hello")
    );
}

/// A queued message without the `Received` field mq's server put on top: what the client sent,
/// as the plugins left it.
fn as_sent(queued: &[u8]) -> &[u8] {
    assert!(queued.starts_with(b"Received: from client.example"));
    let mut end = 0;
    while let Some(at) = queued[end..].windows(2).position(|w| w == b"\r\n") {
        end += at + 2;
        if !matches!(queued.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    &queued[end..]
}
