//! Bounces: a recipient refused with a 5xx, three refused recipients of one message in one
//! bounce, an entry that outlived its maximum age, and the delay warning. The
//! sender is mostly local, so the bounce is delivered into its Maildir, where the test reads it;
//! its text is an insta snapshot with the volatile parts (dates, queue id, boundary, port)
//! replaced. A remote sender's bounce goes out from `<>` and is never bounced itself; and a
//! bounce is queued before the failed entry is removed, so no crash can lose it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mq_core::delivery::stats::{AttemptResult, Class};
use mq_core::queue::{AckResult, EmbeddedQueue, Entry, NewMessage, Queue, QueueError, QueueId};
use mq_core::testkit::sink::{Script, Sink};

use crate::support::{Harness, message};

/// The original sender, local so that its bounce lands in a Maildir.
const SENDER: &str = "alice@local.test";

/// Routes `remote.test` through the test DNS server to the sink: MX `mx.remote.test` at
/// `127.0.0.1`.
fn remote_mx(harness: &Harness) {
    harness.dns.add_mx("remote.test", 10, "mx.remote.test");
    harness.dns.add_a("mx.remote.test", [127, 0, 0, 1].into());
}

/// `dsn` with what changes from run to run replaced: the MIME boundary, the original's queue
/// id, the notice's dates, the seconds in the Message-Id and the sink's port. Line ends become
/// `\n`.
fn normalize(dsn: &str, original: QueueId, port: u16) -> String {
    let boundary = dsn
        .split_once("boundary=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(boundary, _)| boundary.to_owned())
        .expect("a multipart notice has a boundary");
    let text = dsn
        .replace(&boundary, "BOUNDARY")
        .replace(&original.to_string(), "QUEUE-ID")
        .replace(&format!(":{port}"), ":PORT");
    // The notice's own Date is the first; the original's, quoted below, is fixed.
    let mut own_date = true;
    let lines = text.split("\r\n").map(|line| {
        if line.starts_with("Date: ") && std::mem::take(&mut own_date) {
            return "Date: DATE".to_owned();
        }
        for field in ["Arrival-Date: ", "Last-Attempt-Date: "] {
            if line.starts_with(field) {
                return format!("{field}DATE");
            }
        }
        match line
            .strip_prefix("Message-Id: <")
            .and_then(|rest| rest.split_once('.'))
        {
            Some((_, rest)) => format!("Message-Id: <SECONDS.{rest}"),
            None => line.to_owned(),
        }
    });
    lines.collect::<Vec<_>>().join("\n")
}

#[test]
fn a_refused_recipient_is_bounced_to_the_sender_while_the_other_is_delivered() {
    let bad = "550 5.1.1 <bad@remote.test>: Recipient address rejected: User unknown in local recipient table";
    let sink = Sink::start(Script::new().on_rcpt("bad@remote.test", bad));
    let port = sink.address().port();
    let harness = Harness::started(|o| o.delivery.mx_port = port);
    remote_mx(&harness);
    let body = message("one good one bad");
    let id = harness.send(SENDER, &["good@remote.test", "bad@remote.test"], &body);

    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].rcpt_to,
        ["good@remote.test"],
        "one transaction, the good recipient taken"
    );
    assert_eq!(String::from_utf8_lossy(&messages[0].data), body);

    let bounces = harness.mailbox(SENDER);
    assert_eq!(
        bounces.len(),
        1,
        "one bounce, for the refused recipient only"
    );
    let bounce = &bounces[0];
    let lines: Vec<&str> = bounce.split_inclusive('\n').collect();
    assert!(
        lines.iter().all(|l| l.ends_with("\r\n") && l.len() <= 1000),
        "CRLF lines of at most 998 octets"
    );
    insta::assert_snapshot!(normalize(bounce, id, port));
}

#[test]
fn three_refused_recipients_of_one_message_make_one_bounce_naming_all_three() {
    let script = ["bad1", "bad2", "bad3"]
        .iter()
        .fold(Script::new(), |script, user| {
            script.on_rcpt(
                &format!("{user}@remote.test"),
                &format!("550 5.1.1 <{user}@remote.test>: no such user"),
            )
        });
    let sink = Sink::start(script);
    let port = sink.address().port();
    let harness = Harness::started(|o| o.delivery.mx_port = port);
    remote_mx(&harness);
    let recipients = [
        "bad1@remote.test",
        "good@remote.test",
        "bad2@remote.test",
        "bad3@remote.test",
    ];
    let id = harness.send(SENDER, &recipients, &message("three bad one good"));

    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(sink.messages()[0].rcpt_to, ["good@remote.test"]);
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1, "one bounce for the message: {bounces:#?}");
    insta::assert_snapshot!(normalize(&bounces[0], id, port));
}

#[test]
fn the_sender_is_warned_once_when_an_entry_stays_deferred_past_delay_warning_time_restarts_included()
 {
    let sink = Sink::start(Script::new().on_data_end("451 4.3.0 Error: try again later"));
    let port = sink.address().port();
    let configure = |o: &mut crate::support::Options| {
        o.delivery.mx_port = port;
        o.delivery.delay_warning_time = Duration::from_secs(1);
    };
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::started_in(dir.path(), configure);
    remote_mx(&harness);
    let id = harness.send(SENDER, &["bob@remote.test"], &message("slow going"));
    harness.wait_for("the delay warning", || !harness.mailbox(SENDER).is_empty());
    drop(harness);

    // A restart on the same queue: the warning is not sent again.
    let attempts = || sink.commands().iter().filter(|c| *c == "DATA").count();
    let warned_at = attempts();
    let harness = Harness::started_in(dir.path(), configure);
    remote_mx(&harness);
    harness.wait_for("two more deferred attempts", || attempts() >= warned_at + 2);
    assert_eq!(harness.entries_of(id).len(), 1, "still queued");
    let warnings = harness.mailbox(SENDER);
    assert_eq!(warnings.len(), 1, "warned once: {warnings:#?}");
    let warning = normalize(&warnings[0], id, port);
    for expected in [
        "Subject: Delayed Mail (still being retried)",
        "Final-Recipient: rfc822; bob@remote.test",
        "Action: delayed",
        "Status: 4.3.0",
        "Remote-MTA: dns; mx.remote.test",
        "Diagnostic-Code: smtp; 451 4.3.0 Error: try again later",
    ] {
        assert!(
            warning.lines().any(|line| line == expected),
            "{expected:?} in\n{warning}"
        );
    }
}

#[test]
fn no_delay_warning_is_sent_by_default() {
    let sink = Sink::start(Script::new().on_data_end("451 4.3.0 Error: try again later"));
    let harness = Harness::started(|o| o.delivery.mx_port = sink.address().port());
    remote_mx(&harness);
    harness.send(SENDER, &["bob@remote.test"], &message("slow, quietly"));

    // Past a second and deferred again: the warning would have been sent with 1s.
    harness.wait_for("three deferred attempts", || {
        sink.commands().iter().filter(|c| *c == "DATA").count() >= 3
    });
    assert!(harness.mailbox(SENDER).is_empty());
}

#[test]
fn an_entry_past_its_maximum_age_fails_with_a_4_4_7_bounce() {
    let sink = Sink::start(Script::new().on_data_end("451 4.3.0 Error: try again later"));
    let port = sink.address().port();
    let harness = Harness::started(|o| {
        o.delivery.mx_port = port;
        o.delivery.retry.max_age = Duration::from_secs(2);
    });
    remote_mx(&harness);
    let id = harness.send(SENDER, &["bob@remote.test"], &message("never taken"));

    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    let attempts = sink.commands().iter().filter(|c| *c == "DATA").count();
    assert!(
        attempts >= 2,
        "retried before it expired: {attempts} attempt(s)"
    );
    assert!(sink.messages().is_empty());
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1);
    let bounce = normalize(&bounces[0], id, port);
    for expected in [
        "Subject: Undelivered Mail Returned to Sender",
        "Final-Recipient: rfc822; bob@remote.test",
        "Action: failed",
        "Status: 4.4.7",
        "Diagnostic-Code: smtp; 451 4.3.0 Error: try again later",
    ] {
        assert!(
            bounce.lines().any(|line| line == expected),
            "{expected:?} in\n{bounce}"
        );
    }
}

#[test]
fn a_bounce_goes_out_from_the_null_sender_and_is_never_bounced_itself() {
    let sink = Sink::start(
        Script::new()
            .on_rcpt(
                "bad@remote.test",
                "550 5.1.1 <bad@remote.test>: no such user",
            )
            .on_rcpt(
                "alice@remote.test",
                "550 5.1.1 <alice@remote.test>: no such sender either",
            ),
    );
    let (harness, seen) = Witness::started(sink.address().port());
    remote_mx(&harness);
    harness.send(
        "alice@remote.test",
        &["bad@remote.test"],
        &message("a bounce that bounces"),
    );

    // A failed entry's bounce is queued before the entry is removed (the test below), so once
    // the refused bounce's entry is gone, a bounce of it would have been queued already.
    harness.wait_for("the refused bounce removed", || {
        witnessed(&seen, |s| !s.bounces_settled.is_empty())
    });
    let bounces = witnessed(&seen, |s| s.live_at_bounce.len());
    assert_eq!(bounces, 1, "the message's bounce, and no bounce of it");
    assert!(harness.entries().is_empty(), "{:#?}", harness.entries());
    let mails: Vec<String> = sink
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("MAIL FROM:"))
        .collect();
    assert_eq!(
        mails.len(),
        2,
        "the message, then its bounce, and nothing after: {mails:#?}"
    );
    assert!(
        mails[0].starts_with("MAIL FROM:<alice@remote.test>"),
        "{mails:#?}"
    );
    assert!(mails[1].starts_with("MAIL FROM:<>"), "{mails:#?}");
    assert!(
        sink.commands()
            .iter()
            .any(|c| c == "RCPT TO:<alice@remote.test>"),
        "the bounce was offered to the sender"
    );
}

#[test]
fn the_remote_mta_of_a_bounce_is_the_host_name_alone() {
    let sink = Sink::start(Script::new().on_rcpt("bad@remote.test", "550 5.1.1 no such user"));
    let harness = Harness::started(|o| o.delivery.mx_port = sink.address().port());
    remote_mx(&harness);
    harness.send(SENDER, &["bad@remote.test"], &message("remote mta"));

    harness.wait_for("the bounce", || !harness.mailbox(SENDER).is_empty());
    let bounce = &harness.mailbox(SENDER)[0];
    assert!(
        bounce.contains("\r\nRemote-MTA: dns; mx.remote.test\r\n"),
        "{bounce}"
    );
}

/// What [`Witness`] saw of the bounces (messages from `<>`).
#[derive(Debug, Default)]
struct Seen {
    /// The live message ids each time a bounce was queued: what a crash at that moment would
    /// leave.
    live_at_bounce: Vec<Vec<QueueId>>,
    /// Each bounce's entry removed from the queue (delivered, or failed for good), in order.
    bounces_settled: Vec<QueueId>,
    /// Bounces still to refuse, as a queue that cannot write would.
    refuse_bounces: usize,
}

/// The queue, noting what it is asked to do with bounces.
#[derive(Debug)]
struct Witness {
    inner: Arc<EmbeddedQueue>,
    seen: Arc<Mutex<Seen>>,
}

impl Witness {
    /// A harness whose queue is witnessed into the returned record.
    fn started(mx_port: u16) -> (Harness, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = Arc::clone(&seen);
        let harness = Harness::started(|o| {
            o.delivery.mx_port = mx_port;
            o.wrap_queue = Some(Box::new(move |inner| {
                Arc::new(Witness {
                    inner,
                    seen: shared,
                })
            }));
        });
        (harness, seen)
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A look at what the witness saw so far.
fn witnessed<T>(seen: &Mutex<Seen>, read: impl FnOnce(&Seen) -> T) -> T {
    read(&seen.lock().unwrap_or_else(PoisonError::into_inner))
}

#[async_trait::async_trait]
impl Queue for Witness {
    async fn enqueue(&self, message: NewMessage) -> Result<QueueId, QueueError> {
        if message.sender.is_null() {
            let live = self.inner.list().iter().map(|e| e.queue_id).collect();
            let mut seen = self.seen();
            seen.live_at_bounce.push(live);
            if seen.refuse_bounces > 0 {
                seen.refuse_bounces -= 1;
                return Err(QueueError::Unavailable("the disk is full".into()));
            }
        }
        self.inner.enqueue(message).await
    }

    async fn take_due(&self, now: SystemTime, max: usize) -> Result<Vec<Entry>, QueueError> {
        self.inner.take_due(now, max).await
    }

    async fn body(&self, id: &QueueId) -> Result<Arc<[u8]>, QueueError> {
        self.inner.body(id).await
    }

    async fn ack(&self, entry: &Entry, result: AckResult) -> Result<(), QueueError> {
        let acked = self.inner.ack(entry, result).await;
        if entry.sender.is_null() {
            self.seen().bounces_settled.push(entry.queue_id);
        }
        acked
    }

    async fn defer(
        &self,
        entry: &Entry,
        until: SystemTime,
        error: String,
    ) -> Result<(), QueueError> {
        self.inner.defer(entry, until, error).await
    }

    fn list(&self) -> Vec<Entry> {
        self.inner.list()
    }

    async fn delete(&self, id: &QueueId) -> Result<usize, QueueError> {
        self.inner.delete(id).await
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[test]
fn the_bounce_is_queued_before_the_failed_entry_is_removed() {
    let sink = Sink::start(Script::new().on_rcpt("bad@remote.test", "550 5.1.1 no such user"));
    let (harness, seen) = Witness::started(sink.address().port());
    remote_mx(&harness);
    let id = harness.send(
        SENDER,
        &["bad@remote.test"],
        &message("crash before the bounce"),
    );

    harness.wait_for("the bounce", || !harness.mailbox(SENDER).is_empty());
    let live = witnessed(&seen, |s| s.live_at_bounce.clone());
    assert_eq!(live.len(), 1, "one bounce");
    assert!(
        live[0].contains(&id),
        "a crash as the bounce is queued would lose {id} and its bounce"
    );
}

#[test]
fn a_failed_entry_whose_bounce_the_queue_refused_stays_queued_and_bounces_on_its_retry() {
    let sink = Sink::start(Script::new().on_rcpt("bad@remote.test", "550 5.1.1 no such user"));
    let (harness, seen) = Witness::started(sink.address().port());
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .refuse_bounces = 1;
    remote_mx(&harness);
    let id = harness.send(
        SENDER,
        &["bad@remote.test"],
        &message("bounce refused once"),
    );

    harness.wait_for("the refused bounce", || {
        witnessed(&seen, |s| s.live_at_bounce.len()) == 1
    });
    harness.wait_for("the entry deferred", || {
        harness
            .entries()
            .iter()
            .any(|e| e.queue_id == id && e.last_error.is_some())
    });
    assert!(harness.mailbox(SENDER).is_empty(), "no bounce went out");

    // Its retry fails it again, and this time the bounce is queued and the entry removed.
    harness.queue.flush();
    harness.wait_for("the bounce", || !harness.mailbox(SENDER).is_empty());
    harness.wait_for("the entry removed", || {
        harness.entries().iter().all(|e| e.queue_id != id)
    });
    assert_eq!(witnessed(&seen, |s| s.live_at_bounce.len()), 2);
    assert_eq!(harness.mailbox(SENDER).len(), 1);
}

/// Routes each of `domains` through the test DNS server to the sink: MX `mx.DOMAIN` at
/// `127.0.0.1`.
fn mx_on_loopback(harness: &Harness, domains: &[&str]) {
    for domain in domains {
        let host = format!("mx.{domain}");
        harness.dns.add_mx(domain, 10, &host);
        harness.dns.add_a(&host, [127, 0, 0, 1].into());
    }
}

/// The `Final-Recipient` addresses a notice names, in its order.
fn final_recipients(notice: &str) -> Vec<&str> {
    notice
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("Final-Recipient: rfc822; "))
        .collect()
}

/// How many null-sender messages (bounces, delay warnings) the queue holds.
fn notices_queued(harness: &Harness) -> usize {
    let entries = harness.entries();
    entries.iter().filter(|e| e.sender.is_null()).count()
}

#[test]
fn recipients_refused_at_three_domains_make_one_bounce_naming_all_three() {
    let script = ["a@one.test", "b@two.test", "c@three.test"]
        .iter()
        .fold(Script::new(), |script, rcpt| {
            script.on_rcpt(rcpt, &format!("550 5.1.1 <{rcpt}>: no such user"))
        });
    let sink = Sink::start(script);
    let port = sink.address().port();
    let harness = Harness::started(|o| o.delivery.mx_port = port);
    mx_on_loopback(&harness, &["one.test", "two.test", "three.test"]);
    let recipients = ["a@one.test", "b@two.test", "c@three.test"];
    let id = harness.send(SENDER, &recipients, &message("three domains refuse"));

    // Every entry gone, the failed ones and their bounces' alike: all bounces are in.
    harness.wait_for("the bounce", || {
        harness.entries().is_empty() && !harness.mailbox(SENDER).is_empty()
    });
    assert_eq!(sink.connections(), 3, "one transaction per domain");
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1, "one bounce for the message: {bounces:#?}");
    assert_eq!(
        final_recipients(&bounces[0]),
        recipients,
        "in the sender's order"
    );
    insta::assert_snapshot!(normalize(&bounces[0], id, port));
}

#[test]
fn two_domains_refused_and_one_deferred_make_one_bounce_naming_the_two() {
    let sink = Sink::start(
        Script::new()
            .on_rcpt("a@one.test", "550 5.1.1 <a@one.test>: no such user")
            .on_rcpt("b@two.test", "550 5.1.1 <b@two.test>: no such user")
            .on_rcpt("c@three.test", "451 4.3.0 <c@three.test>: try again later"),
    );
    let harness = Harness::started(|o| o.delivery.mx_port = sink.address().port());
    mx_on_loopback(&harness, &["one.test", "two.test", "three.test"]);
    let recipients = ["a@one.test", "b@two.test", "c@three.test"];
    let id = harness.send(SENDER, &recipients, &message("two refuse one defers"));

    // Only the deferred entry left, and no bounce waiting to be delivered.
    harness.wait_for("the bounce", || {
        harness.entries().len() == 1 && !harness.mailbox(SENDER).is_empty()
    });
    let left = harness.entries_of(id);
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(left[0].recipient.as_str(), "c@three.test", "still queued");
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1, "one bounce for the message: {bounces:#?}");
    assert_eq!(final_recipients(&bounces[0]), ["a@one.test", "b@two.test"]);
}

#[test]
fn recipients_delayed_at_three_domains_get_one_delay_warning_naming_all_three() {
    let sink = Sink::start(Script::new().on_data_end("451 4.3.0 Error: try again later"));
    let harness = Harness::started(|o| {
        o.delivery.mx_port = sink.address().port();
        o.delivery.delay_warning_time = Duration::from_secs(1);
    });
    mx_on_loopback(&harness, &["one.test", "two.test", "three.test"]);
    let recipients = ["a@one.test", "b@two.test", "c@three.test"];
    harness.send(SENDER, &recipients, &message("three domains slow"));

    // The attempt at the warning time is each entry's second; once every entry had a third,
    // the warnings of the second are queued, and once none waits, delivered.
    let attempts = || sink.commands().iter().filter(|c| *c == "DATA").count();
    harness.wait_for("three attempts per entry, the warnings delivered", || {
        attempts() >= 9 && notices_queued(&harness) == 0
    });
    let warnings = harness.mailbox(SENDER);
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the message: {warnings:#?}"
    );
    assert!(
        warnings[0].contains("\r\nAction: delayed\r\n"),
        "{}",
        warnings[0]
    );
    assert_eq!(final_recipients(&warnings[0]), recipients);
}

#[test]
fn a_slow_domain_holds_the_bounce_of_the_others_no_longer_than_bounce_wait() {
    let refusing = Sink::start(Script::new().on_rcpt("a@one.test", "550 5.1.1 no such user"));
    let silent = Sink::start(Script::new().silent());
    let harness = Harness::started(|o| {
        o.delivery.mx_port = refusing.address().port();
        o.delivery.bounce_wait = Duration::from_millis(500);
        o.route("slow.test", silent.address());
    });
    mx_on_loopback(&harness, &["one.test"]);
    let id = harness.send(SENDER, &["a@one.test", "x@slow.test"], &message("one slow"));

    // The job for slow.test waits for a greeting that never comes.
    harness.wait_for("the bounce", || {
        harness.entries_of(id).len() == 1 && !harness.mailbox(SENDER).is_empty()
    });
    let bounces = harness.mailbox(SENDER);
    assert_eq!(bounces.len(), 1, "{bounces:#?}");
    assert_eq!(final_recipients(&bounces[0]), ["a@one.test"]);
    assert_eq!(silent.connections(), 1, "slow.test's job still waits");
    assert_eq!(harness.entries_of(id)[0].recipient.as_str(), "x@slow.test");
    // The silent server goes first, so that its job ends and shutdown does not wait for it.
    drop(silent);
}

#[test]
fn a_held_bounce_is_queued_at_shutdown_while_a_slow_job_still_runs() {
    let refusing = Sink::start(Script::new().on_rcpt("a@one.test", "550 5.1.1 no such user"));
    let silent = Sink::start(Script::new().silent());
    let harness = Harness::started(|o| {
        o.delivery.mx_port = refusing.address().port();
        // Held past the end of the test, but for shutdown.
        o.delivery.bounce_wait = Duration::from_hours(1);
        o.route("slow.test", silent.address());
    });
    mx_on_loopback(&harness, &["one.test"]);
    let id = harness.send(SENDER, &["a@one.test", "x@slow.test"], &message("stopped"));
    let refused = || {
        let stats = harness.delivery.stats();
        stats.attempts(Class::Mx, AttemptResult::Bounced) == 1
    };
    harness.wait_for("a@one.test refused", || {
        refused() && silent.connections() == 1
    });
    assert_eq!(harness.entries_of(id).len(), 2, "the bounce is held");

    // Shutdown waits for the job that waits for the silent server: meanwhile the held bounce
    // is queued and the refused entry removed.
    let queue = Arc::clone(&harness.base);
    let stopping = std::thread::spawn(move || drop(harness));
    let queued = crate::support::eventually(|| {
        let entries = queue.list();
        let bounce = entries.iter().any(|e| e.sender.is_null());
        bounce && entries.iter().all(|e| e.recipient.as_str() != "a@one.test")
    });
    drop(silent);
    stopping.join().expect("the harness shuts down");
    assert!(
        queued,
        "the bounce was queued at shutdown: {:#?}",
        queue.list()
    );
    let mut left: Vec<String> = queue
        .list()
        .iter()
        .map(|e| e.recipient.as_str().to_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [SENDER, "x@slow.test"],
        "the bounce, and the slow entry"
    );
}
