//! SMTPUTF8 and DSN through the server into delivery: a message sent with SMTPUTF8 goes only to
//! a server that offers it (else it bounces with 5.6.7); the DSN parameters go on to a server
//! that offers DSN, and mq's own reports follow them (NOTIFY, RET, ENVID, ORCPT).

use mq_core::testkit::sink::{Script, Sink};

use crate::support::{Harness, smtp};

/// The sender, local so that its reports land in a Maildir.
const SENDER: &str = "alice@local.test";

const BODY: &str = "From: alice@local.test\r\nSubject: parameters\r\n\r\nThe body text.\r\n";

/// Sends [`BODY`] over `harness`'s SMTP server: `MAIL FROM:<SENDER> {mail}`, then `RCPT
/// TO:<recipient> params` for each; checks each step is accepted.
fn send(harness: &Harness, mail: &str, recipients: &[(&str, &str)]) {
    send_from(harness, SENDER, mail, recipients);
}

/// [`send`] from `sender`.
fn send_from(harness: &Harness, sender: &str, mail: &str, recipients: &[(&str, &str)]) {
    let server = harness.smtp(|_| {});
    let mut lines = vec![
        "EHLO client.test".to_owned(),
        format!("MAIL FROM:<{sender}> {mail}"),
    ];
    for (recipient, params) in recipients {
        lines.push(format!("RCPT TO:<{recipient}> {params}"));
    }
    lines.push("DATA".into());
    lines.extend(BODY.trim_end().split("\r\n").map(str::to_owned));
    lines.extend([".".to_owned(), "QUIT".to_owned()]);
    let replies = smtp(server.local_addr(), &lines);
    let rcpts = &replies[3..3 + recipients.len()];
    assert!(rcpts.iter().all(|r| r == "250 2.1.5 Ok"), "{replies:?}");
    let queued = &replies[replies.len() - 2];
    assert!(
        queued.starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
}

/// Delivery with `remote.test` routed to `sink`.
fn harness_for(sink: &Sink) -> Harness {
    let address = sink.address();
    Harness::started(|o| o.route("remote.test", address))
}

/// The sink's MAIL and RCPT commands.
fn envelope_commands(sink: &Sink) -> Vec<String> {
    let commands = sink.commands();
    let envelope = commands
        .into_iter()
        .filter(|c| c.starts_with("MAIL") || c.starts_with("RCPT"));
    envelope.collect()
}

fn has_line(text: &str, expected: &str) -> bool {
    text.lines().any(|line| line == expected)
}

#[test]
fn an_smtputf8_message_to_a_server_without_smtputf8_bounces_with_5_6_7() {
    let sink = Sink::start(Script::new());
    let harness = harness_for(&sink);
    send(&harness, "SMTPUTF8", &[("j\u{f6}s@remote.test", "")]);

    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    assert!(sink.messages().is_empty(), "nothing was sent");
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1);
    for expected in [
        "Content-Type: message/global-delivery-status",
        "Final-Recipient: utf-8; j\u{f6}s@remote.test",
        "Action: failed",
        "Status: 5.6.7",
    ] {
        assert!(
            has_line(&bounces[0], expected),
            "{expected:?} in\n{}",
            bounces[0]
        );
    }
    assert!(bounces[0].contains("SMTPUTF8 is required, but was not offered by host"));
}

/// RFC 6533: the bounce for a refused UTF-8 recipient is the internationalized report, and it
/// goes out with SMTPUTF8 itself.
#[test]
fn a_refused_utf8_recipient_is_bounced_in_a_global_report_sent_with_smtputf8() {
    let sink = Sink::start(
        Script::new()
            .ehlo(&["PIPELINING", "8BITMIME", "SMTPUTF8"])
            .on_rcpt("j\u{f6}s@remote.test", "550 5.1.1 no such user"),
    );
    let harness = harness_for(&sink);
    let sender = "alice@remote.test";
    send_from(
        &harness,
        sender,
        "SMTPUTF8",
        &[("j\u{f6}s@remote.test", "")],
    );

    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !sink.messages().is_empty()
    });
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "the bounce alone");
    assert_eq!(messages[0].rcpt_to, [sender]);
    let commands = envelope_commands(&sink);
    let bounce_mail = commands.iter().find(|c| c.starts_with("MAIL FROM:<>"));
    let bounce_mail = bounce_mail.expect("the bounce was sent from <>");
    assert!(
        bounce_mail.split(' ').any(|param| param == "SMTPUTF8"),
        "{commands:?}"
    );
    let bounce = String::from_utf8_lossy(&messages[0].data).into_owned();
    for expected in [
        "Content-Type: message/global-delivery-status",
        "Final-Recipient: utf-8; j\u{f6}s@remote.test",
        "Action: failed",
        "Status: 5.1.1",
        "Content-Type: message/global-headers",
        "Subject: parameters",
    ] {
        assert!(has_line(&bounce, expected), "{expected:?} in\n{bounce}");
    }
    assert!(
        bounce.contains("report-type=global-delivery-status;"),
        "{bounce}"
    );
}

#[test]
fn an_smtputf8_message_is_relayed_with_the_parameter_to_a_server_that_offers_it() {
    let sink = Sink::start(Script::new().ehlo(&["PIPELINING", "8BITMIME", "SMTPUTF8"]));
    let harness = harness_for(&sink);
    send(&harness, "SMTPUTF8", &[("j\u{f6}s@remote.test", "")]);

    harness.wait_for("delivery", || harness.entries().is_empty());
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_to, ["j\u{f6}s@remote.test"]);
    let commands = envelope_commands(&sink);
    assert_eq!(
        commands,
        [
            // The Received field names the UTF-8 recipient: 8-bit, declared.
            "MAIL FROM:<alice@local.test> BODY=8BITMIME SMTPUTF8",
            "RCPT TO:<j\u{f6}s@remote.test>"
        ]
    );
    assert!(harness.mailbox(SENDER).is_empty(), "no report");
}

#[test]
fn dsn_parameters_go_on_to_a_server_that_offers_dsn_and_mq_sends_no_report_of_its_own() {
    let sink = Sink::start(Script::new().ehlo(&["PIPELINING", "DSN"]));
    let harness = harness_for(&sink);
    let mail = "RET=HDRS ENVID=QQ+2B314159";
    let rcpt = "NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bx@remote.test";
    send(&harness, mail, &[("bob@remote.test", rcpt)]);

    // The report would be queued before the entry is removed: none once the queue is empty.
    harness.wait_for("delivery", || harness.entries().is_empty());
    assert_eq!(
        envelope_commands(&sink),
        [
            "MAIL FROM:<alice@local.test> RET=HDRS ENVID=QQ+2B314159",
            "RCPT TO:<bob@remote.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+2Bx@remote.test"
        ]
    );
    assert!(harness.mailbox(SENDER).is_empty(), "the next hop reports");
}

#[test]
fn notify_success_to_a_server_without_dsn_gets_a_relayed_report() {
    let sink = Sink::start(Script::new().ehlo(&["PIPELINING"]));
    let harness = harness_for(&sink);
    let rcpt = "NOTIFY=SUCCESS ORCPT=rfc822;bob@remote.test";
    send(&harness, "ENVID=QQ314159", &[("bob@remote.test", rcpt)]);

    harness.wait_for("the report", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    assert_eq!(
        envelope_commands(&sink),
        ["MAIL FROM:<alice@local.test>", "RCPT TO:<bob@remote.test>"],
        "no DSN parameters to a server without DSN"
    );
    let reports = harness.mailbox(SENDER);
    assert_eq!(reports.len(), 1);
    for expected in [
        "Subject: Successful Mail Delivery Report",
        "Original-Envelope-Id: QQ314159",
        "Original-Recipient: rfc822; bob@remote.test",
        "Final-Recipient: rfc822; bob@remote.test",
        "Action: relayed",
        "Status: 2.0.0",
    ] {
        assert!(
            has_line(&reports[0], expected),
            "{expected:?} in\n{}",
            reports[0]
        );
    }
}

#[test]
fn notify_success_at_local_delivery_gets_a_delivered_report_with_the_whole_message() {
    let sink = Sink::start(Script::new());
    let harness = harness_for(&sink);
    send(
        &harness,
        "RET=FULL ENVID=local-1",
        &[("carol@local.test", "NOTIFY=SUCCESS,FAILURE")],
    );

    harness.wait_for("the report", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    assert_eq!(harness.mailbox("carol@local.test").len(), 1);
    let reports = harness.mailbox(SENDER);
    assert_eq!(reports.len(), 1);
    let report = &reports[0];
    for expected in [
        "Subject: Successful Mail Delivery Report",
        "Original-Envelope-Id: local-1",
        "Final-Recipient: rfc822; carol@local.test",
        "Action: delivered",
        "Status: 2.0.0",
        "Content-Type: message/rfc822",
        "The body text.",
    ] {
        assert!(has_line(report, expected), "{expected:?} in\n{report}");
    }
    assert!(sink.messages().is_empty());
}

#[test]
fn notify_never_gets_no_bounce_and_ret_hdrs_returns_only_the_headers() {
    let refused = "550 5.1.1 no such user";
    let sink = Sink::start(
        Script::new()
            .on_rcpt("never@remote.test", refused)
            .on_rcpt("told@remote.test", refused),
    );
    let harness = harness_for(&sink);
    send(
        &harness,
        "RET=HDRS",
        &[
            ("never@remote.test", "NOTIFY=NEVER"),
            ("told@remote.test", ""),
        ],
    );

    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    let rcpts = envelope_commands(&sink);
    assert!(
        rcpts.contains(&"RCPT TO:<never@remote.test>".to_owned()),
        "{rcpts:?}"
    );
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1, "a bounce for told@ only");
    let bounce = &bounces[0];
    assert!(
        has_line(bounce, "Final-Recipient: rfc822; told@remote.test"),
        "{bounce}"
    );
    assert!(!bounce.contains("never@remote.test"), "{bounce}");
    assert!(has_line(bounce, "Subject: parameters"), "{bounce}");
    assert!(
        !bounce.contains("The body text."),
        "only the headers: {bounce}"
    );
}

#[test]
fn ret_full_returns_the_whole_message_in_a_bounce() {
    let sink = Sink::start(Script::new().on_rcpt("bob@remote.test", "550 5.1.1 no such user"));
    let harness = harness_for(&sink);
    send(&harness, "RET=FULL", &[("bob@remote.test", "")]);

    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1);
    assert!(
        has_line(&bounces[0], "Content-Type: message/rfc822"),
        "{}",
        bounces[0]
    );
    assert!(has_line(&bounces[0], "The body text."), "{}", bounces[0]);
}

#[test]
fn an_smtputf8_message_to_a_utf8_local_mailbox_is_delivered_into_its_maildir() {
    let sink = Sink::start(Script::new());
    let harness = harness_for(&sink);
    send(&harness, "SMTPUTF8", &[("j\u{f6}s@local.test", "")]);

    harness.wait_for("delivery", || harness.entries().is_empty());
    let delivered = harness.mailbox("j\u{f6}s@local.test");
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].ends_with(BODY), "{}", delivered[0]);
    assert!(harness.mailbox(SENDER).is_empty(), "no bounce");
}

/// As Postfix does: SMTPUTF8 was declared, but nothing in the envelope or the header needs it.
#[test]
fn an_smtputf8_message_that_is_ascii_after_all_goes_to_a_server_without_smtputf8() {
    let sink = Sink::start(Script::new().ehlo(&["PIPELINING"]));
    let harness = harness_for(&sink);
    send(&harness, "SMTPUTF8", &[("bob@remote.test", "")]);

    harness.wait_for("delivery", || harness.entries().is_empty());
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(
        envelope_commands(&sink),
        ["MAIL FROM:<alice@local.test>", "RCPT TO:<bob@remote.test>"]
    );
    assert!(harness.mailbox(SENDER).is_empty(), "no bounce");
}

#[test]
fn a_delay_warning_names_only_the_recipients_whose_notify_asks_for_delays() {
    let sink = Sink::start(Script::new().on_data_end("451 4.3.0 Error: try again later"));
    let address = sink.address();
    let harness = Harness::started(|o| {
        o.route("remote.test", address);
        o.delivery.delay_warning_time = std::time::Duration::from_secs(1);
    });
    send(
        &harness,
        "",
        &[
            ("quiet@remote.test", "NOTIFY=FAILURE"),
            ("told@remote.test", "NOTIFY=DELAY,FAILURE"),
            ("plain@remote.test", ""),
        ],
    );

    harness.wait_for("the delay warning", || !harness.mailbox(SENDER).is_empty());
    let warnings = harness.mailbox(SENDER);
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the message: {warnings:#?}"
    );
    let warning = &warnings[0];
    assert!(has_line(warning, "Action: delayed"), "{warning}");
    assert!(
        has_line(warning, "Final-Recipient: rfc822; told@remote.test"),
        "{warning}"
    );
    assert!(
        has_line(warning, "Final-Recipient: rfc822; plain@remote.test"),
        "without NOTIFY a delay is reported: {warning}"
    );
    assert!(
        !warning.contains("quiet@remote.test"),
        "NOTIFY=FAILURE asks for no delay report: {warning}"
    );
}
