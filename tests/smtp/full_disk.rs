//! A full disk under the queue: DATA gets `451 4.3.0` while the journal cannot be written, `250`
//! again once space is freed (no restart), and every message acknowledged before is still
//! queued after a restart. The disk is a small tmpfs the test mounts, which takes root, so the
//! test is ignored by default (`-- --ignored` runs it, as CI does); asked for where the mount is
//! refused, it fails under `MQ_TEST_SERVICES=required` and otherwise says it is skipped.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mq_core::queue::{Queue, QueueId};
use mq_core::smtp::{Server, SmtpConfig};
use tempfile::TempDir;

use crate::support::{Client, body_of, open_queue, queued_id, start_runtime};

/// Mounts a tmpfs of `size` on a new temporary directory; where the machine refuses, a panic
/// under `MQ_TEST_SERVICES=required`, else `None` with a line saying the test is skipped.
fn mount_tmpfs(size: &str) -> Option<TempDir> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0700"),
            "tmpfs",
        ])
        .arg(dir.path())
        .output();
    let why = match mounted {
        Ok(output) if output.status.success() => return Some(dir),
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        Err(error) => error.to_string(),
    };
    assert!(
        std::env::var("MQ_TEST_SERVICES").as_deref() != Ok("required"),
        "full_disk: cannot mount a tmpfs to fill ({why}): run as root (MQ_TEST_SERVICES=required)"
    );
    eprintln!("full_disk: SKIPPED: cannot mount a tmpfs to fill ({why}); run as root to test it");
    None
}

/// A message of about 16 KiB that says which it is.
fn message(n: usize) -> String {
    let line = format!("message {n} of the full-disk test, a line of filler text\r\n");
    format!("Subject: {n}\r\n\r\n{}", line.repeat(16_384 / line.len()))
}

fn send(client: &mut Client, n: usize) -> String {
    client.message("a@example.org", "b@example.net", &message(n))
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn data_gets_451_on_a_full_disk_and_250_again_once_space_is_freed() {
    let Some(disk) = mount_tmpfs("1m") else {
        return;
    };
    let filler = disk.path().join("filler");
    fs::write(&filler, vec![1; 256 << 10]).expect("the filler is written");
    let queue_dir = disk.path().join("queue");
    let queue = open_queue(&queue_dir);
    let runtime = start_runtime(1);
    let mut config = SmtpConfig::default();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start(&runtime, config, queue.clone()).expect("the server starts");
    let mut client = Client::greeted(server.local_addr());
    client.ehlo();

    let mut acknowledged: Vec<(QueueId, usize)> = Vec::new();
    let refusal = loop {
        let n = acknowledged.len();
        assert!(n < 1000, "the disk never filled");
        let reply = send(&mut client, n);
        if !reply.starts_with("250 ") {
            break reply;
        }
        acknowledged.push((queued_id(&reply), n));
    };
    assert_eq!(refusal, "451 4.3.0 Error: queue file write error");
    assert!(
        acknowledged.len() >= 10,
        "{} acknowledged",
        acknowledged.len()
    );

    fs::remove_file(&filler).expect("the filler is removed");
    let n = acknowledged.len();
    let deadline = Instant::now() + Duration::from_secs(30);
    let accepted = loop {
        let reply = send(&mut client, n);
        if reply.starts_with("250 ") {
            break reply;
        }
        assert_eq!(reply, refusal);
        assert!(
            Instant::now() < deadline,
            "still refused 30 s after space was freed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    acknowledged.push((queued_id(&accepted), n));
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
    drop(client);
    runtime.shutdown();
    drop(server);
    drop(queue);

    let queue = open_queue(&queue_dir);
    let queued: Vec<QueueId> = queue.list().iter().map(|e| e.queue_id).collect();
    assert_eq!(queued, acknowledged.iter().map(|a| a.0).collect::<Vec<_>>());
    for &(id, n) in &acknowledged {
        // After the Received line the server adds.
        assert!(
            body_of(&*queue, id).ends_with(&message(n)),
            "{id} came back damaged"
        );
    }
    drop(queue);
    // Lazy: nothing may keep the mount after the test.
    let _ = Command::new("umount").arg("-l").arg(disk.path()).status();
    assert!(!Path::new(&filler).exists());
}
