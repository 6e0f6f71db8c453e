//! A plugin's whole life in a running `mq serve`: the webhook plugin's sender task starts with
//! the plugin, and at SIGTERM the events still on its queue are sent before the process exits.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::event_sink::EventSink;
use crate::support::{PATIENCE, Scratch, Server, free_port, smtp};

/// Whether `mailbox` (a Maildir) holds a delivered message.
fn has_mail(mailbox: &Path) -> bool {
    std::fs::read_dir(mailbox.join("new")).is_ok_and(|mut files| files.next().is_some())
}

/// A server that delivers local mail into Maildirs and reports each delivery to `url`.
fn reporting_to(url: &str) -> Scratch {
    let scratch = Scratch::new();
    let text = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\n\n[queue]\ndata_dir = '{}'\nfsync = false\n\n\
         [admin]\nlisten = \"{}\"\n\n[delivery]\nsmarthost = \"{}\"\n\n\
         [plugins.webhook]\nurl = \"{url}\"\nretry = [\"10ms\"]\nmax_attempts = 1000\n",
        scratch.path().join("data").display(),
        scratch.admin,
        // Local mail never goes there; nothing listens.
        free_port(),
    );
    std::fs::write(&scratch.config, text).expect("the config is written");
    scratch
}

/// Sends one message to the local users `users`.
fn send_to(server: &Server, users: &[&str]) {
    let rcpts: Vec<String> = users.iter().map(|u| format!("RCPT TO:<{u}>")).collect();
    let mut lines = vec!["EHLO client.example", "MAIL FROM:<alice@example.org>"];
    lines.extend(rcpts.iter().map(String::as_str));
    lines.extend(["DATA", "Subject: reported", "", "hi", ".", "QUIT"]);
    let replies = smtp(server.smtp(), &lines);
    // The greeting, EHLO, MAIL, one reply per RCPT, DATA, then the message's.
    let queued = &replies[users.len() + 4];
    assert!(
        queued.starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
}

#[test]
fn sigterm_with_webhook_events_queued_sends_every_one_before_the_process_exits() {
    let sink = EventSink::holding();
    let scratch = reporting_to(&sink.url());
    let mut server = scratch.serve();
    let users = ["u1", "u2", "u3", "u4", "u5"];
    send_to(&server, &users);

    let mail = scratch.path().join("data").join("mail").join("localhost");
    let deadline = Instant::now() + PATIENCE;
    while !users.iter().all(|user| has_mail(&mail.join(user))) {
        assert!(
            Instant::now() < deadline,
            "no local delivery:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The sender task POSTs one event at a time, and the endpoint holds the first answer: the
    // other events wait on the plugin's queue when SIGTERM arrives.
    sink.wait_for(1);
    assert_eq!(sink.events().len(), 1);
    server.signal_term();
    server.wait_for_log("draining sessions");
    sink.release();
    let stopped = server.wait_exit();

    stopped.assert_success();
    let mut recipients: Vec<String> = sink
        .events()
        .iter()
        .map(|event| {
            assert_eq!(event["state"], "delivered", "{event}");
            event["recipient"].as_str().expect("a recipient").to_owned()
        })
        .collect();
    recipients.sort();
    assert_eq!(
        recipients.len(),
        users.len(),
        "{recipients:?}\n{}",
        stopped.log
    );
    for (recipient, user) in recipients.iter().zip(users) {
        assert!(recipient.starts_with(user), "{recipients:?}");
    }
    assert!(!stopped.log.contains("dropped"), "{}", stopped.log);
}
