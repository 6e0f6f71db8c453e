//! `[delivery]`: routes, TLS, retries, throttles and concurrency of outbound delivery.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::retry::RetryPolicy;
use super::throttle::ThrottleConfig;
use crate::smtp::client::Timeouts;

/// How mq delivers what it queued.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DeliveryConfig {
    /// Whether `mq serve` delivers at all (default true); off, mail only queues.
    pub enabled: bool,
    /// Deliveries (connections or local writes) under way at once over all cores (default 100).
    pub concurrency: usize,
    /// Messages sent over one connection before it is closed (default 100), across the jobs
    /// that reuse it from the connection cache.
    pub messages_per_connection: usize,
    /// How long a connection whose last message went well stays open, idle, for the next
    /// message to the same server (default 2 s, as Postfix's `smtp_connection_cache_time_limit`);
    /// `0s` closes every connection when its job ends.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub connection_cache_time: Duration,
    /// How long after it was opened a connection may still be reused (default 300 s, as
    /// Postfix's `smtp_connection_reuse_time_limit`).
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub connection_reuse_time: Duration,
    /// The name in EHLO (default: `[smtp] hostname`).
    pub helo_name: Option<String>,
    /// The port MX hosts are reached on (default 25; tests point it elsewhere).
    pub mx_port: u16,
    /// Whether MX hosts may be reached on loopback addresses (default false). Off, an MX host
    /// on a loopback or unspecified address counts as mq itself: a mail loop. Routes and the
    /// smarthost may name loopback addresses either way; tests turn this on to point MX
    /// records at servers on loopback.
    pub allow_loopback_mx: bool,
    /// Addresses of MX hosts one attempt tries at most (default 5, as Postfix's
    /// `smtp_mx_address_limit`); MX hosts beyond them are not even looked up.
    pub mx_address_limit: usize,
    /// Sessions one attempt opens at most: servers that answered the connection but did not
    /// take the mail (default 2, as Postfix's `smtp_mx_session_limit`).
    pub mx_session_limit: usize,
    /// How long one attempt may spend finding a server that takes the mail: DNS lookups,
    /// then the connections, greetings, EHLO and STARTTLS of every host it tries (default
    /// 10 min). The transaction that follows has its own `timeouts`.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub attempt_timeout: Duration,
    /// How long after its arrival a deferred entry's sender is told, once, that delivery is
    /// delayed (an RFC 3464 notice with `Action: delayed`); `0s`, the default, sends none, as
    /// Postfix's `delay_warning_time`. The notice goes with the first deferral at or past that
    /// age; an entry deferred before it is tried again no later than then, so that the notice
    /// is not late, and a restart does not send it twice (the queue's due time records it).
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub delay_warning_time: Duration,
    /// How long the bounce (or delay warning) of a message whose recipients are at several
    /// domains waits for the jobs of the other domains taken with them (default 10 s). A
    /// message gets one notice for all its recipients that failed together, as Postfix sends
    /// one per queue file; the notice goes when the last of those jobs is done, or after this
    /// long, so that a slow server (its timeouts run to minutes) does not hold the others'
    /// report. What a job reports later goes out in a notice of its own. Ten seconds outlast
    /// a transaction with a server that answers, and stay well within the shutdown timeout.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub bounce_wait: Duration,
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
            connection_cache_time: Duration::from_secs(2),
            connection_reuse_time: Duration::from_mins(5),
            helo_name: None,
            mx_port: 25,
            allow_loopback_mx: false,
            mx_address_limit: 5,
            mx_session_limit: 2,
            attempt_timeout: Duration::from_mins(10),
            delay_warning_time: Duration::ZERO,
            bounce_wait: Duration::from_secs(10),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
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
///
/// Credentials go only where the relay's certificate verifies: with `user` and `password` and
/// no `tls`, the relay gets `tls = "verify"`. An explicit weaker `tls` next to credentials is
/// taken as written, and [`DeliveryConfig::warnings`] names it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Smarthost {
    /// `host:port`; the host is a name or an IP address (`[::1]:25` for IPv6).
    pub address: String,
    /// STARTTLS towards it as configured; `None` means the default of [`Smarthost::tls_mode`].
    pub tls: Option<TlsMode>,
    /// User and password for AUTH PLAIN (sent over TLS only).
    pub auth: Option<(String, String)>,
    /// PEM file of the certificates that alone are trusted to verify the relay (Postfix's
    /// `smtp_tls_CAfile`); without it, the Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

impl Smarthost {
    /// The relay at `address` with default settings.
    pub fn new(address: impl Into<String>) -> Smarthost {
        Smarthost {
            address: address.into(),
            tls: None,
            auth: None,
            ca_file: None,
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

    /// STARTTLS towards the relay: as configured, else `verify` when it has credentials (they
    /// must not reach a server that only claims to be the relay), else `opportunistic`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::delivery::{Smarthost, TlsMode};
    ///
    /// let mut relay = Smarthost::new("relay.example:587");
    /// assert_eq!(relay.tls_mode(), TlsMode::Opportunistic);
    /// relay.auth = Some(("user".into(), "secret".into()));
    /// assert_eq!(relay.tls_mode(), TlsMode::Verify);
    /// relay.tls = Some(TlsMode::Required);
    /// assert_eq!(relay.tls_mode(), TlsMode::Required);
    /// ```
    pub fn tls_mode(&self) -> TlsMode {
        match (self.tls, &self.auth) {
            (Some(mode), _) => mode,
            (None, Some(_)) => TlsMode::Verify,
            (None, None) => TlsMode::Opportunistic,
        }
    }

    /// Whether the relay's credentials may go to a server whose certificate was not verified,
    /// because its `tls` was set below `verify`.
    pub fn sends_credentials_unverified(&self) -> bool {
        self.auth.is_some() && self.tls_mode() != TlsMode::Verify
    }
}

impl fmt::Debug for Smarthost {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smarthost")
            .field("address", &self.address)
            .field("tls", &self.tls)
            .field(
                "auth",
                &self.auth.as_ref().map(|(user, _)| (user, REDACTED)),
            )
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What `Debug` prints in place of a password.
const REDACTED: &str = "<redacted>";

impl serde::Serialize for Smarthost {
    /// As a table; the password is never written out (`<redacted>`).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("address", &self.address)?;
        if let Some(tls) = &self.tls {
            map.serialize_entry("tls", tls)?;
        }
        if let Some((user, _)) = &self.auth {
            map.serialize_entry("user", user)?;
            map.serialize_entry("password", REDACTED)?;
        }
        if let Some(ca_file) = &self.ca_file {
            map.serialize_entry("ca_file", ca_file)?;
        }
        map.end()
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
                tls: Option<TlsMode>,
                user: Option<String>,
                password: Option<String>,
                ca_file: Option<PathBuf>,
            },
        }
        let smarthost = match Raw::deserialize(deserializer)? {
            Raw::Address(address) => Smarthost::new(address),
            Raw::Table {
                address,
                tls,
                user,
                password,
                ca_file,
            } => Smarthost {
                address,
                tls,
                auth: user.zip(password),
                ca_file,
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

impl DeliveryConfig {
    /// Settings that work but are probably not meant, one sentence each: a relay given
    /// credentials and a `tls` below `verify`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::delivery::DeliveryConfig;
    ///
    /// let config: DeliveryConfig = toml::from_str(
    ///     "[routes.\"example.com\"]\naddress = \"relay.example:587\"\ntls = \"required\"\n\
    ///      user = \"u\"\npassword = \"p\"",
    /// ).unwrap();
    /// assert!(config.warnings()[0].contains("[delivery.routes.\"example.com\"]"));
    /// ```
    pub fn warnings(&self) -> Vec<String> {
        let relays = self
            .smarthost
            .iter()
            .map(|relay| ("[delivery.smarthost]".to_owned(), relay))
            .chain(
                self.routes
                    .iter()
                    .map(|(domain, relay)| (format!("[delivery.routes.{domain:?}]"), relay)),
            );
        relays
            .filter(|(_, relay)| relay.sends_credentials_unverified())
            .map(|(section, relay)| {
                format!(
                    "{section} has a user and password but tls = \"{}\": the password may go \
                     to a server whose certificate is not verified; use tls = \"verify\"",
                    relay.tls_mode()
                )
            })
            .collect()
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Opportunistic => "opportunistic",
            TlsMode::Required => "required",
            TlsMode::Verify => "verify",
        })
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
        assert_eq!(route.tls, Some(TlsMode::Required));
        assert_eq!(route.auth, Some(("u".into(), "p".into())));
        assert!(toml::from_str::<DeliveryConfig>("smarthost = \"no-port\"").is_err());
    }

    #[test]
    fn credentials_without_a_tls_setting_mean_verify_and_a_weaker_one_is_warned_about() {
        let config: DeliveryConfig = toml::from_str(
            "[smarthost]\naddress = \"relay.example:587\"\nuser = \"u\"\npassword = \"p\"\n\
             [routes.\"example.com\"]\naddress = \"relay.example:25\"\ntls = \"opportunistic\"\n\
             user = \"u\"\npassword = \"p\"",
        )
        .unwrap();
        assert_eq!(
            config.smarthost.as_ref().unwrap().tls_mode(),
            TlsMode::Verify
        );
        assert_eq!(
            config.routes["example.com"].tls_mode(),
            TlsMode::Opportunistic
        );
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("example.com"), "{warnings:?}");
        assert!(warnings[0].contains("\"opportunistic\""), "{warnings:?}");
    }

    #[test]
    fn a_relay_password_never_shows_in_debug_output() {
        let config: DeliveryConfig = toml::from_str(
            "[smarthost]\naddress = \"relay.example:587\"\nuser = \"u\"\npassword = \"hunter2\"",
        )
        .unwrap();
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
