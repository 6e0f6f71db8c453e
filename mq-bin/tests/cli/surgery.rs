//! Queue surgery with the real binary: hold, release, requeue, delete by id, from stdin and
//! `ALL`, flush by message and domain, list filters, `--json`, and `mq queue summary`, with the
//! server running and stopped.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::queue::send;
use crate::support::{PATIENCE, Scratch, listed, one_error_line, stderr, success};

/// Whether `mailbox` (a Maildir) holds a delivered message.
fn has_mail(mailbox: &Path) -> bool {
    std::fs::read_dir(mailbox.join("new")).is_ok_and(|mut files| files.next().is_some())
}

/// Turns delivery on in `scratch`'s config: local recipients go to Maildirs in the data
/// directory.
fn with_delivery(scratch: &Scratch) {
    let text = std::fs::read_to_string(&scratch.config).unwrap();
    let text = text.replace(
        "[delivery]\nenabled = false\n",
        "[delivery]\nenabled = true\n",
    );
    std::fs::write(&scratch.config, text).unwrap();
}

#[test]
fn a_held_message_survives_a_restart_and_is_delivered_only_once_released() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let held = send(server.smtp(), &["kept"]);
    let free = send(server.smtp(), &["free"]);
    let out = success(&scratch.mq(&["queue", "hold", &held]));
    assert_eq!(out, format!("{held}: held 1 entry\n"));
    let holding = success(&scratch.mq(&["queue", "list", "--state", "hold"]));
    let rows = listed(&holding);
    assert_eq!(rows.len(), 1, "{holding}");
    assert_eq!(
        (rows[0][0].as_str(), rows[0][5].as_str()),
        (held.as_str(), "hold")
    );
    server.terminate().assert_success();

    // A server that delivers: the free message goes, the held one stays.
    with_delivery(&scratch);
    let server = scratch.serve();
    let mail = scratch.path().join("data/mail/localhost");
    let deadline = Instant::now() + PATIENCE;
    while !has_mail(&mail.join("free")) {
        assert!(Instant::now() < deadline, "no delivery:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Deliveries run in rounds: give the held entry a few to (wrongly) go in.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !has_mail(&mail.join("kept")),
        "a held message was delivered"
    );
    let rows = listed(&success(&scratch.mq(&["queue", "list"])));
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0][0].as_str(), rows[0][5].as_str()),
        (held.as_str(), "hold")
    );
    assert_ne!(held, free);

    let out = success(&scratch.mq(&["queue", "release", &held]));
    assert_eq!(out, format!("{held}: released 1 entry\n"));
    let deadline = Instant::now() + PATIENCE;
    while !has_mail(&mail.join("kept")) {
        assert!(
            Instant::now() < deadline,
            "not delivered after release:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.terminate().assert_success();
}

#[test]
fn ids_from_stdin_and_all_are_changed_together_running_and_stopped() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let ids: Vec<String> = (0..6)
        .map(|n| send(server.smtp(), &[&format!("u{n}@d{}.example", n % 2)]))
        .collect();
    // Running: hold three named on stdin, as a listing piped in.
    let listing = success(&scratch.mq(&["queue", "list", "--domain", "D0.example"]));
    assert_eq!(listed(&listing).len(), 3, "{listing}");
    let out = success(&scratch.mq_with_input(&["queue", "hold", "-"], listing.as_bytes()));
    assert_eq!(out, "Placed on hold: 3 messages\n");
    let held = listed(&success(&scratch.mq(&["queue", "list", "--state", "hold"])));
    let held: Vec<&str> = held.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(held, [&ids[0], &ids[2], &ids[4]]);
    let out = success(&scratch.mq(&["queue", "requeue", "ALL"]));
    assert_eq!(out, "Requeued: 6 messages\n");
    let ready = listed(&success(
        &scratch.mq(&["queue", "list", "--state", "ready"]),
    ));
    assert_eq!(ready.len(), 6, "requeue ends a hold");
    server.terminate().assert_success();

    // Stopped: delete two named on stdin, one of them twice, then everything.
    let input = format!("{}\n{}\n{}\n", ids[1], ids[3], ids[3]);
    let out = success(&scratch.mq_with_input(&["queue", "delete", "-"], input.as_bytes()));
    assert_eq!(out, "Deleted: 2 messages\n");
    let left = listed(&success(&scratch.mq(&["queue", "list"])));
    assert_eq!(left.len(), 4);
    let missing =
        one_error_line(&scratch.mq_with_input(&["queue", "delete", "-"], input.as_bytes()));
    assert!(missing.contains("2 messages were not changed"), "{missing}");
    assert_eq!(
        success(&scratch.mq(&["queue", "delete", "ALL"])),
        "Deleted: 4 messages\n"
    );
    assert_eq!(
        success(&scratch.mq(&["queue", "list"])),
        "Mail queue is empty\n"
    );
}

#[test]
fn hold_and_release_on_the_disk_without_a_server() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let id = send(server.smtp(), &["bob@example.net", "carol@example.net"]);
    server.terminate().assert_success();
    assert_eq!(
        success(&scratch.mq(&["queue", "hold", &id])),
        format!("{id}: held 2 entries\n")
    );
    let rows = listed(&success(&scratch.mq(&["queue", "list"])));
    assert!(rows.iter().all(|row| row[5] == "hold"), "{rows:?}");
    assert_eq!(
        success(&scratch.mq(&["queue", "release", &id])),
        format!("{id}: released 2 entries\n")
    );
    let rows = listed(&success(&scratch.mq(&["queue", "list"])));
    assert!(rows.iter().all(|row| row[5] == "ready"), "{rows:?}");
    let bad = one_error_line(&scratch.mq(&["queue", "hold", "0000000000000001"]));
    assert_eq!(bad, "mq: no queued message 0000000000000001\n");
}

#[test]
fn filters_json_show_and_summary() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let first = send(
        server.smtp(),
        &["a@one.example", "b@two.example", "c@two.example"],
    );
    let _second = send(server.smtp(), &["d@two.example"]);
    for running in [true, false] {
        let json = success(&scratch.mq(&["queue", "list", "--json", "--domain", "two.example"]));
        let records: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 3, "{json}");
        assert!(
            records
                .iter()
                .all(|r| r["recipient"].as_str().unwrap().ends_with("@two.example"))
        );
        let by_sender = success(&scratch.mq(&["queue", "list", "--sender", "nobody@example.org"]));
        assert_eq!(by_sender, "Mail queue is empty\n");
        let old = success(&scratch.mq(&["queue", "list", "--older-than", "1h"]));
        assert_eq!(old, "Mail queue is empty\n");
        let ready = listed(&success(
            &scratch.mq(&["queue", "list", "--state", "ready"]),
        ));
        assert_eq!(ready.len(), 4);
        let bad = scratch.mq(&["queue", "list", "--older-than", "3x"]);
        assert_eq!(bad.status.code(), Some(2), "a usage error");
        assert!(
            stderr(&bad).contains("unknown unit \"x\""),
            "{}",
            stderr(&bad)
        );

        let summary = success(&scratch.mq(&["queue", "summary"]));
        println!("mq queue summary (running: {running}):\n{summary}");
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"
            ]
        );
        let cells = |line: &str| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(cells(lines[1])[..3], ["TOTAL", "4", "4"]);
        assert_eq!(cells(lines[2])[..3], ["two.example", "3", "3"]);
        assert_eq!(cells(lines[3])[..3], ["one.example", "1", "1"]);
        let deferred = success(&scratch.mq(&["queue", "summary", "--deferred"]));
        assert_eq!(cells(deferred.lines().nth(1).unwrap())[..2], ["TOTAL", "0"]);

        let shown = success(&scratch.mq(&["queue", "show", &first, "--json"]));
        let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(shown["entries"].as_array().unwrap().len(), 3);
        assert!(shown["body"].as_str().unwrap().contains("Subject: queued"));
        let text = success(&scratch.mq(&["queue", "show", &first]));
        assert!(text.contains(" UTC ("), "absolute arrival time: {text}");
        assert!(text.contains(", 0 attempts, next attempt now)"), "{text}");
        if running {
            let flushed = success(&scratch.mq(&["queue", "flush", &first]));
            assert_eq!(flushed, format!("{first}: 0 deferred entries due now\n"));
            let flushed = success(&scratch.mq(&["queue", "flush", "--domain", "two.example"]));
            assert_eq!(flushed, "two.example: 0 deferred entries due now\n");
            let missing = one_error_line(&scratch.mq(&["queue", "flush", "0000000000000001"]));
            assert_eq!(missing, "mq: no queued message 0000000000000001\n");
        }
    }
    drop(server);
}
