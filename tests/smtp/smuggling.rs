//! SMTP smuggling: a bare LF or bare CR before a dot ends no message here, so the commands
//! behind it are message data, and a message holding them is refused whole; so is a message
//! holding a NUL, which a server after us might drop.

use crate::support::TestServer;

/// Sends `data` after DATA and checks it gets exactly one reply, `550 5.5.2`: the `NOOP`
/// written behind it is answered next, so no smuggled command was run.
fn refused_whole(data: &[u8]) {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    assert_eq!(client.send("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    client.write(data);
    assert_eq!(
        client.reply(),
        "550 5.5.2 Error: bare <CR> or <LF> received"
    );
    assert_eq!(
        client.send("NOOP"),
        "250 2.0.0 Ok",
        "nothing else was answered"
    );
    assert_eq!(
        client.send("RCPT TO:<b@localhost>"),
        "503 5.5.1 Error: need MAIL command",
        "the smuggled MAIL FROM never ran"
    );
    assert!(server.entries().is_empty(), "nothing was queued");
}

#[test]
fn a_bare_lf_dot_lf_ends_no_message_and_smuggles_no_commands() {
    refused_whole(
        b"Subject: x\r\n\r\nhello\n.\n\
          MAIL FROM:<evil@example.org>\r\n\
          RCPT TO:<victim@localhost>\r\n\
          DATA\r\n\
          smuggled\r\n\
          .\r\n",
    );
}

#[test]
fn a_bare_cr_dot_crlf_ends_no_message_and_smuggles_no_commands() {
    refused_whole(
        b"Subject: x\r\n\r\nhello\r.\r\n\
          MAIL FROM:<evil@example.org>\r\n\
          RCPT TO:<victim@localhost>\r\n\
          DATA\r\n\
          smuggled\r\n\
          .\r\n",
    );
}

#[test]
fn a_nul_byte_in_data_refuses_the_message_and_queues_nothing() {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    assert_eq!(client.send("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    client.write(b"Subject: x\r\n\r\nbefore\0after\r\n.\r\n");
    assert_eq!(
        client.reply(),
        "550 5.6.0 Error: message contains NUL characters"
    );
    assert_eq!(client.send("NOOP"), "250 2.0.0 Ok", "one reply, no more");
    assert!(server.entries().is_empty(), "nothing was queued");
}
