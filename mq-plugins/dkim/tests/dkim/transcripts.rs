//! Whole dialogues, snapshotted: who gets signed, and which fields the signature covers.

use mq_core::testkit;

use crate::support::{MESSAGE, fixture, key, queued, redacted, relay};

fn section() -> String {
    "headers = [\"From\", \"To\", \"Subject\", \"Date\", \"Message-ID\"]\n".to_owned()
        + &key(
            "example.org",
            "mq2026",
            "rsa-sha256",
            &fixture("rsa-2048.pkcs1.pem"),
        )
}

#[test]
fn signs_mail_from_a_relay_network_client() {
    let transcript = relay(&section(), MESSAGE);
    insta::assert_snapshot!(redacted(&transcript));
}

#[test]
fn leaves_mail_from_an_untrusted_client_unsigned() {
    let transcript = testkit::session()
        .registered("dkim", &section())
        .ehlo("client.example")
        .mail_from("jane@example.org")
        .rcpt_to("bob@localhost")
        .data(MESSAGE)
        .run();
    insta::assert_snapshot!(redacted(&transcript));
    assert_eq!(queued(&transcript), MESSAGE.as_bytes());
}

#[test]
fn leaves_mail_from_a_domain_without_a_key_unsigned() {
    let message = MESSAGE.replace("jane@example.org>", "jane@example.com>");
    let transcript = relay(&section(), &message);
    insta::assert_snapshot!(redacted(&transcript));
    assert_eq!(queued(&transcript), message.as_bytes());
}

#[test]
fn leaves_mail_with_two_from_fields_or_two_authors_unsigned() {
    for message in [
        MESSAGE.replace("To: Bob", "From: mallory@example.org\r\nTo: Bob"),
        MESSAGE.replace("<jane@example.org>", "<jane@example.org>, bob@example.org"),
        MESSAGE.replace("From: Jane Doe <jane@example.org>\r\n", ""),
    ] {
        let transcript = relay(&section(), &message);
        assert_eq!(queued(&transcript), message.as_bytes());
    }
}

#[test]
fn the_from_domain_matches_keys_without_regard_to_case() {
    let message = MESSAGE.replace("jane@example.org>", "jane@EXAMPLE.Org>");
    let transcript = relay(&section(), &message);
    assert!(queued(&transcript).starts_with(b"DKIM-Signature:"));
}
