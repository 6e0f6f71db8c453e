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
        original_recipient: None,
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
        envid: None,
        return_full: false,
        smtputf8: false,
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

/// The part of `text` whose `Content-Type` is `content_type`, without its own header lines.
fn part<'t>(text: &'t str, content_type: &str) -> &'t str {
    let start = text.find(&format!("Content-Type: {content_type}")).unwrap();
    let body = text[start..].split_once("\r\n\r\n").unwrap().1;
    body.split("\r\n--").next().unwrap()
}

/// Delivery builds one notice per failed entry, that is per recipient (the notice as it builds
/// it is the snapshot in `tests/delivery/bounce.rs`); [`dsn::build`] also reports several
/// recipients of one message at once, each in its own line and its own block, in order.
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
    let text = text(&bounce(&sender, failures));

    let explained: Vec<&str> = part(&text, "text/plain")
        .split("\r\n")
        .filter(|line| line.starts_with('<'))
        .collect();
    assert_eq!(
        explained,
        [
            "<bob@example.net>: host mx.example.net said: 550 5.1.1 no such user",
            "<carol@example.com>: mailbox is full",
        ]
    );
    let blocks: Vec<&str> = part(&text, "message/delivery-status")
        .split("\r\n\r\n")
        .collect();
    assert_eq!(
        blocks.len(),
        3,
        "the message's fields, then a block each: {blocks:#?}"
    );
    assert!(blocks[0].starts_with("Reporting-MTA: dns; mx.example.org\r\n"));
    assert_eq!(
        blocks[1].trim_end(),
        "Final-Recipient: rfc822; bob@example.net\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Remote-MTA: dns; mx.example.net\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\
         Last-Attempt-Date: Sat, 28 Nov 2026 14:51:25 +0000"
    );
    assert_eq!(
        blocks[2].trim_end(),
        "Final-Recipient: rfc822; carol@example.com\r\n\
         Action: failed\r\n\
         Status: 5.2.2\r\n\
         Diagnostic-Code: x-unix; mailbox is full\r\n\
         Last-Attempt-Date: Sat, 28 Nov 2026 14:51:25 +0000"
    );
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

/// The one-recipient notice delivery builds, from inputs made afresh at each call (addresses,
/// strings, the original message): two calls share nothing but equal values.
fn notice(seed: u64, diagnostic: &str) -> String {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let original = ORIGINAL.to_vec();
    let mut notice = bounce(&sender, vec![failed(&bob, None, diagnostic)]);
    notice.original = &original;
    String::from_utf8(dsn::build(&notice, at(1_795_877_500), seed).unwrap().1).unwrap()
}

/// The notice's MIME boundary.
fn boundary_of(notice: &str) -> &str {
    let rest = notice.split_once("boundary=\"").unwrap().1;
    rest.split_once('"').unwrap().0
}

#[test]
fn the_same_inputs_give_the_same_bounce() {
    let first = notice(42, "smtp; 550 no");
    assert_eq!(
        first,
        notice(42, "smtp; 550 no"),
        "nothing but the inputs counts"
    );

    let reseeded = notice(43, "smtp; 550 no");
    let (one, other) = (boundary_of(&first), boundary_of(&reseeded));
    assert_ne!(one, other, "another seed picks another boundary");
    assert_eq!(
        reseeded.replace(other, one),
        first,
        "the seed changes the boundary alone"
    );

    let changed = notice(42, "smtp; 550 gone");
    assert_ne!(changed, first);
    assert!(
        changed.contains("\r\nDiagnostic-Code: smtp; 550 gone\r\n"),
        "{changed}"
    );
}

/// RFC 6533: a bounce for a UTF-8 recipient is the internationalized report, the recipient's
/// address typed `utf-8`, its ORCPT's `\x{HEX}` escapes decoded, the headers returned as
/// `message/global-headers`.
#[test]
fn a_bounce_for_a_utf8_recipient_is_a_global_delivery_status_report() {
    let sender = address("alice@example.org");
    let jos = address("j\u{f6}s@example.net");
    let mut failure = failed(&jos, Some("mx.example.net"), "smtp; 550 5.1.1 no such user");
    failure.original_recipient = Some("utf-8;j\\x{F6}s@example.net");
    let text = text(&bounce(&sender, vec![failure]));

    assert!(
        text.contains("Content-Type: multipart/report; report-type=global-delivery-status;\r\n"),
        "{text}"
    );
    let blocks: Vec<&str> = part(&text, "message/global-delivery-status")
        .split("\r\n\r\n")
        .collect();
    assert_eq!(
        blocks[1].trim_end(),
        "Original-Recipient: utf-8; j\u{f6}s@example.net\r\n\
         Final-Recipient: utf-8; j\u{f6}s@example.net\r\n\
         Action: failed\r\n\
         Status: 5.1.1\r\n\
         Remote-MTA: dns; mx.example.net\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\
         Last-Attempt-Date: Sat, 28 Nov 2026 14:51:25 +0000"
    );
    let headers = part(&text, "message/global-headers");
    assert!(
        headers.contains("\r\nSubject: Quarterly figures\r\n"),
        "{headers}"
    );
    assert!(!text.contains("rfc822"), "no RFC 822 type is left: {text}");
    assert!(text.contains("Content-Type: text/plain; charset=utf-8\r\n"));
}

/// A message that came with SMTPUTF8 gets the internationalized report even for an ASCII
/// recipient, whose address keeps the `rfc822` type; `RET=FULL` returns it as `message/global`.
#[test]
fn a_report_on_an_smtputf8_message_returns_it_as_message_global() {
    let sender = address("alice@example.org");
    let bob = address("bob@example.net");
    let mut notice = bounce(&sender, vec![failed(&bob, None, "smtp; 550 no")]);
    notice.smtputf8 = true;
    notice.return_full = true;
    assert!(notice.is_global());
    let text = text(&notice);

    assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
    assert!(text.contains("\r\nFinal-Recipient: rfc822; bob@example.net\r\n"));
    let returned = part(&text, "message/global\r\n");
    assert!(returned.contains("The secret body text."), "{returned}");
    assert!(!text.contains("message/rfc822"), "{text}");
}

/// A UTF-8 sender makes the report internationalized too; `+`, `=` and `\` of a UTF-8 address
/// are escaped as unitext requires.
#[test]
fn a_report_to_a_utf8_sender_escapes_what_unitext_may_not_hold() {
    let sender = address("j\u{f6}s@example.org");
    let recipient = address("b\u{e9}a+tag@example.net");
    let notice = bounce(&sender, vec![failed(&recipient, None, "smtp; 550 no")]);
    let text = text(&notice);
    assert!(text.contains("\r\nTo: j\u{f6}s@example.org\r\n"), "{text}");
    assert!(text.contains("Content-Type: message/global-delivery-status\r\n"));
    assert!(
        text.contains("\r\nFinal-Recipient: utf-8; b\u{e9}a\\x{2B}tag@example.net\r\n"),
        "{text}"
    );
}
