//! Each limit of `[smtp]`, reached over a real socket, and the reply that enforces it.

use std::io::{ErrorKind, Read as _, Write as _};
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
    // The EHLO must come within the timeout of the greeting: three seconds, which no loaded
    // machine takes between reading one line and writing the next.
    let server = TestServer::start(1, |config| config.command_timeout = Duration::from_secs(3));
    // Five times the timeout, and more.
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
    let server = TestServer::start(2, |config| {
        config.max_connections_per_ip = 2;
        // Loopback is a relay network, exempt by default.
        config.connection_limit_exemptions = Some(Vec::new());
    });
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
fn sixty_connections_from_loopback_are_all_greeted_when_ten_per_address_are_allowed() {
    let server = TestServer::start(2, |config| config.max_connections_per_ip = 10);
    let mut clients: Vec<Client> = (0..60).map(|_| Client::connect(server.addr)).collect();
    for (n, client) in clients.iter_mut().enumerate() {
        assert_eq!(client.reply(), "220 localhost ESMTP mq", "connection {n}");
    }
    for client in &mut clients {
        assert_eq!(client.send("NOOP"), "250 2.0.0 Ok");
    }
}

#[test]
fn the_per_address_limit_counts_a_client_outside_the_exempt_networks() {
    let server = TestServer::start(1, |config| {
        config.max_connections_per_ip = 1;
        config.connection_limit_exemptions = Some(vec!["192.0.2.0/24".parse().unwrap()]);
    });
    let mut first = server.client();
    let mut second = Client::connect(server.addr);
    assert_eq!(
        second.reply(),
        "421 4.7.0 localhost Error: too many connections from 127.0.0.1"
    );
    assert_eq!(first.send("NOOP"), "250 2.0.0 Ok");
}

#[test]
fn an_ipv6_client_on_loopback_is_counted_under_its_network() {
    let server = TestServer::start(1, |config| {
        config.listen = "[::1]:0".parse().unwrap();
        config.max_connections_per_ip = 1;
        config.connection_limit_exemptions = Some(Vec::new());
    });
    let mut first = server.client();
    let mut second = Client::connect(server.addr);
    assert_eq!(
        second.reply(),
        "421 4.7.0 localhost Error: too many connections from ::1"
    );
    assert!(second.is_closed());
    assert_eq!(first.send("NOOP"), "250 2.0.0 Ok");
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
        config.connection_limit_exemptions = Some(Vec::new());
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

/// Sends `bytes` one at a time, one every 200 ms, until the server answers; returns the answer
/// (up to its first line end) and whether the server then closed the connection. Panics if the
/// server has not answered after 30 s.
fn trickle(stream: &mut TcpStream, bytes: impl IntoIterator<Item = u8>) -> (String, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("a read timeout");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answer = Vec::new();
    let mut bytes = bytes.into_iter();
    while !answer.ends_with(b"\r\n") {
        assert!(
            Instant::now() < deadline,
            "a client trickling a byte every 200 ms still holds its session after 30 s"
        );
        if answer.is_empty()
            && let Some(byte) = bytes.next()
        {
            // The server may have cut the connection already; its answer is still there.
            let _ = stream.write_all(&[byte]);
        }
        let mut buffer = [0; 256];
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("the connection failed: {e}"),
        }
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    let closed = matches!(stream.read(&mut [0; 64]), Ok(0) | Err(_));
    (
        String::from_utf8_lossy(&answer).trim_end().to_owned(),
        closed,
    )
}

/// Reads from `stream` until what arrived holds `text`.
fn read_until(stream: &mut TcpStream, text: &str) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(text) {
        let mut buffer = [0; 1024];
        let n = stream.read(&mut buffer).expect("the server answers");
        assert_ne!(n, 0, "the server hung up before {text:?}: {seen:?}");
        seen.extend_from_slice(&buffer[..n]);
    }
}

#[test]
fn a_client_trickling_a_command_line_is_cut_off_with_421_after_the_command_timeout() {
    let server = TestServer::start(1, |config| config.command_timeout = Duration::from_secs(1));
    let mut client = TcpStream::connect(server.addr).expect("connect");
    read_until(&mut client, "220 ");
    let line = b"NOOP ".iter().copied().chain(std::iter::repeat(b'x'));
    let (answer, closed) = trickle(&mut client, line);
    assert_eq!(answer, "421 4.4.2 localhost Error: timeout exceeded");
    assert!(closed, "the session ended");
}

#[test]
fn a_client_trickling_a_line_of_data_is_cut_off_with_421_after_the_data_timeout() {
    let server = TestServer::start(1, |config| config.data_timeout = Duration::from_secs(1));
    let mut client = TcpStream::connect(server.addr).expect("connect");
    read_until(&mut client, "220 ");
    client
        .write_all(
            b"EHLO slow.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@localhost>\r\nDATA\r\n",
        )
        .expect("the commands are sent");
    read_until(&mut client, "354 ");
    let line = b"Subject: ".iter().copied().chain(std::iter::repeat(b'x'));
    let (answer, closed) = trickle(&mut client, line);
    assert_eq!(answer, "421 4.4.2 localhost Error: timeout exceeded");
    assert!(closed, "the session ended");
    assert!(server.entries().is_empty());
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
