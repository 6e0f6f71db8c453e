//! `[smtp]`: the server's address, names, limits, timeouts, TLS and AUTH.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::relay::Cidr;
use crate::config::duration;

/// The shortest command line a server must take (RFC 5321 §4.5.3.1.4).
const MIN_LINE_LENGTH: usize = 512;

/// The SMTP server's settings. Every key has a default, so `mq serve` runs with none.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// Where to listen (default `127.0.0.1:2525`).
    pub listen: SocketAddr,
    /// The name in the greeting, the EHLO reply and Received fields (default `localhost`).
    pub hostname: String,
    /// Domains mq delivers itself; mail to them is accepted from anyone (default `localhost`).
    /// Read in their one spelling ([`mq_plugin_api::normalize_domain`]).
    #[serde(deserialize_with = "crate::domains::list")]
    pub domains: Vec<String>,
    /// The domain a recipient without one gets, `RCPT TO:<user>` becoming `user@` it (Postfix's
    /// `$myorigin`); default the first of `domains`, else `hostname`. `postmaster` without a
    /// domain, in any case, always goes to the first of `domains` (RFC 5321 §4.5.1).
    pub default_domain: Option<String>,
    /// A file naming the recipients of the local domains, in Postfix's `local_recipient_maps`
    /// form: one `user`, `user@domain` or `@domain` per line, anything after it ignored, `#`
    /// comments. Other local recipients are refused at RCPT (`550 5.1.1`); without a file,
    /// every local part that can be a mailbox is taken. Re-read when it changes.
    pub local_recipient_map: Option<PathBuf>,
    /// Clients that may relay to any domain without AUTH (default: loopback only).
    pub relay_networks: Vec<Cidr>,
    /// The largest message accepted, in bytes (default 10,240,000, as Postfix).
    pub max_message_size: usize,
    /// `Received` fields a message may carry; one with more is refused with `554 5.4.0` as a
    /// mail loop (default 50, as Postfix's `hopcount_limit`).
    pub hopcount_limit: usize,
    /// RCPT commands per message (default 100); what a plugin expands one into is the
    /// plugin's to bound.
    pub max_recipients: usize,
    /// The longest command line, CRLF included (default 512, RFC 5321 §4.5.3.1.4).
    pub max_line_length: usize,
    /// Connections at once over all clients (default 1,000).
    pub max_connections: usize,
    /// Connections at once from one client address (default 50, as Postfix); an IPv6 client
    /// is counted by its network of `ipv6_prefix` bits.
    pub max_connections_per_ip: usize,
    /// Clients `max_connections_per_ip` does not apply to (default: `relay_networks`, as
    /// Postfix exempts `$mynetworks`); `[]` exempts none. They still count towards
    /// `max_connections`.
    pub connection_limit_exemptions: Option<Vec<Cidr>>,
    /// How many leading bits of an IPv6 client's address name the client for the per-client
    /// limits (default 64: one host's network).
    pub ipv6_prefix: u8,
    /// Errors a session may make before it is disconnected (default 20, as Postfix).
    pub max_errors: u32,
    /// How long to wait for a command (default 5 min, RFC 5321 §4.5.3.2.7).
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub command_timeout: Duration,
    /// How long to wait for each block of message data (default 3 min, §4.5.3.2.6).
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub data_timeout: Duration,
    /// Certificate and key for STARTTLS; without them STARTTLS and AUTH are not offered.
    pub tls: Option<TlsFiles>,
    /// Users who may AUTH (over TLS only).
    pub auth: AuthConfig,
    /// A directory to record every session into, one file each (off by default): the client's
    /// address, every command and message as sent (credentials and mail content included),
    /// and mq's replies. `testkit::replay` and `mq replay` run such a file again.
    pub record: Option<PathBuf>,
}

/// PEM files for STARTTLS.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// `[smtp.auth]`.
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// User name → password hash (`$6$…` SHA-512-crypt or `$argon2id$…`). The hashes are never
    /// written out: `<redacted>` instead.
    #[serde(serialize_with = "redacted_values")]
    pub users: BTreeMap<String, String>,
    /// A file of more users, one `user:hash` per line (`#` comments and blank lines ignored),
    /// read with `users` and read again when it changes (default: none).
    pub users_file: Option<PathBuf>,
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
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub failure_window: Duration,
}

/// The user names, each with `<redacted>` for its hash.
fn redacted_values<S: serde::Serializer>(
    users: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(users.keys().map(|user| (user, crate::config::REDACTED)))
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            users: BTreeMap::new(),
            users_file: None,
            max_verifications: None,
            max_waiting: 100,
            max_failures: 10,
            failure_window: Duration::from_mins(1),
        }
    }
}

impl AuthConfig {
    /// `users`, with those of `users_file` added (a user in both keeps the file's hash).
    ///
    /// # Errors
    ///
    /// The file cannot be read, or a line is not `user:hash`; the text names the file and line.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let file = dir.path().join("users");
    /// std::fs::write(&file, "# mail users\nbob:$6$salt$hash\n")?;
    /// let mut auth = mq_core::smtp::AuthConfig::default();
    /// auth.users.insert("alice".into(), "$6$x$y".into());
    /// auth.users_file = Some(file);
    /// let users = auth.all_users()?;
    /// assert_eq!(users.keys().collect::<Vec<_>>(), ["alice", "bob"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn all_users(&self) -> Result<BTreeMap<String, String>, String> {
        let mut users = self.users.clone();
        let Some(path) = &self.users_file else {
            return Ok(users);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("users_file {}: {error}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match line.split_once(':') {
                Some((user, hash)) if !user.trim().is_empty() && !hash.trim().is_empty() => {
                    users.insert(user.trim().to_owned(), hash.trim().to_owned());
                }
                _ => {
                    return Err(format!(
                        "users_file {} line {}: not user:hash",
                        path.display(),
                        number + 1
                    ));
                }
            }
        }
        Ok(users)
    }

    /// How many password checks may run at once: `max_verifications`, or one per core.
    pub fn verifications(&self) -> usize {
        self.max_verifications
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

impl fmt::Debug for AuthConfig {
    /// The user names; a hash, which can be attacked offline, is `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users = self.users.keys().map(|user| (user, "<redacted>"));
        f.debug_struct("AuthConfig")
            .field("users", &users.collect::<BTreeMap<_, _>>())
            .field("users_file", &self.users_file)
            .field("max_verifications", &self.max_verifications)
            .field("max_waiting", &self.max_waiting)
            .field("max_failures", &self.max_failures)
            .field("failure_window", &self.failure_window)
            .finish()
    }
}

impl Default for SmtpConfig {
    fn default() -> SmtpConfig {
        SmtpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            hostname: "localhost".to_owned(),
            domains: vec!["localhost".to_owned()],
            default_domain: None,
            local_recipient_map: None,
            relay_networks: Cidr::loopback(),
            max_message_size: 10_240_000,
            hopcount_limit: 50,
            max_recipients: 100,
            max_line_length: 512,
            max_connections: 1_000,
            max_connections_per_ip: 50,
            connection_limit_exemptions: None,
            ipv6_prefix: super::client_key::DEFAULT_IPV6_PREFIX,
            max_errors: 20,
            command_timeout: Duration::from_mins(5),
            data_timeout: Duration::from_mins(3),
            tls: None,
            auth: AuthConfig::default(),
            record: None,
        }
    }
}

impl SmtpConfig {
    /// The first value that would leave the server unable to take mail, as the key with its
    /// value and what it must be instead.
    pub(crate) fn validate(&self) -> Result<(), (String, &'static str)> {
        let counts = [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
            // SIZE 0 would read as "no limit" to a client (RFC 1870).
            ("max_message_size", self.max_message_size),
            ("max_recipients", self.max_recipients),
        ];
        if let Some((key, value)) = counts.into_iter().find(|&(_, value)| value == 0) {
            return Err((format!("{key} = {value}"), "at least 1"));
        }
        if self.max_line_length < MIN_LINE_LENGTH {
            let key = format!("max_line_length = {}", self.max_line_length);
            return Err((key, "at least 512 (RFC 5321 4.5.3.1.4)"));
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err((
                format!("ipv6_prefix = {}", self.ipv6_prefix),
                "from 1 to 128",
            ));
        }
        for (key, timeout) in [
            ("command_timeout", self.command_timeout),
            ("data_timeout", self.data_timeout),
        ] {
            if timeout.is_zero() {
                return Err((format!("{key} = 0s"), "longer than 0s"));
            }
        }
        Ok(())
    }

    /// Whether `ip` is exempt from `max_connections_per_ip`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = mq_core::smtp::SmtpConfig::default();
    /// // The relay networks, loopback by default.
    /// assert!(config.is_exempt_from_connection_limit("127.0.0.1".parse().unwrap()));
    /// config.connection_limit_exemptions = Some(Vec::new());
    /// assert!(!config.is_exempt_from_connection_limit("127.0.0.1".parse().unwrap()));
    /// ```
    pub fn is_exempt_from_connection_limit(&self, ip: std::net::IpAddr) -> bool {
        self.connection_limit_exemptions
            .as_ref()
            .unwrap_or(&self.relay_networks)
            .iter()
            .any(|net| net.contains(ip))
    }

    /// Whether mail to `domain` is delivered here.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        self.domains
            .iter()
            .any(|local| local.eq_ignore_ascii_case(domain))
    }

    /// The domain a recipient without one gets: `default_domain`, else the first of `domains`,
    /// else `hostname`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = mq_core::smtp::SmtpConfig::default();
    /// assert_eq!(config.origin(), "localhost");
    /// config.domains = vec!["example.org".into()];
    /// assert_eq!(config.origin(), "example.org");
    /// config.default_domain = Some("example.net".into());
    /// assert_eq!(config.origin(), "example.net");
    /// ```
    pub fn origin(&self) -> &str {
        self.default_domain
            .as_deref()
            .or(self.domains.first().map(String::as_str))
            .unwrap_or(&self.hostname)
    }

    /// The domain of the local postmaster: the first of `domains`, else [`origin`](Self::origin).
    pub fn postmaster_domain(&self) -> &str {
        self.domains
            .first()
            .map_or_else(|| self.origin(), String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_never_show_in_debug_output() {
        let config: AuthConfig = toml::from_str("[users]\nalice = \"$6$salt$hash\"").unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("$6$"), "{shown}");
        assert!(
            shown.contains("alice") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
