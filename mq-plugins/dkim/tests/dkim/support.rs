//! Keys, sections, a session that sends one message, the independent verifier, and redaction of
//! the values that change on every run.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use base64::Engine as _;
use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache,
};
use mq_core::testkit::{self, Transcript};
use mq_plugin_api::{AuthVerdict, Authenticate, Context, Control, Plugin, hooks};
use mq_plugin_dkim as _;

/// A message from jane@example.org with a folded field and white space relaxed canonicalization
/// cares about.
pub(crate) const MESSAGE: &str = "From: Jane Doe <jane@example.org>\r\n\
To: Bob <bob@example.net>\r\n\
Subject: Quarterly  report,\r\n\tfolded\r\n\
Date: Sat, 28 Nov 2026 16:00:00 +0000\r\n\
Message-ID: <1@example.org>\r\n\
X-Mailer: test\r\n\
\r\n\
Hello Bob,  \r\n\
\r\n\
the numbers\tare in.\r\n\
\r\n\
\r\n";

/// A checked-in test key (see `tests/keys/README.md`), as a copy of its own that only its owner
/// may read: git keeps no such mode, and the plugin refuses a key others can read.
pub(crate) fn fixture(name: &str) -> PathBuf {
    static COPIES: AtomicUsize = AtomicUsize::new(0);
    let original = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name);
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "dkim-{}-{}-{name}",
        std::process::id(),
        COPIES.fetch_add(1, Ordering::Relaxed)
    ));
    write_private(&copy, &std::fs::read(original).unwrap());
    copy
}

/// Writes `contents` to a new file at `path` that only its owner may read.
pub(crate) fn write_private(path: &Path, contents: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(contents).unwrap();
}

/// A fresh Ed25519 key as PKCS#8 PEM in `dir`, as `openssl genpkey -algorithm ed25519` writes.
pub(crate) fn ed25519_key(dir: &Path, name: &str) -> PathBuf {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let path = dir.join(name);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n");
    write_private(&path, pem.as_bytes());
    path
}

/// A `[[key]]` entry of a section.
pub(crate) fn key(domain: &str, selector: &str, algorithm: &str, path: &Path) -> String {
    format!(
        "[[key]]\ndomain = \"{domain}\"\nselector = \"{selector}\"\nalgorithm = \"{algorithm}\"\n\
         private_key = {:?}\n",
        path.display().to_string()
    )
}

/// The DNS records a section's keys publish, from the plugin built on it.
pub(crate) fn records(section: &str) -> Vec<(String, String)> {
    let config = toml::from_str(section).unwrap();
    mq_plugin_dkim::Dkim::new(&config).unwrap().dns_records()
}

/// A relay-network client sends `message` through the plugin built from `section`.
pub(crate) fn relay(section: &str, message: &str) -> Transcript {
    testkit::session()
        .relay_network()
        .registered("dkim", section)
        .ehlo("client.example")
        .mail_from("jane@example.org")
        .rcpt_to("bob@example.net")
        .data(message)
        .run()
}

/// The one message queued, without the `Received` field mq's server stamps on arrival (above
/// which a signature is prepended): what the client sent, as the plugin left it.
pub(crate) fn queued(transcript: &Transcript) -> Vec<u8> {
    assert_eq!(transcript.queued().len(), 1, "{transcript}");
    let mut bytes = transcript.queued()[0].message.to_bytes();
    let start = if bytes.starts_with(b"Received: from client.example") {
        0
    } else {
        let at = bytes
            .windows(31)
            .position(|w| w == b"\r\nReceived: from client.example");
        at.expect("mq's Received field") + 2
    };
    let mut end = start;
    while let Some(at) = bytes[end..].windows(2).position(|w| w == b"\r\n") {
        end += at + 2;
        if !matches!(bytes.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    bytes.drain(start..end);
    bytes
}

/// mail-auth's verdict on each signature of `message`, its DNS answered from `records` only.
pub(crate) fn verify(message: &[u8], records: &[(String, String)]) -> Vec<DkimResult> {
    let cache = TxtCache::default();
    for (name, record) in records {
        let key = DomainKey::parse(record.as_bytes()).expect("a valid DKIM record");
        let entry = mail_auth::Txt::DomainKey(Arc::new(key));
        cache
            .0
            .borrow_mut()
            .insert(format!("{name}.").into(), entry);
    }
    // No name servers: a lookup the cache cannot answer fails instead of leaving the machine.
    let resolver = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
    let verifier = MessageAuthenticator::new(resolver, ResolverOpts::default()).unwrap();
    let message = AuthenticatedMessage::parse(message).expect("mail-auth parses the message");
    let params = Parameters::new(&message).with_txt_cache(&cache);
    let outputs = smol::block_on(verifier.verify_dkim(params));
    outputs.iter().map(|o| o.result().clone()).collect()
}

/// The TXT records the verifier may see.
#[derive(Default)]
struct TxtCache(RefCell<HashMap<Box<str>, mail_auth::Txt>>);

impl ResolverCache<Box<str>, mail_auth::Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.borrow().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.borrow_mut().remove(name)
    }

    fn insert(&self, _: Box<str>, _: mail_auth::Txt, _: Instant) {}
}

/// The tags of the message's `DKIM-Signature` fields, unfolded, white space removed.
pub(crate) fn signature_tags(message: &[u8]) -> Vec<HashMap<String, String>> {
    let message = mq_plugin_api::Message::parse(message);
    let fields = message.headers().iter().filter(|h| h.is("DKIM-Signature"));
    fields.map(|field| tags(&field.unfolded())).collect()
}

fn tags(value: &str) -> HashMap<String, String> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    compact
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

/// The transcript with each signature's tags compacted and `t=`, `bh=` and `b=` replaced, so a
/// snapshot shows which fields were signed how, and not the values that change on every run.
pub(crate) fn redacted(transcript: &Transcript) -> String {
    let text = transcript.to_string();
    let lines = text
        .lines()
        .map(|line| match line.split_once("DKIM-Signature: ") {
            Some((before, value)) => {
                let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
                let redacted: Vec<String> = compact
                    .split(';')
                    .filter(|tag| !tag.is_empty())
                    .map(|tag| match tag.split_once('=') {
                        Some(("t", _)) => "t=[time]".to_owned(),
                        Some(("bh", _)) => "bh=[body hash]".to_owned(),
                        Some(("b", _)) => "b=[signature]".to_owned(),
                        _ => tag.to_owned(),
                    })
                    .collect();
                format!("{before}DKIM-Signature: {}", redacted.join("; "))
            }
            None => line.to_owned(),
        });
    lines.collect::<Vec<_>>().join("\n")
}

/// Accepts every login, so the testkit's AUTH succeeds.
pub(crate) struct AcceptAll;

#[hooks]
impl Plugin for AcceptAll {
    async fn smtp_in_authenticate(&self, _ctx: &mut Context, event: &mut Authenticate) -> Control {
        event.verdict = AuthVerdict::Accept;
        Control::Continue
    }
}
