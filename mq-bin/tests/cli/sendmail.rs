//! `mq sendmail`, and `mq` run as `sendmail`: flags as scripts use them, the message queued on
//! the disk while no server runs (and delivered by the next one), or through a running server.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{PATIENCE, Scratch, bounded, listed, one_error_line, success};

/// The text of message `id` as `mq queue show` prints it (envelope, then the message).
fn shown(scratch: &Scratch, id: &str) -> String {
    success(&scratch.mq(&["queue", "show", id]))
}

/// The queue ids in the listing, in order, each once.
fn ids(scratch: &Scratch) -> Vec<String> {
    let mut ids: Vec<String> = listed(&success(&scratch.mq(&["queue", "list"])))
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    ids.dedup();
    ids
}

/// The `mq` binary under the name `sendmail`, through a symbolic link in the scratch
/// directory.
fn sendmail_link(scratch: &Scratch) -> Command {
    let link = scratch.path().join("sendmail");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_mq"), &link).unwrap();
    }
    let mut command = Command::new(&link);
    command
        .args(["-C", scratch.config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("MQ_CONFIG");
    command
}

fn has_mail(mailbox: &Path) -> bool {
    std::fs::read_dir(mailbox.join("new")).is_ok_and(|mut files| files.next().is_some())
}

#[test]
fn with_the_server_stopped_sendmail_queues_on_disk_and_the_next_server_delivers() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    let message = b"To: Bob <bob@localhost>, carol\nBcc: dave@localhost\nSubject: cron\n\nline one\n.\nnot read\n";
    let output = scratch.mq_with_input(
        &[
            "sendmail",
            "-t",
            "-f",
            "cron@example.org",
            "-F",
            "Cron Daemon",
            "erin",
        ],
        message,
    );
    assert_eq!(success(&output), "", "sendmail says nothing when it worked");
    let ids = ids(&scratch);
    assert_eq!(ids.len(), 1);
    let text = shown(&scratch, &ids[0]);
    assert!(text.contains("Sender:    cron@example.org\n"), "{text}");
    for recipient in [
        "erin@localhost",
        "bob@localhost",
        "carol@localhost",
        "dave@localhost",
    ] {
        assert!(
            text.contains(&format!("Recipient: {recipient} (ready")),
            "{recipient}: {text}"
        );
    }
    assert!(!text.contains("Bcc:"), "the Bcc field is removed: {text}");
    assert!(
        text.contains("\nFrom: Cron Daemon <cron@example.org>\n"),
        "{text}"
    );
    assert!(text.contains("\nDate: "), "{text}");
    assert!(text.contains("\nMessage-ID: <"), "{text}");
    assert!(
        text.ends_with("\n\nline one\n"),
        "a lone dot ends the message: {text}"
    );

    // The next server delivers it.
    scratch.edit_config("enabled = false", "enabled = true");
    let server = scratch.serve();
    let mail = scratch.path().join("data/mail/localhost");
    let deadline = Instant::now() + PATIENCE;
    while !["bob", "carol", "dave", "erin"]
        .iter()
        .all(|u| has_mail(&mail.join(u)))
    {
        assert!(
            Instant::now() < deadline,
            "not delivered:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.terminate().assert_success();
}

#[test]
fn run_as_sendmail_with_a_server_running_it_submits_through_the_server() {
    let scratch = Scratch::new();
    // sendmail finds the server at smtp.listen: a port of its own, not one the server picks.
    scratch.smtp_on_free_port();
    let server = scratch.serve();
    let message = b"Subject: report\nFrom: me@example.org\n\n.\nafter the dot\n";
    let output = bounded(
        sendmail_link(&scratch).args(["-bm", "-oi", "-f", "me@example.org", "bob@example.net"]),
        Some(message),
    );
    assert_eq!(success(&output), "");
    let ids = ids(&scratch);
    assert_eq!(ids.len(), 1);
    let text = shown(&scratch, &ids[0]);
    assert!(text.contains("Recipient: bob@example.net (ready"), "{text}");
    assert!(
        text.contains("\nReceived: from localhost"),
        "went through the server: {text}"
    );
    assert!(
        text.contains("\n\n.\nafter the dot\n"),
        "-oi keeps the lone dot: {text}"
    );
    assert_eq!(text.matches("\nFrom: ").count(), 1, "{text}");
    assert!(text.contains("\nMessage-ID: <"), "{text}");
    server.terminate().assert_success();
}

#[test]
fn without_recipients_sendmail_says_so() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    let output = bounded(
        sendmail_link(&scratch).arg("-t"),
        Some(b"Subject: x\n\nno one\n"),
    );
    assert_eq!(output.status.code(), Some(1));
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.starts_with("sendmail: no recipients"), "{error}");
    let line = one_error_line(&scratch.mq_with_input(&["sendmail"], b"x\n"));
    assert!(line.starts_with("mq: no recipients"), "{line}");
    let line = one_error_line(&scratch.mq_with_input(&["sendmail", "-bs"], b"x\n"));
    assert!(line.starts_with("mq: -bs is not supported"), "{line}");
    assert_eq!(
        success(&scratch.mq(&["queue", "list"])),
        "Mail queue is empty\n"
    );
}

/// The SMTPUTF8 flag `mq queue show --json` reports for message `id`.
fn smtputf8_flag(scratch: &Scratch, id: &str) -> bool {
    let json = success(&scratch.mq(&["queue", "show", "--json", id]));
    let value: serde_json::Value = serde_json::from_str(&json).expect("a JSON object");
    value["entries"][0]["smtputf8"] == true
}

/// A message whose envelope or header is not ASCII is queued with SMTPUTF8, so that delivery
/// hands it only to servers offering it; an ASCII one without. On the disk, with no server.
#[test]
fn with_the_server_stopped_sendmail_queues_a_utf8_message_with_smtputf8() {
    let scratch = Scratch::new();
    std::fs::create_dir_all(scratch.path().join("data")).unwrap();
    let cases: [(&[&str], &[u8], bool); 4] = [
        (
            &["-f", "j\u{f6}s@example.org", "bob@example.net"],
            b"Subject: x\n\nhi\n",
            true,
        ),
        (
            &["-f", "a@example.org", "r\u{e9}ka@example.net"],
            b"Subject: x\n\nhi\n",
            true,
        ),
        (
            &["-f", "a@example.org", "bob@example.net"],
            "Subject: Gr\u{fc}\u{df}e\n\nhi\n".as_bytes(),
            true,
        ),
        (
            &["-f", "a@example.org", "bob@example.net"],
            "Subject: x\n\nGr\u{fc}\u{df}e\n".as_bytes(),
            false,
        ),
    ];
    for (args, message, expected) in cases {
        let output = scratch.mq_with_input(&[&["sendmail"], args].concat(), message);
        assert_eq!(success(&output), "");
        let listed = ids(&scratch);
        let id = listed.last().expect("queued");
        assert_eq!(smtputf8_flag(&scratch, id), expected, "{args:?}");
        success(&scratch.mq(&["queue", "delete", id]));
    }
}

/// Through a running server: `MAIL` carries SMTPUTF8, without which the server would refuse the
/// UTF-8 recipient, and the message is received `with UTF8SMTP`.
#[test]
fn with_a_server_running_sendmail_submits_a_utf8_recipient_with_smtputf8() {
    let scratch = Scratch::new();
    scratch.smtp_on_free_port();
    let server = scratch.serve();
    let output = bounded(
        sendmail_link(&scratch).args(["-f", "me@example.org", "r\u{e9}ka@example.net"]),
        Some(b"Subject: hello\n\nhi\n"),
    );
    assert_eq!(success(&output), "");
    let ids = ids(&scratch);
    assert_eq!(ids.len(), 1);
    assert!(smtputf8_flag(&scratch, &ids[0]));
    let text = shown(&scratch, &ids[0]);
    assert!(
        text.contains("Recipient: r\u{e9}ka@example.net (ready"),
        "{text}"
    );
    assert!(
        text.contains(") with UTF8SMTP for <r\u{e9}ka@example.net>;"),
        "{text}"
    );
    server.terminate().assert_success();
}
