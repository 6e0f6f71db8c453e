//! The stub resolver against a DNS server on loopback: MX order, the implicit MX, null MX,
//! NXDOMAIN, truncation and TCP, timeouts, SERVFAIL, the cache, CNAMEs, TXT and PTR.
//!
//! Every resolver here asks only the test server, never the machine's nameservers.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mq_core::dns::{DnsConfig, MailHost, Resolver, TestServer};

#[path = "dns/cache.rs"]
mod cache;
#[path = "dns/records.rs"]
mod records;
#[path = "dns/route.rs"]
mod route;
#[path = "dns/transport.rs"]
mod transport;

fn config(server: &TestServer) -> DnsConfig {
    let mut config = DnsConfig::default();
    config.nameservers = vec![server.address()];
    config.timeout = Duration::from_secs(2);
    config.attempts = 1;
    config
}

fn resolver(server: &TestServer) -> Resolver {
    Resolver::new(&config(server)).unwrap()
}

fn v4(text: &str) -> Ipv4Addr {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn host(name: &str, preference: u16, addresses: &[&str]) -> MailHost {
    MailHost {
        name: name.into(),
        preference,
        addresses: addresses.iter().map(|a| ip(a)).collect(),
    }
}
