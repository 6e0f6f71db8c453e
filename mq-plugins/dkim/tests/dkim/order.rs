//! dkim runs last: a plugin named after it that rewrites the Subject at `smtp_in_data` runs
//! before the signature, so what is queued verifies. Through a real server on a loopback port,
//! with the plugins planned from a config as `mq serve` plans them, and a client speaking SMTP
//! over TCP.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use mail_auth::DkimResult;
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Queue, QueueId};
use mq_core::smtp::Server;
use mq_core::{Config, Registry, Runtime};
use mq_plugin_api::{Context, Control, Data, Plugin, hooks, plugin};

use crate::support::{MESSAGE, fixture, key, records, verify};

/// What [`SubjectTag`] puts before every Subject.
const TAG: &str = "[external]";

/// Tags the Subject of every message at `smtp_in_data`. Its name sorts after `dkim`, so in name
/// order it would change the Subject after the signature was made.
struct SubjectTag;

#[plugin(name = "subject-tag")]
impl SubjectTag {
    fn new() -> Self {
        SubjectTag
    }
}

#[hooks]
impl Plugin for SubjectTag {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        let headers = data.message.headers();
        let subject = headers
            .iter()
            .find(|h| h.is("Subject"))
            .map(mq_plugin_api::Header::unfolded);
        let tagged = format!("{TAG} {}", subject.unwrap_or_default().trim());
        data.message.headers_mut().replace("Subject", tagged);
        Control::Continue
    }
}

/// A server on `127.0.0.1:<free port>` for relay-network clients, running the linked plugins
/// (dkim and subject-tag) planned from `engine_settings` and a dkim section of `key`.
struct Signing {
    queue: Arc<EmbeddedQueue>,
    address: SocketAddr,
    server: Option<Server>,
    runtime: Option<Runtime>,
    _dir: tempfile::TempDir,
}

impl Signing {
    fn start(engine_settings: &str, key: &str) -> Signing {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let dkim: String = key
            .lines()
            .map(|line| line.replace("[[key]]", "[[plugins.dkim.key]]") + "\n")
            .collect();
        let text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\nrelay_networks = [\"127.0.0.0/8\"]\n\n\
             {engine_settings}\n{dkim}"
        );
        let config = Config::from_toml(&text).expect("the test's config is valid");
        let plan = Registry::linked()
            .expect("distinct names")
            .plan(&config)
            .expect("the config fits dkim and subject-tag");
        let queue = Arc::new(
            EmbeddedQueue::open(&dir.path().join("queue"), EmbeddedOptions::default())
                .expect("the queue opens"),
        );
        let runtime = Runtime::start(&plan, 1).expect("the plugins start");
        let server =
            Server::start(&runtime, config.smtp, queue.clone()).expect("the server starts");
        Signing {
            queue,
            address: server.local_addr(),
            server: Some(server),
            runtime: Some(runtime),
            _dir: dir,
        }
    }

    /// Sends `message` from jane@example.org over SMTP; the message as queued.
    fn send(&self, message: &str) -> Vec<u8> {
        let stream = TcpStream::connect(self.address).expect("the server listens");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("a read timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
        let mut writer = stream;
        // The last line of a reply: its lines but the last have a `-` after the code.
        let mut reply = || loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a reply line");
            assert!(line.len() >= 4, "a reply, not {line:?}");
            if line.as_bytes()[3] != b'-' {
                return line.trim_end().to_owned();
            }
        };
        assert!(reply().starts_with("220 "));
        let mut command = |line: &str, expect: &str| {
            writer
                .write_all(format!("{line}\r\n").as_bytes())
                .expect("the server reads");
            let answer = reply();
            assert!(answer.starts_with(expect), "{line}: {answer}");
            answer
        };
        command("EHLO client.example", "250");
        command("MAIL FROM:<jane@example.org>", "250");
        command("RCPT TO:<bob@example.net>", "250");
        command("DATA", "354");
        let body = format!("{}.", message.replace("\r\n.", "\r\n.."));
        let queued = command(&body, "250 2.0.0 Ok: queued as ");
        command("QUIT", "221");
        let id: QueueId = queued
            .strip_prefix("250 2.0.0 Ok: queued as ")
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("a queue id in {queued:?}"));
        let stored = smol::block_on(self.queue.body(&id)).expect("the message is queued");
        stored.to_vec()
    }
}

impl Drop for Signing {
    fn drop(&mut self) {
        drop(self.server.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown();
        }
    }
}

fn rsa_key() -> String {
    key(
        "example.org",
        "mq2026",
        "rsa-sha256",
        &fixture("rsa-2048.pkcs1.pem"),
    )
}

fn subject(message: &[u8]) -> String {
    let message = mq_plugin_api::Message::parse(message);
    let subject = message.headers().iter().find(|h| h.is("Subject"));
    subject
        .map(|h| h.unfolded().trim().to_owned())
        .unwrap_or_default()
}

#[test]
fn a_subject_rewritten_by_a_plugin_named_after_dkim_is_signed_as_rewritten() {
    let key = rsa_key();
    let signing = Signing::start("", &key);
    let queued = signing.send(MESSAGE);
    assert!(subject(&queued).starts_with(TAG), "{}", subject(&queued));
    let results = verify(&queued, &records(&key));
    assert_eq!(results, [DkimResult::Pass]);
}

#[test]
fn in_name_order_the_same_rewrite_breaks_the_signature() {
    // The operator puts dkim back among the plugins of order 0: subject-tag now runs after it.
    let key = rsa_key();
    let signing = Signing::start("[engine.plugins.dkim]\norder = 0\n", &key);
    let queued = signing.send(MESSAGE);
    assert!(subject(&queued).starts_with(TAG), "{}", subject(&queued));
    let results = verify(&queued, &records(&key));
    assert_eq!(results.len(), 1, "{results:?}");
    assert_ne!(
        results[0],
        DkimResult::Pass,
        "the Subject changed after signing"
    );
}
