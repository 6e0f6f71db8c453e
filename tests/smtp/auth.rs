//! SMTP AUTH (RFC 4954) byte by byte: the 334 prompts of LOGIN and of PLAIN without an initial
//! response, cancelling with `*`, the timeout at a prompt, and that checking a password leaves
//! the core to other sessions.

use std::time::Duration;

use crate::support::{Client, PASSWORD, TestServer, USER, b64, plain};

/// A client that has greeted and started TLS, so that AUTH is offered.
fn over_tls(server: &TestServer) -> Client {
    let mut client = Client::greeted(server.addr);
    over_tls_on(&mut client, server);
    client
}

/// EHLO and STARTTLS on `client`, so that AUTH is offered.
fn over_tls_on(client: &mut Client, server: &TestServer) {
    client.ehlo();
    client.starttls(server.cert());
    let ehlo = client.ehlo();
    assert!(ehlo.contains("\n250-AUTH PLAIN LOGIN\n"), "{ehlo}");
}

#[test]
fn auth_prompts_with_334_and_a_star_cancels_the_exchange() {
    let server = TestServer::with_tls(|_| {});
    let mut client = over_tls(&server);
    assert_eq!(client.send("AUTH LOGIN"), "334 VXNlcm5hbWU6", "Username:");
    assert_eq!(client.send(&b64(USER)), "334 UGFzc3dvcmQ6", "Password:");
    assert_eq!(client.send("*"), "501 5.7.0 Authentication aborted");

    assert_eq!(client.send("AUTH PLAIN"), "334 ", "an empty challenge");
    assert_eq!(
        client.send(&plain(USER, "wrong")),
        "535 5.7.8 Error: authentication failed"
    );
    assert_eq!(
        client.send("AUTH CRAM-MD5"),
        "535 5.7.8 Error: authentication failed: Invalid authentication mechanism"
    );
    assert_eq!(
        client.send("AUTH PLAIN bm90IHBsYWlu"),
        "501 5.5.2 Cannot decode response"
    );

    assert_eq!(
        client.send(&format!("AUTH LOGIN {}", b64(USER))),
        "334 UGFzc3dvcmQ6"
    );
    assert_eq!(
        client.send(&b64(PASSWORD)),
        "235 2.7.0 Authentication successful"
    );
    assert_eq!(
        client.send(&format!("AUTH PLAIN {}", plain(USER, PASSWORD))),
        "503 5.5.1 Error: already authenticated"
    );
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
}

/// The server checks passwords off the executor: an Argon2 check (half a second in a debug
/// build) run inline would hold the whole core and every session on it.
///
/// Had the check held the core, the other session's NOOP would be answered only after the 535,
/// which would then always be there first. Answered at once, the NOOP comes first unless the
/// machine is so loaded that answering it took longer than the whole check: such a round proves
/// nothing either way and is tried again, up to five times, so that a slow machine never fails
/// the test and a stalling server always does.
#[test]
fn checking_a_password_does_not_stall_other_sessions_on_its_core() {
    const ROUNDS: usize = 5;
    // Failed logins from this address are not counted: each round fails one.
    let server = TestServer::with_tls(|config| config.auth.max_failures = 0);
    let mut other = server.client();
    for _ in 0..ROUNDS {
        let mut checking = over_tls(&server);
        checking.write(format!("AUTH PLAIN {}\r\n", plain(USER, "wrong")).as_bytes());
        assert_eq!(other.send("NOOP"), "250 2.0.0 Ok");
        let answered_during_the_check = !checking.has_unread_input();
        assert_eq!(checking.reply(), "535 5.7.8 Error: authentication failed");
        if answered_during_the_check {
            return;
        }
    }
    panic!("in {ROUNDS} rounds the other session was never answered while a password was checked");
}

/// A client silent at the 334 prompt is timed out as one silent between commands is: with
/// `421 4.4.2`, not a bare close.
#[test]
fn a_client_silent_at_an_auth_prompt_gets_421_after_the_command_timeout() {
    // Each step up to the prompt (EHLO, STARTTLS and its handshake, EHLO, AUTH) must come within
    // the timeout of the one before: three seconds, far more than a loaded machine takes for a
    // debug build's TLS handshake.
    let server = TestServer::with_tls(|config| config.command_timeout = Duration::from_secs(3));
    // Ten times the timeout, and more.
    let mut client = Client::try_connect(server.addr, Duration::from_secs(30)).expect("connect");
    assert_eq!(client.reply(), "220 localhost ESMTP mq");
    over_tls_on(&mut client, &server);
    assert_eq!(client.send("AUTH LOGIN"), "334 VXNlcm5hbWU6");
    assert_eq!(
        client.reply(),
        "421 4.4.2 localhost Error: timeout exceeded"
    );
    assert!(client.is_closed());
}

/// One session from `source` that fails AUTH PLAIN once, over TLS.
fn fail_once(server: &TestServer, source: std::net::IpAddr) -> String {
    let mut client = Client::greeted_from(source, server.addr);
    over_tls_on(&mut client, server);
    client.send(&format!("AUTH PLAIN {}", plain(USER, "wrong")))
}

#[test]
fn failed_logins_from_one_address_across_connections_lock_it_out_but_not_others() {
    let server = TestServer::with_tls(|config| config.auth.max_failures = 3);
    let attacker = std::net::IpAddr::from([127, 0, 0, 1]);
    for _ in 0..3 {
        // Each on a connection of its own: reconnecting does not reset the count.
        assert_eq!(
            fail_once(&server, attacker),
            "535 5.7.8 Error: authentication failed"
        );
    }
    let mut locked = Client::greeted_from(attacker, server.addr);
    over_tls_on(&mut locked, &server);
    assert_eq!(
        locked.send(&format!("AUTH PLAIN {}", plain(USER, PASSWORD))),
        "421 4.7.0 localhost Error: too many failed authentications from 127.0.0.1"
    );
    assert!(locked.is_closed());

    let mut fresh = Client::greeted_from([127, 0, 0, 2].into(), server.addr);
    over_tls_on(&mut fresh, &server);
    assert_eq!(
        fresh.send(&format!("AUTH PLAIN {}", plain(USER, PASSWORD))),
        "235 2.7.0 Authentication successful"
    );
}

#[test]
fn password_checks_at_once_never_exceed_max_verifications() {
    let server = TestServer::with_tls(|config| {
        config.auth.max_verifications = Some(2);
        config.auth.max_failures = 0;
    });
    let mut clients: Vec<Client> = (0..6).map(|_| over_tls(&server)).collect();
    for client in &mut clients {
        client.write(format!("AUTH PLAIN {}\r\n", plain(USER, "wrong")).as_bytes());
    }
    for client in &mut clients {
        assert_eq!(client.reply(), "535 5.7.8 Error: authentication failed");
    }
    let auth = &server.stats().auth;
    let peak = auth.peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=2).contains(&peak), "{peak} checks ran at once");
    assert_eq!(auth.in_flight.load(std::sync::atomic::Ordering::Relaxed), 0);
}
