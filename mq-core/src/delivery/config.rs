//! `[delivery]`: routes, TLS, retries, throttles and concurrency of outbound delivery.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::retry::RetryPolicy;
use super::throttle::ThrottleConfig;
use crate::smtp::client::Timeouts;

/// How mq delivers what it queued.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DeliveryConfig {
    /// Whether `mq serve` delivers at all (default true); off, mail only queues.
    pub enabled: bool,
    /// Deliveries (connections or local writes) under way at once over all cores (default 100).
    pub concurrency: usize,
    /// Messages sent over one connection before it is closed (default 100).
    pub messages_per_connection: usize,
    /// The name in EHLO (default: `[smtp] hostname`).
    pub helo_name: Option<String>,
    /// The port MX hosts are reached on (default 25; tests point it elsewhere).
    pub mx_port: u16,
    /// STARTTLS towards MX hosts (default `opportunistic`).
    pub tls: TlsMode,
    /// A relay for every domain that is neither local nor in `routes`.
    pub smarthost: Option<Smarthost>,
    /// A relay per destination domain, before `smarthost` and MX; the keys are read in their
    /// one spelling ([`mq_plugin_api::normalize_domain`]).
    #[serde(deserialize_with = "crate::domains::keys")]
    pub routes: BTreeMap<String, Smarthost>,
    /// When deferred mail is tried again, and given up.
    pub retry: RetryPolicy,
    /// Per-domain connection and message-rate limits.
    pub throttle: ThrottleConfig,
    /// How long each step of an SMTP session may take (RFC 5321 §4.5.3.2 defaults).
    pub timeouts: Timeouts,
}

impl Default for DeliveryConfig {
    fn default() -> DeliveryConfig {
        DeliveryConfig {
            enabled: true,
            concurrency: 100,
            messages_per_connection: 100,
            helo_name: None,
            mx_port: 25,
            tls: TlsMode::Opportunistic,
            smarthost: None,
            routes: BTreeMap::new(),
            retry: RetryPolicy::default(),
            throttle: ThrottleConfig::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// STARTTLS towards a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum TlsMode {
    /// Never.
    Disabled,
    /// When offered, without checking the certificate (Postfix's `may`).
    #[default]
    Opportunistic,
    /// Always; a server without STARTTLS gets nothing. The certificate is not checked.
    Required,
    /// Always, and the certificate must verify for the host name.
    Verify,
}

/// A relay: `"host:port"`, or a table with TLS and AUTH settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Smarthost {
    /// `host:port`; the host is a name or an IP address (`[::1]:25` for IPv6).
    pub address: String,
    /// STARTTLS towards it (default `opportunistic`).
    pub tls: TlsMode,
    /// User and password for AUTH PLAIN (sent over TLS only).
    pub auth: Option<(String, String)>,
}

impl Smarthost {
    /// The relay at `address` with default settings.
    pub fn new(address: impl Into<String>) -> Smarthost {
        Smarthost {
            address: address.into(),
            tls: TlsMode::Opportunistic,
            auth: None,
        }
    }

    /// The host and port of `address`.
    pub fn host_port(&self) -> Option<(&str, u16)> {
        let (host, port) = self.address.rsplit_once(':')?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Some((host, port.parse().ok()?))
    }
}

impl<'de> Deserialize<'de> for Smarthost {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Smarthost, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Address(String),
            Table {
                address: String,
                #[serde(default)]
                tls: TlsMode,
                user: Option<String>,
                password: Option<String>,
            },
        }
        let smarthost = match Raw::deserialize(deserializer)? {
            Raw::Address(address) => Smarthost::new(address),
            Raw::Table {
                address,
                tls,
                user,
                password,
            } => Smarthost {
                address,
                tls,
                auth: user.zip(password),
            },
        };
        if smarthost.host_port().is_none() {
            return Err(serde::de::Error::custom(format!(
                "smarthost {:?} is not HOST:PORT",
                smarthost.address
            )));
        }
        Ok(smarthost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smarthosts_are_addresses_or_tables() {
        let config: DeliveryConfig = toml::from_str(
            "smarthost = \"relay.example:587\"\n[routes.\"example.com\"]\naddress = \"[::1]:2525\"\ntls = \"required\"\nuser = \"u\"\npassword = \"p\"",
        )
        .unwrap();
        assert_eq!(
            config.smarthost.unwrap().host_port(),
            Some(("relay.example", 587))
        );
        let route = &config.routes["example.com"];
        assert_eq!(route.host_port(), Some(("::1", 2525)));
        assert_eq!(route.tls, TlsMode::Required);
        assert_eq!(route.auth, Some(("u".into(), "p".into())));
        assert!(toml::from_str::<DeliveryConfig>("smarthost = \"no-port\"").is_err());
    }
}
