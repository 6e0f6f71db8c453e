//! `[smtp]`: the server's address, names, limits, timeouts, TLS and AUTH.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::relay::Cidr;
use crate::config::duration;

/// The SMTP server's settings. Every key has a default, so `mq serve` runs with none.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// Where to listen (default `127.0.0.1:2525`).
    pub listen: SocketAddr,
    /// The name in the greeting, the EHLO reply and Received fields (default `localhost`).
    pub hostname: String,
    /// Domains mq delivers itself; mail to them is accepted from anyone (default `localhost`).
    pub domains: Vec<String>,
    /// Clients that may relay to any domain without AUTH (default: loopback only).
    pub relay_networks: Vec<Cidr>,
    /// The largest message accepted, in bytes (default 10,240,000, as Postfix).
    pub max_message_size: usize,
    /// RCPT commands per message (default 100); what a plugin expands one into is the
    /// plugin's to bound.
    pub max_recipients: usize,
    /// The longest command line, CRLF included (default 512, RFC 5321 §4.5.3.1.4).
    pub max_line_length: usize,
    /// Connections at once over all clients (default 1,000).
    pub max_connections: usize,
    /// Connections at once from one client address (default 50, as Postfix).
    pub max_connections_per_ip: usize,
    /// Errors a session may make before it is disconnected (default 20, as Postfix).
    pub max_errors: u32,
    /// How long to wait for a command (default 5 min, RFC 5321 §4.5.3.2.7).
    #[serde(deserialize_with = "duration")]
    pub command_timeout: Duration,
    /// How long to wait for each block of message data (default 3 min, §4.5.3.2.6).
    #[serde(deserialize_with = "duration")]
    pub data_timeout: Duration,
    /// Certificate and key for STARTTLS; without them STARTTLS and AUTH are not offered.
    pub tls: Option<TlsFiles>,
    /// Users who may AUTH (over TLS only).
    pub auth: AuthConfig,
}

/// PEM files for STARTTLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// `[smtp.auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// User name → password hash (`$6$…` SHA-512-crypt or `$argon2id$…`).
    pub users: BTreeMap<String, String>,
    /// Password checks running at once over all sessions (default: one per core). Each Argon2
    /// check holds its memory cost while it runs.
    pub max_verifications: Option<usize>,
    /// Checks that may wait for a free slot; past them AUTH is answered `454 4.7.0` (default
    /// 100).
    pub max_waiting: usize,
    /// Failed logins one client address may have in `failure_window`; past them its AUTH
    /// commands get `421 4.7.0` and the connection is closed (default 10; 0 turns it off).
    pub max_failures: u32,
    /// How long failed logins count against an address (default 60 s, as Postfix's
    /// `anvil_rate_time_unit`).
    #[serde(deserialize_with = "duration")]
    pub failure_window: Duration,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            users: BTreeMap::new(),
            max_verifications: None,
            max_waiting: 100,
            max_failures: 10,
            failure_window: Duration::from_mins(1),
        }
    }
}

impl AuthConfig {
    /// How many password checks may run at once: `max_verifications`, or one per core.
    pub fn verifications(&self) -> usize {
        self.max_verifications
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        SmtpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            hostname: "localhost".to_owned(),
            domains: vec!["localhost".to_owned()],
            relay_networks: Cidr::loopback(),
            max_message_size: 10_240_000,
            max_recipients: 100,
            max_line_length: 512,
            max_connections: 1_000,
            max_connections_per_ip: 50,
            max_errors: 20,
            command_timeout: Duration::from_mins(5),
            data_timeout: Duration::from_mins(3),
            tls: None,
            auth: AuthConfig::default(),
        }
    }
}

impl SmtpConfig {
    /// Whether mail to `domain` is delivered here.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .any(|local| local.eq_ignore_ascii_case(domain))
    }
}
