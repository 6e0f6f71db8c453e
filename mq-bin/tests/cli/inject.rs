//! `mq inject`: a message on stdin goes through the running server's hooks into the queue.

use crate::support::{Scratch, free_port, one_error_line, success};

/// A 16-hex-digit queue id and a newline, as `mq inject` prints it.
fn is_queue_id_line(text: &str) -> bool {
    text.strip_suffix('\n')
        .is_some_and(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn inject_prints_the_queue_id_and_the_message_is_queued_as_sent() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let address = server.smtp().to_string();
    let message = b"Subject: report\n\n.a line that starts with a dot\nbare LF lines\n";
    let output = scratch.mq_with_input(
        &[
            "inject",
            "--server",
            &address,
            "--from",
            "alice@example.org",
            "--to",
            "bob@example.net",
            "--to",
            "carol@localhost",
        ],
        message,
    );
    let id = success(&output);
    assert!(is_queue_id_line(&id), "{id:?}");

    let shown = success(&scratch.mq(&["queue", "show", id.trim()]));
    assert!(
        shown.contains("Recipient: bob@example.net (ready"),
        "{shown}"
    );
    assert!(
        shown.contains("Recipient: carol@localhost (ready"),
        "{shown}"
    );
    // Dot-stuffed on the way, unstuffed by the server: the line arrives as it was written.
    assert!(
        shown.contains("\n.a line that starts with a dot\nbare LF lines\n"),
        "{shown}"
    );
    assert!(shown.contains("\nReceived: from localhost"), "{shown}");
    // Completed as Postfix's cleanup completes local submissions.
    assert!(shown.contains("\nFrom: alice@example.org\n"), "{shown}");
    assert!(shown.contains("\nDate: "), "{shown}");
    assert!(shown.contains("\nMessage-ID: <"), "{shown}");
    #[cfg(feature = "headers")]
    assert!(
        shown.contains("\nX-Test: stamped\n"),
        "the smtp_in_data hook ran:\n{shown}"
    );
    server.terminate().assert_success();
}

#[test]
fn a_reply_the_server_refuses_is_quoted() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let address = server.smtp().to_string();
    let output = scratch.mq_with_input(
        &[
            "inject",
            "--server",
            &address,
            "--from",
            "a@example.org",
            "--to",
            "not an address",
        ],
        b"x\n",
    );
    let line = one_error_line(&output);
    assert!(line.starts_with("mq: server said: 5"), "{line}");
}

#[test]
fn without_a_server_inject_says_so() {
    let scratch = Scratch::new();
    let address = free_port().to_string();
    let output = scratch.mq_with_input(
        &[
            "inject",
            "--server",
            &address,
            "--from",
            "a@example.org",
            "--to",
            "b@example.net",
        ],
        b"x\n",
    );
    let line = one_error_line(&output);
    assert_eq!(
        line,
        format!("mq: cannot connect to {address}: is mq serve running?\n")
    );
}

#[test]
fn an_address_with_a_line_break_is_refused_before_connecting() {
    let scratch = Scratch::new();
    let output = scratch.mq_with_input(
        &[
            "inject",
            "--from",
            "a@example.org\r\nRSET",
            "--to",
            "b@example.net",
        ],
        b"x\n",
    );
    let line = one_error_line(&output);
    assert!(line.contains("invalid address"), "{line}");
}

/// A UTF-8 sender goes with SMTPUTF8, which the server requires for it.
#[test]
fn inject_submits_a_utf8_sender_with_smtputf8() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let address = server.smtp().to_string();
    let output = scratch.mq_with_input(
        &[
            "inject",
            "--server",
            &address,
            "--from",
            "j\u{f6}s@example.org",
            "--to",
            "bob@example.net",
        ],
        b"Subject: hi\n\nhello\n",
    );
    let id = success(&output);
    let shown = success(&scratch.mq(&["queue", "show", id.trim()]));
    assert!(shown.contains("\nSMTPUTF8:  yes\n"), "{shown}");
    assert!(
        shown.contains(") with UTF8SMTP for <bob@example.net>;"),
        "{shown}"
    );
    server.terminate().assert_success();
}
