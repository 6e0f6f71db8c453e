//! [`unused_port`]: a loopback port for a server a test starts with its port written in its
//! configuration beforehand.

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// The kernel's ephemeral ports start here unless `/proc` says otherwise (Linux's default).
const EPHEMERAL_FROM: u16 = 32768;

/// The lowest port handed out: above the ports services are known by.
const FROM: u16 = 10000;

/// A port of 127.0.0.1 that nothing listens on now, below the kernel's ephemeral range.
///
/// A port the kernel picked for `bind(0)` and gave up is from the ephemeral range, where any
/// connection opened meanwhile (another test's client, say) may take it as its own end before
/// the server binds it. Below that range only another explicit bind can; the start is random,
/// so two tests picking at once rarely meet.
///
/// # Panics
///
/// When no port below the ephemeral range can be bound.
///
/// # Examples
///
/// ```
/// let address = mq_core::testkit::unused_port();
/// assert!(address.ip().is_loopback());
/// std::net::TcpListener::bind(address).unwrap();
/// ```
pub fn unused_port() -> SocketAddr {
    let below = ephemeral_from().max(FROM + 1);
    let span = u64::from(below - FROM);
    let start = RandomState::new().hash_one(std::process::id()) % span;
    (0..span)
        .map(|step| FROM + ((start + step) % span) as u16)
        .map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .find(|address| TcpListener::bind(address).is_ok())
        .expect("a free loopback port below the ephemeral range")
}

/// Where the kernel's ephemeral ports begin.
fn ephemeral_from() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_FROM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_port_is_below_the_ephemeral_range_and_free() {
        let address = unused_port();
        assert!(
            address.port() >= FROM && address.port() < ephemeral_from(),
            "{address}"
        );
        TcpListener::bind(address).expect("nothing listens on it");
    }
}
