//! The maildrop: `mq sendmail` run by a user who may not open the queue leaves the message
//! there while no server runs, and `mq serve` picks up what is dropped, at start and while it
//! runs; what is not a maildrop file is moved to `corrupt/`.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{PATIENCE, Scratch, Server, bounded, listed, smtp, success};

/// The files in `dir` but `corrupt/`, by name.
fn dropped(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| !path.ends_with("corrupt"))
        .collect();
    files.sort();
    files
}

/// Waits until `ready` holds, at most [`PATIENCE`].
fn wait_until(server: &Server, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes `bytes` into the maildrop as a writer must: a temporary name, then the final one.
fn drop_file(maildrop: &Path, name: &str, bytes: &[u8]) {
    let temporary = maildrop.join(format!(".tmp-{name}"));
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, maildrop.join(name)).unwrap();
}

/// The uid and gid of `nobody`, to run sendmail as another user; `None`, said on stderr, when
/// the test cannot (not root, or no such user): the test is then skipped.
fn nobody() -> Option<(u32, u32)> {
    if crate::service::uids(std::process::id())[1] != 0 {
        eprintln!("skipped: sendmail as another user needs the test to run as root");
        return None;
    }
    let found = crate::service::nobody();
    if found.is_none() {
        eprintln!("skipped: no user nobody in /etc/passwd");
    }
    found
}

#[test]
fn an_unprivileged_sendmail_with_the_server_stopped_uses_the_maildrop_and_the_next_server_delivers()
{
    let Some((uid, gid)) = nobody() else {
        return;
    };
    let scratch = Scratch::new();
    // nobody reads the config; the queue stays root's (0700).
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    scratch.edit_config("enabled = false", "enabled = true");
    // The first start makes the maildrop: anyone may write into it, only root lists it.
    scratch.serve().terminate().assert_success();
    let maildrop = scratch.path().join("data/maildrop");
    let mode = std::fs::metadata(&maildrop).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o1733);
    let corrupt = std::fs::metadata(maildrop.join("corrupt")).unwrap();
    assert_eq!(corrupt.permissions().mode() & 0o7777, 0o700);

    let output = bounded(
        scratch
            .command(&[
                "sendmail",
                "-f",
                "cron@example.org",
                "-F",
                "Cron Daemon",
                "bob",
            ])
            .uid(uid)
            .gid(gid),
        Some(b"Subject: nightly\n\nall well\n"),
    );
    assert_eq!(success(&output), "", "sendmail says nothing when it worked");
    assert_eq!(crate::support::stderr(&output), "");
    let files = dropped(&maildrop);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::metadata(&files[0]).unwrap().uid(), uid);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.starts_with(&format!(
            "mq-maildrop: 1\nuid: {uid}\nsender: cron@example.org\nfull-name: Cron Daemon\n\
             recipient: bob@localhost\n\n"
        )),
        "{text}"
    );
    assert_eq!(
        success(&scratch.mq(&["queue", "list"])),
        "Mail queue is empty\n"
    );

    // The next server picks it up and delivers it.
    let server = scratch.serve();
    let new = scratch.path().join("data/mail/localhost/bob/new");
    wait_until(&server, "bob's mail", || {
        std::fs::read_dir(&new).is_ok_and(|mut files| files.next().is_some())
    });
    let mail = std::fs::read_dir(&new).unwrap().next().unwrap().unwrap();
    let mail = std::fs::read_to_string(mail.path()).unwrap();
    assert!(mail.contains("Subject: nightly"), "{mail}");
    assert!(
        mail.contains("From: Cron Daemon <cron@example.org>"),
        "{mail}"
    );
    assert!(dropped(&maildrop).is_empty());
    assert!(
        server
            .log()
            .contains(&format!(": uid={uid} from=<cron@example.org>")),
        "{}",
        server.log()
    );
    server.terminate().assert_success();
}

#[test]
fn a_running_server_picks_up_dropped_files_and_moves_bad_ones_to_corrupt() {
    let scratch = Scratch::new();
    scratch.edit_config(
        "fsync = false\n",
        "fsync = false\nmaildrop_interval = \"100ms\"\n",
    );
    scratch.edit_config(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nmax_message_size = 1000\n",
    );
    let mut server = scratch.serve();
    let maildrop = scratch.path().join("data/maildrop");
    let corrupt = maildrop.join("corrupt");

    drop_file(&maildrop, "1.1.garbage", b"this is not a maildrop file\n");
    let mut large =
        b"mq-maildrop: 1\nuid: 0\nsender: a@example.org\nrecipient: b@example.net\n\n".to_vec();
    large.extend(std::iter::repeat_n(b'x', 2000));
    drop_file(&maildrop, "2.1.large", &large);
    // A link to a file the user may not read is not followed, so not mailed to them.
    std::os::unix::fs::symlink(&scratch.config, maildrop.join("3.0.link")).unwrap();
    // Being written: left alone.
    std::fs::write(maildrop.join(".tmp-unfinished"), b"mq-maildrop: 1\n").unwrap();
    // What a sendmail that crashed two hours ago left: removed.
    let stale = std::fs::File::create(maildrop.join(".tmp-crashed")).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_hours(2);
    stale.set_modified(two_hours_ago).unwrap();
    drop(stale);
    wait_until(&server, "the bad files in corrupt/", || {
        ["1.1.garbage", "2.1.large", "3.0.link"]
            .iter()
            .all(|name| corrupt.join(name).symlink_metadata().is_ok())
    });
    let log = server.log();
    assert!(
        log.contains("maildrop file refused: not a maildrop file"),
        "{log}"
    );
    assert!(
        log.contains("2000 bytes, over smtp.max_message_size"),
        "{log}"
    );
    assert!(
        log.contains("maildrop file refused: cannot read it"),
        "the link: {log}"
    );

    // The server runs on, and a good file is queued with the fields a submission gets.
    drop_file(
        &maildrop,
        "3.1.good",
        b"mq-maildrop: 1\nuid: 0\nsender: alice@example.org\nfull-name: Alice\n\
          recipient: carol@example.net\n\nSubject: dropped\r\n\r\nhello\r\n",
    );
    server.wait_for_log(": uid=0 from=<alice@example.org>");
    let rows = listed(&success(&scratch.mq(&["queue", "list"])));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][2], "carol@example.net");
    let shown = success(&scratch.mq(&["queue", "show", &rows[0][0]]));
    assert!(
        shown.contains("\nFrom: Alice <alice@example.org>\n"),
        "{shown}"
    );
    assert!(shown.contains("\nDate: "), "{shown}");
    assert!(shown.contains("\nMessage-ID: <"), "{shown}");
    assert_eq!(
        dropped(&maildrop),
        [maildrop.join(".tmp-unfinished")],
        "picked-up files and the stale temporary file are removed"
    );
    assert!(
        server
            .log()
            .contains("removed a stale maildrop temporary file"),
        "{}",
        server.log()
    );
    let replies = smtp(server.smtp(), &["EHLO client.example", "QUIT"]);
    assert!(replies[1].starts_with("250"), "{replies:?}");
    server.terminate().assert_success();
}

#[test]
fn an_unprivileged_sendmail_with_a_server_running_submits_through_it() {
    let Some((uid, gid)) = nobody() else {
        return;
    };
    let scratch = Scratch::new();
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // sendmail finds the server at smtp.listen: a port of its own, not one the server picks.
    scratch.smtp_on_free_port();
    let server = scratch.serve();
    let output = bounded(
        scratch
            .command(&["sendmail", "-f", "cron@example.org", "bob@example.net"])
            .uid(uid)
            .gid(gid),
        Some(b"Subject: hourly\n\nall well\n"),
    );
    assert_eq!(success(&output), "");
    let rows = listed(&success(&scratch.mq(&["queue", "list"])));
    assert_eq!(rows.len(), 1, "{rows:?}");
    let shown = success(&scratch.mq(&["queue", "show", &rows[0][0]]));
    assert!(
        shown.contains("\nReceived: from localhost"),
        "went through the server: {shown}"
    );
    assert!(dropped(&scratch.path().join("data/maildrop")).is_empty());
    server.terminate().assert_success();
}
