//! `[plugins.webhook]`: where to POST, how many events to hold, how long to wait and how to
//! retry, with the checks that refuse a section before mq starts.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::http::Endpoint;

/// Header names the plugin writes itself: a configured one would make the request ambiguous.
const RESERVED: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

/// The plugin's own keys in `[plugins.webhook]`. Every key is optional; without `url` the
/// plugin sends nothing (and any other key is refused, since it would do nothing).
///
/// The engine's `timeout` key (the hook's deadline) is read by the engine, not here: the wait
/// for one POST is `request_timeout`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_webhook::WebhookConfig;
///
/// let config: WebhookConfig = toml::from_str(r#"
///     url = "http://127.0.0.1:8080/mq-events"
///     queue_size = 10000
///     request_timeout = "5s"
///     retry = ["1s", "5s", "30s"]
///     max_attempts = 10
///     headers = { Authorization = "Bearer x" }
/// "#).unwrap();
/// assert_eq!(config.retry[2], Duration::from_secs(30));
/// assert!(config.validate().is_ok());
/// assert!(WebhookConfig::default().validate().is_ok());
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// Where each event is POSTed: `http://host[:port]/path` (plain HTTP only for now). None
    /// (the default): the plugin sends nothing.
    pub url: Option<String>,
    /// Events held per worker core while they wait to be sent (default 10 000); when the queue
    /// is full a new event is dropped and counted, never waited for.
    pub queue_size: usize,
    /// How long one POST may take, from connect to the status line (default 5 s).
    #[serde(deserialize_with = "mq_plugin_api::duration::deserialize")]
    pub request_timeout: Duration,
    /// Delays before the 2nd, 3rd, ... attempt at an event; the last repeats (default 1 s, 5 s,
    /// 30 s).
    #[serde(deserialize_with = "durations")]
    pub retry: Vec<Duration>,
    /// Attempts at one event before it is given up and counted as failed (default 10).
    pub max_attempts: u32,
    /// Extra request headers, such as `Authorization`; `Content-Type` replaces the default
    /// `application/json`.
    pub headers: BTreeMap<String, String>,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            url: None,
            queue_size: 10_000,
            request_timeout: Duration::from_secs(5),
            retry: [1, 5, 30].map(Duration::from_secs).to_vec(),
            max_attempts: 10,
            headers: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    /// Header values (a token in `Authorization`) are `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers = self.headers.keys().map(|name| (name, "<redacted>"));
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("queue_size", &self.queue_size)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("max_attempts", &self.max_attempts)
            .field("headers", &headers.collect::<BTreeMap<_, _>>())
            .finish()
    }
}

/// A section the plugin refuses: mq then refuses to start, naming the plugin.
///
/// # Examples
///
/// ```
/// use mq_plugin_webhook::WebhookConfig;
///
/// let config: WebhookConfig = toml::from_str(r#"url = "https://hooks.example/mq""#).unwrap();
/// assert_eq!(
///     config.validate().unwrap_err().to_string(),
///     r#"url: "https://hooks.example/mq" is not usable (only http:// is supported)"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidConfig {
    /// The section does not fit [`WebhookConfig`]: an unknown key, or a value of the wrong type.
    Section(String),
    /// Keys are set but `url` is not, so they would do nothing.
    MissingUrl,
    /// `url` is not a plain-HTTP URL this client can POST to.
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A key that must be above zero is zero: `queue_size`, `max_attempts` or
    /// `request_timeout`.
    Zero(&'static str),
    /// `retry` is empty.
    NoRetryDelay,
    /// A header name is not an HTTP token, is one the plugin writes itself, or its value holds
    /// CR or LF.
    Header {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidConfig::Section(message) => f.write_str(message),
            InvalidConfig::MissingUrl => f.write_str("url: missing, and the other keys need it"),
            InvalidConfig::Url { url, why } => write!(f, "url: {url:?} is not usable ({why})"),
            InvalidConfig::Zero(key) => write!(f, "{key} must be above zero"),
            InvalidConfig::NoRetryDelay => f.write_str("retry needs at least one delay"),
            InvalidConfig::Header { name, why } => write!(f, "headers: {name:?} {why}"),
        }
    }
}

impl std::error::Error for InvalidConfig {}

impl WebhookConfig {
    /// The section `table` (`[plugins.webhook]`, the plugin's own keys) as a config.
    ///
    /// # Errors
    ///
    /// [`InvalidConfig::Section`]: an unknown key, or a value of the wrong type.
    pub fn from_table(table: &toml::Table) -> Result<WebhookConfig, InvalidConfig> {
        toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| InvalidConfig::Section(e.message().to_owned()))
    }

    /// Checks every key before the plugin runs.
    ///
    /// # Errors
    ///
    /// The first problem, in the order url, sizes and times, headers.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        self.endpoint().map(|_| ())
    }

    /// Checks every key and parses the URL; `None` when there is no URL (nothing to send).
    pub(crate) fn endpoint(&self) -> Result<Option<Endpoint>, InvalidConfig> {
        let Some(url) = &self.url else {
            let unset = WebhookConfig::default();
            return if *self == unset {
                Ok(None)
            } else {
                Err(InvalidConfig::MissingUrl)
            };
        };
        let endpoint = Endpoint::parse(url).map_err(|why| InvalidConfig::Url {
            url: url.clone(),
            why,
        })?;
        self.check_numbers()?;
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        Ok(Some(endpoint))
    }

    fn check_numbers(&self) -> Result<(), InvalidConfig> {
        if self.queue_size == 0 {
            return Err(InvalidConfig::Zero("queue_size"));
        }
        if self.max_attempts == 0 {
            return Err(InvalidConfig::Zero("max_attempts"));
        }
        if self.request_timeout.is_zero() {
            return Err(InvalidConfig::Zero("request_timeout"));
        }
        if self.retry.is_empty() {
            return Err(InvalidConfig::NoRetryDelay);
        }
        Ok(())
    }
}

/// RFC 9110 §5.1: a field name is a token; a value must not end the line early.
fn check_header(name: &str, value: &str) -> Result<(), InvalidConfig> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let why = if name.is_empty() || !name.chars().all(token) {
        "is not an HTTP header name"
    } else if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        "is written by the plugin itself"
    } else if value.contains(['\r', '\n']) {
        "has a value with a line break"
    } else {
        return Ok(());
    };
    Err(InvalidConfig::Header {
        name: name.to_owned(),
        why,
    })
}

fn durations<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(deserialize_with = "mq_plugin_api::duration::deserialize")] Duration);
    let delays: Vec<One> = Vec::deserialize(deserializer)?;
    Ok(delays.into_iter().map(|One(delay)| delay).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_never_show_in_debug_output() {
        let config: WebhookConfig =
            toml::from_str("url = \"http://h/\"\nheaders = { Authorization = \"Bearer hunter2\" }")
                .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("Authorization") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    fn parse(text: &str) -> Result<WebhookConfig, InvalidConfig> {
        WebhookConfig::from_table(&toml::from_str(text).unwrap())
    }

    fn refused(text: &str) -> String {
        match parse(text) {
            Ok(config) => config.validate().unwrap_err().to_string(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn an_empty_section_is_valid_and_sends_nothing() {
        let config = parse("").unwrap();
        assert_eq!(config, WebhookConfig::default());
        assert_eq!(config.endpoint(), Ok(None));
    }

    #[test]
    fn durations_take_units_and_plain_seconds() {
        let config = parse("url = \"http://h/\"\nrequest_timeout = 2\nretry = [\"250ms\", \"2m\"]");
        let config = config.unwrap();
        assert_eq!(config.request_timeout, Duration::from_secs(2));
        assert_eq!(
            config.retry,
            [Duration::from_millis(250), Duration::from_mins(2)]
        );
        assert!(refused("retry = [\"5 parsecs\"]").contains("invalid duration"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(refused("ulr = \"http://h/\"").contains("ulr"));
    }

    #[test]
    fn keys_without_a_url_are_refused() {
        assert_eq!(
            refused("queue_size = 5"),
            "url: missing, and the other keys need it"
        );
    }

    #[test]
    fn zeros_and_an_empty_retry_list_are_refused() {
        let url = "url = \"http://h/\"\n";
        assert_eq!(
            refused(&format!("{url}queue_size = 0")),
            "queue_size must be above zero"
        );
        assert_eq!(
            refused(&format!("{url}max_attempts = 0")),
            "max_attempts must be above zero"
        );
        assert_eq!(
            refused(&format!("{url}request_timeout = \"0s\"")),
            "request_timeout must be above zero"
        );
        assert_eq!(
            refused(&format!("{url}retry = []")),
            "retry needs at least one delay"
        );
    }

    #[test]
    fn headers_that_would_break_the_request_are_refused() {
        let cases = [
            ("\"X Bad\" = \"1\"", "is not an HTTP header name"),
            ("Host = \"evil\"", "is written by the plugin itself"),
            ("content-length = \"1\"", "is written by the plugin itself"),
            ("X-A = \"1\\r\\nX-B: 2\"", "has a value with a line break"),
        ];
        for (header, why) in cases {
            let error = refused(&format!("url = \"http://h/\"\nheaders = {{ {header} }}"));
            assert!(error.ends_with(why), "{header}: {error}");
        }
    }

    #[test]
    fn ordinary_headers_pass() {
        let config = parse(
            "url = \"http://h/\"\nheaders = { Authorization = \"Bearer x\", Content-Type = \"a/b\" }",
        );
        assert_eq!(config.unwrap().validate(), Ok(()));
    }
}
