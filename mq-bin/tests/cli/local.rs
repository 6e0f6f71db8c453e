//! `mq serve` with delivery on: a recipient without a domain is local mail, delivered into its
//! Maildir under the data directory, and never handed to the smarthost.

use std::net::TcpListener;
use std::path::Path;
use std::time::Instant;

use crate::support::{PATIENCE, Scratch, smtp};

/// Whether `mailbox` (a Maildir) holds a delivered message.
fn has_mail(mailbox: &Path) -> bool {
    std::fs::read_dir(mailbox.join("new")).is_ok_and(|mut files| files.next().is_some())
}

#[test]
fn a_recipient_without_a_domain_lands_in_the_local_maildir_and_never_at_the_smarthost() {
    let scratch = Scratch::new();
    // A smarthost that would take the connection: nothing may ever arrive here.
    let smarthost = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let data = scratch.path().join("data");
    let text = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\n\n[queue]\ndata_dir = '{}'\nfsync = false\n\n\
         [admin]\nlisten = \"{}\"\n\n[delivery]\nsmarthost = \"{}\"\n",
        data.display(),
        scratch.admin,
        smarthost.local_addr().expect("its address")
    );
    std::fs::write(&scratch.config, text).expect("the config is written");
    let server = scratch.serve();
    // The client is on loopback, in the default relay networks.
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<user>",
            "RCPT TO:<POSTMASTER>",
            "DATA",
            "Subject: bare",
            "",
            "hi",
            ".",
            "QUIT",
        ],
    );
    assert!(
        replies[6].starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );

    let mail = data.join("mail").join("localhost");
    let deadline = Instant::now() + PATIENCE;
    while !(has_mail(&mail.join("user")) && has_mail(&mail.join("postmaster"))) {
        assert!(
            Instant::now() < deadline,
            "no local delivery:\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    smarthost.set_nonblocking(true).expect("non-blocking");
    assert_eq!(
        smarthost.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing went to the smarthost"
    );
    server.terminate().assert_success();
}
