//! The address a client is counted under: its IPv4 address, or its IPv6 network.
//!
//! One IPv6 host usually holds a whole /64 and can pick a new address in it for each
//! connection, so counting IPv6 clients by address would let one host open as many connections
//! as it likes. They are counted by their network of `[smtp] ipv6_prefix` bits (64 by
//! default) instead; an IPv4-mapped IPv6 address counts as its IPv4 address.

use std::net::{IpAddr, Ipv6Addr};

/// The default IPv6 prefix a client is counted under: the usual size of one host's network.
pub(crate) const DEFAULT_IPV6_PREFIX: u8 = 64;

/// `ip` as the per-client limits count it: IPv4 as is, IPv6 cut to its first `ipv6_prefix` bits.
pub(crate) fn client_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask))
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str, prefix: u8) -> String {
        client_key(ip.parse().unwrap(), prefix).to_string()
    }

    #[test]
    fn addresses_of_one_ipv6_network_share_a_key() {
        for ip in [
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff:ffff:ffff:ffff",
            "2001:db8:1:2:a::b",
        ] {
            assert_eq!(key(ip, 64), "2001:db8:1:2::", "{ip}");
        }
        assert_eq!(key("2001:db8:1:3::1", 64), "2001:db8:1:3::");
        assert_eq!(key("2001:db8:1:2:a::b", 48), "2001:db8:1::");
        assert_eq!(key("2001:db8:1:2:a::b", 128), "2001:db8:1:2:a::b");
        assert_eq!(key("::1", 64), "::");
    }

    #[test]
    fn ipv4_clients_are_counted_by_address_however_they_arrive() {
        assert_eq!(key("192.0.2.7", 64), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7", 64), "192.0.2.7");
    }
}
