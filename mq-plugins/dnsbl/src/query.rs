//! The name to ask a DNSBL zone about a client (RFC 5782 §2.1 and §2.4).

use std::net::IpAddr;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The DNS name under which `zone` lists `ip`: an IPv4 address's octets reversed
/// (`192.0.2.1` → `1.2.0.192.zone`), an IPv6 address's 32 nibbles reversed, each its own
/// label. An IPv4-mapped IPv6 address is asked as the IPv4 address it carries; a trailing dot
/// on `zone` is dropped.
///
/// # Examples
///
/// ```
/// use mq_plugin_dnsbl::query_name;
///
/// assert_eq!(query_name("192.0.2.1".parse().unwrap(), "zen.example"), "1.2.0.192.zen.example");
/// assert_eq!(
///     query_name("2001:db8::1".parse().unwrap(), "zen.example."),
///     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example",
/// );
/// ```
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    name.push(char::from(HEX[usize::from(nibble)]));
                    name.push('.');
                }
            }
            name.push_str(zone);
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_octets_are_reversed() {
        let name = query_name("192.168.42.23".parse().unwrap(), "bl.example");
        assert_eq!(name, "23.42.168.192.bl.example");
    }

    /// RFC 5782 §2.4's own example.
    #[test]
    fn ipv6_nibbles_are_reversed_one_label_each() {
        let ip = "2001:db8:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            query_name(ip, "ugly.example.com"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"
        );
    }

    #[test]
    fn an_ipv6_name_has_32_nibble_labels_before_the_zone() {
        let name = query_name("ffff::".parse().unwrap(), "z.example");
        let labels: Vec<&str> = name.split('.').collect();
        assert_eq!(labels.len(), 32 + 2);
        assert_eq!(&labels[28..], ["f", "f", "f", "f", "z", "example"]);
    }

    #[test]
    fn a_mapped_ipv4_client_is_asked_as_ipv4() {
        let name = query_name("::ffff:192.0.2.1".parse().unwrap(), "zen.example");
        assert_eq!(name, "1.2.0.192.zen.example");
    }
}
