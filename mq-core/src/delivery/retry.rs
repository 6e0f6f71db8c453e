//! When a deferred entry is tried again, and when it is given up.

use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::config::duration;

/// The retry schedule: the delay before each attempt after a temporary failure, the last delay
/// repeating, and the age at which an entry is given up and bounced.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_core::delivery::retry::RetryPolicy;
///
/// let policy = RetryPolicy::default();
/// assert_eq!(policy.delay_after(1), Duration::from_secs(600));
/// assert_eq!(policy.delay_after(5), Duration::from_secs(3600));
/// assert_eq!(policy.delay_after(40), Duration::from_secs(7200));
/// ```
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Delays after the 1st, 2nd, … failed attempt; the last repeats (default MailerQ's: 600,
    /// 600, 1800, 1800, 3600, 3600, 7200 seconds).
    #[serde(
        deserialize_with = "durations",
        serialize_with = "crate::config::durations_text"
    )]
    pub schedule: Vec<Duration>,
    /// How long an entry may stay queued before it fails for good (default 24 h).
    #[serde(
        deserialize_with = "duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        let schedule = [600, 600, 1800, 1800, 3600, 3600, 7200]
            .map(Duration::from_secs)
            .to_vec();
        RetryPolicy {
            schedule,
            max_age: Duration::from_hours(24),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `attempts`th failed attempt (the first is 1).
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let index = (attempts.max(1) - 1) as usize;
        self.schedule
            .get(index)
            .or(self.schedule.last())
            .copied()
            .unwrap_or(Duration::from_mins(10))
    }

    /// When an entry that arrived at `arrived` and failed its `attempts`th attempt at `now` is
    /// due again, or `None` when that would be past its maximum age: then it fails for good.
    pub fn next_attempt(
        &self,
        arrived: SystemTime,
        attempts: u32,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let next = now + self.delay_after(attempts);
        let age = next.duration_since(arrived).unwrap_or_default();
        (age <= self.max_age).then_some(next)
    }
}

fn durations<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    #[derive(Deserialize)]
    struct One(
        #[serde(
            deserialize_with = "duration",
            serialize_with = "crate::config::duration_text"
        )]
        Duration,
    );
    let delays: Vec<One> = Vec::deserialize(deserializer)?;
    if delays.is_empty() {
        return Err(serde::de::Error::custom(
            "the retry schedule needs at least one delay",
        ));
    }
    Ok(delays.into_iter().map(|One(delay)| delay).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_given_up_once_its_next_try_would_be_too_old() {
        let policy = RetryPolicy {
            schedule: vec![Duration::from_secs(10)],
            max_age: Duration::from_secs(25),
        };
        let arrived = SystemTime::UNIX_EPOCH;
        assert!(policy.next_attempt(arrived, 1, arrived).is_some());
        assert!(
            policy
                .next_attempt(arrived, 2, arrived + Duration::from_secs(10))
                .is_some()
        );
        assert!(
            policy
                .next_attempt(arrived, 3, arrived + Duration::from_secs(20))
                .is_none()
        );
    }

    #[test]
    fn schedules_come_from_config() {
        #[derive(Deserialize)]
        struct Wrapper {
            retry: RetryPolicy,
        }
        let config: Wrapper =
            toml::from_str("[retry]\nschedule = [\"1s\", 2]\nmax_age = \"1h\"").unwrap();
        assert_eq!(
            config.retry.schedule,
            [Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert!(toml::from_str::<Wrapper>("[retry]\nschedule = []").is_err());
    }
}
