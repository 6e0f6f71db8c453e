//! `[dns]`: which nameservers to ask, how long to wait, how much to remember.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Where the system's nameservers are listed.
pub(crate) const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The nameserver when none is configured and `/etc/resolv.conf` lists none.
pub(crate) const FALLBACK_NAMESERVER: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 53);

/// `[dns]`: the stub resolver's nameservers and limits.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_core::dns::DnsConfig;
///
/// let config: DnsConfig = toml::from_str(r#"
///     nameservers = ["127.0.0.1:5353", "::1"]
///     timeout = "500ms"
/// "#).unwrap();
/// assert_eq!(config.nameservers[1], "[::1]:53".parse().unwrap());
/// assert_eq!(config.timeout, Duration::from_millis(500));
/// assert_eq!(config.attempts, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DnsConfig {
    /// The recursive resolvers to ask, in order; a bare address means port 53. Empty (the
    /// default) means the `nameserver` lines of `/etc/resolv.conf`, or `127.0.0.1:53` if it
    /// has none.
    #[serde(deserialize_with = "nameservers")]
    pub nameservers: Vec<SocketAddr>,
    /// How long to wait for one answer from one nameserver (default 2 s).
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub timeout: Duration,
    /// How many rounds over all nameservers before a lookup times out (default 2).
    pub attempts: u32,
    /// How many answers each worker's cache holds (default 10,000); 0 turns the cache off.
    pub cache_size: usize,
    /// How many bytes each worker's cache holds at most, all answers together (default
    /// 4 MiB); an answer larger than a tenth of it is not cached.
    pub cache_bytes: usize,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        DnsConfig {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 2,
            cache_size: 10_000,
            cache_bytes: 4 << 20,
        }
    }
}

impl DnsConfig {
    /// A default configuration with the nameservers and options of a `resolv.conf` text.
    ///
    /// Reads `nameserver ADDRESS` lines and `options timeout:N attempts:N`; other lines,
    /// comments and addresses with a zone (`fe80::1%eth0`) are skipped, since a stub resolver
    /// has no use for search lists and cannot name an interface portably.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::dns::DnsConfig;
    ///
    /// let config = DnsConfig::from_resolv_conf("# local\nnameserver 192.0.2.53\n");
    /// assert_eq!(config.nameservers, ["192.0.2.53:53".parse().unwrap()]);
    /// ```
    pub fn from_resolv_conf(text: &str) -> DnsConfig {
        let mut config = DnsConfig::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => config.nameservers.extend(words.next().and_then(address)),
                Some("options") => words.for_each(|option| config.apply_option(option)),
                _ => {}
            }
        }
        config
    }

    /// The configured nameservers, else those of `/etc/resolv.conf`, else `127.0.0.1:53`.
    ///
    /// A missing `/etc/resolv.conf` is one without nameservers, as for glibc; one that exists
    /// but cannot be read is an error, since guessing would hide a broken setup.
    pub(crate) fn effective_nameservers(&self) -> io::Result<Vec<SocketAddr>> {
        if !self.nameservers.is_empty() {
            return Ok(self.nameservers.clone());
        }
        let text = match std::fs::read_to_string(RESOLV_CONF) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error),
        };
        let listed = DnsConfig::from_resolv_conf(&text).nameservers;
        Ok(if listed.is_empty() {
            vec![FALLBACK_NAMESERVER]
        } else {
            listed
        })
    }

    fn apply_option(&mut self, option: &str) {
        let Some((key, value)) = option.split_once(':') else {
            return;
        };
        let Ok(value) = value.parse::<u32>() else {
            return;
        };
        match key {
            "timeout" => self.timeout = Duration::from_secs(u64::from(value.clamp(1, 30))),
            "attempts" => self.attempts = value.clamp(1, 5),
            _ => {}
        }
    }
}

/// `"192.0.2.53"` (port 53), `"192.0.2.53:5353"`, `"::1"` or `"[::1]:5353"`.
fn address(text: &str) -> Option<SocketAddr> {
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

fn nameservers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| {
            address(text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid nameserver {text:?}: expected e.g. \"127.0.0.1\" or \"[::1]:53\""
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_gives_nameservers_and_options() {
        let config = DnsConfig::from_resolv_conf(
            "search example.org\nnameserver 192.0.2.1 # first\n  nameserver ::1\n\
             nameserver fe80::1%eth0\nnameserver bogus\n;nameserver 192.0.2.9\n\
             options ndots:2 timeout:3 attempts:9\n",
        );
        let expected: Vec<SocketAddr> =
            vec!["192.0.2.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()];
        assert_eq!(config.nameservers, expected);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert_eq!(config.attempts, 5);
    }

    #[test]
    fn bad_nameservers_and_unknown_keys_are_refused() {
        assert!(toml::from_str::<DnsConfig>(r#"nameservers = ["example.org"]"#).is_err());
        assert!(toml::from_str::<DnsConfig>("retries = 3").is_err());
        let config: DnsConfig = toml::from_str("timeout = 1\ncache_size = 0").unwrap();
        assert_eq!(config.timeout, Duration::from_secs(1));
        assert_eq!(config.cache_size, 0);
    }
}
