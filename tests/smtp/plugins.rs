//! Plugins of this test binary, registered through inventory, at the inbound hooks: one refuses
//! a domain at RCPT TO, one rewrites a sender at MAIL FROM, one checks at DATA that the server's
//! Received field comes first. Each acts on its own addresses only.

use mq_plugin_api::{Context, Control, Data, MailFrom, Plugin, RcptTo, Reply, hooks, plugin};

use crate::support::{TestServer, queued_id};

/// The domain [`BlockDomain`] refuses.
const BLOCKED: &str = "blocked.example";

/// Refuses recipients in [`BLOCKED`] at `smtp_in_rcpt_to`.
struct BlockDomain;

#[plugin(name = "test-block-domain")]
impl BlockDomain {
    fn new() -> Self {
        BlockDomain
    }
}

#[hooks]
impl Plugin for BlockDomain {
    async fn smtp_in_rcpt_to(&self, _ctx: &mut Context, event: &mut RcptTo) -> Control {
        if let Some(blocked) = event.recipients.iter().find(|r| r.domain_is(BLOCKED)) {
            let text = format!("<{blocked}>: Recipient address rejected: {BLOCKED} is blocked");
            return event.reject(Reply::new(550, "5.7.1", text));
        }
        Control::Continue
    }
}

/// Rewrites the sender `old@example.org` to `new@example.org` at `smtp_in_mail_from`.
struct RewriteSender;

#[plugin(name = "test-rewrite-sender")]
impl RewriteSender {
    fn new() -> Self {
        RewriteSender
    }
}

#[hooks]
impl Plugin for RewriteSender {
    async fn smtp_in_mail_from(&self, _ctx: &mut Context, event: &mut MailFrom) -> Control {
        if event.sender.as_str() == "old@example.org" {
            event.sender = "new@example.org".parse().expect("an address");
        }
        Control::Continue
    }
}

/// The recipient whose messages [`ReceivedFirst`] checks.
const CHECKED: &str = "received-check@localhost";

/// At `smtp_in_data`, for mail to [`CHECKED`]: refuses the message unless the first header field
/// is the server's Received field, and marks it checked at the bottom of the header.
struct ReceivedFirst;

#[plugin(name = "test-received-first")]
impl ReceivedFirst {
    fn new() -> Self {
        ReceivedFirst
    }
}

#[hooks]
impl Plugin for ReceivedFirst {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        if !data
            .envelope()
            .recipients
            .iter()
            .any(|r| r.as_str() == CHECKED)
        {
            return Control::Continue;
        }
        let first = data.message.headers().iter().next();
        let stamped = first.is_some_and(|h| {
            h.is("Received")
                && h.unfolded()
                    .trim_start()
                    .starts_with("from client.example ")
        });
        if stamped {
            data.message.headers_mut().append("X-Received-First", "yes");
        } else {
            let text = "Error: Received is not the first header field";
            return data.reject(Reply::new(554, "5.6.0", text));
        }
        Control::Continue
    }
}

#[test]
fn a_plugin_refuses_a_recipient_at_rcpt_to_and_the_others_are_kept() {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(
        client.send("RCPT TO:<x@Blocked.Example>"),
        // The plugin sees the address in its one spelling.
        "550 5.7.1 <x@blocked.example>: Recipient address rejected: blocked.example is blocked"
    );
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    let id = queued_id(&client.data("Subject: one left\r\n\r\nhi\r\n"));
    let entries = server.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].queue_id, entries[0].recipient.as_str()),
        (id, "b@localhost")
    );
}

#[test]
fn a_plugin_rewrites_the_sender_at_mail_from_and_the_queue_keeps_the_new_one() {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    client.ehlo();
    let rewritten = queued_id(&client.message(
        "old@example.org",
        "b@localhost",
        "Subject: rewritten\r\n\r\nhi\r\n",
    ));
    let untouched = queued_id(&client.message(
        "other@example.org",
        "b@localhost",
        "Subject: untouched\r\n\r\nhi\r\n",
    ));
    let senders: Vec<_> = server
        .entries()
        .iter()
        .map(|e| (e.queue_id, e.sender.to_string()))
        .collect();
    assert_eq!(
        senders,
        [
            (rewritten, "new@example.org".to_owned()),
            (untouched, "other@example.org".to_owned())
        ]
    );
}

#[test]
fn plugins_at_data_see_the_received_field_first_and_it_is_stored_first() {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    client.ehlo();
    let reply = client.message(
        "a@example.org",
        CHECKED,
        "Received: from elsewhere.example by mx.example; Sat, 28 Nov 2026 14:50:25 +0000\r\nSubject: checked\r\n\r\nbody\r\n",
    );
    let id = queued_id(&reply);
    let body = server.body(id);
    let ours = "Received: from client.example (unknown [127.0.0.1]) by localhost (mq) with ESMTP";
    assert!(body.starts_with(ours), "{body:?}");
    let (headers, rest) = body.split_once("\r\n\r\n").expect("a header block");
    let names: Vec<&str> = headers
        .lines()
        .map(|line| line.split_once(':').expect("a field").0)
        .collect();
    assert_eq!(
        names,
        ["Received", "Received", "Subject", "X-Received-First"],
        "ours first, the earlier hop's next, the plugin's mark last"
    );
    assert_eq!(rest, "body\r\n");
}

/// The address [`Expand`] turns into [`EXPANSION`] recipients.
pub(crate) const LIST: &str = "everyone@localhost";

/// How many recipients [`LIST`] expands to.
pub(crate) const EXPANSION: usize = 5;

/// Expands [`LIST`] at `smtp_in_rcpt_to`, as an alias plugin does.
struct Expand;

#[plugin(name = "test-expand")]
impl Expand {
    fn new() -> Self {
        Expand
    }
}

#[hooks]
impl Plugin for Expand {
    async fn smtp_in_rcpt_to(&self, _ctx: &mut Context, event: &mut RcptTo) -> Control {
        if event.recipients.len() == 1 && event.recipients[0].as_str() == LIST {
            event.recipients = (0..EXPANSION)
                .map(|n| format!("member{n}@localhost").parse().expect("an address"))
                .collect();
        }
        Control::Continue
    }
}

#[test]
fn the_recipient_limit_counts_rcpt_commands_not_what_a_plugin_expands_them_to() {
    let server = TestServer::start(1, |config| config.max_recipients = 2);
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(client.send(&format!("RCPT TO:<{LIST}>")), "250 2.1.5 Ok");
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    assert_eq!(
        client.send("RCPT TO:<c@localhost>"),
        "452 4.5.3 Error: too many recipients"
    );
    queued_id(&client.data("Subject: to a list\r\n\r\nhi\r\n"));
    assert_eq!(server.entries().len(), EXPANSION + 1);
}
