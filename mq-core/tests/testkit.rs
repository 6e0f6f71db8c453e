//! The testkit's transcripts, snapshotted: they must read like the dialogue.

use std::cell::Cell;
use std::time::Duration;

use mq_core::testkit;
use mq_core::{FailurePolicy, Outcome};
use mq_plugin_api::{
    Address, Close, Context, Control, Data, Envelope, Message, Plugin, RcptTo, Reply, hooks,
};

/// Stamps the message with the core that received it.
struct Stamp;

#[hooks]
impl Plugin for Stamp {
    async fn smtp_in_data(&self, ctx: &mut Context, data: &mut Data) -> Control {
        data.message
            .headers_mut()
            .prepend("X-Core", ctx.core().to_string());
        Control::Continue
    }
}

/// Refuses recipients at one domain and rewrites one address.
struct Gate;

#[hooks]
impl Plugin for Gate {
    async fn smtp_in_rcpt_to(&self, _ctx: &mut Context, rcpt: &mut RcptTo) -> Control {
        if rcpt.recipients[0].domain_is("blocked.example") {
            return rcpt.reject(Reply::new(550, "5.7.1", "Recipient refused by policy"));
        }
        if rcpt.recipients[0].local_part() == "alias" {
            rcpt.recipients = vec!["jane@example.net".parse().expect("an address")];
        }
        Control::Continue
    }
}

/// Asks for one retry, then continues.
#[derive(Default)]
struct Once {
    retried: Cell<bool>,
}

#[hooks]
impl Plugin for Once {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        if self.retried.replace(true) {
            Control::Continue
        } else {
            Control::Retry
        }
    }
}

/// Panics.
struct Broken;

#[hooks]
impl Plugin for Broken {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        panic!("the plugin's own bug")
    }
}

#[test]
fn a_session_transcript_reads_like_the_dialogue() {
    let transcript = testkit::session()
        .plugin_named("stamp", Stamp)
        .plugin_named("gate", Gate)
        .relay_network()
        .ehlo("client.example")
        .mail_from("a@example.org")
        .rcpt_to("b@blocked.example")
        .rcpt_to("alias@example.net")
        .data("Subject: hi\r\n\r\nbody\r\n")
        .quit()
        .run();
    insta::assert_snapshot!(transcript);
    let queued = &transcript.queued()[0];
    assert_eq!(queued.recipient.as_str(), "jane@example.net");
    assert_eq!(queued.message.headers().get("X-Core"), Some("0"));
}

#[test]
fn a_chain_transcript_shows_retries_and_changes() {
    let envelope = Envelope {
        sender: Address::null(),
        recipients: vec![],
    };
    let mut data = Data::new(envelope, Message::parse(b"Subject: x\r\n\r\n"));
    let (transcript, outcome) = testkit::chain()
        .plugin_named("b-once", Once::default())
        .plugin_named("a-stamp", Stamp)
        .run(&mut data);
    assert_eq!(outcome, Outcome::Proceed);
    assert_eq!(
        data.message
            .headers()
            .iter()
            .filter(|h| h.is("X-Core"))
            .count(),
        2
    );
    insta::assert_snapshot!(transcript);
}

#[test]
fn a_panicking_plugin_fails_the_step_in_the_transcript() {
    let transcript = testkit::session()
        .on_error(FailurePolicy::Tempfail)
        .plugin_named("broken", Broken)
        .ehlo("client.example")
        .mail_from("")
        .rcpt_to("postmaster@localhost")
        .data("Subject: x\r\n\r\nbody\r\n")
        .run();
    insta::assert_snapshot!(transcript);
    assert!(transcript.queued().is_empty());
}

#[test]
fn commands_out_of_order_get_the_servers_replies() {
    let transcript = testkit::session()
        .mail_from("a@example.org")
        .ehlo("c")
        .rcpt_to("b@example.net")
        .data("x")
        .auth("u", "p")
        .run();
    insta::assert_snapshot!(transcript);
}

/// Marks messages from trusted clients, as a submission plugin decides whom to act for.
struct Trusted;

#[hooks]
impl Plugin for Trusted {
    async fn smtp_in_data(&self, ctx: &mut Context, data: &mut Data) -> Control {
        let session = ctx.session();
        let line = format!("{} {:?}", session.is_trusted(), session.helo);
        data.message.headers_mut().append("X-Trusted", line);
        Control::Continue
    }
}

#[test]
fn plugins_see_the_session_facts_the_server_knows() {
    let run = |relay: bool| {
        let session = testkit::session().plugin_named("trusted", Trusted);
        let session = if relay {
            session.relay_network()
        } else {
            session
        };
        let transcript = session
            .ehlo("client.example")
            .mail_from("a@example.org")
            .rcpt_to("b@localhost")
            .data("x\r\n")
            .run();
        transcript.queued()[0]
            .message
            .headers()
            .get("X-Trusted")
            .map(str::to_owned)
    };
    assert_eq!(run(true).as_deref(), Some("true Some(\"client.example\")"));
    assert_eq!(
        run(false).as_deref(),
        Some("false Some(\"client.example\")")
    );
}

/// Waits before it lets the message through, as a plugin that asks a slow service would.
struct Patient;

#[hooks]
impl Plugin for Patient {
    async fn smtp_in_data(&self, ctx: &mut Context, data: &mut Data) -> Control {
        ctx.sleep(Duration::from_millis(5)).await;
        data.message
            .headers_mut()
            .prepend("X-Waited-Until", format!("{:?}", ctx.now()));
        Control::Continue
    }

    async fn smtp_in_close(&self, _ctx: &mut Context, _close: &mut Close) -> Control {
        Control::Continue
    }
}

#[test]
fn a_wait_inside_a_hook_shows_in_the_transcript_and_takes_no_real_time() {
    let server = testkit::server().plugin_named("patient", Patient).start();
    let started = server.now();
    let transcript = server
        .session()
        .ehlo("client.example")
        .mail_from("")
        .rcpt_to("postmaster@localhost")
        .data("Subject: x\r\n\r\nbody\r\n")
        .quit()
        .run();
    let text = transcript.to_string();
    assert!(
        text.contains("   smtp_in_data  patient → Continue (waited 5ms)\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "S: 221 2.0.0 Bye\n   (connection closed)\n   smtp_in_close  patient → Continue\n"
        ),
        "{text}"
    );
    assert_eq!(
        server.now().duration_since(started).unwrap(),
        Duration::from_millis(5)
    );
}

/// Times out: it sleeps longer than its deadline.
struct Sleepy;

#[hooks]
impl Plugin for Sleepy {
    async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
        ctx.sleep(Duration::from_hours(1)).await;
        Control::Continue
    }
}

#[test]
fn a_plugin_past_its_deadline_times_out_on_the_virtual_clock() {
    let server = testkit::server()
        .timeout(Duration::from_secs(2))
        .on_error(FailurePolicy::Tempfail)
        .plugin_named("sleepy", Sleepy)
        .start();
    let transcript = server
        .session()
        .helo("client.example")
        .mail_from("")
        .rcpt_to("postmaster@localhost")
        .data("Subject: x\r\n\r\nbody\r\n")
        .run();
    let text = transcript.to_string();
    assert!(
        text.contains("smtp_in_data  sleepy → failed: timed out after 2s (waited 2s)"),
        "{text}"
    );
    assert!(transcript.queued().is_empty());
}

/// What a production server recorded: a relay client, a message, and a reply from a server
/// that did not yet stamp messages.
const RECORDED: &str = "mq-session 1
client 192.0.2.7:51000
local 192.0.2.25:25
hostname mx.example
relay_network yes
starttls no
domain localhost
S 220 mx.example ESMTP mq\\r\\n
C EHLO client.example\\r\\n
S 250-mx.example\\r\\n
S 250-PIPELINING\\r\\n
S 250-SIZE 10240000\\r\\n
S 250-VRFY\\r\\n
S 250-ENHANCEDSTATUSCODES\\r\\n
S 250-8BITMIME\\r\\n
S 250-DSN\\r\\n
S 250 SMTPUTF8\\r\\n
C MAIL FROM:<a@example.org>\\r\\n
S 250 2.1.0 Ok\\r\\n
C RCPT TO:<b@example.net>\\r\\n
S 250 2.1.5 Ok\\r\\n
C DATA\\r\\n
S 354 End data with <CR><LF>.<CR><LF>\\r\\n
C Subject: hi\\r\\n
C \\r\\n
C body\\r\\n
C .\\r\\n
S 250 2.0.0 Ok: queued as 000612345678ABCD\\r\\n
C QUIT\\r\\n
S 221 2.0.0 Bye\\r\\n
";

#[test]
fn a_recorded_session_replays_with_the_plugins_under_test() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("one.session");
    std::fs::write(&path, RECORDED).expect("the recording");
    let replayed = testkit::replay(&path)
        .expect("a recording")
        .plugins(|server| server.plugin_named("stamp", Stamp))
        .run();
    insta::assert_snapshot!(replayed);
    assert!(
        replayed.differences().is_empty(),
        "{:?}",
        replayed.differences()
    );
    assert_eq!(
        replayed.queued()[0].message.headers().get("X-Core"),
        Some("0")
    );

    // The same file, with a plugin that refuses the recipient: the difference is shown.
    let refused = testkit::replay(&path)
        .expect("a recording")
        .plugins(|server| server.plugin_named("gate", Gate))
        .run();
    let changed = std::fs::read_to_string(&path)
        .expect("the recording")
        .replace("b@example.net", "b@blocked.example");
    std::fs::write(&path, changed).expect("the changed recording");
    assert!(refused.differences().is_empty());
    let refused = testkit::replay(&path)
        .expect("a recording")
        .plugins(|server| server.plugin_named("gate", Gate))
        .run();
    assert_eq!(
        refused.differences()[..2],
        [
            "recorded: 250 2.1.5 Ok",
            "now:      550 5.7.1 Recipient refused by policy"
        ]
    );
}

/// Starts a background task at connect that counts a tick a minute later.
struct Ticker {
    ticks: std::rc::Rc<Cell<u32>>,
}

#[hooks]
impl Plugin for Ticker {
    async fn smtp_in_connect(
        &self,
        ctx: &mut Context,
        _connect: &mut mq_plugin_api::Connect,
    ) -> Control {
        let minute = ctx.sleep(Duration::from_mins(1));
        let ticks = std::rc::Rc::clone(&self.ticks);
        ctx.spawn(async move {
            minute.await;
            ticks.set(ticks.get() + 1);
        })
        .detach();
        Control::Continue
    }
}

#[test]
fn advancing_the_clock_fires_a_plugins_background_timers_at_their_time() {
    let ticks = std::rc::Rc::new(Cell::new(0));
    let ticker = Ticker {
        ticks: std::rc::Rc::clone(&ticks),
    };
    let server = testkit::server().plugin_named("ticker", ticker).start();
    let transcript = server.session().quit().run();
    assert_eq!(transcript.lines()[0], "C: (connects from 192.0.2.1:40000)");
    assert_eq!(ticks.get(), 0, "a background timer waits for the clock");
    server.advance(Duration::from_secs(59));
    assert_eq!(ticks.get(), 0);
    server.advance(Duration::from_secs(1));
    assert_eq!(ticks.get(), 1);
}
