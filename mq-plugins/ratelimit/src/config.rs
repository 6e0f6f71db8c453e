//! `[plugins.ratelimit]`: where buckets live and which limits apply, and the checks that refuse a
//! section mq could not enforce.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::url::RedisUrl;

/// The plugin's own keys in `[plugins.ratelimit]`. Every key is optional; a section without
/// `[[plugins.ratelimit.limit]]` tables limits nothing.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_ratelimit::{Backend, LimitKey, RateLimitConfig};
///
/// let config: RateLimitConfig = toml::from_str(r#"
///     [[limit]]
///     key = "sender_domain"
///     rate = 100
///     per = "1m"
///     burst = 20
/// "#).unwrap();
/// assert_eq!(config.backend, Backend::Memory);
/// assert_eq!(config.limits[0].key, LimitKey::SenderDomain);
/// assert_eq!(config.limits[0].per, Duration::from_mins(1));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Where the buckets live: this process (`memory`, the default) or a Redis server shared
    /// by several mq processes (`redis`).
    pub backend: Backend,
    /// The Redis server, `redis://[[user]:password@]host[:port][/db]`; used with
    /// `backend = "redis"` only.
    pub redis_url: String,
    /// Prepended to every Redis key, so that several mq clusters can share one server.
    pub key_prefix: String,
    /// How long one check may wait on Redis (connecting included) before the plugin lets the
    /// step through; never longer than the call's own deadline.
    #[serde(deserialize_with = "mq_plugin_api::duration::deserialize")]
    pub redis_timeout: Duration,
    /// The limits, each a token bucket per key value (`[[plugins.ratelimit.limit]]`).
    #[serde(rename = "limit")]
    pub limits: Vec<LimitConfig>,
    /// How many leading bits of an IPv6 client's address name its `client_ip` bucket (default
    /// 64: one host's network, as one host can pick a new address in it for each connection).
    pub ipv6_prefix: u8,
}

impl Default for RateLimitConfig {
    fn default() -> RateLimitConfig {
        RateLimitConfig {
            backend: Backend::Memory,
            redis_url: "redis://127.0.0.1:6379/".to_owned(),
            key_prefix: "mq:ratelimit:".to_owned(),
            redis_timeout: Duration::from_secs(1),
            limits: Vec::new(),
            ipv6_prefix: 64,
        }
    }
}

impl fmt::Debug for RateLimitConfig {
    /// Everything but the password in `redis_url`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("backend", &self.backend)
            .field("redis_url", &crate::url::redacted(&self.redis_url))
            .field("key_prefix", &self.key_prefix)
            .field("redis_timeout", &self.redis_timeout)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Where the token buckets live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In this process, shared by the worker cores.
    #[default]
    Memory,
    /// In Redis, shared by every mq process that points at it.
    Redis,
}

/// One limit: `rate` per `per` for each value of `key`, with room for a burst of `burst`.
///
/// The bucket of each value holds at most `burst` tokens (default: `rate`) and gains `rate`
/// tokens every `per`, evenly; each step checked takes one token, and a step that finds none is
/// refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LimitConfig {
    /// What the buckets are keyed by, which also decides the hook that checks them.
    pub key: LimitKey,
    /// Tokens gained every `per`.
    pub rate: u32,
    /// The refill period, such as `"1m"` or `"250ms"` (a bare number is seconds).
    #[serde(deserialize_with = "mq_plugin_api::duration::deserialize")]
    pub per: Duration,
    /// The bucket's capacity; `rate` when absent.
    pub burst: Option<u32>,
}

impl LimitConfig {
    /// The bucket's capacity: `burst`, or `rate` when `burst` is absent.
    pub fn capacity(&self) -> u32 {
        self.burst.unwrap_or(self.rate)
    }
}

/// What a limit counts, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// Connections per client IP address, at `smtp_in_connect` (refused with `421 4.7.1`).
    ClientIp,
    /// Messages per authenticated user, at `smtp_in_mail_from`; unauthenticated sessions are not
    /// counted.
    User,
    /// Messages per sender domain, at `smtp_in_mail_from`; the null sender `<>` is not counted.
    SenderDomain,
    /// Recipients per recipient domain, at `smtp_in_rcpt_to`.
    RecipientDomain,
}

impl LimitKey {
    /// The name used in the config and in bucket keys.
    pub fn name(self) -> &'static str {
        match self {
            LimitKey::ClientIp => "client_ip",
            LimitKey::User => "user",
            LimitKey::SenderDomain => "sender_domain",
            LimitKey::RecipientDomain => "recipient_domain",
        }
    }
}

impl RateLimitConfig {
    /// Checks what serde cannot: positive rates, periods and bursts, no limit given twice, a
    /// Redis URL mq can connect to.
    ///
    /// # Errors
    ///
    /// The first problem found.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_ratelimit::RateLimitConfig;
    ///
    /// let config: RateLimitConfig =
    ///     toml::from_str("[[limit]]\nkey = \"user\"\nrate = 0\nper = \"1m\"").unwrap();
    /// assert_eq!(config.validate().unwrap_err().to_string(), "limit 1 (user): rate must be at least 1");
    /// ```
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.redis_timeout.is_zero() {
            return Err(InvalidConfig::Timeout);
        }
        RedisUrl::parse(&self.redis_url).map_err(InvalidConfig::RedisUrl)?;
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(InvalidConfig::Ipv6Prefix(self.ipv6_prefix));
        }
        for (index, limit) in self.limits.iter().enumerate() {
            let wrong = |problem| InvalidConfig::Limit {
                number: index + 1,
                key: limit.key,
                problem,
            };
            if limit.rate == 0 {
                return Err(wrong("rate must be at least 1"));
            }
            if limit.per < Duration::from_millis(1) {
                return Err(wrong("per must be at least 1ms"));
            }
            if limit.burst == Some(0) {
                return Err(wrong("burst must be at least 1"));
            }
            let same = |other: &&LimitConfig| {
                (other.key, other.rate, other.per) == (limit.key, limit.rate, limit.per)
            };
            if self.limits[..index].iter().any(|other| same(&other)) {
                return Err(wrong("the same key, rate and per are given twice"));
            }
        }
        Ok(())
    }
}

/// A section mq could not enforce; mq refuses to start and names the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidConfig {
    /// `redis_timeout` is zero.
    Timeout,
    /// `redis_url` is not a URL mq can connect to.
    RedisUrl(String),
    /// `ipv6_prefix` is not from 1 to 128.
    Ipv6Prefix(u8),
    /// A `[[limit]]` table (counted from 1) is wrong.
    Limit {
        /// Its position in the section, from 1.
        number: usize,
        /// Its key.
        key: LimitKey,
        /// What is wrong.
        problem: &'static str,
    },
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidConfig::Timeout => f.write_str("redis_timeout must be longer than zero"),
            InvalidConfig::RedisUrl(message) => write!(f, "redis_url: {message}"),
            InvalidConfig::Ipv6Prefix(bits) => {
                write!(f, "ipv6_prefix = {bits}: must be from 1 to 128")
            }
            InvalidConfig::Limit {
                number,
                key,
                problem,
            } => write!(f, "limit {number} ({}): {problem}", key.name()),
        }
    }
}

impl std::error::Error for InvalidConfig {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redis_password_never_shows_in_debug_output() {
        let config = config("redis_url = \"redis://mq:hunter2@127.0.0.1/\"").unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    fn config(text: &str) -> Result<RateLimitConfig, toml::de::Error> {
        toml::from_str(text)
    }

    fn limit(body: &str) -> String {
        format!("[[limit]]\n{body}")
    }

    #[test]
    fn the_defaults_are_memory_and_the_local_redis() {
        let config = config("").unwrap();
        assert_eq!(config, RateLimitConfig::default());
        assert_eq!(config.redis_url, "redis://127.0.0.1:6379/");
        assert_eq!(config.key_prefix, "mq:ratelimit:");
        assert!(config.validate().is_ok());
    }

    #[test]
    fn durations_read_as_the_engine_reads_them() {
        let millis = config(&limit("key = \"user\"\nrate = 1\nper = \"250ms\"")).unwrap();
        assert_eq!(millis.limits[0].per, Duration::from_millis(250));
        assert!(config(&limit("key = \"user\"\nrate = 1\nper = \"soon\"")).is_err());
        let seconds = config(&limit("key = \"user\"\nrate = 1\nper = 90")).unwrap();
        assert_eq!(seconds.limits[0].per, Duration::from_secs(90));
    }

    #[test]
    fn the_ipv6_prefix_is_64_by_default_and_from_1_to_128() {
        assert_eq!(config("").unwrap().ipv6_prefix, 64);
        for bits in [0, 129] {
            let error = config(&format!("ipv6_prefix = {bits}"))
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("ipv6_prefix = {bits}: must be from 1 to 128")
            );
        }
        assert!(config("ipv6_prefix = 48").unwrap().validate().is_ok());
    }

    #[test]
    fn burst_defaults_to_rate() {
        let config = config(&limit("key = \"client_ip\"\nrate = 5\nper = \"1s\"")).unwrap();
        assert_eq!(config.limits[0].capacity(), 5);
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        assert!(config("backend = \"memcache\"").is_err());
        assert!(config("bakend = \"redis\"").is_err());
        assert!(config(&limit("key = \"helo\"\nrate = 1\nper = \"1s\"")).is_err());
        assert!(config(&limit("key = \"user\"\nrate = 1\nper = \"1s\"\nbrust = 2")).is_err());
    }

    #[test]
    fn zero_rates_periods_and_bursts_are_refused() {
        for (body, problem) in [
            ("rate = 0\nper = \"1s\"", "rate must be at least 1"),
            ("rate = 1\nper = \"0s\"", "per must be at least 1ms"),
            (
                "rate = 1\nper = \"1s\"\nburst = 0",
                "burst must be at least 1",
            ),
        ] {
            let config = config(&limit(&format!("key = \"user\"\n{body}"))).unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert_eq!(error, format!("limit 1 (user): {problem}"));
        }
    }

    #[test]
    fn a_limit_given_twice_is_refused() {
        let one = limit("key = \"user\"\nrate = 1\nper = \"1s\"");
        let config = config(&format!("{one}\n{one}\nburst = 3")).unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert_eq!(
            error,
            "limit 2 (user): the same key, rate and per are given twice"
        );
    }

    #[test]
    fn a_bad_redis_url_or_timeout_is_refused() {
        let tls = config("redis_url = \"rediss://127.0.0.1/\"").unwrap();
        assert!(
            tls.validate()
                .unwrap_err()
                .to_string()
                .starts_with("redis_url: ")
        );
        let zero = config("redis_timeout = \"0ms\"").unwrap();
        assert_eq!(zero.validate(), Err(InvalidConfig::Timeout));
    }
}
