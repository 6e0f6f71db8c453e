//! `[queue.rabbitmq]`: the broker, and the queues with MailerQ's names.

use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;

/// How mq uses a RabbitMQ broker as its queue.
///
/// # Examples
///
/// ```
/// use mq_core::queue::rabbitmq::RabbitConfig;
///
/// let config: RabbitConfig = toml::from_str("outbox = \"mail\"\nsuccess = \"\"").unwrap();
/// assert_eq!(config.inbox(), "mail");
/// assert_eq!(config.success, "");
/// assert_eq!(config.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RabbitConfig {
    /// The broker (default `amqp://guest:guest@127.0.0.1:5672/%2f`); plain AMQP.
    #[serde(serialize_with = "url_redacted")]
    pub url: String,
    /// The exchange messages are published to (default `""`, the default exchange, where the
    /// routing key is the queue's name).
    pub exchange: String,
    /// The queue delivery consumes (default `outbox`).
    pub outbox: String,
    /// Where the SMTP server publishes accepted mail (default: the outbox, so mq relays).
    pub inbox: Option<String>,
    /// Every final result (default `results`); empty: not published.
    pub results: String,
    /// Final results of delivered messages (default `success`); empty: not published.
    pub success: String,
    /// Final results of failed messages (default `failure`); empty: not published.
    pub failure: String,
    /// A copy of each deferred message (default `retry`); empty: not published.
    pub retry: String,
    /// Messages a node takes from the outbox before it acknowledges them (default 200).
    pub prefetch: u16,
    /// Declare the queues (durable) when connecting (default true); without it they must
    /// exist.
    pub declare: bool,
    /// How long a publish may wait for the broker's confirm before it counts as failed
    /// (default 30 s): the SMTP client then gets a 451.
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub confirm_timeout: Duration,
}

impl Default for RabbitConfig {
    fn default() -> RabbitConfig {
        RabbitConfig {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: String::new(),
            outbox: "outbox".into(),
            inbox: None,
            results: "results".into(),
            success: "success".into(),
            failure: "failure".into(),
            retry: "retry".into(),
            prefetch: 200,
            declare: true,
            confirm_timeout: Duration::from_secs(30),
        }
    }
}

/// The delays of the queues where deferred messages wait, in seconds: a message waits in the
/// longest that is not longer than its wait, and waits again for the rest when it comes back
/// early.
pub(crate) const DELAYS: [u64; 16] = [
    1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400, 28_800, 43_200, 86_400,
];

impl RabbitConfig {
    /// The inbox's name: the outbox unless set.
    pub fn inbox(&self) -> &str {
        self.inbox.as_deref().unwrap_or(&self.outbox)
    }

    /// Every queue mq publishes to or consumes, once each, without the delay queues.
    pub fn queues(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for name in [
            self.outbox.as_str(),
            self.inbox(),
            &self.results,
            &self.success,
            &self.failure,
            &self.retry,
        ] {
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// The delay queue that holds a message for `secs` seconds before it goes back to the
    /// outbox.
    pub fn delay_queue(&self, secs: u64) -> String {
        format!("{}.delay.{secs}", self.outbox)
    }

    /// Every delay queue's name.
    pub fn delay_queues(&self) -> Vec<String> {
        DELAYS.iter().map(|&secs| self.delay_queue(secs)).collect()
    }

    /// What is wrong with the settings, if anything.
    pub fn problem(&self) -> Option<String> {
        if !self.url.starts_with("amqp://") {
            return Some(format!(
                "[queue.rabbitmq] url {:?}: only amqp:// URLs are supported",
                self.url
            ));
        }
        if self.outbox.is_empty() {
            return Some("[queue.rabbitmq] outbox must not be empty".into());
        }
        if self.inbox().is_empty() {
            return Some(
                "[queue.rabbitmq] inbox must not be empty: accepted mail would be lost".into(),
            );
        }
        if self.prefetch == 0 {
            return Some("[queue.rabbitmq] prefetch must be at least 1".into());
        }
        None
    }
}

/// The longest delay queue whose delay is not longer than `wait` (the shortest for a shorter
/// wait), in seconds.
pub(crate) fn delay_for(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    DELAYS
        .iter()
        .rev()
        .find(|&&delay| delay <= secs)
        .copied()
        .unwrap_or(DELAYS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_takes_the_longest_delay_that_fits() {
        assert_eq!(delay_for(Duration::from_millis(300)), 1);
        assert_eq!(delay_for(Duration::from_secs(7)), 5);
        assert_eq!(delay_for(Duration::from_mins(10)), 600);
        assert_eq!(delay_for(Duration::from_secs(1_000_000)), 86_400);
    }

    #[test]
    fn queues_are_listed_once() {
        let config = RabbitConfig {
            retry: String::new(),
            ..RabbitConfig::default()
        };
        assert_eq!(config.queues(), ["outbox", "results", "success", "failure"]);
        assert!(config.problem().is_none());
        let bad = RabbitConfig {
            inbox: Some(String::new()),
            ..RabbitConfig::default()
        };
        assert!(bad.problem().unwrap().contains("inbox"));
    }
}

/// The broker's URL as `mq config` prints it: a password in it redacted.
fn url_redacted<S: serde::Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_password(url))
}

/// `url` with the password of its user information, if any, replaced by `<redacted>`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!(
                "{scheme}://{user}:<redacted>@{host}{}",
                &rest[authority_end..]
            )
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redact_password;

    #[test]
    fn the_password_in_the_broker_url_is_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_password("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:<redacted>@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_password("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
    }
}
