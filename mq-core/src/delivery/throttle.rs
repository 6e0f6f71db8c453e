//! Per-destination throttles: how many connections at once and how many messages a minute a
//! domain gets. A throttled entry waits; it never fails for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Limits for one destination domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Limits {
    /// Connections open at once (default 10).
    pub connections: usize,
    /// Messages started per minute; 0 means no limit (default 0).
    pub messages_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections: 10,
            messages_per_minute: 0,
        }
    }
}

/// `[delivery.throttle]`: the default limits and per-domain ones.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Limits for every domain without its own.
    #[serde(flatten)]
    pub default: Limits,
    /// Limits by domain; the keys are read in their one spelling
    /// ([`mq_plugin_api::normalize_domain`]).
    #[serde(deserialize_with = "crate::domains::keys")]
    pub domains: HashMap<String, Limits>,
}

/// The throttles of all destinations, shared by every worker core.
#[derive(Debug, Clone)]
pub struct Throttles {
    config: Arc<ThrottleConfig>,
    state: Arc<Mutex<HashMap<String, Usage>>>,
}

#[derive(Debug, Default)]
struct Usage {
    connections: usize,
    /// Start times of messages in the last minute.
    recent: std::collections::VecDeque<Instant>,
}

/// A connection slot for one destination; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    throttles: Throttles,
    domain: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self
            .throttles
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(usage) = state.get_mut(&self.domain) {
            usage.connections -= 1;
        }
    }
}

impl Throttles {
    /// Throttles with these limits.
    pub fn new(config: ThrottleConfig) -> Throttles {
        Throttles {
            config: Arc::new(config),
            state: Arc::default(),
        }
    }

    /// How many connections `domain` may have open at once.
    pub fn connection_limit(&self, domain: &str) -> usize {
        self.limits(domain).connections.max(1)
    }

    fn limits(&self, domain: &str) -> Limits {
        self.config
            .domains
            .get(domain)
            .copied()
            .unwrap_or(self.config.default)
    }

    /// A connection slot for `domain`, or how long to wait before asking again.
    ///
    /// # Errors
    ///
    /// The domain has its connections in use: try again after the returned delay.
    pub fn connect(&self, domain: &str) -> Result<Permit, Duration> {
        let limits = self.limits(domain);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let usage = state.entry(domain.to_owned()).or_default();
        if usage.connections >= limits.connections.max(1) {
            return Err(Duration::from_millis(100));
        }
        usage.connections += 1;
        Ok(Permit {
            throttles: self.clone(),
            domain: domain.to_owned(),
        })
    }

    /// Counts a message to `domain` if the rate allows one now, or says how long to wait.
    ///
    /// # Errors
    ///
    /// The domain had its messages this minute: try again after the returned delay.
    pub fn message(&self, domain: &str, now: Instant) -> Result<(), Duration> {
        let limits = self.limits(domain);
        if limits.messages_per_minute == 0 {
            return Ok(());
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let usage = state.entry(domain.to_owned()).or_default();
        let minute = Duration::from_mins(1);
        while usage
            .recent
            .front()
            .is_some_and(|&start| now.duration_since(start) >= minute)
        {
            usage.recent.pop_front();
        }
        if usage.recent.len() >= limits.messages_per_minute as usize {
            let oldest = usage.recent.front().copied().unwrap_or(now);
            return Err(minute.saturating_sub(now.duration_since(oldest)));
        }
        usage.recent.push_back(now);
        Ok(())
    }

    /// Connections open to `domain` now.
    pub fn connections(&self, domain: &str) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.get(domain).map_or(0, |usage| usage.connections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttles(connections: usize, messages_per_minute: u32) -> Throttles {
        Throttles::new(ThrottleConfig {
            default: Limits {
                connections,
                messages_per_minute,
            },
            domains: HashMap::new(),
        })
    }

    #[test]
    fn connections_are_held_until_their_permit_is_dropped() {
        let throttles = throttles(2, 0);
        let first = throttles.connect("example.net").unwrap();
        let _second = throttles.connect("example.net").unwrap();
        assert!(throttles.connect("example.net").is_err());
        assert!(
            throttles.connect("example.org").is_ok(),
            "other domains have their own slots"
        );
        drop(first);
        assert!(throttles.connect("example.net").is_ok());
    }

    #[test]
    fn the_message_rate_holds_per_minute() {
        let throttles = throttles(1, 2);
        let start = Instant::now();
        assert!(throttles.message("example.net", start).is_ok());
        assert!(throttles.message("example.net", start).is_ok());
        let wait = throttles
            .message("example.net", start + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        assert!(
            throttles
                .message("example.net", start + Duration::from_secs(61))
                .is_ok()
        );
    }

    #[test]
    fn a_domain_can_have_its_own_limits() {
        let config: ThrottleConfig =
            toml::from_str("connections = 1\n[domains.\"big.example\"]\nconnections = 3").unwrap();
        let throttles = Throttles::new(config);
        let _held: Vec<_> = (0..3)
            .map(|_| throttles.connect("big.example").unwrap())
            .collect();
        assert!(throttles.connect("big.example").is_err());
        let _one = throttles.connect("small.example").unwrap();
        assert!(throttles.connect("small.example").is_err());
    }
}
