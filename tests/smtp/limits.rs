//! Each limit of `[smtp]`, reached over a real socket, and the reply that enforces it.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{Client, TestServer};

#[test]
fn a_command_line_longer_than_the_limit_gets_500_and_the_session_goes_on() {
    let server = TestServer::start(1, |config| config.max_line_length = 64);
    let mut client = server.client();
    let long = format!("NOOP {}", "x".repeat(100));
    assert_eq!(client.send(&long), "500 5.5.0 Error: line too long");
    let exactly = format!("NOOP {}", "x".repeat(64 - "NOOP \r\n".len()));
    assert_eq!(
        client.send(&exactly),
        "250 2.0.0 Ok",
        "64 bytes with CRLF fit"
    );
    client.ehlo();
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
}

#[test]
fn a_declared_size_over_the_limit_gets_552_at_mail_from() {
    let server = TestServer::start(1, |config| config.max_message_size = 1_000);
    let mut client = server.client();
    let ehlo = client.ehlo();
    assert!(ehlo.contains("\n250-SIZE 1000\n"), "{ehlo}");
    assert_eq!(
        client.send("MAIL FROM:<a@b.example> SIZE=1001"),
        "552 5.3.4 Message size exceeds fixed limit"
    );
    assert_eq!(
        client.send("MAIL FROM:<a@b.example> SIZE=1000"),
        "250 2.1.0 Ok"
    );
}

#[test]
fn a_message_over_the_size_limit_gets_552_after_the_final_dot_and_is_not_queued() {
    let server = TestServer::start(1, |config| config.max_message_size = 1_000);
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    let line = format!("{}\r\n", "y".repeat(98));
    let message = format!("Subject: big\r\n\r\n{}", line.repeat(20));
    assert_eq!(
        client.data(&message),
        "552 5.3.4 Error: message file too big"
    );
    assert_eq!(
        client.send("NOOP"),
        "250 2.0.0 Ok",
        "the message was read to its end"
    );
    assert_eq!(
        client.send("RCPT TO:<b@localhost>"),
        "503 5.5.1 Error: need MAIL command",
        "the transaction ended"
    );
    assert!(server.entries().is_empty());
    let small = client.message(
        "a@example.org",
        "b@localhost",
        "Subject: small\r\n\r\nhi\r\n",
    );
    assert!(small.starts_with("250 2.0.0 Ok: queued as "), "{small}");
}

#[test]
fn recipients_beyond_the_limit_get_452() {
    let server = TestServer::start(1, |config| config.max_recipients = 3);
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    for n in 0..3 {
        assert_eq!(
            client.send(&format!("RCPT TO:<r{n}@localhost>")),
            "250 2.1.5 Ok"
        );
    }
    assert_eq!(
        client.send("RCPT TO:<r3@localhost>"),
        "452 4.5.3 Error: too many recipients"
    );
    let reply = client.data("Subject: three\r\n\r\nhi\r\n");
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    assert_eq!(server.entries().len(), 3);
}

#[test]
fn an_idle_client_gets_421_after_the_command_timeout_and_is_disconnected() {
    let server = TestServer::start(1, |config| config.command_timeout = Duration::from_secs(1));
    // Ten times the timeout, and more.
    let mut client = Client::try_connect(server.addr, Duration::from_secs(15)).expect("connect");
    assert_eq!(client.reply(), "220 localhost ESMTP mq");
    client.ehlo();
    assert_eq!(
        client.reply(),
        "421 4.4.2 localhost Error: timeout exceeded"
    );
    assert!(client.is_closed());
}

#[test]
fn a_third_connection_from_one_address_gets_421_when_two_are_allowed() {
    let server = TestServer::start(2, |config| config.max_connections_per_ip = 2);
    // Greeted, so counted.
    let mut first = server.client();
    let mut second = server.client();
    let mut third = Client::connect(server.addr);
    assert_eq!(
        third.reply(),
        "421 4.7.0 localhost Error: too many connections from 127.0.0.1"
    );
    assert!(third.is_closed());
    assert_eq!(first.send("NOOP"), "250 2.0.0 Ok");
    assert_eq!(second.send("NOOP"), "250 2.0.0 Ok");
}

#[test]
fn a_client_is_disconnected_with_421_after_its_third_error_when_three_are_allowed() {
    let server = TestServer::start(1, |config| config.max_errors = 3);
    let mut client = server.client();
    assert_eq!(
        client.send("FROB"),
        "502 5.5.2 Error: command not recognized"
    );
    assert_eq!(client.send("NOOP"), "250 2.0.0 Ok", "not an error");
    assert_eq!(
        client.send("MAIL FROM:<a@example.org>"),
        "503 5.5.1 Error: send HELO/EHLO first"
    );
    assert_eq!(client.send("EHLO"), "501 5.5.4 Syntax: EHLO hostname");
    assert_eq!(client.reply(), "421 4.7.0 localhost Error: too many errors");
    assert!(client.is_closed());
}

#[test]
fn a_client_idle_in_the_middle_of_data_gets_421_after_the_data_timeout() {
    let server = TestServer::start(1, |config| config.data_timeout = Duration::from_secs(1));
    // Ten times the timeout, and more.
    let mut client = Client::try_connect(server.addr, Duration::from_secs(15)).expect("connect");
    assert_eq!(client.reply(), "220 localhost ESMTP mq");
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    assert_eq!(client.send("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    client.write(b"Subject: half a message\r\n\r\n");
    assert_eq!(
        client.reply(),
        "421 4.4.2 localhost Error: timeout exceeded"
    );
    assert!(client.is_closed());
    assert!(server.entries().is_empty());
}

/// A client that pipelines commands but never reads the replies fills the socket buffers until
/// the server's write blocks. The command timeout must bound that write too, or the session and
/// its connection slot are held for as long as the client likes.
#[test]
fn a_client_that_never_reads_its_replies_is_disconnected_after_the_command_timeout() {
    let server = TestServer::start(1, |config| {
        config.command_timeout = Duration::from_secs(1);
        config.max_connections_per_ip = 1;
    });
    let mut silent = TcpStream::connect(server.addr).expect("connect");
    silent
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("write timeout");
    // 600 KB of HELP asks for 9 MB of replies, more than the socket buffers hold. The write may
    // stop part way when the buffers are full; what was written is enough.
    let _ = silent.write_all(&b"HELP\r\n".repeat(100_000));

    // Its slot is freed once the server gives up on it: then another client is greeted.
    // Thirty times the timeout, and more.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut other = Client::connect(server.addr);
        let reply = other.reply();
        if reply == "220 localhost ESMTP mq" {
            break;
        }
        assert_eq!(
            reply,
            "421 4.7.0 localhost Error: too many connections from 127.0.0.1"
        );
        assert!(
            Instant::now() < deadline,
            "the client that never reads still holds its connection"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Dropping `silent` with unread replies resets the connection, which ends its session if
    // the server still waits on it, so that the server can shut down.
}

#[test]
fn a_message_with_more_received_fields_than_the_hop_limit_gets_554_and_is_not_queued() {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    client.ehlo();
    let hops = |n: usize| {
        let received = "Received: from a.example by b.example; Thu, 1 Jan 2026 00:00:00 +0000\r\n";
        format!("{}Subject: looping\r\n\r\nhi\r\n", received.repeat(n))
    };
    let looping = client.message("a@example.org", "b@localhost", &hops(51));
    assert_eq!(looping, "554 5.4.0 Error: too many hops");
    assert!(server.entries().is_empty());
    let at_the_limit = client.message("a@example.org", "b@localhost", &hops(50));
    assert!(
        at_the_limit.starts_with("250 2.0.0 Ok: queued as "),
        "{at_the_limit}"
    );
}
