//! Delivery status notifications: the bounce as the sender reads it, and the rules it keeps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mq_core::delivery::dsn::{self, Action, Bounce, FailedRecipient};
use mq_plugin_api::{Address, Message};

const ORIGINAL: &[u8] = b"Received: from client.example (unknown [192.0.2.1])\r\n\
    \tby mx.example.org (mq) with ESMTP; Sat, 28 Nov 2026 14:50:25 +0000\r\n\
    From: Alice <alice@example.org>\r\n\
    To: bob@example.net, carol@example.com\r\n\
    Subject: Quarterly figures\r\n\
    Message-ID: <1@example.org>\r\n\
    \r\n\
    The secret body text.\r\n";

fn address(text: &str) -> Address {
    text.parse().unwrap()
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn failed<'a>(recipient: &'a Address, remote: Option<&'a str>, diag: &str) -> FailedRecipient<'a> {
    FailedRecipient {
        recipient,
        status: "5.1.1".into(),
        action: Action::Failed,
        remote_mta: remote,
        diagnostic: Some(diag.into()),
        last_attempt: at(1_795_877_485),
    }
}

fn bounce<'a>(sender: &'a Address, failures: Vec<FailedRecipient<'a>>) -> Bounce<'a> {
    Bounce {
        reporting_mta: "mx.example.org",
        queue_id: "0006123456789ABC",
        sender,
        arrival: at(1_795_877_425),
        failures,
        original: ORIGINAL,
    }
}

fn text(bounce: &Bounce<'_>) -> String {
    let (_, message) = dsn::build(bounce, at(1_795_877_500), 42).unwrap();
    String::from_utf8(message).unwrap()
}

#[test]
fn a_bounce_for_one_recipient_reads_like_postfixs() {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let failure = failed(
        &bob,
        Some("mx.example.net"),
        "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in local recipient table",
    );
    insta::assert_snapshot!(text(&bounce(&sender, vec![failure])));
}

#[test]
fn a_bounce_for_two_recipients_has_a_block_each() {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let carol = address("carol@example.com");
    let mut local = failed(&carol, None, "x-unix; mailbox is full");
    local.status = "5.2.2".into();
    let failures = vec![
        failed(&bob, Some("mx.example.net"), "smtp; 550 5.1.1 no such user"),
        local,
    ];
    insta::assert_snapshot!(text(&bounce(&sender, failures)));
}

#[test]
fn a_delay_warning_says_it_is_only_a_warning() {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let mut delayed = failed(&bob, Some("mx.example.net"), "smtp; 451 4.3.0 try later");
    delayed.action = Action::Delayed;
    delayed.status = "4.3.0".into();
    let mut notice = bounce(&sender, vec![delayed]);
    notice.arrival = at(1_795_877_500 - 4 * 3600);
    let text = text(&notice);
    assert!(text.contains("\r\nSubject: Delayed Mail (still being retried)\r\n"));
    assert!(text.contains("could not be delivered for 4.0 hour(s)."));
    assert!(text.contains("\r\nAction: delayed\r\nStatus: 4.3.0\r\n"));
}

#[test]
fn a_bounce_is_never_bounced() {
    let null = Address::null();
    let bob = address("bob@example.net");
    let notice = bounce(&null, vec![failed(&bob, None, "smtp; 550 no")]);
    assert!(dsn::build(&notice, at(0), 1).is_none());
}

#[test]
fn the_bounce_goes_to_the_sender_and_parses_as_a_report() {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let notice = bounce(&sender, vec![failed(&bob, None, "smtp; 550 no")]);
    let (to, bytes) = dsn::build(&notice, at(1_795_877_500), 42).unwrap();
    assert_eq!(to, sender);
    let message = Message::parse(&bytes);
    let content_type = message.headers().iter().find(|h| h.is("Content-Type"));
    let content_type = content_type.unwrap().unfolded();
    assert!(content_type.starts_with("multipart/report; report-type=delivery-status;"));
    let boundary = content_type.split("boundary=\"").nth(1).unwrap();
    let boundary = boundary.trim_end_matches('"');
    let body = String::from_utf8(message.body().to_vec()).unwrap();
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    // Preamble, three parts, and what follows the closing delimiter.
    assert_eq!(parts.len(), 5);
    assert!(parts[4].starts_with("--"));
    let headers = Message::parse(parts[3].trim_start_matches("\r\n").as_bytes());
    assert_eq!(
        headers.headers().get("Content-Type"),
        Some("text/rfc822-headers")
    );
    assert!(parts[3].contains("\r\nSubject: Quarterly figures\r\n"));
    assert!(!body.contains("secret body text"));
}

#[test]
fn a_huge_diagnostic_makes_no_line_over_998_octets() {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let long = format!("smtp; 550 {}", "x".repeat(5_000));
    let mut original = ORIGINAL.to_vec();
    original.splice(
        0..0,
        format!("X-Long: {}\r\n", "y".repeat(3_000)).into_bytes(),
    );
    let mut notice = bounce(&sender, vec![failed(&bob, Some("mx.example.net"), &long)]);
    notice.original = &original;
    let (_, bytes) = dsn::build(&notice, at(1_795_877_500), 42).unwrap();
    for line in bytes.split(|&b| b == b'\n') {
        assert!(line.len() <= 998 + 1, "a line of {} octets", line.len());
        assert!(
            line.is_empty() || line.ends_with(b"\r"),
            "every line ends in CRLF"
        );
    }
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("Diagnostic-Code: smtp; 550 xxx"));
}

#[test]
fn the_same_inputs_give_the_same_bounce() {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let notice = bounce(&sender, vec![failed(&bob, None, "smtp; 550 no")]);
    assert_eq!(text(&notice), text(&notice));
    let other = dsn::build(&notice, at(1_795_877_500), 43).unwrap().1;
    assert_ne!(text(&notice).into_bytes(), other);
}
