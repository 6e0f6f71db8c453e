//! What an operator follows a running `mq serve` by: a message's life in the log, one grep by
//! queue id (text and JSON lines), TLS on both sides, and delivery on `/metrics`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use mq_core::testkit::sink::{Script, Sink};

use crate::support::{PATIENCE, Scratch, Server, append, http_get, smtp};

/// A scratch whose server delivers everything to `smarthost`.
fn relaying_to(smarthost: SocketAddr, extra: &str) -> Scratch {
    let scratch = Scratch::new();
    let data = scratch.path().join("data");
    let text = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\n{extra}\n[queue]\ndata_dir = '{}'\nfsync = false\n\n\
         [admin]\nlisten = \"{}\"\n\n[delivery]\nsmarthost = \"{smarthost}\"\n\
         [delivery.retry]\nschedule = [\"1h\"]\n",
        data.display(),
        scratch.admin,
    );
    std::fs::write(&scratch.config, text).expect("the config is written");
    scratch
}

/// Sends one message with a Message-ID to `server` and returns its queue id.
fn send(server: &Server, recipient: &str) -> String {
    let rcpt = format!("RCPT TO:<{recipient}>");
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            &rcpt,
            "DATA",
            "Message-ID: <life.1@example.org>",
            "Subject: a life",
            "",
            "hi",
            ".",
            "QUIT",
        ],
    );
    let queued = replies[5]
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("{replies:?}"));
    queued.to_owned()
}

/// The lines of `log` that name `id`.
fn grep<'a>(log: &'a str, id: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(id)).collect()
}

/// The value of `key=` in a text log line (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        + key.len()
        + 2;
    line[start..].split(' ').next().unwrap_or_default()
}

#[test]
fn a_delivered_message_is_one_grep_from_acceptance_to_removal() {
    let sink = Sink::start(Script::new());
    let scratch = relaying_to(sink.address(), "");
    let mut server = scratch.serve();
    let id = send(&server, "bob@example.net");
    server.wait_for_log(&format!("removed queue_id={id}"));
    let log = server.log();
    let life = grep(&log, &id);
    assert_eq!(life.len(), 3, "{life:#?}");

    let accepted = life[0];
    assert!(accepted.contains("message accepted"), "{accepted}");
    assert_eq!(field(accepted, "message-id"), "<life.1@example.org>");
    assert_eq!(field(accepted, "from"), "<alice@example.org>");
    assert_eq!(field(accepted, "helo"), "client.example");
    let client = field(accepted, "client");
    assert!(client.starts_with("unknown[127.0.0.1]:"), "{accepted}");

    let attempt = life[1];
    assert!(attempt.contains("delivery attempt"), "{attempt}");
    assert_eq!(field(attempt, "to"), "<bob@example.net>");
    let port = sink.address().port();
    assert_eq!(
        field(attempt, "relay"),
        format!("127.0.0.1[127.0.0.1]:{port}")
    );
    assert_eq!(field(attempt, "dsn"), "2.0.0");
    assert_eq!(field(attempt, "status"), "sent");
    let delays: Vec<f64> = field(attempt, "delays")
        .split('/')
        .map(|part| part.parse().expect("a number of seconds"))
        .collect();
    assert_eq!(delays.len(), 4, "{attempt}");
    let delay: f64 = field(attempt, "delay").parse().expect("seconds");
    // Each part is rounded to hundredths on its own.
    assert!(delays.iter().sum::<f64>() <= delay + 0.05, "{attempt}");

    assert!(
        life[2].contains(&format!("removed queue_id={id}")),
        "{}",
        life[2]
    );
    // The client is written one way wherever it appears.
    let port = client.rsplit(':').next().expect("a port");
    for line in log
        .lines()
        .filter(|line| line.contains(&format!(":{port}")))
    {
        assert!(line.contains(client), "{line}");
    }
    assert_eq!(sink.messages().len(), 1);
    server.terminate().assert_success();
}

#[test]
fn a_failed_connection_names_the_relay_it_tried() {
    // A port nothing listens on: the connection is refused.
    let closed = crate::support::free_port();
    let scratch = relaying_to(closed, "");
    let mut server = scratch.serve();
    let id = send(&server, "bob@example.net");
    server.wait_for_log("status=deferred");
    let log = server.log();
    let attempt = grep(&log, &id)
        .into_iter()
        .find(|line| line.contains("delivery attempt"))
        .expect("an attempt line");
    assert_eq!(
        field(attempt, "relay"),
        format!("127.0.0.1[127.0.0.1]:{}", closed.port())
    );
    assert_eq!(field(attempt, "status"), "deferred");
    assert!(field(attempt, "dsn").starts_with("4."), "{attempt}");
    server.terminate().assert_success();
}

#[test]
fn json_logs_are_one_object_per_line_with_the_same_fields() {
    let sink = Sink::start(Script::new());
    let scratch = relaying_to(sink.address(), "");
    let mut server = Server::start(
        &mut scratch.command(&["--log-format", "json", "serve"]),
        scratch.path(),
        scratch.admin,
    );
    let id = send(&server, "bob@example.net");
    server.wait_for_log("\"removed\"");
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let life: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["queue_id"] == id.as_str())
        .collect();
    let messages: Vec<&str> = life
        .iter()
        .map(|line| line["message"].as_str().expect("a message"))
        .collect();
    assert_eq!(
        messages,
        ["message accepted", "delivery attempt", "removed"]
    );
    assert_eq!(life[0]["message-id"], "<life.1@example.org>");
    assert_eq!(life[0]["nrcpt"], 1);
    assert_eq!(life[1]["status"], "sent");
    assert_eq!(life[1]["level"], "INFO");
    server.terminate().assert_success();
}

#[test]
fn the_log_format_can_be_set_in_the_config() {
    let scratch = Scratch::new();
    append(&scratch.config, "\n[log]\nformat = \"json\"\n");
    let server = scratch.serve();
    let log = server.log();
    let first: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a line")).expect("JSON");
    assert!(first["message"].is_string(), "{first}");
    server.terminate().assert_success();
}

/// A self-signed certificate for "localhost" in `dir`: (cert file, key file, cert PEM, key PEM).
fn certificate(dir: &Path) -> (String, String, String, String) {
    let (cert, key) = mq_core::smtp::tls::self_signed("localhost");
    let [cert_file, key_file] = ["cert.pem", "key.pem"].map(|name| dir.join(name));
    std::fs::write(&cert_file, &cert).expect("the certificate is written");
    std::fs::write(&key_file, &key).expect("the key is written");
    let name = |path: &Path| path.to_str().expect("a UTF-8 path").to_owned();
    (name(&cert_file), name(&key_file), cert, key)
}

/// Sends a message over STARTTLS with python3's smtplib, trusting `cafile`.
const SEND_TLS: &str = r"
import smtplib, ssl, sys

host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
s = smtplib.SMTP(host, port, local_hostname='client.example', timeout=30)
s.starttls(context=context)
s.ehlo('client.example')
s.sendmail('alice@example.org', ['bob@example.net'], b'Subject: tls\r\n\r\nhi\r\n')
s.quit()
";

/// The value of the sample `name` on a metrics page, or `None` without one.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls the metrics page until `name` has `value`.
fn wait_for_sample(admin: SocketAddr, name: &str, value: f64) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, page) = http_get(admin, "/metrics");
        assert_eq!(status, 200);
        if sample(&page, name) == Some(value) {
            return page;
        }
        assert!(Instant::now() < deadline, "{name} never {value}:\n{page}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tls_in_and_out_is_logged_and_counted() {
    let scratch = Scratch::new();
    let (cert_file, key_file, cert, key) = certificate(scratch.path());
    let sink = Sink::start(Script::new().starttls(&cert, &key));
    let scratch = relaying_to(
        sink.address(),
        &format!("\n[smtp.tls]\ncert = '{cert_file}'\nkey = '{key_file}'\n"),
    );
    let mut server = scratch.serve();
    let output = std::process::Command::new("python3")
        .args(["-c", SEND_TLS, "127.0.0.1"])
        .args([&server.smtp().port().to_string(), &cert_file])
        .output()
        .expect("python3 is part of the test machine");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    server.wait_for_log("removed");
    let log = server.log();
    let tls: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("TLS established"))
        .collect();
    assert_eq!(tls.len(), 2, "{log}");
    assert!(tls[0].contains("client=unknown[127.0.0.1]:"), "{}", tls[0]);
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", sink.address().port());
    assert!(tls[1].contains(&relay), "{}", tls[1]);
    for line in &tls {
        assert!(field(line, "protocol").starts_with("TLSv1."), "{line}");
        assert!(field(line, "cipher").starts_with("TLS"), "{line}");
    }
    let page = wait_for_sample(
        scratch.admin,
        "mq_tls_sessions_total{direction=\"out\"}",
        1.0,
    );
    assert_eq!(
        sample(&page, "mq_tls_sessions_total{direction=\"in\"}"),
        Some(1.0)
    );
    server.terminate().assert_success();
}

#[test]
fn delivery_shows_on_the_metrics_page() {
    // bob is taken, carol refused for good, dave deferred.
    let script = Script::new()
        .on_rcpt("carol@example.net", "550 5.1.1 no such user")
        .on_rcpt("dave@example.net", "451 4.3.0 try later");
    let sink = Sink::start(script);
    let scratch = relaying_to(sink.address(), "");
    let server = scratch.serve();
    for recipient in ["bob@example.net", "carol@example.net", "dave@example.net"] {
        send(&server, recipient);
    }
    let attempts =
        |result: &str| format!("mq_delivery_attempts_total{{class=\"relay\",result=\"{result}\"}}");
    // bob's message and the bounce to alice (the sink takes it too).
    wait_for_sample(scratch.admin, &attempts("deferred"), 1.0);
    wait_for_sample(scratch.admin, &attempts("bounced"), 1.0);
    let page = wait_for_sample(scratch.admin, &attempts("delivered"), 2.0);
    assert_eq!(sample(&page, &attempts("bounced")), Some(1.0), "{page}");
    assert_eq!(sample(&page, &attempts("deferred")), Some(1.0), "{page}");
    assert_eq!(
        sample(
            &page,
            "mq_delivery_attempts_total{class=\"mx\",result=\"delivered\"}"
        ),
        Some(0.0)
    );
    assert_eq!(sample(&page, "mq_bounces_total"), Some(1.0), "{page}");
    // The delivered ones are in the histogram, in the +Inf bucket at least.
    assert_eq!(
        sample(&page, "mq_delivery_latency_seconds_count"),
        Some(2.0)
    );
    assert_eq!(
        sample(&page, "mq_delivery_latency_seconds_bucket{le=\"+Inf\"}"),
        Some(2.0)
    );
    assert!(sample(&page, "mq_delivery_latency_seconds_sum").is_some_and(|s| s >= 0.0));
    // dave waits for his retry, an hour away.
    assert_eq!(
        sample(&page, "mq_queue_deferred_entries"),
        Some(1.0),
        "{page}"
    );
    assert!(sample(&page, "mq_queue_oldest_entry_age_seconds").is_some());
    // This config turns fsync off (`[queue] fsync = false`): the journal is never synced.
    assert_eq!(
        sample(&page, "mq_queue_journal_syncs_total"),
        Some(0.0),
        "{page}"
    );
    let started = sample(&page, "mq_start_time_seconds").expect("a start time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!(
        started <= now && started > now - 3600.0,
        "{started} vs {now}"
    );
    server.terminate().assert_success();
}

/// As Postfix's smtpd: `connect from` when a client connects, and `disconnect from` with the
/// count of each command it gave (successes over total where some failed) when it leaves.
#[test]
fn a_session_is_logged_by_connect_and_disconnect_lines_with_its_command_counts() {
    let scratch = Scratch::new();
    let mut server = scratch.serve();
    let too_long = format!("NOOP {}", "x".repeat(600));
    let replies = smtp(
        server.smtp(),
        &[
            "EHLO client.example",
            "MAIL FROM:<alice@example.org>",
            "RCPT TO:<bob@example.net",
            "RCPT TO:<bob@example.net>",
            "DATA",
            "Subject: counted",
            "",
            "hi",
            ".",
            "XYZZY",
            &too_long,
            "QUIT",
        ],
    );
    assert!(replies[3].starts_with("501 "), "{replies:?}");
    assert!(replies[8].starts_with("500 5.5.0 "), "{replies:?}");
    server.wait_for_log(" commands=5/8");
    let log = server.log();
    let ours = log
        .lines()
        .find(|line| line.contains(" ehlo=1 "))
        .unwrap_or_else(|| panic!("no disconnect line with ehlo=1:\n{log}"));
    let (head, counts) = ours
        .split_once("disconnect from ")
        .unwrap_or_else(|| panic!("{ours}"));
    assert!(head.contains("INFO"), "{ours}");
    let (client, counts) = counts.split_once(' ').expect("counts after the client");
    assert!(client.starts_with("unknown[127.0.0.1]:"), "{ours}");
    assert_eq!(
        counts,
        "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 unknown=0/2 commands=5/8"
    );
    let connect = format!("connect from {client}");
    let connected: Vec<&str> = log
        .lines()
        .filter(|line| line.ends_with(&connect))
        .collect();
    assert_eq!(connected.len(), 1, "{log}");
    assert!(connected[0].contains("INFO"), "{}", connected[0]);
    server.terminate().assert_success();
}

#[test]
fn a_client_over_the_connection_limit_is_logged_connected_refused_and_disconnected() {
    let scratch = Scratch::new();
    let config = std::fs::read_to_string(&scratch.config).unwrap();
    // Loopback is a relay network, exempt from the limit unless the exemptions say otherwise.
    let config = config.replacen(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\nmax_connections_per_ip = 1\nconnection_limit_exemptions = []\n",
        1,
    );
    std::fs::write(&scratch.config, config).unwrap();
    let mut server = scratch.serve();
    // The first connection holds the one place; the second is turned away with 421.
    let first = std::net::TcpStream::connect(server.smtp()).unwrap();
    let mut greeting = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(first.try_clone().unwrap()),
        &mut greeting,
    )
    .unwrap();
    assert!(greeting.starts_with("220"), "{greeting}");
    let replies = smtp(server.smtp(), &[]);
    assert!(replies[0].starts_with("421 4.7.0 "), "{replies:?}");
    server.wait_for_log(" commands=0");
    let log = server.log();
    let refused: Vec<&str> = log
        .lines()
        .skip_while(|line| !line.contains("connection limit exceeded by "))
        .collect();
    assert!(!refused.is_empty(), "no warning line:\n{log}");
    assert!(refused[0].contains("WARN"), "{}", refused[0]);
    assert!(
        refused[0].contains("reply=421 4.7.0 "),
        "the reply given: {}",
        refused[0]
    );
    let client = refused[0]
        .split("connection limit exceeded by ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap();
    assert!(
        log.contains(&format!("connect from {client}")),
        "connect line for {client}:\n{log}"
    );
    assert!(
        log.contains(&format!("disconnect from {client} commands=0")),
        "disconnect line for {client}:\n{log}"
    );
    drop(first);
    server.terminate().assert_success();
}
