//! The cache: hits, TTL expiry, negative answers.

use std::time::Duration;

use mq_core::dns::{DnsError, TestServer};
use smol::block_on;

use super::{resolver, v4};

#[test]
fn a_second_lookup_is_answered_from_the_cache() {
    let server = TestServer::start();
    server.add_mx("cached.example", 10, "mx.cached.example");
    let resolver = resolver(&server);
    let first = block_on(resolver.lookup_mx("cached.example")).unwrap();
    let clone = resolver.clone();
    let second = block_on(clone.lookup_mx("CACHED.example")).unwrap();
    assert_eq!(first, second);
    assert_eq!(server.udp_queries(), 1);
}

#[test]
fn an_answer_is_asked_again_when_its_ttl_runs_out() {
    let server = TestServer::start();
    server
        .add_a("short.example", v4("192.0.2.1"))
        .set_ttl("short.example", 2);
    let resolver = resolver(&server);
    // The two lookups are microseconds apart: only a test thread kept off the CPU for the whole
    // TTL could see the answer expire between them. Waiting past the TTL, any longer only makes
    // the expiry surer.
    block_on(resolver.lookup_a("short.example")).unwrap();
    block_on(resolver.lookup_a("short.example")).unwrap();
    assert_eq!(server.udp_queries(), 1);
    std::thread::sleep(Duration::from_millis(2500));
    block_on(resolver.lookup_a("short.example")).unwrap();
    assert_eq!(server.udp_queries(), 2);
}

#[test]
fn negative_answers_are_cached_too() {
    let server = TestServer::start();
    server.add_a("v4only.example", v4("192.0.2.1"));
    let resolver = resolver(&server);
    for _ in 0..2 {
        let nx = block_on(resolver.lookup_a("missing.example"));
        assert!(matches!(nx, Err(DnsError::NxDomain)));
        let nodata = block_on(resolver.lookup_aaaa("v4only.example"));
        assert!(matches!(nodata, Err(DnsError::NoRecords)));
    }
    assert_eq!(server.udp_queries(), 2);
}
