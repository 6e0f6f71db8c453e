//! Running mq as a system service: `[log]` (how lines are written) and `[server]` (the user
//! to run as after binding the ports, the pid file).

use std::path::PathBuf;

use serde::Deserialize;

/// `[log]`.
///
/// # Examples
///
/// ```
/// use mq_core::service::LogFormat;
///
/// let config = mq_core::Config::from_toml("[log]\nformat = \"json\"").unwrap();
/// assert_eq!(config.log.format, LogFormat::Json);
/// ```
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct LogConfig {
    /// `text` (default): one line per event, fields as `key=value`; `json`: one JSON object
    /// per line, for log pipelines. `mq --log-format` overrides it.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LogFormat {
    /// `2026-01-02T03:04:05.678Z  INFO mq_core::…: message key=value …`.
    #[default]
    Text,
    /// `{"timestamp":…,"level":"INFO","target":…,"message":…,"key":value,…}`.
    Json,
}

/// `[server]`: how `mq serve` runs as a service.
///
/// # Examples
///
/// ```
/// let config = mq_core::Config::from_toml(
///     "[server]\nuser = \"mq\"\npid_file = \"/run/mq/mq.pid\"",
/// ).unwrap();
/// assert_eq!(config.server.user.as_deref(), Some("mq"));
/// assert_eq!(config.server.group, None);
/// ```
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The user `mq serve` runs as once its ports are bound, when started as root (a name in
    /// `/etc/passwd`, or a numeric uid). Unset: it stays who started it.
    pub user: Option<String>,
    /// The group to run as (a name in `/etc/group`, or a numeric gid); unset: the user's
    /// primary group.
    pub group: Option<String>,
    /// A file `mq serve` writes its process id to at start and removes at a clean stop.
    pub pid_file: Option<PathBuf>,
}
