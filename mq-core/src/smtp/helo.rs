//! Which HELO/EHLO names are taken: a host name or an address, as Postfix's
//! `reject_invalid_helo_hostname` decides.
//!
//! The name goes into the Received field (`from NAME (unknown [IP])`), so a name with a space,
//! parentheses, brackets or a semicolon could write a false hop in front of the real one. Only
//! letters, digits, `-`, `_` and dots in a host name, or an address, can reach it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The longest host name (RFC 1035 §2.3.4, as Postfix).
const MAX_NAME: usize = 255;
/// The longest label of a host name.
const MAX_LABEL: usize = 63;

/// Whether `name` is a host name, an address literal (`[192.0.2.1]`, `[IPv6:::1]`) or a bare
/// address, as real clients send: `localhost`, `mail.example.org`, `my_host`, `[127.0.0.1]`.
pub(crate) fn is_valid(name: &str) -> bool {
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return is_address_literal(literal);
    }
    name.parse::<IpAddr>().is_ok() || is_hostname(name)
}

/// The inside of `[...]`: an IPv4 address, or `IPv6:` and an IPv6 address (RFC 5321 §4.1.3).
fn is_address_literal(literal: &str) -> bool {
    match literal.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => literal[5..].parse::<Ipv6Addr>().is_ok(),
        _ => literal.parse::<Ipv4Addr>().is_ok(),
    }
}

/// Labels of letters, digits, `-` and `_`, a hyphen never first or last in one; at most one
/// trailing dot.
fn is_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_real_clients_send_is_taken() {
        for name in [
            "localhost",
            "client.example",
            "mail.example.org.",
            "MX-1.Example.NET",
            "my_host",
            "host42",
            "123",
            "[127.0.0.1]",
            "[IPv6:::1]",
            "[ipv6:2001:db8::5]",
            "192.0.2.7",
            "2001:db8::5",
        ] {
            assert!(is_valid(name), "{name:?}");
        }
    }

    #[test]
    fn names_that_could_forge_a_received_field_are_refused() {
        for name in [
            "mail.bank.example (mail.bank.example [10.0.0.5])",
            "a b",
            "a\tb",
            "a(b",
            "a)b",
            "[10.0.0.5];",
            "a;b",
            "[a]",
            "[127.0.0.1",
            "[IPv6:nope]",
            "[::1]",
            "",
            ".",
            "a..b",
            ".a",
            "-a.example",
            "a-.example",
            "a/b",
            "a@b",
            "héllo",
        ] {
            assert!(!is_valid(name), "{name:?}");
        }
        assert!(!is_valid(&format!("{}.example", "a".repeat(64))));
        assert!(!is_valid(&"a.".repeat(129)));
    }
}
