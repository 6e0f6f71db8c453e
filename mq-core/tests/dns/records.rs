//! Record types and the rest: CNAME chains, TXT, PTR, resolv.conf, error texts.

use std::time::Duration;

use mq_core::dns::{DnsConfig, DnsError, Mx, RouteError, TestServer};
use smol::block_on;

use super::{ip, resolver, v4};

#[test]
fn cnames_are_followed_for_addresses_and_mx() {
    let server = TestServer::start();
    server
        .add_cname("www.example", "web.example")
        .add_cname("web.example", "host.example")
        .add_a("host.example", v4("192.0.2.80"))
        .add_cname("alias.example", "mail.example")
        .add_mx("mail.example", 5, "mx.mail.example");
    let resolver = resolver(&server);
    let addresses = block_on(resolver.lookup_ip("www.example")).unwrap();
    assert_eq!(addresses, [ip("192.0.2.80")]);
    let mxs = block_on(resolver.lookup_mx("alias.example")).unwrap();
    assert_eq!(
        mxs,
        [Mx {
            preference: 5,
            exchange: "mx.mail.example".into()
        }]
    );
}

#[test]
fn txt_records_are_read_whole() {
    let server = TestServer::start();
    let long = format!("v=DKIM1; k=rsa; p={}", "A".repeat(400));
    server
        .add_txt("sel._domainkey.example", &long)
        .add_txt("sel._domainkey.example", "second");
    let mut txt = block_on(resolver(&server).lookup_txt("sel._domainkey.example")).unwrap();
    txt.sort();
    assert_eq!(txt, ["second".to_owned(), long]);
}

#[test]
fn ptr_records_name_an_address() {
    let server = TestServer::start();
    server
        .add_ptr(ip("192.0.2.25"), "mail.example.org")
        .add_ptr(ip("2001:db8::25"), "mail6.example.org");
    let resolver = resolver(&server);
    let v4_names = block_on(resolver.lookup_ptr(ip("192.0.2.25"))).unwrap();
    assert_eq!(v4_names, ["mail.example.org"]);
    let v6_names = block_on(resolver.lookup_ptr(ip("2001:db8::25"))).unwrap();
    assert_eq!(v6_names, ["mail6.example.org"]);
    let none = block_on(resolver.lookup_ptr(ip("192.0.2.26")));
    assert!(matches!(none, Err(DnsError::NxDomain)));
}

#[test]
fn resolv_conf_lines_give_the_nameservers() {
    let text = "# generated\nsearch example.org\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n\
                options timeout:1 attempts:3 rotate\n";
    let config = DnsConfig::from_resolv_conf(text);
    assert_eq!(
        config.nameservers,
        [
            "192.0.2.53:53".parse().unwrap(),
            "[2001:db8::53]:53".parse().unwrap()
        ]
    );
    assert_eq!(config.timeout, Duration::from_secs(1));
    assert_eq!(config.attempts, 3);
    assert!(
        DnsConfig::from_resolv_conf("search example.org\n")
            .nameservers
            .is_empty()
    );
}

#[test]
fn errors_read_as_lowercase_sentences() {
    for error in [
        DnsError::NoRecords,
        DnsError::Timeout,
        DnsError::ServerFailure(2),
    ] {
        let text = error.to_string();
        assert!(
            text.starts_with(char::is_lowercase) && !text.ends_with('.'),
            "{text}"
        );
    }
    assert_eq!(
        RouteError::NoSuchDomain.to_string(),
        "domain does not exist"
    );
}

#[test]
fn resolvers_and_their_lookups_can_cross_threads() {
    fn send_and_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let server = TestServer::start();
    let resolver = resolver(&server);
    send_and_sync(&resolver);
    send(resolver.lookup_mx("example.org"));
    send(resolver.lookup_ip("example.org"));
    send(mq_core::dns::resolve_mail_route(&resolver, "example.org"));
}
