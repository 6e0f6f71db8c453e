//! PIPELINING (RFC 2920): many commands in one write get their replies in order; and the one
//! place pipelining must not reach, past STARTTLS (RFC 3207 §4.2, CVE-2011-0411).

use crate::support::{TestServer, queued_id};

#[test]
fn commands_pipelined_in_one_write_get_their_replies_in_order() {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    client.write(
        b"EHLO client.example\r\n\
          MAIL FROM:<a@example.org>\r\n\
          RCPT TO:<b@localhost>\r\n\
          RCPT TO:<c@localhost>\r\n\
          DATA\r\n",
    );
    let ehlo = client.reply();
    assert_eq!(
        ehlo.lines().collect::<Vec<_>>(),
        [
            "250-localhost",
            "250-PIPELINING",
            "250-SIZE 10240000",
            "250-VRFY",
            "250-ENHANCEDSTATUSCODES",
            "250-8BITMIME",
            "250-DSN",
            "250 SMTPUTF8"
        ]
    );
    assert_eq!(client.reply(), "250 2.1.0 Ok");
    assert_eq!(client.reply(), "250 2.1.5 Ok");
    assert_eq!(client.reply(), "250 2.1.5 Ok");
    assert_eq!(client.reply(), "354 End data with <CR><LF>.<CR><LF>");

    client.write(b"Subject: pipelined\r\n\r\n..dot\r\n.\r\nQUIT\r\n");
    let id = queued_id(&client.reply());
    assert_eq!(client.reply(), "221 2.0.0 Bye");
    assert!(client.is_closed());

    let entries = server.entries();
    assert_eq!(entries.len(), 2, "one entry per recipient");
    assert!(entries.iter().all(|e| e.queue_id == id));
    assert!(
        server
            .body(id)
            .ends_with("Subject: pipelined\r\n\r\n.dot\r\n")
    );
}

#[test]
fn plaintext_pipelined_behind_starttls_is_discarded() {
    let server = TestServer::with_tls(|_| {});
    let mut client = server.client();
    client.ehlo();
    client.write(b"STARTTLS\r\nNOOP\r\n");
    assert_eq!(client.reply(), "220 2.0.0 Ready to start TLS");
    client.upgrade(server.cert());
    let first = client.send("EHLO client.example");
    assert!(
        first.starts_with("250-localhost\n250-PIPELINING"),
        "the first reply under TLS answers EHLO, not the injected NOOP: {first:?}"
    );
    assert!(first.contains("\n250-AUTH PLAIN LOGIN\n"), "{first}");
    assert_eq!(client.send("NOOP"), "250 2.0.0 Ok");
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
}
