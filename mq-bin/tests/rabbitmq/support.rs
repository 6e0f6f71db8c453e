//! What the RabbitMQ tests share: the broker on 127.0.0.1:5672 (or a skip, or a failure with
//! `MQ_TEST_SERVICES=required`), queue names of their own with a random prefix (deleted when
//! the test ends), `mq serve` nodes on that broker, and a small SMTP client.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;

/// The broker the tests use.
pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A ceiling for every wait, never the expectation.
pub const PATIENCE: Duration = Duration::from_mins(1);

/// The delays of mq's delay queues (the test deletes them all).
const DELAYS: [u64; 16] = [
    1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 28_800, 43_200, 86_400,
];

/// The broker and this test's queue names; the queues are deleted when it is dropped.
pub struct Broker {
    connection: Connection,
    channel: lapin::Channel,
    /// The test's prefix: every queue name starts with it.
    pub prefix: String,
}

/// The broker, or `None` (the test returns) when it is not running and not required.
///
/// # Panics
///
/// No broker, with `MQ_TEST_SERVICES=required`.
pub fn broker(test: &str) -> Option<Broker> {
    let connected = smol::block_on(async {
        let connection = Connection::connect(URL, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        Ok::<_, lapin::Error>((connection, channel))
    });
    match connected {
        Ok((connection, channel)) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let prefix = format!("mqtest-{}-{nanos:x}-{test}", std::process::id());
            Some(Broker {
                connection,
                channel,
                prefix,
            })
        }
        Err(error) if std::env::var("MQ_TEST_SERVICES").as_deref() == Ok("required") => {
            panic!(
                "{test}: RabbitMQ at 127.0.0.1:5672 is required (MQ_TEST_SERVICES=required): {error}"
            )
        }
        Err(error) => {
            eprintln!(
                "skipping {test}: no RabbitMQ at 127.0.0.1:5672 ({error}); set MQ_TEST_SERVICES=required to fail instead"
            );
            None
        }
    }
}

impl Broker {
    /// This test's name for `queue`.
    pub fn queue(&self, queue: &str) -> String {
        format!("{}.{queue}", self.prefix)
    }

    /// Every queue mq may have made for this test.
    fn all_queues(&self) -> Vec<String> {
        let mut names: Vec<String> = ["outbox", "inbox", "results", "success", "failure", "retry"]
            .iter()
            .map(|q| self.queue(q))
            .collect();
        names.extend(
            DELAYS
                .iter()
                .map(|d| format!("{}.delay.{d}", self.queue("outbox"))),
        );
        names
    }

    /// `[queue.rabbitmq]` for a node of this test, with `extra` lines in it.
    pub fn rabbit_section(&self, extra: &str) -> String {
        format!(
            "[queue.rabbitmq]\nurl = \"{URL}\"\noutbox = \"{}\"\n\
             results = \"{}\"\nsuccess = \"{}\"\nfailure = \"{}\"\nretry = \"{}\"\n{extra}\n",
            self.queue("outbox"),
            self.queue("results"),
            self.queue("success"),
            self.queue("failure"),
            self.queue("retry"),
        )
    }

    /// Publishes `document` to `queue`, persistent, and waits for the broker's confirm.
    pub fn publish(&self, queue: &str, document: &Value) {
        let payload = serde_json::to_vec(document).expect("JSON");
        smol::block_on(async {
            self.channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("published");
        });
    }

    /// Takes every message now in `queue` (acknowledged), as JSON.
    pub fn take(&self, queue: &str) -> Vec<Value> {
        smol::block_on(async {
            let mut taken = Vec::new();
            loop {
                let got = self
                    .channel
                    .basic_get(queue.into(), BasicGetOptions { no_ack: true })
                    .await;
                match got {
                    Ok(Some(message)) => taken.push(
                        serde_json::from_slice(&message.delivery.data).expect("a JSON message"),
                    ),
                    // Empty, or the queue does not exist (yet).
                    _ => break,
                }
            }
            taken
        })
    }

    /// Takes messages from `queue` until there are `count`, within [`PATIENCE`].
    ///
    /// # Panics
    ///
    /// Fewer came in time.
    pub fn wait_for(&self, queue: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        let mut taken = Vec::new();
        while taken.len() < count {
            assert!(
                Instant::now() < deadline,
                "{queue}: {} of {count} messages within {PATIENCE:?}: {taken:?}",
                taken.len()
            );
            let more = self.take(queue);
            if more.is_empty() {
                std::thread::sleep(Duration::from_millis(50));
            }
            taken.extend(more);
        }
        taken
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        smol::block_on(async {
            // A fresh connection: the test's own may have died with a broker restart.
            let fresh = Connection::connect(URL, ConnectionProperties::default()).await;
            let connection = fresh.as_ref().unwrap_or(&self.connection);
            for name in self.all_queues() {
                // A deleted or never declared queue closes the channel: one channel each.
                if let Ok(channel) = connection.create_channel().await {
                    let _ = channel
                        .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
            }
            let _ = connection.close(200, "done".into()).await;
        });
    }
}

/// A running `mq serve`, killed when dropped.
pub struct Node {
    child: Child,
    log: PathBuf,
    /// Its SMTP address.
    pub smtp: SocketAddr,
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts `mq serve` on the broker with `rabbit` (its `[queue.rabbitmq]` section) and
    /// `rest` (more tables), SMTP on a port the system picks, and waits until it serves.
    pub fn start(rabbit: &str, rest: &str) -> Node {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        // No admin port unless the test asks for one.
        let admin = if rest.contains("[admin]") {
            ""
        } else {
            "[admin]\nlisten = \"\"\n"
        };
        let text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\nhostname = \"mq.test\"\n\n\
             {admin}\n[queue]\ndata_dir = '{}'\nbackend = \"rabbitmq\"\n\n{rabbit}\n{rest}\n",
            data.display()
        );
        let path = dir.path().join("mq.toml");
        std::fs::write(&path, &text).expect("config written");
        let log = dir.path().join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_mq"))
            .args(["--config", path.to_str().expect("UTF-8"), "serve"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("mq serve starts");
        let mut node = Node {
            child,
            log,
            smtp: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = node.log();
            let address = log
                .lines()
                .find(|line| line.contains("mq serving"))
                .and_then(|line| line.split_once("address="))
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .and_then(|address| address.parse().ok());
            if let Some(address) = address {
                node.smtp = address;
                return node;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("mq serve exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "mq serve did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its temporary directory: the config, the log, and the data directory `data`.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log holds `text`.
    ///
    /// # Panics
    ///
    /// Not within [`PATIENCE`].
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends one message over SMTP and returns the reply to the end of its data (or the first
/// refusal before it), as `(code, line)`.
pub fn send(server: SocketAddr, from: &str, to: &[&str], body: &str) -> (u16, String) {
    let stream = TcpStream::connect(server).expect("connect to mq");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut reply = || {
        let last = loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a reply line");
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break line.trim_end().to_owned();
            }
        };
        let code = last.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        (code, last)
    };
    assert_eq!(reply().0, 220);
    let mut command = |text: &str, reply: &mut dyn FnMut() -> (u16, String)| {
        writer.write_all(text.as_bytes()).expect("write");
        reply()
    };
    command("EHLO client.test\r\n", &mut reply);
    let mail = command(&format!("MAIL FROM:<{from}>\r\n"), &mut reply);
    if mail.0 != 250 {
        return mail;
    }
    for rcpt in to {
        let answer = command(&format!("RCPT TO:<{rcpt}>\r\n"), &mut reply);
        if answer.0 != 250 {
            return answer;
        }
    }
    let data = command("DATA\r\n", &mut reply);
    if data.0 != 354 {
        return data;
    }
    let end = command(&format!("{body}\r\n.\r\n"), &mut reply);
    let _ = command("QUIT\r\n", &mut reply);
    end
}

/// A MailerQ document for `recipient`, delivered through `sink`.
pub fn document(recipient: &str, sink: SocketAddr, subject: &str) -> Value {
    serde_json::json!({
        "envelope": "sender@example.org",
        "recipient": recipient,
        "mime": format!("From: sender@example.org\r\nTo: {recipient}\r\nSubject: {subject}\r\n\r\nhello\r\n"),
        "smarthost": {"hostname": sink.ip().to_string(), "port": sink.port()},
    })
}

/// `GET path` on an admin port, the body of the answer.
pub fn http_get(admin: SocketAddr, path: &str) -> String {
    use std::io::Read as _;
    let mut stream = TcpStream::connect(admin).expect("connect to the admin port");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
}
