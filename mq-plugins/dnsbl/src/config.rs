//! `[plugins.dnsbl]`: which zones to ask, how long to wait, which answers list a client, and
//! which clients are never asked about.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::Network;

/// The longest zone name: with the 64 characters of an IPv6 query prefix, a query name must
/// stay within DNS's 253.
const MAX_ZONE_LEN: usize = 253 - 64;

/// The plugin's own keys in `[plugins.dnsbl]`. Every key is optional; without `zones` the
/// plugin asks nothing and lets every client in.
///
/// The hook's deadline is the engine's (`[engine.plugins.dnsbl] timeout`), not read here: the
/// per-lookup wait is `lookup_timeout`, and each lookup is bounded by the shorter of the two.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_dnsbl::DnsblConfig;
///
/// let config: DnsblConfig = toml::from_str(r#"
///     zones = ["zen.example", "bl.example"]
///     lookup_timeout = "500ms"
///     listed = ["127.0.0.2", "127.0.0.4/30"]
///     allow = ["127.0.0.0/8", "10.0.0.0/8"]
/// "#).unwrap();
/// assert_eq!(config.lookup_timeout, Duration::from_millis(500));
/// assert!(config.validate().is_ok());
/// assert!(DnsblConfig::default().validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DnsblConfig {
    /// The DNSBL zones to ask, all at once; the first in this order that lists the client
    /// names it in the reply. Empty (the default): the plugin does nothing.
    pub zones: Vec<String>,
    /// How long to wait for each zone's answer (default 2 s): `"200ms"`, `"2s"`, or whole
    /// seconds. A zone that does not answer in time does not list the client.
    #[serde(deserialize_with = "mq_plugin_api::duration::deserialize")]
    pub lookup_timeout: Duration,
    /// The answers (IPv4 addresses or networks) that list a client. Empty (the default): any
    /// answer in `127.0.0.0/8` except `127.255.255.0/24`, which DNSBLs use for errors such as
    /// "query refused".
    pub listed: Vec<Network>,
    /// Clients never asked about (default: loopback, `127.0.0.0/8` and `::1`). Clients in the
    /// server's relay networks are never asked about either.
    pub allow: Vec<Network>,
}

impl Default for DnsblConfig {
    fn default() -> DnsblConfig {
        DnsblConfig {
            zones: Vec::new(),
            lookup_timeout: Duration::from_secs(2),
            listed: Vec::new(),
            allow: Network::loopback(),
        }
    }
}

/// A section the plugin refuses: mq then refuses to start, naming the plugin.
///
/// # Examples
///
/// ```
/// use mq_plugin_dnsbl::DnsblConfig;
///
/// let config: DnsblConfig = toml::from_str(r#"zones = ["zen..example"]"#).unwrap();
/// assert_eq!(
///     config.validate().unwrap_err().to_string(),
///     r#"zones: "zen..example" is not a DNS zone name (empty label)"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidConfig {
    /// A zone is not a DNS name fit to put a client's address in front of.
    Zone {
        /// The zone as configured.
        zone: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A `listed` entry is IPv6: DNSBL answers are A records.
    Listed(Network),
    /// `lookup_timeout` is zero.
    Timeout,
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidConfig::Zone { zone, why } => {
                write!(f, "zones: {zone:?} is not a DNS zone name ({why})")
            }
            InvalidConfig::Listed(network) => {
                write!(
                    f,
                    "listed: {network} is not IPv4; DNSBL answers are A records"
                )
            }
            InvalidConfig::Timeout => f.write_str("lookup_timeout must be longer than zero"),
        }
    }
}

impl std::error::Error for InvalidConfig {}

impl DnsblConfig {
    /// Checks the zones, the `listed` answers and the timeout before the plugin runs.
    ///
    /// # Errors
    ///
    /// The first zone that is not a DNS name (or is listed twice), an IPv6 `listed` entry, or
    /// a zero `lookup_timeout`.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        for (index, zone) in self.zones.iter().enumerate() {
            let invalid = |why| InvalidConfig::Zone {
                zone: zone.clone(),
                why,
            };
            check_zone(zone).map_err(invalid)?;
            let same = |other: &String| trimmed(other).eq_ignore_ascii_case(trimmed(zone));
            if self.zones[..index].iter().any(same) {
                return Err(invalid("listed twice"));
            }
        }
        if let Some(network) = self.listed.iter().find(|n| !n.is_ipv4()) {
            return Err(InvalidConfig::Listed(*network));
        }
        if self.lookup_timeout.is_zero() {
            return Err(InvalidConfig::Timeout);
        }
        Ok(())
    }
}

fn trimmed(zone: &str) -> &str {
    zone.strip_suffix('.').unwrap_or(zone)
}

/// A zone is host-name-like labels (letters, digits, `-`, `_`) of 1 to 63 characters, with at
/// most one trailing dot, short enough for the longest query name.
fn check_zone(zone: &str) -> Result<(), &'static str> {
    let zone = trimmed(zone);
    if zone.is_empty() {
        return Err("empty");
    }
    if zone.len() > MAX_ZONE_LEN {
        return Err("longer than 189 characters");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    for label in zone.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("a label longer than 63 characters");
        }
        if !label.chars().all(allowed) {
            return Err("only letters, digits, '-' and '_' in labels");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DnsblConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn an_empty_section_is_the_default_and_valid() {
        let config = parse("").unwrap();
        assert_eq!(config, DnsblConfig::default());
        assert!(config.zones.is_empty());
        assert_eq!(config.lookup_timeout, Duration::from_secs(2));
        assert_eq!(config.allow, Network::loopback());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn durations_take_units_and_plain_seconds() {
        let timeout = |text: &str| parse(text).unwrap().lookup_timeout;
        assert_eq!(timeout("lookup_timeout = 3"), Duration::from_secs(3));
        assert_eq!(
            timeout("lookup_timeout = \"200ms\""),
            Duration::from_millis(200)
        );
        assert_eq!(timeout("lookup_timeout = \"1m\""), Duration::from_mins(1));
        // The same forms as every mq duration, hours included.
        assert_eq!(timeout("lookup_timeout = \"2h\""), Duration::from_hours(2));
        for bad in ["\"2 s\"", "\"soon\"", "-1", "true"] {
            assert!(parse(&format!("lookup_timeout = {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_engines_timeout_key_is_not_ours_and_unknown_keys_are_refused() {
        assert!(parse("timeout = \"2s\"").is_err());
        assert!(parse("zone = [\"zen.example\"]").is_err());
        assert!(parse("allow = [\"10.0.0.0/33\"]").is_err());
    }

    #[test]
    fn zones_must_be_dns_names() {
        for (zone, why) in [
            ("", "empty"),
            (".", "empty"),
            ("zen..example", "empty label"),
            (".zen.example", "empty label"),
            ("zen example", "only letters, digits, '-' and '_' in labels"),
            ("zen.exämple", "only letters, digits, '-' and '_' in labels"),
        ] {
            let config = DnsblConfig {
                zones: vec![zone.to_owned()],
                ..DnsblConfig::default()
            };
            let expected = InvalidConfig::Zone {
                zone: zone.to_owned(),
                why,
            };
            assert_eq!(config.validate(), Err(expected), "{zone:?}");
        }
        let long = DnsblConfig {
            zones: vec![format!("{}.example", "a".repeat(64))],
            ..DnsblConfig::default()
        };
        assert!(long.validate().is_err());
        let longest = DnsblConfig {
            zones: vec![["a".repeat(63), "b".repeat(63), "c".repeat(61)].join(".")],
            ..DnsblConfig::default()
        };
        assert_eq!(longest.validate(), Ok(()));
    }

    #[test]
    fn a_zone_listed_twice_is_refused_whatever_its_case_or_dot() {
        let config = parse("zones = [\"zen.example\", \"ZEN.example.\"]").unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert_eq!(
            error,
            "zones: \"ZEN.example.\" is not a DNS zone name (listed twice)"
        );
    }

    #[test]
    fn ipv6_listed_answers_and_a_zero_timeout_are_refused() {
        let config = parse("listed = [\"::1\"]").unwrap();
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "listed: ::1/128 is not IPv4; DNSBL answers are A records"
        );
        let config = parse("lookup_timeout = \"0s\"").unwrap();
        assert_eq!(config.validate(), Err(InvalidConfig::Timeout));
    }
}
