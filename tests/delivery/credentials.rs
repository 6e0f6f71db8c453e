//! Relays with a user and password: the password goes only to a server whose certificate
//! verifies, unless the relay's `tls` says otherwise outright.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mq_core::delivery::Smarthost;
use mq_core::queue::EntryState;
use mq_core::smtp::tls::self_signed;
use mq_core::testkit::sink::{Script, Sink};

use crate::support::{Harness, message};

const PASSWORD: &str = "relay-secret";

/// Ten minutes: no second attempt within a test.
const NO_RETRY: Duration = Duration::from_mins(10);

/// The relay at `sink` as the config file gives it, with credentials and `extra` lines.
fn relay_with_credentials(sink: &Sink, extra: &str) -> Smarthost {
    let table = format!(
        "address = \"{}\"\nuser = \"mq\"\npassword = \"{PASSWORD}\"\n{extra}",
        sink.address()
    );
    toml::from_str(&table).expect("a relay table")
}

/// Whether any line the sink read carries the password, as AUTH PLAIN encodes it or as is.
fn password_seen(sink: &Sink) -> bool {
    let encoded = BASE64.encode(format!("\0mq\0{PASSWORD}"));
    sink.commands()
        .iter()
        .any(|line| line.contains(&encoded) || line.contains(PASSWORD))
}

#[test]
fn a_relay_with_credentials_and_no_tls_setting_never_sends_them_to_an_unverified_certificate() {
    let (cert, key) = self_signed("attacker.invalid");
    let sink = Sink::start(Script::new().ehlo(&["AUTH PLAIN"]).starttls(&cert, &key));
    let harness = Harness::started(|o| {
        o.delivery.retry.schedule = vec![NO_RETRY];
        let relay = relay_with_credentials(&sink, "");
        o.delivery.routes.insert("remote.test".into(), relay);
    });
    harness.send(
        "alice@local.test",
        &["bob@remote.test"],
        &message("to a stranger"),
    );
    harness.wait_for(
        "the entry to be deferred",
        || matches!(&harness.entries()[..], [entry] if entry.state == EntryState::Deferred),
    );

    let error = harness.entries()[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("tls handshake failed"), "{error}");
    assert!(error.contains("certificate"), "{error}");
    assert!(!password_seen(&sink), "{:?}", sink.commands());
    assert!(sink.messages().is_empty());
}

#[test]
fn a_relay_with_credentials_gets_them_over_tls_verified_against_its_ca_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (cert, key) = self_signed("127.0.0.1");
    let ca_file = dir.path().join("relay-ca.pem");
    std::fs::write(&ca_file, &cert).expect("the CA file is written");
    let sink = Sink::start(Script::new().ehlo(&["AUTH PLAIN"]).starttls(&cert, &key));
    let harness = Harness::started(|o| {
        let line = format!("ca_file = {:?}", ca_file.to_str().expect("a UTF-8 path"));
        let relay = relay_with_credentials(&sink, &line);
        o.delivery.routes.insert("remote.test".into(), relay);
    });
    harness.send(
        "alice@local.test",
        &["bob@remote.test"],
        &message("to the relay"),
    );
    harness.wait_for("the entry to go", || harness.entries().is_empty());

    assert!(password_seen(&sink), "{:?}", sink.commands());
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].tls);
}

#[test]
fn a_relay_whose_tls_is_set_below_verify_takes_the_credentials_as_configured() {
    let (cert, key) = self_signed("attacker.invalid");
    let sink = Sink::start(Script::new().ehlo(&["AUTH PLAIN"]).starttls(&cert, &key));
    let relay = relay_with_credentials(&sink, "tls = \"required\"");
    assert!(relay.sends_credentials_unverified());
    let harness = Harness::started(|o| {
        o.delivery.routes.insert("remote.test".into(), relay);
        let warnings = o.delivery.warnings();
        assert!(warnings[0].contains("tls = \"required\""), "{warnings:?}");
    });
    harness.send(
        "alice@local.test",
        &["bob@remote.test"],
        &message("as told"),
    );
    harness.wait_for("the entry to go", || harness.entries().is_empty());
    assert!(password_seen(&sink), "{:?}", sink.commands());
}
