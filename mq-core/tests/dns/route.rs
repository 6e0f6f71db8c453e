//! Where mail goes: MX order, the implicit MX, null MX, NXDOMAIN, hosts without addresses.

use mq_core::dns::{DnsError, RouteError, TestServer, resolve_mail_route};
use smol::block_on;

use super::{host, resolver, v4};

#[test]
fn mail_hosts_come_in_order_of_preference_then_name() {
    let server = TestServer::start();
    server
        .add_mx("example.org", 20, "backup.example.org")
        .add_mx("example.org", 10, "mx2.example.org")
        .add_mx("example.org", 10, "MX1.example.org")
        .add_a("backup.example.org", v4("192.0.2.3"))
        .add_a("mx2.example.org", v4("192.0.2.2"))
        .add_a("mx1.example.org", v4("192.0.2.1"))
        .add_aaaa("mx1.example.org", "2001:db8::1".parse().unwrap());
    let resolver = resolver(&server);
    let mxs = block_on(resolver.lookup_mx("Example.ORG")).unwrap();
    let names: Vec<&str> = mxs.iter().map(|mx| mx.exchange.as_str()).collect();
    assert_eq!(
        names,
        ["mx1.example.org", "mx2.example.org", "backup.example.org"]
    );
    let route = block_on(resolve_mail_route(&resolver, "example.org")).unwrap();
    let expected = [
        host("mx1.example.org", 10, &["192.0.2.1", "2001:db8::1"]),
        host("mx2.example.org", 10, &["192.0.2.2"]),
        host("backup.example.org", 20, &["192.0.2.3"]),
    ];
    assert_eq!(route, expected);
}

#[test]
fn a_domain_without_mx_records_is_its_own_mail_host() {
    let server = TestServer::start();
    server
        .add_a("plain.example", v4("192.0.2.7"))
        .add_aaaa("plain.example", "2001:db8::7".parse().unwrap())
        .add_aaaa("six.example", "2001:db8::6".parse().unwrap());
    let resolver = resolver(&server);
    assert!(matches!(
        block_on(resolver.lookup_mx("plain.example")),
        Err(DnsError::NoRecords)
    ));
    let route = block_on(resolve_mail_route(&resolver, "plain.example.")).unwrap();
    assert_eq!(
        route,
        [host("plain.example", 0, &["192.0.2.7", "2001:db8::7"])]
    );
    let route = block_on(resolve_mail_route(&resolver, "six.example")).unwrap();
    assert_eq!(route, [host("six.example", 0, &["2001:db8::6"])]);
}

#[test]
fn a_null_mx_fails_at_once_and_for_good() {
    let server = TestServer::start();
    server
        .add_mx("nomail.example", 0, ".")
        .add_a("nomail.example", v4("192.0.2.9"));
    let error = block_on(resolve_mail_route(&resolver(&server), "nomail.example")).unwrap_err();
    assert!(matches!(error, RouteError::NullMx), "{error}");
    assert!(error.is_permanent());
    assert_eq!(
        server.udp_queries(),
        1,
        "no address lookups after a null MX"
    );
}

#[test]
fn a_domain_that_does_not_exist_fails_for_good() {
    let server = TestServer::start();
    let resolver = resolver(&server);
    let error = block_on(resolve_mail_route(&resolver, "missing.example")).unwrap_err();
    assert!(matches!(error, RouteError::NoSuchDomain), "{error}");
    assert!(error.is_permanent());
    let lookup = block_on(resolver.lookup_a("missing.example"));
    assert!(matches!(lookup, Err(DnsError::NxDomain)));
}

#[test]
fn mail_hosts_without_addresses_are_skipped() {
    let server = TestServer::start();
    server
        .add_mx("half.example", 10, "gone.half.example")
        .add_mx("half.example", 20, "up.half.example")
        .add_a("up.half.example", v4("192.0.2.20"))
        .add_mx("none.example", 10, "gone.none.example");
    let resolver = resolver(&server);
    let route = block_on(resolve_mail_route(&resolver, "half.example")).unwrap();
    assert_eq!(route, [host("up.half.example", 20, &["192.0.2.20"])]);
    let error = block_on(resolve_mail_route(&resolver, "none.example")).unwrap_err();
    assert!(matches!(error, RouteError::NoAddresses), "{error}");
    assert!(error.is_permanent());
}

#[test]
fn invalid_names_fail_for_good_without_a_query() {
    let server = TestServer::start();
    let resolver = resolver(&server);
    let error = block_on(resolve_mail_route(&resolver, "a..example")).unwrap_err();
    assert!(
        matches!(error, RouteError::Dns(DnsError::InvalidName(_))),
        "{error}"
    );
    assert!(error.is_permanent());
    assert_eq!(server.udp_queries(), 0);
}
