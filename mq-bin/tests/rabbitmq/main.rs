//! The RabbitMQ queue backend against the real broker on 127.0.0.1:5672: SMTP in to the inbox
//! as MailerQ JSON, the outbox delivered with results, retries through the delay queues, two
//! nodes sharing one outbox, and the commands. Each test has queues of its own.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use mq_core::testkit::sink::{Script, Sink};
use serde_json::{Value, json};
use support::{Node, broker, document, send};

/// A node that only accepts mail (delivery off), so the inbox keeps what it published.
fn accepting_node(broker: &support::Broker) -> Node {
    let inbox = broker.queue("inbox");
    Node::start(
        &broker.rabbit_section(&format!("inbox = \"{inbox}\"")),
        "[delivery]\nenabled = false\n",
    )
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn smtp_mail_becomes_one_inbox_document_per_recipient() {
    let Some(broker) = broker("inbound") else {
        return;
    };
    let node = accepting_node(&broker);
    let (code, line) = send(
        node.smtp,
        "alice@example.org",
        &["bob@example.net", "carol@example.com"],
        "Subject: hello\r\n\r\nbody text",
    );
    assert_eq!(code, 250, "{line}");
    // The 250 came after the confirms: both are there now.
    let mut documents = broker.take(&broker.queue("inbox"));
    assert_eq!(documents.len(), 2, "{documents:?}");
    documents.sort_by_key(|d| d["recipient"].as_str().map(str::to_owned));
    for (document, recipient) in documents
        .iter()
        .zip(["bob@example.net", "carol@example.com"])
    {
        assert_eq!(document["envelope"], "alice@example.org");
        assert_eq!(document["recipient"], recipient);
        let mime = document["mime"].as_str().expect("mime is a string");
        assert!(
            mime.contains("Subject: hello") && mime.contains("body text"),
            "{mime}"
        );
        assert_eq!(document["hostname"], "mq.test");
        assert!(
            document["received"].as_str().is_some_and(|t| t.len() == 19),
            "{document}"
        );
        let connection = &document["connection"];
        assert_eq!(connection["remote-ip"], "127.0.0.1");
        assert!(connection["remote-port"].as_u64().is_some_and(|p| p > 0));
        assert_eq!(connection["local-port"], node.smtp.port());
        assert_eq!(connection["secure"], false);
    }
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn a_maildrop_file_is_picked_up_into_the_inbox() {
    let Some(broker) = broker("maildrop") else {
        return;
    };
    let node = accepting_node(&broker);
    let maildrop = node.dir().join("data/maildrop");
    let temporary = maildrop.join(".tmp-test");
    std::fs::write(
        &temporary,
        "mq-maildrop: 1\nuid: 0\nsender: alice@example.org\nrecipient: bob@example.net\n\n\
         Subject: dropped\r\n\r\nbody text\r\n",
    )
    .expect("the file is written");
    let file = maildrop.join("1.1.test");
    std::fs::rename(&temporary, &file).expect("the file is renamed");
    node.wait_for_log(": uid=0 from=<alice@example.org>");
    // Logged after the confirms: the document is there now, and the file gone.
    let documents = broker.take(&broker.queue("inbox"));
    assert_eq!(documents.len(), 1, "{documents:?}");
    assert_eq!(documents[0]["envelope"], "alice@example.org");
    assert_eq!(documents[0]["recipient"], "bob@example.net");
    let mime = documents[0]["mime"].as_str().expect("mime is a string");
    assert!(
        mime.contains("Subject: dropped") && mime.contains("Message-ID: <"),
        "{mime}"
    );
    assert!(!file.exists());
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn an_unreachable_broker_gets_451_and_nothing_is_queued() {
    let Some(broker) = broker("unreachable") else {
        return;
    };
    // A port nothing listens on: the broker is down for this node.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let inbox = broker.queue("inbox");
    let rabbit = broker
        .rabbit_section(&format!("inbox = \"{inbox}\""))
        .replace("127.0.0.1:5672", &closed.to_string());
    let node = Node::start(&rabbit, "[delivery]\nenabled = false\n");
    let (code, line) = send(
        node.smtp,
        "a@example.org",
        &["b@example.net"],
        "Subject: x\r\n\r\ny",
    );
    assert_eq!(code, 451, "{line}");
    assert!(line.starts_with("451 4.3.0"), "{line}");
    assert!(
        node.log().contains("cannot connect to the message broker"),
        "{}",
        node.log()
    );
    assert!(broker.take(&inbox).is_empty());
}

/// A delivering node for `broker`'s outbox.
fn delivering_node(broker: &support::Broker) -> Node {
    Node::start(
        &broker.rabbit_section(""),
        "[delivery.retry]\nschedule = [\"1s\"]\n",
    )
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn an_outbox_document_is_delivered_and_its_result_keeps_custom_keys() {
    let Some(broker) = broker("deliver") else {
        return;
    };
    let sink = Sink::start(Script::new());
    let admin = mq_core::testkit::unused_port();
    let _node = Node::start(
        &broker.rabbit_section(""),
        &format!("[admin]\nlisten = \"{admin}\"\n"),
    );
    let mut message = document("rcpt@example.net", sink.address(), "first");
    message["retries"] = json!([1, 2]);
    message["maxattempts"] = json!(3);
    message["correlation-id"] = json!("abc-123");
    message["tags"] = json!(["newsletter"]);
    broker.publish(&broker.queue("outbox"), &message);
    let results = broker.wait_for(&broker.queue("results"), 1);
    let success = broker.wait_for(&broker.queue("success"), 1);
    assert_eq!(results, success);
    let result = &results[0];
    assert_eq!(result["correlation-id"], "abc-123");
    assert_eq!(result["tags"], json!(["newsletter"]));
    assert!(result.get("mime").is_none(), "MIME is stripped: {result}");
    let attempts = result["results"].as_array().expect("results");
    assert_eq!(attempts.len(), 1, "{result}");
    assert_eq!(attempts[0]["state"], "message");
    assert_eq!(attempts[0]["result"], "accepted");
    assert_eq!(attempts[0]["code"], 250);
    assert_eq!(attempts[0]["to"], "127.0.0.1");
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].rcpt_to, ["rcpt@example.net"]);
    assert_eq!(received[0].mail_from, "sender@example.org");
    assert!(String::from_utf8_lossy(&received[0].data).contains("Subject: first"));
    assert!(broker.take(&broker.queue("failure")).is_empty());
    // The ack follows the confirms: wait for it rather than race it.
    let deadline = std::time::Instant::now() + support::PATIENCE;
    let metrics = loop {
        let metrics = support::http_get(admin, "/metrics");
        if metrics.contains("\nmq_broker_acked_total 1\n") || std::time::Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(metrics.contains("\nmq_broker_connected 1\n"), "{metrics}");
    assert!(
        metrics.contains("\nmq_broker_consumed_total 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains("\nmq_broker_acked_total 1\n"), "{metrics}");
    // The result, to `results` and to `success`.
    assert!(
        metrics.contains("\nmq_broker_confirmed_total 2\n"),
        "{metrics}"
    );
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn a_451_then_250_goes_through_retry_and_the_delay_queue() {
    let Some(broker) = broker("retry") else {
        return;
    };
    let sink =
        Sink::start(Script::new().tempfail_first(1, "451 4.7.1 greylisted, come back later"));
    let _node = delivering_node(&broker);
    let mut message = document("rcpt@example.net", sink.address(), "again");
    message["retries"] = json!([1]);
    message["keepmime"] = json!(true);
    broker.publish(&broker.queue("outbox"), &message);
    let success = broker.wait_for(&broker.queue("success"), 1);
    let retries = broker.take(&broker.queue("retry"));
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0]["results"][0]["code"], 451);
    assert!(
        retries[0]["nextattempt"]["time"].is_string(),
        "{}",
        retries[0]
    );
    let attempts = success[0]["results"].as_array().expect("results");
    assert_eq!(attempts.len(), 2, "{}", success[0]);
    assert_eq!(attempts[0]["result"], "error");
    assert_eq!(attempts[0]["status"], "4.7.1");
    assert_eq!(attempts[1]["result"], "accepted");
    assert!(
        success[0]["mime"]
            .as_str()
            .is_some_and(|m| m.contains("Subject: again"))
    );
    assert_eq!(sink.messages().len(), 1);
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn a_550_fails_with_the_remote_reply() {
    let Some(broker) = broker("reject") else {
        return;
    };
    let sink =
        Sink::start(Script::new().on_rcpt("nobody@example.net", "550 5.1.1 no such user here"));
    // Mail mq makes itself (the bounce) goes to the inbox, kept apart from the outbox here.
    let inbox = broker.queue("inbox");
    let _node = Node::start(&broker.rabbit_section(&format!("inbox = \"{inbox}\"")), "");
    broker.publish(
        &broker.queue("outbox"),
        &document("nobody@example.net", sink.address(), "lost"),
    );
    let failure = broker.wait_for(&broker.queue("failure"), 1);
    let attempt = &failure[0]["results"][0];
    assert_eq!(attempt["result"], "error", "{}", failure[0]);
    assert_eq!(attempt["code"], 550);
    assert_eq!(attempt["status"], "5.1.1");
    assert!(
        attempt["description"]
            .as_str()
            .is_some_and(|d| d.contains("no such user here"))
    );
    assert_eq!(broker.wait_for(&broker.queue("results"), 1), failure);
    assert!(broker.take(&broker.queue("success")).is_empty());
    // The sender gets a delivery status notification (RFC 3464), as with the embedded queue.
    let bounces = broker.wait_for(&inbox, 1);
    assert_eq!(bounces[0]["envelope"], "");
    assert_eq!(bounces[0]["recipient"], "sender@example.org");
    let mime = bounces[0]["mime"].as_str().expect("mime");
    assert!(
        mime.contains("multipart/report") && mime.contains("5.1.1"),
        "{mime}"
    );
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn maxattempts_ends_the_retries_in_failure() {
    let Some(broker) = broker("maxattempts") else {
        return;
    };
    let sink = Sink::start(Script::new().tempfail_first(100, "451 4.3.2 not now"));
    let inbox = broker.queue("inbox");
    let _node = Node::start(&broker.rabbit_section(&format!("inbox = \"{inbox}\"")), "");
    let mut message = document("rcpt@example.net", sink.address(), "twice");
    message["retries"] = json!([1]);
    message["maxattempts"] = json!(2);
    broker.publish(&broker.queue("outbox"), &message);
    let failure = broker.wait_for(&broker.queue("failure"), 1);
    let attempts = failure[0]["results"].as_array().expect("results");
    assert_eq!(attempts.len(), 2, "{}", failure[0]);
    assert!(attempts.iter().all(|a| a["code"] == 451));
    assert_eq!(broker.take(&broker.queue("retry")).len(), 1);
    assert!(sink.messages().is_empty());
    // Given up for good: the sender hears of it.
    let bounces = broker.wait_for(&inbox, 1);
    assert_eq!(bounces[0]["recipient"], "sender@example.org");
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn unsupported_fields_are_refused_into_failure_with_a_reason() {
    let Some(broker) = broker("refuse") else {
        return;
    };
    let sink = Sink::start(Script::new());
    let _node = delivering_node(&broker);
    let mut message = document("rcpt@example.net", sink.address(), "personal");
    message["data"] = json!({"firstname": "Ann"});
    message["my-key"] = json!(42);
    broker.publish(&broker.queue("outbox"), &message);
    let failure = broker.wait_for(&broker.queue("failure"), 1);
    assert_eq!(failure[0]["my-key"], 42);
    let attempt = &failure[0]["results"][0];
    assert_eq!(attempt["state"], "process");
    assert!(
        attempt["description"]
            .as_str()
            .is_some_and(|d| d.contains("personalisation")),
        "{attempt}"
    );
    assert!(sink.messages().is_empty());
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn per_message_queues_override_and_null_disables() {
    let Some(broker) = broker("queues") else {
        return;
    };
    let sink = Sink::start(Script::new());
    let _node = delivering_node(&broker);
    let mut message = document("rcpt@example.net", sink.address(), "routed");
    message["queues"] = json!({"results": null, "success": broker.queue("retry")});
    broker.publish(&broker.queue("outbox"), &message);
    let routed = broker.wait_for(&broker.queue("retry"), 1);
    assert_eq!(routed[0]["results"][0]["result"], "accepted");
    assert!(broker.take(&broker.queue("results")).is_empty());
    assert!(broker.take(&broker.queue("success")).is_empty());
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn a_document_published_for_later_waits_in_the_broker() {
    let Some(broker) = broker("later") else {
        return;
    };
    let sink = Sink::start(Script::new());
    let _node = delivering_node(&broker);
    let mut message = document("rcpt@example.net", sink.address(), "later");
    let published = std::time::Instant::now();
    let due = std::time::SystemTime::now() + Duration::from_secs(4);
    let secs = due
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    message["nextattempt"] = json!({ "time": secs });
    broker.publish(&broker.queue("outbox"), &message);
    let success = broker.wait_for(&broker.queue("success"), 1);
    // Not before it was due (seconds are whole, and half a second counts as due).
    assert!(
        published.elapsed() >= Duration::from_secs(2),
        "{:?}",
        published.elapsed()
    );
    assert_eq!(success[0]["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(sink.messages().len(), 1);
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn publish_and_queue_list_and_check_config() {
    let Some(broker) = broker("commands") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("mq.toml");
    let text = format!(
        "[queue]\nbackend = \"rabbitmq\"\ndata_dir = '{}'\n\n{}",
        dir.path().join("data").display(),
        broker.rabbit_section("")
    );
    std::fs::write(&config, text).expect("config");
    let mq = |args: &[&str], input: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mq"));
        command.arg("--config").arg(&config).args(args);
        command.stdin(std::process::Stdio::piped());
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("mq runs");
        if let Some(input) = input {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("mq ends")
    };
    let checked = mq(&["check-config"], None);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let doc = json!({"recipient": "x@example.net", "mime": "Subject: s\r\n\r\nb\r\n", "id": 1});
    for _ in 0..3 {
        let published = mq(&["publish"], Some(&doc.to_string()));
        assert!(
            published.status.success(),
            "{}",
            String::from_utf8_lossy(&published.stderr)
        );
    }
    let refused = mq(&["publish"], Some("not json"));
    assert!(!refused.status.success());
    let listed = mq(&["queue", "list"], None);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let counts: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    assert_eq!(
        counts.get(broker.queue("outbox").as_str()),
        Some(&"3"),
        "{text}"
    );
    assert_eq!(
        counts.get(broker.queue("results").as_str()),
        Some(&"0"),
        "{text}"
    );
    let show = mq(&["queue", "delete", "0000000000000001"], None);
    assert!(
        String::from_utf8_lossy(&show.stderr).contains("does not support")
            || String::from_utf8_lossy(&show.stderr).contains("no per-message access"),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let taken: Vec<Value> = broker.take(&broker.queue("outbox"));
    assert_eq!(taken, vec![doc.clone(), doc.clone(), doc]);
}

#[test]
#[ignore = "needs rabbitmq at 127.0.0.1:5672"]
fn two_nodes_share_the_outbox_and_a_killed_one_loses_nothing() {
    const COUNT: usize = 2_000;
    let Some(broker) = broker("twonodes") else {
        return;
    };
    let sink = Sink::start(Script::new());
    let mut first = delivering_node(&broker);
    let second = delivering_node(&broker);
    let outbox = broker.queue("outbox");
    for i in 0..COUNT {
        let mut message = document(
            &format!("r{i}@example.net"),
            sink.address(),
            &format!("n{i}"),
        );
        message["n"] = json!(i);
        broker.publish(&outbox, &message);
    }
    // Killed half way through the deliveries, some of its messages sent and not yet acked.
    let deadline = std::time::Instant::now() + support::PATIENCE;
    while sink.messages().len() < COUNT / 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "half the messages in time"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill();
    let results = broker.wait_for(&broker.queue("success"), COUNT);
    let mut seen = BTreeMap::new();
    for message in sink.messages() {
        *seen.entry(message.rcpt_to[0].clone()).or_insert(0usize) += 1;
    }
    assert_eq!(seen.len(), COUNT, "every message reached the sink");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "two nodes, {COUNT} messages, one killed half way: {duplicates} delivered twice; {} results",
        results.len()
    );
    drop(second);
}
