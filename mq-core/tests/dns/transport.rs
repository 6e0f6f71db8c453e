//! Getting an answer: TCP after truncation, timeouts, SERVFAIL, several nameservers, concurrency.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Duration;

use mq_core::dns::{DnsError, Mx, Resolver, RouteError, TestServer, resolve_mail_route};
use smol::block_on;

use super::{config, resolver, v4};

#[test]
fn a_truncated_answer_is_asked_again_over_tcp() {
    let server = TestServer::start();
    server.truncate_udp("big.example");
    for n in 0..5 {
        server.add_mx("big.example", n * 10, &format!("mx{n}.big.example"));
    }
    let mxs = block_on(resolver(&server).lookup_mx("big.example")).unwrap();
    assert_eq!(mxs.len(), 5);
    assert_eq!(
        mxs[4],
        Mx {
            preference: 40,
            exchange: "mx4.big.example".into()
        }
    );
    assert_eq!((server.udp_queries(), server.tcp_queries()), (1, 1));
}

#[test]
fn an_answer_too_large_for_udp_comes_over_tcp() {
    let server = TestServer::start();
    for n in 0..40 {
        server.add_txt(
            "spf.example",
            &format!("v=spf1 record number {n} {}", "x".repeat(40)),
        );
    }
    let txt = block_on(resolver(&server).lookup_txt("spf.example")).unwrap();
    assert_eq!(txt.len(), 40);
    assert_eq!(server.tcp_queries(), 1);
}

#[test]
fn a_slow_server_times_out_as_a_temporary_failure() {
    let server = TestServer::start();
    server
        .add_a("slow.example", v4("192.0.2.1"))
        .delay("slow.example", Duration::from_hours(1));
    let mut config = config(&server);
    config.timeout = Duration::from_millis(200);
    let resolver = Resolver::new(&config).unwrap();
    let lookup = block_on(resolver.lookup_a("slow.example"));
    assert!(matches!(lookup, Err(DnsError::Timeout)), "{lookup:?}");
    let error = block_on(resolve_mail_route(&resolver, "slow.example")).unwrap_err();
    assert!(!error.is_permanent(), "{error}");
}

#[test]
fn a_silent_nameserver_is_passed_over_for_the_next() {
    let server = TestServer::start();
    server.add_a("host.example", v4("192.0.2.5"));
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = config(&server);
    config.nameservers.insert(0, silent.local_addr().unwrap());
    // Long enough for the live server's loopback answer on any machine, however loaded (it
    // takes well under a millisecond), and the time the silent one is waited for.
    config.timeout = Duration::from_secs(2);
    let resolver = Resolver::new(&config).unwrap();
    let addresses = block_on(resolver.lookup_a("host.example")).unwrap();
    assert_eq!(addresses, [v4("192.0.2.5")]);
}

#[test]
fn a_server_failure_is_temporary_and_retried() {
    let server = TestServer::start();
    server
        .add_mx("broken.example", 10, "mx.broken.example")
        .fail("broken.example");
    let mut config = config(&server);
    config.attempts = 2;
    let resolver = Resolver::new(&config).unwrap();
    let error = block_on(resolve_mail_route(&resolver, "broken.example")).unwrap_err();
    assert!(
        matches!(error, RouteError::Dns(DnsError::ServerFailure(2))),
        "{error}"
    );
    assert!(!error.is_permanent());
    assert_eq!(server.udp_queries(), 2);
}

#[test]
fn lookups_run_concurrently_on_one_local_executor() {
    let server = TestServer::start();
    for n in 0..20 {
        let domain = format!("d{n}.example");
        server
            .add_mx(&domain, 10, &format!("mx.{domain}"))
            .add_a(&format!("mx.{domain}"), Ipv4Addr::new(192, 0, 2, n));
    }
    let resolver = resolver(&server);
    let executor = smol::LocalExecutor::new();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let resolver = resolver.clone();
            executor
                .spawn(async move { resolve_mail_route(&resolver, &format!("d{n}.example")).await })
        })
        .collect();
    let routes = block_on(executor.run(futures::future::join_all(tasks)));
    for (n, route) in routes.into_iter().enumerate() {
        let route = route.unwrap();
        assert_eq!(
            route[0].addresses,
            [IpAddr::V4(Ipv4Addr::new(192, 0, 2, n as u8))]
        );
    }
}
