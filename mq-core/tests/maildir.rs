//! Local delivery into Maildirs: the layout, the files, and the addresses refused.

use std::fs;
use std::path::Path;

use mq_core::delivery::maildir::{Maildir, MaildirError};
use mq_plugin_api::Address;
use tempfile::TempDir;

fn address(text: &str) -> Address {
    text.parse().unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn setup() -> (TempDir, Maildir) {
    let dir = tempfile::tempdir().unwrap();
    let maildir = Maildir::new(dir.path().join("mail"));
    (dir, maildir)
}

#[test]
fn two_messages_become_two_files_in_new_and_none_stay_in_tmp() {
    let (dir, maildir) = setup();
    let bob = address("bob@example.net");
    let first = maildir
        .deliver(
            &address("alice@example.org"),
            &bob,
            b"Subject: one\r\n\r\nfirst\r\n",
        )
        .unwrap();
    let second = maildir
        .deliver(&Address::null(), &bob, b"Subject: two\r\n\r\nsecond\r\n")
        .unwrap();
    let mailbox = dir.path().join("mail/example.net/bob");
    assert_ne!(first, second);
    assert_eq!(names(&mailbox.join("new")).len(), 2);
    assert!(names(&mailbox.join("tmp")).is_empty());
    assert_eq!(
        fs::read(&first).unwrap(),
        b"Return-Path: <alice@example.org>\r\nDelivered-To: bob@example.net\r\nSubject: one\r\n\r\nfirst\r\n"
    );
    assert_eq!(
        fs::read(&second).unwrap(),
        b"Return-Path: <>\r\nDelivered-To: bob@example.net\r\nSubject: two\r\n\r\nsecond\r\n"
    );
}

#[test]
fn the_mailbox_has_tmp_new_and_cur_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;

    let (dir, maildir) = setup();
    let path = maildir
        .deliver(
            &Address::null(),
            &address("carol@example.net"),
            b"\r\nbody\r\n",
        )
        .unwrap();
    let mailbox = dir.path().join("mail/example.net/carol");
    assert_eq!(names(&mailbox), ["cur", "new", "tmp"]);
    assert_eq!(path.parent(), Some(mailbox.join("new").as_path()));
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&mailbox), 0o700);
    assert_eq!(mode(&mailbox.join("cur")), 0o700);
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn the_domain_is_lowercased_and_the_local_part_keeps_its_case() {
    let (dir, maildir) = setup();
    let recipient = address("Bob@Example.NET");
    let path = maildir
        .deliver(&Address::null(), &recipient, b"Subject: x\r\n\r\n")
        .unwrap();
    assert!(path.starts_with(dir.path().join("mail/example.net/Bob/new")));
    assert_eq!(
        maildir.mailbox_path(&recipient).unwrap(),
        dir.path().join("mail/example.net/Bob")
    );
}

#[test]
fn a_message_with_bare_lf_gets_bare_lf_return_path_and_delivered_to_lines() {
    let (_dir, maildir) = setup();
    let path = maildir
        .deliver(
            &Address::null(),
            &address("d@example.net"),
            b"Subject: x\n\nbody\n",
        )
        .unwrap();
    assert_eq!(
        fs::read(path).unwrap(),
        b"Return-Path: <>\nDelivered-To: d@example.net\nSubject: x\n\nbody\n"
    );
}

#[test]
fn addresses_that_could_escape_the_root_or_hide_are_refused_permanently() {
    let (dir, maildir) = setup();
    for text in [
        "../x@d",
        "..@d",
        ".@d",
        "a@..",
        "a@.",
        "a/b@d",
        "a@d/e",
        "a@D/../..",
        "postmaster",
        ".hidden@d",
        ".x.y@d",
        "a@.d",
    ] {
        let recipient = address(text);
        let err = maildir
            .deliver(&Address::null(), &recipient, b"\r\n")
            .unwrap_err();
        assert!(
            matches!(err, MaildirError::UnsafeAddress { .. }),
            "{text}: {err}"
        );
        assert!(err.is_permanent());
        assert!(maildir.mailbox_path(&recipient).is_err());
    }
    assert!(
        !dir.path().join("mail").exists(),
        "nothing is created for a refused address"
    );
}

#[test]
fn a_nul_never_reaches_the_file_system() {
    // The address type already refuses control characters; the Maildir checks again.
    assert!(Address::new("a\0b", "d").is_err());
    assert!(Address::new("a", "d\0").is_err());
    let (_dir, maildir) = setup();
    assert!(maildir.mailbox_path(&Address::null()).is_err());
}

#[test]
fn an_io_failure_is_temporary_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // The root is a file, so no mailbox can be created under it.
    let root = dir.path().join("mail");
    fs::write(&root, b"").unwrap();
    let err = Maildir::new(&root)
        .deliver(&Address::null(), &address("e@example.net"), b"\r\n")
        .unwrap_err();
    assert!(!err.is_permanent());
    let MaildirError::Io { path, .. } = &err else {
        panic!("{err}")
    };
    assert!(path.starts_with(&root));
    assert!(err.to_string().starts_with("cannot deliver to "));
}
