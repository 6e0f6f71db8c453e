//! [`Network`]: an address or a CIDR network, for `allow` and `listed`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;

/// An IPv4 or IPv6 network such as `192.0.2.0/24` or `2001:db8::/32`; a bare address is a
/// network of one.
///
/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4
/// clients) are compared as the IPv4 address they carry.
///
/// # Examples
///
/// ```
/// use mq_plugin_dnsbl::Network;
///
/// let net: Network = "192.0.2.0/24".parse().unwrap();
/// assert!(net.contains("192.0.2.77".parse().unwrap()));
/// assert!(net.contains("::ffff:192.0.2.77".parse().unwrap()));
/// assert!(!net.contains("198.51.100.1".parse().unwrap()));
/// assert_eq!("::1".parse::<Network>().unwrap().to_string(), "::1/128");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Network {
    /// The first address, host bits cleared.
    address: IpAddr,
    prefix: u8,
}

/// A text that is neither an IP address nor a network in CIDR notation.
///
/// # Examples
///
/// ```
/// let error = "192.0.2.0/33".parse::<mq_plugin_dnsbl::Network>().unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     r#""192.0.2.0/33" is not an address or a network such as "192.0.2.0/24""#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidNetwork(String);

impl fmt::Display for InvalidNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an address or a network such as \"192.0.2.0/24\"",
            self.0
        )
    }
}

impl std::error::Error for InvalidNetwork {}

impl Network {
    /// The loopback networks, `127.0.0.0/8` and `::1/128`: the default `allow`.
    pub fn loopback() -> Vec<Network> {
        vec![
            Network::masked(IpAddr::from([127, 0, 0, 0]), 8),
            Network::masked(std::net::Ipv6Addr::LOCALHOST.into(), 128),
        ]
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.is_ipv4() && Network::masked(ip, self.prefix) == *self
    }

    /// Whether this is an IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.address.is_ipv4()
    }

    /// The network of `address` with `prefix` bits, host bits cleared; `prefix` is at most the
    /// family's width.
    fn masked(address: IpAddr, prefix: u8) -> Network {
        let address = match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
        };
        Network { address, prefix }
    }
}

impl FromStr for Network {
    type Err = InvalidNetwork;

    fn from_str(text: &str) -> Result<Network, InvalidNetwork> {
        let invalid = || InvalidNetwork(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address
            .parse::<IpAddr>()
            .map_err(|_| invalid())?
            .to_canonical();
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
        };
        if prefix > bits {
            return Err(invalid());
        }
        Ok(Network::masked(address, prefix))
    }
}

impl TryFrom<String> for Network {
    type Error = InvalidNetwork;

    fn try_from(text: String) -> Result<Network, InvalidNetwork> {
        text.parse()
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn host_bits_are_cleared() {
        assert_eq!(net("192.0.2.77/24").to_string(), "192.0.2.0/24");
        assert_eq!(net("2001:db8::1/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn prefixes_zero_and_full_are_all_and_one() {
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("::/0").contains(ip("2001:db8::9")));
        assert!(net("192.0.2.1").contains(ip("192.0.2.1")));
        assert!(!net("192.0.2.1").contains(ip("192.0.2.2")));
    }

    #[test]
    fn families_do_not_mix_except_through_mapped_addresses() {
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(!net("::/0").contains(ip("192.0.2.1")));
        assert!(net("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
        assert_eq!(net("::ffff:192.0.2.0/24"), net("192.0.2.0/24"));
    }

    #[test]
    fn the_loopback_networks_hold_both_loopbacks() {
        let loopback = Network::loopback();
        for client in ["127.0.0.1", "127.9.9.9", "::1"] {
            assert!(loopback.iter().any(|n| n.contains(ip(client))), "{client}");
        }
        assert!(!loopback.iter().any(|n| n.contains(ip("192.0.2.1"))));
    }

    #[test]
    fn bad_texts_are_refused() {
        for text in [
            "",
            "192.0.2",
            "192.0.2.0/",
            "192.0.2.0/33",
            "::/129",
            "x/8",
            "10/8",
        ] {
            assert!(text.parse::<Network>().is_err(), "{text:?}");
        }
    }
}
