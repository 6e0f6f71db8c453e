//! Recipients of the local domains: a bare local part gets a domain and stays local, names that
//! can be no mailbox and users the local recipient map does not list are refused at RCPT, so
//! nothing is bounced later to a sender who may be forged.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::plugins::{EXPANSION, LIST};
use crate::support::{Client, TestServer, queued_id};

/// The recipients of every queued entry, in order.
fn queued_recipients(server: &TestServer) -> Vec<String> {
    server
        .entries()
        .iter()
        .map(|e| e.recipient.to_string())
        .collect()
}

/// A client that has greeted and sent `MAIL FROM:<victim@elsewhere.example>`.
fn in_transaction(server: &TestServer) -> Client {
    let mut client = server.client();
    client.ehlo();
    assert_eq!(
        client.send("MAIL FROM:<victim@elsewhere.example>"),
        "250 2.1.0 Ok"
    );
    client
}

#[test]
fn a_recipient_without_a_domain_is_local_even_from_a_relay_client() {
    // Loopback is in the default relay networks: before, `user` was relayed as a remote domain.
    let server = TestServer::start(1, |_| {});
    let mut client = in_transaction(&server);
    assert_eq!(client.send("RCPT TO:<user>"), "250 2.1.5 Ok");
    assert_eq!(client.send("RCPT TO:<POSTMASTER>"), "250 2.1.5 Ok");
    queued_id(&client.data("Subject: local\r\n\r\nhi\r\n"));
    assert_eq!(
        queued_recipients(&server),
        ["user@localhost", "postmaster@localhost"]
    );
}

#[test]
fn a_bare_local_part_gets_the_default_domain_and_postmaster_stays_local() {
    let server = TestServer::start(1, |config| {
        config.domains = vec!["localhost".into(), "example.org".into()];
        config.default_domain = Some("example.org".into());
    });
    let mut client = in_transaction(&server);
    assert_eq!(client.send("RCPT TO:<user>"), "250 2.1.5 Ok");
    assert_eq!(client.send("RCPT TO:<postMaster>"), "250 2.1.5 Ok");
    queued_id(&client.data("Subject: local\r\n\r\nhi\r\n"));
    assert_eq!(
        queued_recipients(&server),
        ["user@example.org", "postmaster@localhost"]
    );
}

#[test]
fn local_parts_that_can_be_no_mailbox_are_refused_at_rcpt() {
    let server = TestServer::start(1, |_| {});
    let mut client = in_transaction(&server);
    for recipient in [
        "a/b@localhost",
        "..@localhost",
        ".hidden@localhost",
        "x/../y",
    ] {
        let reply = client.send(&format!("RCPT TO:<{recipient}>"));
        assert!(
            reply.starts_with("550 5.1.1 <")
                && reply.ends_with(">: Recipient address rejected: Invalid mailbox name"),
            "{recipient}: {reply}"
        );
    }
    assert_eq!(client.send("DATA"), "554 5.5.1 Error: no valid recipients");
    assert!(server.entries().is_empty(), "nothing to bounce later");
}

/// Writes the local recipient map `text` to `path`.
fn write_map(path: &Path, text: &str) {
    std::fs::write(path, text).expect("the map is written");
}

/// A server whose local recipient map is `map` in `dir`, with `text` in it.
fn with_map(dir: &Path, text: &str) -> TestServer {
    let map = dir.join("recipients");
    write_map(&map, text);
    TestServer::start(1, |config| {
        config.local_recipient_map = Some(map);
        // The reload test asks again after each refusal.
        config.max_errors = 10_000;
    })
}

#[test]
fn with_a_local_recipient_map_unknown_users_are_refused_at_rcpt() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = with_map(dir.path(), "# who lives here\njane   any value\n");
    let mut client = in_transaction(&server);
    assert_eq!(
        client.send("RCPT TO:<bob@localhost>"),
        "550 5.1.1 <bob@localhost>: Recipient address rejected: User unknown in local recipient table"
    );
    assert_eq!(
        client.send("RCPT TO:<bob>"),
        "550 5.1.1 <bob@localhost>: Recipient address rejected: User unknown in local recipient table"
    );
    assert_eq!(client.send("RCPT TO:<JANE@localhost>"), "250 2.1.5 Ok");
    assert_eq!(
        client.send("RCPT TO:<Postmaster@localhost>"),
        "250 2.1.5 Ok"
    );
    assert_eq!(client.send("RCPT TO:<x@example.net>"), "250 2.1.5 Ok");
    queued_id(&client.data("Subject: mapped\r\n\r\nhi\r\n"));
    assert_eq!(
        queued_recipients(&server),
        ["jane@localhost", "postmaster@localhost", "x@example.net"],
        "local parts are spelled as the map spells them"
    );
}

#[test]
fn a_recipient_a_plugin_expands_counts_as_known_to_the_map() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = with_map(dir.path(), "jane\n");
    let mut client = in_transaction(&server);
    assert_eq!(client.send(&format!("RCPT TO:<{LIST}>")), "250 2.1.5 Ok");
    queued_id(&client.data("Subject: list\r\n\r\nhi\r\n"));
    assert_eq!(server.entries().len(), EXPANSION);
}

#[test]
fn the_local_recipient_map_is_read_again_when_it_changes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server = with_map(dir.path(), "jane\n");
    let mut client = in_transaction(&server);
    assert!(
        client
            .send("RCPT TO:<bob@localhost>")
            .starts_with("550 5.1.1 ")
    );

    write_map(&dir.path().join("recipients"), "jane\nbob\n");
    // The file is looked at once a second at most: ask until the change is seen.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = client.send("RCPT TO:<bob@localhost>");
        if reply == "250 2.1.5 Ok" {
            break;
        }
        assert!(reply.starts_with("550 5.1.1 "), "{reply}");
        assert!(Instant::now() < deadline, "the new map was never read");
        std::thread::sleep(Duration::from_millis(50));
    }
}
