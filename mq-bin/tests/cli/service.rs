//! `mq serve` as a system service: `mq status`, the pid file, and giving up root's rights
//! after binding (`[server] user`).

use std::os::unix::fs::PermissionsExt as _;

use crate::support::{Scratch, append, one_error_line, smtp, success};

/// Appends `text` to the file at `path`.

#[test]
fn status_tells_whether_the_server_runs_with_its_sessions_and_queue() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.net>",
            "DATA",
            "Subject: s",
            "",
            "hi",
            ".",
            "QUIT",
        ],
    );
    assert!(replies[5].starts_with("250 "), "{replies:?}");
    let text = success(&scratch.mq(&["status"]));
    assert!(
        text.starts_with(&format!(
            "mq serve is running (admin port {})\n",
            scratch.admin
        )),
        "{text}"
    );
    assert!(text.contains("\n  up:       "), "{text}");
    assert!(
        text.contains("\n  sessions: 0 open, 1 since start\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  messages: 1 accepted since start\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  queue:    1 entry (0 deferred, oldest "),
        "{text}"
    );
    server.terminate().assert_success();

    let stopped = scratch.mq(&["status"]);
    let error = one_error_line(&stopped);
    assert!(
        error.starts_with(&format!(
            "mq: mq serve is not running: no answer on admin port {}",
            scratch.admin
        )),
        "{error}"
    );
}

#[test]
fn the_pid_file_holds_the_server_pid_until_it_stops() {
    let scratch = Scratch::new();
    let pid_file = scratch.path().join("mq.pid");
    append(
        &scratch.config,
        &format!("\n[server]\npid_file = '{}'\n", pid_file.display()),
    );
    let server = scratch.serve();
    let written = std::fs::read_to_string(&pid_file).expect("the pid file");
    assert_eq!(written, format!("{}\n", server.pid()));
    server.terminate().assert_success();
    assert!(
        !pid_file.exists(),
        "the pid file is removed at a clean stop"
    );
}

#[test]
fn a_second_server_leaves_the_first_ones_pid_file_alone() {
    let scratch = Scratch::new();
    let pid_file = scratch.path().join("mq.pid");
    append(
        &scratch.config,
        &format!("\n[server]\npid_file = '{}'\n", pid_file.display()),
    );
    let server = scratch.serve();
    let second = scratch.mq(&["serve"]);
    assert!(one_error_line(&second).contains("in use by another mq process"));
    let written = std::fs::read_to_string(&pid_file).expect("the pid file");
    assert_eq!(written, format!("{}\n", server.pid()));
    server.terminate().assert_success();
}

#[test]
fn an_unknown_user_is_refused_before_anything_is_bound() {
    let scratch = Scratch::new();
    append(
        &scratch.config,
        "\n[server]\nuser = \"no-such-user-here\"\n",
    );
    let error = one_error_line(&scratch.mq(&["serve"]));
    assert!(
        error.contains("[server] user \"no-such-user-here\": no such user in /etc/passwd"),
        "{error}"
    );
}

/// The uid of process `pid`: real, effective, saved and filesystem, from /proc.
pub(crate) fn uids(pid: u32) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc");
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .expect("a Uid line");
    line.split_whitespace()
        .map(|id| id.parse().expect("a number"))
        .collect()
}

/// nobody's uid and gid, from /etc/passwd.
pub(crate) fn nobody() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"nobody"))?;
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

#[test]
fn started_as_root_the_server_runs_as_the_configured_user() {
    if uids(std::process::id())[1] != 0 {
        eprintln!("skipped: changing user needs the test to run as root");
        return;
    }
    let Some((uid, gid)) = nobody() else {
        eprintln!("skipped: no user nobody in /etc/passwd");
        return;
    };
    let scratch = Scratch::new();
    // nobody must reach the config (reload reads it again) and own the data directory.
    std::fs::set_permissions(scratch.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).expect("the data directory");
    std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown");
    append(&scratch.config, "\n[server]\nuser = \"nobody\"\n");
    let mut server = scratch.serve();
    assert_eq!(uids(server.pid()), [uid; 4]);
    server.wait_for_log("running as an unprivileged user");
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.net>",
            "DATA",
            "Subject: s",
            "",
            "hi",
            ".",
            "QUIT",
        ],
    );
    assert!(
        replies[5].starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
    // The queue's files are nobody's.
    let queue = std::fs::read_dir(data.join("queue")).expect("the queue directory");
    for file in queue {
        use std::os::unix::fs::MetadataExt as _;
        let file = file.expect("an entry");
        assert_eq!(file.metadata().expect("metadata").uid(), uid, "{file:?}");
    }
    let stopped = server.terminate();
    stopped.assert_success();
}
