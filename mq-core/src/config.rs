//! The engine's configuration: `[engine]`, with the engine's settings for each plugin in
//! `[engine.plugins.NAME]`, and each plugin's own `[plugins.NAME]`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The parts of mq's TOML file the engine reads.
///
/// # Examples
///
/// ```
/// let config = mq_core::Config::from_toml(r#"
///     [engine]
///     timeout = "5s"
///
///     [engine.plugins.headers]
///     enabled = false
///
///     [plugins.headers]
///     remove = ["X-Originating-IP"]
/// "#).unwrap();
/// assert_eq!(config.engine.timeout, std::time::Duration::from_secs(5));
/// assert_eq!(config.engine.plugins["headers"].enabled, Some(false));
/// assert!(config.plugins.contains_key("headers"));
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Engine-wide settings.
    #[serde(default)]
    pub engine: EngineConfig,
    /// One table per plugin, the plugin's own: the engine's settings for it are in
    /// `[engine.plugins.NAME]`.
    #[serde(default)]
    pub plugins: BTreeMap<String, toml::Table>,
    /// The SMTP server.
    #[serde(default)]
    pub smtp: crate::smtp::SmtpConfig,
    /// Where and how messages are kept.
    #[serde(default)]
    pub queue: QueueConfig,
    /// The loopback HTTP port for metrics and queue administration.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Outbound delivery: routes, TLS, retries, throttles.
    #[serde(default)]
    pub delivery: crate::delivery::DeliveryConfig,
    /// The resolvers delivery (and plugins) ask.
    #[serde(default)]
    pub dns: crate::dns::DnsConfig,
    /// How log lines are written.
    #[serde(default)]
    pub log: crate::service::LogConfig,
    /// Running as a service: the user after binding, the pid file.
    #[serde(default)]
    pub server: crate::service::ServerConfig,
}

/// `[queue]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct QueueConfig {
    /// The data directory: the queue under `queue/`, local mail under `mail/` (default
    /// `./mq-data`).
    pub data_dir: std::path::PathBuf,
    /// Whether to fsync before acknowledging (default true). Off, a crash can lose accepted
    /// mail: for benchmarks only.
    pub fsync: bool,
    /// Where messages wait: `embedded` (default, the journal in the data directory) or
    /// `rabbitmq` (a broker, in MailerQ's JSON format; `[queue.rabbitmq]`).
    pub backend: QueueBackend,
    /// The broker, when `backend = "rabbitmq"`.
    pub rabbitmq: crate::queue::rabbitmq::RabbitConfig,
    /// Where `mq sendmail` leaves mail for `mq serve` to pick up when it can neither open the
    /// queue nor reach the server: a user without rights to the queue (default
    /// `<data_dir>/maildrop`; see [`QueueConfig::maildrop`]).
    pub maildrop_dir: Option<std::path::PathBuf>,
    /// The maildrop's mode, set by `mq serve`, written in octal (default `"1733"`: anyone may
    /// drop a file, only mq's user lists them; `"1730"` with a group of submitters is
    /// Postfix's model).
    #[serde(deserialize_with = "mode", serialize_with = "mode_text")]
    pub maildrop_mode: u32,
    /// How often `mq serve` looks into the maildrop (default 1 s).
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub maildrop_interval: Duration,
}

impl QueueConfig {
    /// The maildrop directory: `maildrop_dir`, else `maildrop` in the data directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = mq_core::Config::from_toml("[queue]\ndata_dir = \"/var/spool/mq\"").unwrap();
    /// assert_eq!(config.queue.maildrop(), std::path::Path::new("/var/spool/mq/maildrop"));
    /// ```
    pub fn maildrop(&self) -> std::path::PathBuf {
        self.maildrop_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("maildrop"))
    }
}

/// A file mode written in octal, as chmod takes it: `"1733"`.
fn mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let text = String::deserialize(deserializer)?;
    match u32::from_str_radix(&text, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(serde::de::Error::custom(format!(
            "expected an octal mode such as \"1733\", got {text:?}"
        ))),
    }
}

/// A mode as [`mode`] reads it.
#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's serialize_with passes the field by reference"
)]
fn mode_text<S: serde::Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{mode:o}"))
}

/// `[queue] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum QueueBackend {
    /// The journal in `<data_dir>/queue`.
    #[default]
    Embedded,
    /// A RabbitMQ broker shared by any number of mq nodes.
    Rabbitmq,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            data_dir: "mq-data".into(),
            fsync: true,
            backend: QueueBackend::Embedded,
            rabbitmq: crate::queue::rabbitmq::RabbitConfig::default(),
            maildrop_dir: None,
            maildrop_mode: 0o1733,
            maildrop_interval: Duration::from_secs(1),
        }
    }
}

/// `[admin]`: Prometheus metrics (`GET /metrics`) and queue commands for `mq queue`.
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AdminConfig {
    /// The address to listen on; loopback only is wise (default `127.0.0.1:9025`). An empty
    /// string turns the port off. Any other address needs `token` or `token_file`.
    #[serde(
        deserialize_with = "optional_address",
        serialize_with = "crate::config::optional_address_text"
    )]
    pub listen: Option<std::net::SocketAddr>,
    /// The bearer token every request must carry (`Authorization: Bearer …`), but `GET
    /// /metrics` on loopback (default: none). Never written out: `<redacted>` instead.
    #[serde(serialize_with = "crate::config::redacted")]
    pub token: Option<String>,
    /// A file holding the token (its first line), instead of `token`.
    pub token_file: Option<std::path::PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9025))),
            token: None,
            token_file: None,
        }
    }
}

impl fmt::Debug for AdminConfig {
    /// Says whether a token is set, never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("token_file", &self.token_file)
            .finish()
    }
}

impl AdminConfig {
    /// The token: `token`, or the first line of `token_file`; `None` when neither is set.
    ///
    /// # Errors
    ///
    /// `token_file` cannot be read or its first line is empty; the error names the file.
    pub fn token(&self) -> Result<Option<String>, (std::path::PathBuf, std::io::Error)> {
        if let Some(token) = self.token.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(token.to_owned()));
        }
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| (path.clone(), e))?;
        match text.lines().next().map(str::trim).filter(|t| !t.is_empty()) {
            Some(token) => Ok(Some(token.to_owned())),
            None => Err((
                path.clone(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
            )),
        }
    }
}

fn optional_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::net::SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

/// Why a configuration could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads a configuration from TOML text.
    ///
    /// # Errors
    ///
    /// The text is not TOML, a key is unknown or of the wrong type, or a value would leave mq
    /// unable to work ([`Config::validate`]).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses values that parse but leave mq unable to work: no worker, no connection, no
    /// message byte. The error names the key.
    ///
    /// # Errors
    ///
    /// The first such value found.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = mq_core::Config::from_toml("[smtp]\nmax_connections = 0").unwrap_err();
    /// assert!(error.to_string().contains("[smtp] max_connections"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.engine.workers == Some(0) {
            return Err(ConfigError::unusable("engine", "workers = 0", "at least 1"));
        }
        self.smtp
            .validate()
            .map_err(|(key, rule)| ConfigError::unusable("smtp", &key, rule))
    }
}

impl ConfigError {
    /// `[section] key = value: must be rule`.
    fn unusable(section: &str, key: &str, rule: &str) -> ConfigError {
        ConfigError(format!("[{section}] {key}: must be {rule}"))
    }
}

/// `[engine]`: the guarantees every chain runs under.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct EngineConfig {
    /// How long one plugin call may take before it is dropped (default 30 s).
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub timeout: Duration,
    /// How often a chain may restart at one step before the step fails (default 10).
    pub retry_budget: u32,
    /// A single poll of a hook longer than this is logged and counted (default 10 ms).
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub slow_poll: Duration,
    /// What a timed-out or panicking call does to its step (default `tempfail`).
    pub on_error: FailurePolicy,
    /// Worker threads, each with its own executor and plugin instances (default: one per core).
    pub workers: Option<usize>,
    /// How long a stop waits for sessions and deliveries in progress (default 30 s); then the
    /// sessions still open are closed with `421 4.3.2`. The tasks plugins spawned get what is
    /// left of it after the plugins' `stop` (at least 5 s, or the whole timeout if shorter).
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub shutdown_timeout: Duration,
    /// `[engine.plugins.NAME]`: the engine's settings for each plugin (`enabled`, `timeout`,
    /// `on_error`, `order`), over the plugin's own defaults.
    pub plugins: BTreeMap<String, crate::plugin_settings::PluginSettings>,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            timeout: Duration::from_secs(30),
            retry_budget: 10,
            slow_poll: Duration::from_millis(10),
            on_error: FailurePolicy::Tempfail,
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
            plugins: BTreeMap::new(),
        }
    }
}

impl EngineConfig {
    /// How many workers to run: the configured number, or one per available core.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}

/// What a plugin call that timed out or panicked does to its step; plugins name it in their
/// defaults, so the contract crate holds it.
pub use mq_plugin_api::FailurePolicy;

pub(crate) use mq_plugin_api::duration::deserialize as duration;

/// Writes a duration as text its deserializer reads back: `30s`, `5m`, `2h`, `250ms`.
pub(crate) fn duration_text<S: serde::Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&DurationText(*duration))
}

/// A list of durations as [`duration_text`] writes each.
pub(crate) fn durations_text<S: serde::Serializer>(
    durations: &[Duration],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(durations.iter().map(|d| DurationText(*d).to_string()))
}

/// An optional address, `""` for none (a port turned off).
#[expect(
    clippy::ref_option,
    reason = "serde's serialize_with passes the field by reference"
)]
pub(crate) fn optional_address_text<S: serde::Serializer>(
    address: &Option<std::net::SocketAddr>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match address {
        Some(address) => serializer.collect_str(address),
        None => serializer.serialize_str(""),
    }
}

/// A secret, written as `<redacted>` when set: what `mq config` prints is safe to paste.
#[expect(
    clippy::ref_option,
    reason = "serde's serialize_with passes the field by reference"
)]
pub(crate) fn redacted<S: serde::Serializer>(
    secret: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str(REDACTED),
        None => serializer.serialize_none(),
    }
}

/// What a secret is written as.
pub(crate) const REDACTED: &str = "<redacted>";

/// A duration in the largest unit that holds it whole.
struct DurationText(Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let duration = self.0;
        if duration.subsec_nanos() != 0 {
            return write!(f, "{}ms", duration.as_millis());
        }
        match duration.as_secs() {
            0 => f.write_str("0s"),
            s if s % 3_600 == 0 => write!(f, "{}h", s / 3_600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}
pub use mq_plugin_api::duration::parse as parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildrop_modes_are_octal() {
        let config = Config::from_toml("[queue]\nmaildrop_mode = \"1730\"").unwrap();
        assert_eq!(config.queue.maildrop_mode, 0o1730);
        for bad in ["\"1738\"", "\"17330\"", "1733"] {
            let error = Config::from_toml(&format!("[queue]\nmaildrop_mode = {bad}")).unwrap_err();
            assert!(
                error.to_string().contains("maildrop_mode"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn unknown_engine_keys_are_refused() {
        let error = Config::from_toml("[engine]\ntimout = \"1s\"").unwrap_err();
        assert!(error.to_string().contains("timout"), "{error}");
    }

    #[test]
    fn durations_take_units_and_plain_seconds() {
        let config = Config::from_toml("[engine]\ntimeout = 2\nslow_poll = \"5ms\"").unwrap();
        assert_eq!(config.engine.timeout, Duration::from_secs(2));
        assert_eq!(config.engine.slow_poll, Duration::from_millis(5));
        assert!(Config::from_toml("[engine]\ntimeout = \"5 parsecs\"").is_err());
    }

    #[test]
    fn values_that_leave_mq_unusable_are_refused_naming_their_key() {
        for (text, named) in [
            ("[engine]\nworkers = 0", "[engine] workers = 0"),
            ("[smtp]\nmax_connections = 0", "[smtp] max_connections = 0"),
            (
                "[smtp]\nmax_connections_per_ip = 0",
                "[smtp] max_connections_per_ip = 0",
            ),
            (
                "[smtp]\nmax_message_size = 0",
                "[smtp] max_message_size = 0",
            ),
            ("[smtp]\nmax_recipients = 0", "[smtp] max_recipients = 0"),
            (
                "[smtp]\nmax_line_length = 100",
                "[smtp] max_line_length = 100",
            ),
            ("[smtp]\ncommand_timeout = 0", "[smtp] command_timeout = 0s"),
            ("[smtp]\ndata_timeout = \"0s\"", "[smtp] data_timeout = 0s"),
        ] {
            let error = Config::from_toml(text).expect_err(text).to_string();
            assert!(error.starts_with(named), "{text}: {error}");
            assert!(error.contains("must be"), "{text}: {error}");
        }
        assert!(Config::from_toml("[engine]\nworkers = 1\n[smtp]\nmax_message_size = 1").is_ok());
    }

    /// A timeout is added to the clock when it starts: one of i64::MAX seconds (TOML's largest
    /// integer) would panic at the first chain, so seconds are bounded as `"…s"` is.
    #[test]
    fn a_timeout_past_what_the_clock_can_hold_is_refused() {
        let error = Config::from_toml("[engine]\ntimeout = 9223372036854775807").unwrap_err();
        assert!(error.to_string().contains("too long"), "{error}");
        let error = Config::from_toml("[delivery]\nattempt_timeout = 4294967296").unwrap_err();
        assert!(error.to_string().contains("too long"), "{error}");
        let config = Config::from_toml("[engine]\ntimeout = 4294967295").unwrap();
        assert!(
            std::time::Instant::now()
                .checked_add(config.engine.timeout)
                .is_some()
        );
    }
}
