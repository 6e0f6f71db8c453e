//! The sender task of one worker core: takes events from the bounded queue in order and POSTs
//! each until a 2xx, backing off between attempts, and the counters of what became of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mq_plugin_api::{Counter, PluginConfig};
use smol::Timer;
use smol::channel::Receiver;

use crate::http::Client;

/// What became of the events, summed over every worker core: read them with
/// [`Webhook::counters`](crate::Webhook::counters) or [`counters`](crate::counters).
///
/// # Examples
///
/// ```
/// let counters = mq_plugin_webhook::Counters::default();
/// assert_eq!((counters.sent(), counters.dropped(), counters.failed(), counters.retried()), (0, 0, 0, 0));
/// ```
#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
}

impl Counters {
    /// Events the endpoint took (answered 2xx).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Events dropped because their core's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events given up after `max_attempts` failed attempts.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Failed attempts that were followed by another (each back-off counts once).
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }

    pub(crate) fn count_drop(&self) -> u64 {
        self.dropped.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The plugin's counters on `/metrics`, shared by every core: what became of the events.
#[derive(Debug, Clone)]
pub(crate) struct Meters {
    pub(crate) sent: Counter,
    pub(crate) retried: Counter,
    pub(crate) dropped: Counter,
    pub(crate) failed: Counter,
}

impl Meters {
    /// Declares the plugin's metrics (`mq_plugin_webhook_sent_total`, ...).
    pub(crate) fn declare(config: &PluginConfig) -> Meters {
        Meters {
            sent: config.counter("sent", "Events the endpoint took (answered 2xx).", &[]),
            retried: config.counter(
                "retried",
                "Failed POSTs that were followed by another attempt.",
                &[],
            ),
            dropped: config.counter(
                "dropped",
                "Events dropped because their core's queue was full or closed.",
                &[],
            ),
            failed: config.counter("failed", "Events given up after max_attempts.", &[]),
        }
    }
}

/// How one core's events are sent; shared by the core's plugin instance and its sender task.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) client: Client,
    /// Delays after the 1st, 2nd, ... failed attempt; the last repeats.
    pub(crate) retry: Vec<Duration>,
    pub(crate) max_attempts: u32,
    pub(crate) counters: Arc<Counters>,
    pub(crate) meters: Meters,
    /// The core, for log lines: the task has no `Context` to tag them.
    pub(crate) core: usize,
}

impl Outbox {
    /// Sends the queued events one at a time, in order, until the queue's sender is dropped
    /// (the plugin instance is) and the queue is empty.
    pub(crate) async fn run(&self, events: Receiver<Vec<u8>>) {
        while let Ok(body) = events.recv().await {
            self.deliver(&body).await;
        }
    }

    /// POSTs one body until a 2xx or `max_attempts` tries. Later events wait meanwhile: the
    /// endpoint sees each core's events in the order they happened.
    async fn deliver(&self, body: &[u8]) {
        for attempt in 1..=self.max_attempts {
            let error = match self.client.post(body).await {
                Ok(status) if (200..300).contains(&status) => {
                    self.counters.sent.fetch_add(1, Ordering::Relaxed);
                    self.meters.sent.inc(&[]);
                    return;
                }
                Ok(status) => format!("answered {status}"),
                Err(error) => error.to_string(),
            };
            tracing::debug!(
                plugin = "webhook",
                core = self.core,
                attempt,
                "POST failed: {error}"
            );
            if attempt < self.max_attempts {
                self.counters.retried.fetch_add(1, Ordering::Relaxed);
                self.meters.retried.inc(&[]);
                Timer::after(self.delay_after(attempt)).await;
            } else {
                self.give_up(&error);
            }
        }
    }

    fn give_up(&self, error: &str) {
        let failed = self.counters.failed.fetch_add(1, Ordering::Relaxed) + 1;
        self.meters.failed.inc(&[]);
        tracing::warn!(
            plugin = "webhook",
            core = self.core,
            failed,
            "event given up after {} attempts (last: {error})",
            self.max_attempts
        );
    }

    fn delay_after(&self, attempt: u32) -> Duration {
        let index = (attempt.max(1) - 1) as usize;
        let last = self.retry.last().copied().unwrap_or(Duration::from_secs(1));
        self.retry.get(index).copied().unwrap_or(last)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::http::Endpoint;

    #[test]
    fn the_last_retry_delay_repeats() {
        let endpoint = Endpoint::parse("http://h/").unwrap();
        let outbox = Outbox {
            client: Client::new(endpoint, &BTreeMap::new(), Duration::from_secs(1)),
            retry: [1, 5].map(Duration::from_secs).to_vec(),
            max_attempts: 5,
            counters: Arc::default(),
            meters: Meters::declare(&PluginConfig::new("webhook", 0, toml::Table::new())),
            core: 0,
        };
        let delays: Vec<u64> = (1..=4).map(|n| outbox.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [1, 5, 5, 5]);
    }
}
