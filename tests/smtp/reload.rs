//! Reloading the server's settings: the connections accepted afterwards get the new limits, the
//! certificate and key read anew and the new AUTH users; a session already open keeps what it
//! began with; settings that cannot be loaded change nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use mq_core::smtp::{ServerError, SmtpConfig, TlsFiles};
use tempfile::TempDir;

use crate::support::{Client, PASSWORD, TestServer, USER, password_hash, write_tls_files};

/// Who a reload adds.
const NEW_USER: &str = "bob";

/// A one-core server with TLS and AUTH for [`USER`], the config it started with, and the
/// directory of its certificate files, kept for reloads to read.
fn server() -> (TestServer, SmtpConfig, TempDir) {
    let files = tempfile::tempdir().expect("a temporary directory");
    let mut config = SmtpConfig::default();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.tls = Some(write_tls_files(files.path()));
    config.auth.users = BTreeMap::from([(USER.to_owned(), password_hash().to_owned())]);
    let started = config.clone();
    let server = TestServer::start(1, move |c| *c = started);
    (server, config, files)
}

/// Reloads `server` with `config`.
fn reload(server: &TestServer, config: &SmtpConfig) {
    let prepared = server
        .server()
        .prepare(config.clone())
        .expect("valid settings");
    server.server().install(prepared);
}

/// A client of `server` that has started TLS trusting `cert` and said EHLO again.
fn over_tls(server: &TestServer, cert: &str) -> Client {
    let mut client = server.client();
    client.ehlo();
    client.starttls(cert);
    client.ehlo();
    client
}

/// The certificate in `files`.
fn cert(files: &TlsFiles) -> String {
    std::fs::read_to_string(&files.cert).expect("the certificate")
}

#[test]
fn a_user_added_by_a_reload_can_authenticate_on_the_next_connection() {
    let (server, mut config, _files) = server();
    let cert = server.cert().to_owned();
    let mut before = over_tls(&server, &cert);
    assert_eq!(
        before.auth_plain(NEW_USER, PASSWORD),
        "535 5.7.8 Error: authentication failed"
    );

    config
        .auth
        .users
        .insert(NEW_USER.to_owned(), password_hash().to_owned());
    reload(&server, &config);
    let mut after = over_tls(&server, &cert);
    assert_eq!(
        after.auth_plain(NEW_USER, PASSWORD),
        "235 2.7.0 Authentication successful"
    );
    // The session open before the reload keeps the users it began with.
    assert_eq!(
        before.auth_plain(NEW_USER, PASSWORD),
        "535 5.7.8 Error: authentication failed"
    );
    assert_eq!(
        before.auth_plain(USER, PASSWORD),
        "235 2.7.0 Authentication successful"
    );
}

#[test]
fn a_reload_reads_the_certificate_and_key_anew() {
    let (server, config, files) = server();
    let old = server.cert().to_owned();
    let mut before = server.client();
    before.ehlo();

    let renewed = write_tls_files(files.path());
    reload(&server, &config);
    let new = cert(&renewed);
    assert_ne!(new, old);
    // Trusting only the renewed certificate: the handshake succeeds only if it is presented.
    let mut after = over_tls(&server, &new);
    assert_eq!(
        after.auth_plain(USER, PASSWORD),
        "235 2.7.0 Authentication successful"
    );
    // The session open before the reload still presents the certificate it began with.
    before.starttls(&old);
}

#[test]
fn settings_that_cannot_be_loaded_change_nothing() {
    let (server, config, files) = server();
    let cert = server.cert().to_owned();

    let mut missing = config.clone();
    missing.tls = Some(TlsFiles {
        cert: files.path().join("absent.pem"),
        key: files.path().join("absent.pem"),
    });
    missing.max_message_size = 1_000;
    let error = server.server().prepare(missing).expect_err("no such file");
    assert!(matches!(error, ServerError::Tls(_)), "{error}");
    assert!(error.to_string().contains("absent.pem"), "{error}");

    let mut unknown = config.clone();
    unknown
        .auth
        .users
        .insert(NEW_USER.to_owned(), "{PLAIN}secret".to_owned());
    let error = server.server().prepare(unknown).expect_err("not a hash");
    assert!(matches!(error, ServerError::Auth(_)), "{error}");

    let mut client = over_tls(&server, &cert);
    assert_eq!(
        client.auth_plain(USER, PASSWORD),
        "235 2.7.0 Authentication successful"
    );
    let ehlo = client.send("EHLO client.example");
    assert!(ehlo.contains("\n250-SIZE 10240000\n"), "{ehlo}");
}

#[test]
fn a_reload_changes_the_limits_of_the_sessions_after_it() {
    let (server, mut config, _files) = server();
    let mut before = server.client();

    config.max_message_size = 1_000;
    config.max_recipients = 1;
    config.hostname = "mx.example".to_owned();
    reload(&server, &config);
    let mut after = Client::connect(server.addr);
    assert_eq!(after.reply(), "220 mx.example ESMTP mq");
    let ehlo = after.send("EHLO client.example");
    assert!(ehlo.contains("\n250-SIZE 1000\n"), "{ehlo}");
    assert_eq!(after.send("MAIL FROM:<a@example.org>"), "250 2.1.0 Ok");
    assert_eq!(after.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    assert_eq!(
        after.send("RCPT TO:<c@localhost>"),
        "452 4.5.3 Error: too many recipients"
    );

    let ehlo = before.ehlo();
    assert!(ehlo.contains("\n250-SIZE 10240000\n"), "{ehlo}");
}
