//! Who may relay: with no relay networks, loopback may mail the local domains only, until it
//! authenticates over TLS; and what the server adds to an authenticated submission.

use crate::support::{Client, PASSWORD, TestServer, USER, queued_id};

/// A TLS server whose relay networks are empty, so that loopback clients may not relay.
fn no_relay_networks() -> TestServer {
    TestServer::with_tls(|config| config.relay_networks = Vec::new())
}

/// A client that has greeted, started TLS and logged in as [`USER`].
fn authenticated(server: &TestServer) -> Client {
    let mut client = server.client();
    client.ehlo();
    client.starttls(server.cert());
    client.ehlo();
    let auth = client.auth_plain(USER, PASSWORD);
    assert_eq!(auth, "235 2.7.0 Authentication successful");
    client
}

#[test]
fn a_client_outside_the_relay_networks_may_mail_local_domains_but_not_relay() {
    let server = no_relay_networks();
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(
        client.send("RCPT TO:<x@example.net>"),
        "554 5.7.1 <x@example.net>: Relay access denied"
    );
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    assert_eq!(
        client.send("RCPT TO:<Postmaster>"),
        "250 2.1.5 Ok",
        "a recipient without a domain is local"
    );
    let id = queued_id(&client.data("Subject: local\r\n\r\nhi\r\n"));
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
    let recipients: Vec<String> = server
        .entries()
        .iter()
        .inspect(|e| assert_eq!(e.queue_id, id))
        .map(|e| e.recipient.to_string())
        .collect();
    assert_eq!(recipients, ["b@localhost", "postmaster@localhost"]);
}

#[test]
fn a_local_domain_with_capitals_and_a_trailing_dot_is_still_local_and_queued_in_one_spelling() {
    let server = TestServer::start(1, |config| config.relay_networks = Vec::new());
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(client.send("RCPT TO:<b@LOCALHOST.>"), "250 2.1.5 Ok");
    assert_eq!(
        client.send("RCPT TO:<x@localhost.example.>"),
        "554 5.7.1 <x@localhost.example>: Relay access denied"
    );
    queued_id(&client.data("Subject: local\r\n\r\nhi\r\n"));
    let recipients: Vec<String> = server
        .entries()
        .iter()
        .map(|e| e.recipient.to_string())
        .collect();
    assert_eq!(recipients, ["b@localhost"]);
}

#[test]
fn after_starttls_and_auth_a_client_outside_the_relay_networks_may_relay() {
    let server = no_relay_networks();
    let mut client = server.client();
    client.ehlo();
    assert_eq!(client.send("MAIL FROM:<alice@example.org>"), "250 2.1.0 Ok");
    assert_eq!(
        client.send("RCPT TO:<x@example.net>"),
        "554 5.7.1 <x@example.net>: Relay access denied",
        "STARTTLS alone does not make a client trusted; before it nothing does"
    );
    assert_eq!(client.send("RSET"), "250 2.0.0 Ok");
    drop(client);

    let mut client = authenticated(&server);
    let reply = client.message(
        "alice@example.org",
        "x@example.net",
        "Subject: relayed\r\n\r\nhi\r\n",
    );
    let id = queued_id(&reply);
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
    let entries = server.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].queue_id, id);
    assert_eq!(entries[0].recipient.as_str(), "x@example.net");
}

#[test]
fn authenticated_submissions_get_a_date_and_a_message_id_only_when_missing() {
    let server = no_relay_networks();
    let mut client = authenticated(&server);
    let bare = queued_id(&client.message(
        "alice@example.org",
        "x@example.net",
        "Subject: bare\r\n\r\nno Date, no Message-ID\r\n",
    ));
    let complete = queued_id(&client.message(
        "alice@example.org",
        "x@example.net",
        "Date: Sat, 28 Nov 2026 14:50:25 +0000\r\nMessage-ID: <own@example.org>\r\nSubject: complete\r\n\r\nhas both\r\n",
    ));
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");

    let bare = server.body(bare);
    let (headers, body) = bare.split_once("\r\n\r\n").expect("a header block");
    assert_eq!(body, "no Date, no Message-ID\r\n");
    assert!(headers.starts_with("Received: from client.example (unknown [127.0.0.1]) by localhost (mq) with ESMTPSA for <x@example.net>; "), "{headers}");
    let names: Vec<&str> = headers
        .lines()
        .map(|line| line.split_once(':').expect("a field").0)
        .collect();
    assert_eq!(names, ["Received", "Subject", "Date", "Message-ID"]);
    let message_id = headers.lines().last().expect("Message-ID");
    assert!(message_id.ends_with("@localhost>"), "{message_id}");

    let complete = server.body(complete);
    let (headers, _) = complete.split_once("\r\n\r\n").expect("a header block");
    let fields: Vec<&str> = headers.lines().skip(1).collect();
    assert_eq!(
        fields,
        [
            "Date: Sat, 28 Nov 2026 14:50:25 +0000",
            "Message-ID: <own@example.org>",
            "Subject: complete"
        ],
        "the client's own fields are kept, and nothing added"
    );
}
