//! `mq queue`: through a running server's admin port, and on the disk when none runs.

use crate::support::{Scratch, http_get, listed, one_error_line, smtp, success};

/// Sends a message with `recipients` over SMTP and returns its queue id.
pub(crate) fn send(address: std::net::SocketAddr, recipients: &[&str]) -> String {
    let mut lines = vec![
        "EHLO client.example".to_owned(),
        "MAIL FROM:<alice@example.org>".to_owned(),
    ];
    lines.extend(recipients.iter().map(|r| format!("RCPT TO:<{r}>")));
    lines.extend(["DATA", "Subject: queued", "", "body", ".", "QUIT"].map(str::to_owned));
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let replies = smtp(address, &lines);
    let accepted = &replies[replies.len() - 2];
    accepted.rsplit(' ').next().expect("a queue id").to_owned()
}

/// The fields of a listing that do not change with time: id, sender, recipient, size.
fn stable(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    rows.iter().map(|row| row[..4].to_vec()).collect()
}

#[test]
fn queue_list_asks_a_running_server_and_reads_the_disk_after_it_stopped() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let first = send(server.smtp(), &["bob@example.net", "carol@localhost"]);
    let second = send(server.smtp(), &["dave@example.com"]);

    let running = success(&scratch.mq(&["queue", "list"]));
    println!("mq queue list, server running:\n{running}");
    let rows = listed(&running);
    assert_eq!(rows.len(), 3, "{running}");
    assert_eq!(
        [&rows[0][0], &rows[1][0], &rows[2][0]],
        [&first, &first, &second]
    );
    assert_eq!(rows[1][2], "carol@localhost");
    assert!(
        rows.iter().all(|row| row[5] == "ready" && row[6] == "now"),
        "{running}"
    );
    assert!(running.ends_with(" in 2 Requests.\n"), "{running}");
    server.terminate().assert_success();

    let stopped = success(&scratch.mq(&["queue", "list"]));
    println!("mq queue list, no server:\n{stopped}");
    assert_eq!(stable(&listed(&stopped)), stable(&rows));

    let removed = success(&scratch.mq(&["queue", "delete", &first]));
    assert_eq!(removed, format!("{first}: removed 2 entries\n"));
    let after = success(&scratch.mq(&["queue", "list"]));
    assert_eq!(stable(&listed(&after)), stable(&rows[2..]));
    assert!(after.ends_with(" in 1 Request.\n"), "{after}");

    let again = one_error_line(&scratch.mq(&["queue", "delete", &first]));
    assert_eq!(again, format!("mq: no queued message {first}\n"));
}

#[test]
fn show_delete_and_flush_go_through_a_running_server() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let id = send(server.smtp(), &["bob@example.net"]);

    let shown = success(&scratch.mq(&["queue", "show", &id]));
    assert!(
        shown.starts_with(&format!("Queue ID:  {id}\nSender:    alice@example.org\n")),
        "{shown}"
    );
    assert!(shown.contains("\nSubject: queued\n"), "{shown}");
    assert!(shown.ends_with("\n\nbody\n"), "{shown}");
    let flushed = success(&scratch.mq(&["queue", "flush"]));
    assert_eq!(flushed, "queue flushed: deferred entries are due now\n");
    assert_eq!(
        success(&scratch.mq(&["queue", "delete", &id])),
        format!("{id}: removed 1 entry\n")
    );
    assert_eq!(
        success(&scratch.mq(&["queue", "list"])),
        "Mail queue is empty\n"
    );
    let missing = one_error_line(&scratch.mq(&["queue", "show", &id]));
    assert_eq!(missing, format!("mq: no queued message {id}\n"));
    server.terminate().assert_success();
}

#[test]
fn without_a_server_flush_says_so_and_an_empty_queue_is_empty() {
    let scratch = Scratch::new();
    let data_dir = scratch.path().join("elsewhere");
    std::fs::create_dir(&data_dir).unwrap();
    let data_dir = data_dir.to_str().unwrap();
    assert_eq!(
        success(&scratch.mq(&["queue", "list", "--data-dir", data_dir])),
        "Mail queue is empty\n"
    );
    let flushed = success(&scratch.mq(&["queue", "flush", "--data-dir", data_dir]));
    assert_eq!(
        flushed,
        "no running server; deferred entries are retried when mq serve starts\n"
    );
    assert!(
        !scratch.path().join("elsewhere/queue").exists(),
        "looking does not create the queue"
    );
}

#[test]
fn a_data_dir_that_does_not_exist_is_an_error_not_an_empty_queue() {
    let scratch = Scratch::new();
    let missing = scratch.path().join("typo");
    let missing = missing.to_str().unwrap();
    let line = one_error_line(&scratch.mq(&["queue", "list", "--data-dir", missing]));
    assert_eq!(
        line,
        format!("mq: data directory {missing} does not exist\n")
    );
}

#[test]
fn queue_refuses_to_ask_a_server_that_does_not_own_the_data_dir() {
    let ours = Scratch::new();
    let _our_server = ours.serve();
    let other = Scratch::new();
    let other_server = other.serve();
    let id = send(other_server.smtp(), &["bob@example.net"]);
    // `other`'s queue is locked by its server; `ours`'s config names our server's port.
    let data = other.path().join("data");
    let data = data.to_str().unwrap();
    let line = one_error_line(&ours.mq(&["queue", "delete", &id, "--data-dir", data]));
    assert!(line.contains("owns"), "{line}");
    assert!(line.contains(data), "{line}");
    assert_eq!(listed(&success(&other.mq(&["queue", "list"]))).len(), 1);
}

#[test]
fn with_a_token_queue_commands_work_and_requests_without_it_are_refused() {
    let scratch = Scratch::with_admin("token = \"s3cret\"\n");
    let server = scratch.serve();
    let id = send(server.smtp(), &["bob@example.net"]);
    assert_eq!(http_get(scratch.admin, "/queue").0, 401);
    assert_eq!(http_get(scratch.admin, &format!("/queue/{id}/body")).0, 401);
    assert_eq!(
        http_get(scratch.admin, "/metrics").0,
        200,
        "open on loopback"
    );
    let listing = success(&scratch.mq(&["queue", "list"]));
    assert_eq!(listed(&listing)[0][0], id);
    assert_eq!(
        success(&scratch.mq(&["queue", "delete", &id])),
        format!("{id}: removed 1 entry\n")
    );
}

#[test]
fn a_queue_id_that_is_not_one_is_a_usage_error() {
    let scratch = Scratch::new();
    let output = scratch.mq(&["queue", "show", "12345"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("a queue id is 16 hex digits"));
}

/// `mq queue show` names the SMTPUTF8 and DSN parameters kept with a message, in text and in
/// JSON, from a running server and from the disk alike.
#[test]
fn show_names_the_smtputf8_and_dsn_parameters_of_a_message() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org> SMTPUTF8 RET=HDRS ENVID=QQ+2B314159",
            "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.net",
            "RCPT TO:<carol@example.net>",
            "DATA",
            "Subject: parameters",
            "",
            "body",
            ".",
            "QUIT",
        ],
    );
    let accepted = &replies[replies.len() - 2];
    let id = accepted.rsplit(' ').next().expect("a queue id").to_owned();

    let check = |shown: &str, json: &str| {
        assert!(
            shown.contains(
                "\nSMTPUTF8:  yes\nRET:       HDRS\nENVID:     QQ+314159\n\
                 Recipient: bob@example.net (ready, 0 attempts, next attempt now)\n\
                 \x20          notify: SUCCESS,FAILURE\n\
                 \x20          orcpt: rfc822;bob+2Bx@example.net\n\
                 Recipient: carol@example.net (ready"
            ),
            "{shown}"
        );
        let value: serde_json::Value = serde_json::from_str(json).expect("a JSON object");
        let entries = value["entries"].as_array().expect("entries");
        let bob = &entries[0];
        assert_eq!(bob["smtputf8"], true, "{json}");
        assert_eq!(bob["ret"], "HDRS", "{json}");
        assert_eq!(bob["envid"], "QQ+314159", "{json}");
        assert_eq!(bob["notify"], "SUCCESS,FAILURE", "{json}");
        assert_eq!(bob["orcpt"], "rfc822;bob+2Bx@example.net", "{json}");
        let carol = entries[1].as_object().expect("an object");
        assert_eq!(carol["envid"], "QQ+314159", "{json}");
        assert!(
            !carol.contains_key("notify") && !carol.contains_key("orcpt"),
            "{json}"
        );
    };
    let shown = success(&scratch.mq(&["queue", "show", &id]));
    let json = success(&scratch.mq(&["queue", "show", "--json", &id]));
    check(&shown, &json);
    server.terminate().assert_success();

    let shown = success(&scratch.mq(&["queue", "show", &id]));
    let json = success(&scratch.mq(&["queue", "show", "--json", &id]));
    check(&shown, &json);
}
