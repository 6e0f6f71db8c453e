//! `mq serve`: mail over SMTP is queued and counted, SIGTERM stops it cleanly, and one data
//! directory has one server.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;

use crate::support::{
    PATIENCE, Scratch, Server, bounded, command, free_port, http_get, one_error_line, smtp, stderr,
};

#[test]
fn a_message_over_smtp_is_queued_and_counted_and_sigterm_drains_and_exits_zero() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.net>",
            "DATA",
            "Subject: hello",
            "",
            "hi",
            ".",
            "QUIT",
        ],
    );
    assert!(replies[0].starts_with("220 "), "{replies:?}");
    assert!(
        replies[5].starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
    assert!(replies[6].starts_with("221 "), "{replies:?}");

    let (status, page) = http_get(scratch.admin, "/metrics");
    assert_eq!(status, 200);
    for sample in [
        "mq_messages_total 1",
        "mq_smtp_sessions_total 1",
        "mq_queue_entries 1",
    ] {
        assert!(
            page.lines().any(|line| line == sample),
            "{sample} in\n{page}"
        );
    }
    assert!(
        page.contains("\nmq_smtp_replies_total{code=\"250\"} "),
        "{page}"
    );
    #[cfg(feature = "headers")]
    assert!(
        page.contains(
            "mq_plugin_calls_total{plugin=\"headers\",hook=\"smtp_in_data\",control=\"continue\"} 1"
        ),
        "{page}"
    );

    let stopped = server.terminate();
    stopped.assert_success();
    assert_eq!(stopped.stdout, "", "serve prints nothing on stdout");
    assert!(
        stopped.log.contains(&format!("admin={}", scratch.admin)),
        "{}",
        stopped.log
    );
    assert!(stopped.log.contains("draining sessions"), "{}", stopped.log);
    assert!(stopped.log.contains("mq stopped"), "{}", stopped.log);
}

#[test]
fn sigterm_answers_an_idle_session_with_421_and_still_exits_zero() {
    let scratch = Scratch::new();
    let server = scratch.serve();
    let stream = TcpStream::connect(server.smtp()).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");

    let stopped = server.terminate();
    stopped.assert_success();
    let mut goodbye = String::new();
    reader.read_line(&mut goodbye).unwrap();
    assert!(goodbye.starts_with("421 4.3.2 "), "{goodbye}");
}

#[test]
fn a_second_sigterm_stops_a_server_that_waits_for_a_slow_data_transfer() {
    let scratch = Scratch::new();
    let mut server = scratch.serve();
    let (_client, _reader) = stalled_in_data(&server);

    server.signal_term();
    server.wait_for_log("draining sessions");
    server.signal_term();
    let stopped = server.wait_exit();
    assert_eq!(stopped.status.code(), Some(1), "{}", stopped.log);
    assert!(stopped.log.contains("second signal"), "{}", stopped.log);
}

#[test]
fn a_second_server_on_the_same_data_directory_fails_clearly() {
    let scratch = Scratch::new();
    let _first = scratch.serve();
    let second = scratch.mq(&["serve"]);
    let line = one_error_line(&second);
    assert!(line.contains("is in use by another mq process"), "{line}");
    assert!(line.contains("data"), "{line}");
}

#[test]
fn without_a_data_dir_the_queue_goes_to_mq_data_in_the_working_directory() {
    let scratch = Scratch::new();
    let config = scratch.path().join("defaults.toml");
    let admin = free_port();
    std::fs::write(
        &config,
        format!("[smtp]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"{admin}\"\n"),
    )
    .unwrap();
    let mut check = command(&["--config", config.to_str().unwrap(), "queue", "list"]);
    let missing = bounded(check.current_dir(scratch.path()), None);
    assert_eq!(
        String::from_utf8(missing.stderr).unwrap(),
        "mq: data directory mq-data does not exist\n"
    );

    let mut serve = command(&["--config", config.to_str().unwrap(), "serve"]);
    let server = Server::start(serve.current_dir(scratch.path()), scratch.path(), admin);
    assert!(scratch.path().join("mq-data/queue/lock").exists());
    server.terminate().assert_success();
}

/// Appends `text` to the scratch server's config file.
fn configure(scratch: &Scratch, text: &str) {
    let mut config = std::fs::read_to_string(&scratch.config).expect("the config");
    config.push_str(text);
    std::fs::write(&scratch.config, config).expect("the config is written");
}

/// A client that has sent half a message after DATA and waits; its reader, for the replies.
fn stalled_in_data(server: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let mut client = TcpStream::connect(server.smtp()).unwrap();
    let dialogue =
        "EHLO slow.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n";
    client.write_all(dialogue.as_bytes()).unwrap();
    client.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut line = String::new();
    while !line.starts_with("354") {
        line.clear();
        assert_ne!(
            reader.read_line(&mut line).unwrap(),
            0,
            "the server hung up"
        );
    }
    client.write_all(b"Subject: half a message\r\n").unwrap();
    (client, reader)
}

/// The next reply line.
fn next_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

#[test]
fn sigterm_closes_a_session_stalled_in_data_with_421_after_the_shutdown_timeout() {
    let scratch = Scratch::new();
    configure(&scratch, "\n[engine]\nshutdown_timeout = \"1s\"\n");
    let server = scratch.serve();
    let (_client, mut reader) = stalled_in_data(&server);

    let stopped = server.terminate();
    stopped.assert_success();
    assert!(
        stopped.log.contains("shutdown_timeout passed"),
        "{}",
        stopped.log
    );
    let goodbye = next_line(&mut reader);
    assert!(goodbye.starts_with("421 4.3.2 "), "{goodbye}");
}

#[test]
fn while_draining_the_admin_port_answers_and_a_command_that_arrives_gets_421_alone() {
    let scratch = Scratch::new();
    // One core, so that the idle session below sees the same shutdown as the stalled one; a
    // drain that cannot end on its own.
    configure(
        &scratch,
        "\n[engine]\nworkers = 1\nshutdown_timeout = \"1h\"\n",
    );
    let server = scratch.serve();
    let (mut client, mut reader) = stalled_in_data(&server);
    let idle = TcpStream::connect(server.smtp()).unwrap();
    idle.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut idle = BufReader::new(idle);
    assert!(next_line(&mut idle).starts_with("220 "));

    server.signal_term();
    // The idle session is told at once: shutdown has begun on the core.
    let goodbye = next_line(&mut idle);
    assert!(goodbye.starts_with("421 4.3.2 "), "{goodbye}");
    let (status, page) = http_get(scratch.admin, "/metrics");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("mq_smtp_sessions_total 2"), "{page}");

    // The message in progress is taken; the MAIL behind it is refused, and only refused.
    client
        .write_all(b"\r\nthe rest\r\n.\r\nMAIL FROM:<c@example.org>\r\n")
        .unwrap();
    let queued = next_line(&mut reader);
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    let refused = next_line(&mut reader);
    assert!(refused.starts_with("421 4.3.2 "), "{refused}");

    let stopped = server.wait_exit();
    stopped.assert_success();
}

#[test]
fn a_damaged_journal_is_moved_aside_and_counted_on_the_metrics_page() {
    use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage, Queue};

    let scratch = Scratch::new();
    let dir = scratch.path().join("data").join("queue");
    let queue = EmbeddedQueue::open(&dir, EmbeddedOptions::default()).expect("the queue opens");
    for n in 0..3 {
        let message = NewMessage {
            sender: "a@example.org".parse().expect("an address"),
            recipients: vec!["b@example.net".parse().expect("an address")],
            body: format!("Subject: {n}\r\n\r\nbody {n}\r\n").into_bytes(),
            client: "client.example[192.0.2.1]".into(),
            extensions: None,
        };
        smol::block_on(queue.enqueue(message)).expect("the message is queued");
    }
    drop(queue);
    // A byte of the first record's checksum: two valid records follow it.
    let segment = dir.join("journal-0000000000000001.log");
    let mut bytes = std::fs::read(&segment).expect("the segment is read");
    bytes[5] ^= 0x40;
    std::fs::write(&segment, bytes).expect("the segment is written");

    let server = scratch.serve();
    let (status, page) = http_get(scratch.admin, "/metrics");
    assert_eq!(status, 200);
    for sample in [
        "mq_queue_entries 2",
        "mq_queue_corrupt_regions_total 1",
        "mq_queue_writable 1",
    ] {
        assert!(
            page.lines().any(|line| line == sample),
            "{sample} in\n{page}"
        );
    }
    let stopped = server.terminate();
    assert!(
        stopped
            .log
            .contains("damaged queue journal records moved aside"),
        "{}",
        stopped.log
    );
    assert_eq!(
        std::fs::read_dir(dir.join("corrupt"))
            .expect("corrupt/")
            .count(),
        1
    );
}

#[test]
fn a_taken_admin_port_stops_serve_before_smtp_listens_and_names_the_cause_once() {
    let scratch = Scratch::new();
    let _taken = std::net::TcpListener::bind(scratch.admin).expect("the admin port is free");
    let output = scratch.mq(&["serve"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    let last = log.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "mq: cannot listen on {} for the admin port: Address already in use (os error 98)",
            scratch.admin
        ),
        "{log}"
    );
    assert!(!log.contains("smtp server listening"), "{log}");
    assert!(!log.contains("mq serving"), "{log}");
}

#[cfg(feature = "headers")]
#[test]
fn serve_refuses_an_engine_key_left_in_a_plugin_section_naming_its_new_place() {
    let scratch = Scratch::new();
    let config = scratch.path().join("moved.toml");
    let text = "[smtp]\nlisten = \"127.0.0.1:0\"\n\n[plugins.headers]\nenabled = false\n";
    std::fs::write(&config, text).expect("the config is written");
    let mut serve = command(&["--config", config.to_str().expect("UTF-8"), "serve"]);
    let output = bounded(serve.current_dir(scratch.path()), None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains(
            "[plugins.headers] enabled: engine settings moved to [engine.plugins.headers]"
        ),
        "{log}"
    );
    assert!(!log.contains("smtp server listening"), "{log}");
}

#[test]
fn serve_refuses_a_non_loopback_admin_port_without_a_token() {
    let scratch = Scratch::new();
    let config = scratch.path().join("exposed.toml");
    std::fs::write(
        &config,
        "[smtp]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"0.0.0.0:0\"\n",
    )
    .unwrap();
    let mut serve = command(&["--config", config.to_str().unwrap(), "serve"]);
    let output = bounded(serve.current_dir(scratch.path()), None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.ends_with(
            "mq: refusing to serve the admin port on 0.0.0.0:0, which is not loopback, without \
             [admin] token or token_file\n"
        ),
        "{log}"
    );
    assert!(!log.contains("smtp server listening"), "{log}");
}
