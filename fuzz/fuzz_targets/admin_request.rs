//! Request heads as the admin port reads them, on any bytes: a request, a 400, or nothing (the
//! client left), never a panic, and the same whether the bytes arrive whole or in small
//! pieces. The guard never lets a request through without a loopback `Host`, and with a token
//! set, never without the token, except `GET /metrics` on a loopback port.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use mq_core::fuzzing::{AdminRequest, admin_guard, admin_read_request};

const TOKEN: &str = "0123456789abcdef";

fuzz_target!(|bytes: &[u8]| {
    let whole = admin_read_request(bytes, 1024);
    let piece = bytes.len() % 29 + 1;
    assert_eq!(
        admin_read_request(bytes, piece),
        whole,
        "in pieces of {piece}"
    );
    let Ok(request) = whole else {
        return;
    };
    let loopback: SocketAddr = "127.0.0.1:8025".parse().unwrap();
    let public: SocketAddr = "192.0.2.1:8025".parse().unwrap();
    for (local, token) in [
        (loopback, None),
        (loopback, Some(TOKEN)),
        (public, Some(TOKEN)),
    ] {
        let refused = admin_guard(&request, local, token);
        if let Some(status) = refused {
            assert!([400, 401, 403, 421].contains(&status), "{status}");
            assert!(status != 401 || token.is_some());
            continue;
        }
        assert!(request.host().is_some());
        let metrics = request.method() == "GET" && request.route() == "/metrics";
        if token.is_some() && !(metrics && local.ip().is_loopback()) {
            assert!(
                carries_token(&request),
                "{request:?} passed without the token"
            );
        }
    }
});

fn carries_token(request: &AdminRequest) -> bool {
    request
        .authorization()
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| given.trim() == TOKEN)
}
