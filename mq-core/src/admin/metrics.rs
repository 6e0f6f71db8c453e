//! `GET /metrics`: the server's, the queue's and every plugin × hook's counters in Prometheus'
//! text exposition format (version 0.0.4).

use std::fmt::{self, Write as _};
use std::sync::atomic::Ordering;

use std::time::SystemTime;

use crate::delivery::DeliveryStats;
use crate::delivery::stats::{AttemptResult, Class, LATENCY_BOUNDS_SECONDS};
use crate::metrics::{HookMetrics, LATENCY_BOUNDS_MICROS, Metrics};
use crate::queue::{QueueAge, QueueHealth};
use crate::smtp::Stats;

/// Renders the counters as a Prometheus scrape: `# HELP` and `# TYPE` lines, then the samples.
///
/// A pure function of its inputs, so that the page is tested without a server. The latency
/// histogram `mq_plugin_wait_seconds` counts only the calls that had to wait (returned Pending
/// on their first poll); its buckets are cumulative, as Prometheus requires.
///
/// # Examples
///
/// ```
/// use mq_core::Metrics;
/// use mq_core::admin::render_metrics;
/// use mq_core::smtp::Stats;
///
/// let stats = Stats::default();
/// stats.messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
/// let page = render_metrics(&stats, &Metrics::default(), 2);
/// assert!(page.contains("\nmq_messages_total 1\n"));
/// assert!(page.contains("\nmq_queue_entries 2\n"));
/// ```
pub fn render_metrics(stats: &Stats, metrics: &Metrics, queue_entries: usize) -> String {
    let mut page = Page(String::new());
    // Writing to a String cannot fail; the Results only carry fmt's signature.
    let _ = page.server(stats, queue_entries);
    let _ = page.plugins(metrics);
    let _ = super::plugin_metrics::render(&mut page.0, metrics.families());
    page.0
}

/// Renders the queue's storage health, to follow [`render_metrics`] on the page: whether the
/// journal can be written (`mq_queue_writable`, 0 while writes fail and new mail is refused),
/// the writes that failed, the journal's syncs, and the damage moved aside when the queue was
/// opened.
///
/// # Examples
///
/// ```
/// use mq_core::admin::render_queue_health;
/// use mq_core::queue::QueueHealth;
///
/// let mut health = QueueHealth::default();
/// health.syncs = 7;
/// let page = render_queue_health(&health);
/// assert!(page.contains("\nmq_queue_writable 1\n"));
/// assert!(page.contains("\nmq_queue_write_failures_total 0\n"));
/// assert!(page.contains("\nmq_queue_journal_syncs_total 7\n"));
/// ```
pub fn render_queue_health(health: &QueueHealth) -> String {
    let mut page = Page(String::new());
    // Writing to a String cannot fail; the Results only carry fmt's signature.
    let _ = page.queue_health(health);
    page.0
}

/// What [`render_service`] reports on: the server's start, TLS, delivery and the queue's
/// entries.
#[derive(Debug)]
pub struct Service<'a> {
    /// When the server started.
    pub started: Option<SystemTime>,
    /// Inbound sessions that completed STARTTLS.
    pub tls_in: u64,
    /// Delivery's counters, when the server delivers.
    pub delivery: Option<&'a DeliveryStats>,
    /// The queue's deferred entries and its oldest entry's arrival.
    pub queue: QueueAge,
    /// The time of the scrape.
    pub now: SystemTime,
}

/// Renders what an operator follows a running server by, to follow [`render_queue_health`] on
/// the page: `mq_start_time_seconds`, TLS sessions in and out, delivery attempts by result and
/// destination class, the delivery latency histogram (arrival to delivery, delivered entries),
/// bounces queued, deferred entries and the age of the oldest entry.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use mq_core::admin::{Service, render_service};
/// use mq_core::delivery::DeliveryStats;
/// use mq_core::delivery::stats::{AttemptResult, Class};
/// use mq_core::queue::QueueAge;
///
/// let stats = DeliveryStats::default();
/// stats.record(Class::Mx, AttemptResult::Delivered, Duration::from_millis(300));
/// let page = render_service(&Service {
///     started: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
///     tls_in: 0,
///     delivery: Some(&stats),
///     queue: QueueAge::default(),
///     now: SystemTime::now(),
/// });
/// assert!(page.contains("\nmq_start_time_seconds 1700000000\n"));
/// assert!(page.contains("\nmq_delivery_attempts_total{class=\"mx\",result=\"delivered\"} 1\n"));
/// assert!(page.contains("\nmq_delivery_latency_seconds_bucket{le=\"0.5\"} 1\n"));
/// assert!(page.contains("\nmq_queue_oldest_entry_age_seconds 0\n"));
/// ```
pub fn render_service(service: &Service<'_>) -> String {
    let mut page = Page(String::new());
    // Writing to a String cannot fail; the Results only carry fmt's signature.
    let _ = page.service(service);
    page.0
}

/// A queue backend's own metrics ([`Queue::metrics`](crate::queue::Queue::metrics)), in
/// Prometheus' text format.
///
/// # Examples
///
/// ```
/// use mq_core::admin::render_queue_metrics;
/// use mq_core::queue::QueueMetric;
///
/// let metric = QueueMetric { name: "mq_broker_connected", kind: "gauge", help: "Up.", value: 1 };
/// assert!(render_queue_metrics(&[metric]).contains("\nmq_broker_connected 1\n"));
/// ```
pub fn render_queue_metrics(metrics: &[crate::queue::QueueMetric]) -> String {
    let mut page = Page(String::new());
    for metric in metrics {
        let _ = page.single(metric.name, metric.kind, metric.help, metric.value);
    }
    page.0
}

/// The page being written.
struct Page(String);

impl Page {
    /// Starts a metric family with its help text and type.
    fn family(&mut self, name: &str, kind: &str, help: &str) -> fmt::Result {
        writeln!(self.0, "# HELP {name} {help}")?;
        writeln!(self.0, "# TYPE {name} {kind}")
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) -> fmt::Result {
        self.family(name, kind, help)?;
        writeln!(self.0, "{name} {value}")
    }

    fn server(&mut self, stats: &Stats, queue_entries: usize) -> fmt::Result {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        self.single(
            "mq_smtp_sessions_total",
            "counter",
            "SMTP sessions accepted since start.",
            load(&stats.sessions),
        )?;
        self.single(
            "mq_smtp_sessions_active",
            "gauge",
            "SMTP sessions open now.",
            load(&stats.active),
        )?;
        self.single(
            "mq_messages_total",
            "counter",
            "Messages queued since start.",
            load(&stats.messages),
        )?;
        self.single(
            "mq_message_bytes_total",
            "counter",
            "Bytes of messages queued since start.",
            load(&stats.bytes),
        )?;
        self.family(
            "mq_smtp_replies_total",
            "counter",
            "SMTP replies sent, by code.",
        )?;
        for (code, count) in stats.replies() {
            writeln!(self.0, "mq_smtp_replies_total{{code=\"{code}\"}} {count}")?;
        }
        self.auth(&stats.auth)?;
        self.single(
            "mq_queue_entries",
            "gauge",
            "Queued entries (one per recipient).",
            queue_entries as u64,
        )
    }

    fn service(&mut self, service: &Service<'_>) -> fmt::Result {
        if let Some(started) = service.started {
            let at = started
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            self.single(
                "mq_start_time_seconds",
                "gauge",
                "When the server started, in seconds since the Unix epoch.",
                at.as_secs(),
            )?;
        }
        let delivery = service.delivery;
        let out = delivery.map_or(0, |d| d.tls.load(Ordering::Relaxed));
        self.family(
            "mq_tls_sessions_total",
            "counter",
            "SMTP sessions that completed STARTTLS: in, clients to mq; out, mq to servers.",
        )?;
        writeln!(
            self.0,
            "mq_tls_sessions_total{{direction=\"in\"}} {}",
            service.tls_in
        )?;
        writeln!(self.0, "mq_tls_sessions_total{{direction=\"out\"}} {out}")?;
        if let Some(delivery) = delivery {
            self.delivery(delivery)?;
        }
        self.single(
            "mq_queue_deferred_entries",
            "gauge",
            "Queued entries whose last attempt was deferred.",
            service.queue.deferred as u64,
        )?;
        let age = service.queue.oldest.map_or(0, |arrived| {
            let age = service.now.duration_since(arrived).unwrap_or_default();
            age.as_secs()
        });
        self.single(
            "mq_queue_oldest_entry_age_seconds",
            "gauge",
            "Seconds since the oldest queued entry arrived; 0 when the queue is empty.",
            age,
        )
    }

    fn delivery(&mut self, delivery: &DeliveryStats) -> fmt::Result {
        self.family(
            "mq_delivery_attempts_total",
            "counter",
            "Delivery attempts by result (delivered, deferred, bounced) and destination class (local, relay, mx).",
        )?;
        for class in Class::ALL {
            for result in AttemptResult::ALL {
                writeln!(
                    self.0,
                    "mq_delivery_attempts_total{{class=\"{}\",result=\"{}\"}} {}",
                    class.name(),
                    result.name(),
                    delivery.attempts(class, result)
                )?;
            }
        }
        let name = "mq_delivery_latency_seconds";
        self.family(
            name,
            "histogram",
            "Time from arrival to delivery of delivered entries.",
        )?;
        let (buckets, count, sum) = delivery.latency();
        for (bound, cumulative) in LATENCY_BOUNDS_SECONDS.iter().zip(buckets) {
            writeln!(self.0, "{name}_bucket{{le=\"{bound}\"}} {cumulative}")?;
        }
        writeln!(self.0, "{name}_bucket{{le=\"+Inf\"}} {count}")?;
        writeln!(self.0, "{name}_sum {}", seconds(sum))?;
        writeln!(self.0, "{name}_count {count}")?;
        self.single(
            "mq_bounces_total",
            "counter",
            "Delivery status notifications queued for senders.",
            delivery.bounces.load(Ordering::Relaxed),
        )
    }

    fn queue_health(&mut self, health: &QueueHealth) -> fmt::Result {
        self.single(
            "mq_queue_writable",
            "gauge",
            "1 if the queue journal can be written, 0 while writes fail (new mail gets 451).",
            u64::from(health.writable),
        )?;
        self.single(
            "mq_queue_write_failures_total",
            "counter",
            "Queue journal writes, syncs or new segments that failed since start.",
            health.write_failures,
        )?;
        self.single(
            "mq_queue_journal_syncs_total",
            "counter",
            "Syncs of the queue journal since start (group commit: one for many messages under load).",
            health.syncs,
        )?;
        self.single(
            "mq_queue_corrupt_regions_total",
            "counter",
            "Damaged ranges of the queue journal moved aside into corrupt/ at start.",
            health.corrupt_regions,
        )?;
        self.single(
            "mq_queue_corrupt_bytes_total",
            "counter",
            "Bytes of the queue journal moved aside into corrupt/ at start.",
            health.corrupt_bytes,
        )
    }

    fn auth(&mut self, auth: &crate::smtp::AuthStats) -> fmt::Result {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        self.single(
            "mq_auth_verifications_in_flight",
            "gauge",
            "Password checks running now.",
            load(&auth.in_flight),
        )?;
        self.single(
            "mq_auth_verifications_peak",
            "gauge",
            "The most password checks that ran at once since start.",
            load(&auth.peak),
        )?;
        self.single(
            "mq_auth_busy_total",
            "counter",
            "AUTH commands answered 454 because too many password checks were waiting.",
            load(&auth.busy),
        )?;
        self.single(
            "mq_auth_locked_out_total",
            "counter",
            "AUTH commands refused because their client address failed too often.",
            load(&auth.locked_out),
        )
    }

    fn plugins(&mut self, metrics: &Metrics) -> fmt::Result {
        let (observers, chains): (Vec<HookMetrics>, Vec<HookMetrics>) =
            metrics.iter().cloned().partition(|m| m.observer);
        self.chains(&Metrics::new(chains))?;
        self.observers(&observers)
    }

    /// Observer calls by how they ended: observers have no control, and nothing they do
    /// reaches the step.
    fn observers(&mut self, observers: &[HookMetrics]) -> fmt::Result {
        let name = "mq_plugin_observer_calls_total";
        self.family(
            name,
            "counter",
            "Observer calls by how they ended; none changes its step.",
        )?;
        for m in observers {
            for (result, count) in [
                ("done", m.continues),
                ("timeout", m.timeouts),
                ("panic", m.panics),
            ] {
                writeln!(
                    self.0,
                    "{name}{{{},result=\"{result}\"}} {count}",
                    labels(m)
                )?;
            }
        }
        Ok(())
    }

    fn chains(&mut self, metrics: &Metrics) -> fmt::Result {
        self.family(
            "mq_plugin_calls_total",
            "counter",
            "Plugin calls by the control they returned.",
        )?;
        for m in metrics.iter() {
            for (control, count) in [
                ("continue", m.continues),
                ("complete", m.completes),
                ("retry", m.retries),
            ] {
                writeln!(
                    self.0,
                    "mq_plugin_calls_total{{{},control=\"{control}\"}} {count}",
                    labels(m)
                )?;
            }
        }
        self.per_hook(
            "mq_plugin_rejects_total",
            "Plugin calls that set a reply.",
            metrics,
            |m| m.rejects,
        )?;
        self.per_hook(
            "mq_plugin_timeouts_total",
            "Plugin calls dropped at their deadline.",
            metrics,
            |m| m.timeouts,
        )?;
        self.per_hook(
            "mq_plugin_panics_total",
            "Plugin calls that panicked.",
            metrics,
            |m| m.panics,
        )?;
        self.per_hook(
            "mq_plugin_slow_polls_total",
            "Polls that held a worker past the slow-poll threshold.",
            metrics,
            |m| m.slow_polls,
        )?;
        self.histogram(metrics)
    }

    /// A counter family with one sample per plugin × hook.
    fn per_hook(
        &mut self,
        name: &str,
        help: &str,
        metrics: &Metrics,
        value: fn(&HookMetrics) -> u64,
    ) -> fmt::Result {
        self.family(name, "counter", help)?;
        for m in metrics.iter() {
            writeln!(self.0, "{name}{{{}}} {}", labels(m), value(m))?;
        }
        Ok(())
    }

    fn histogram(&mut self, metrics: &Metrics) -> fmt::Result {
        let name = "mq_plugin_wait_seconds";
        self.family(
            name,
            "histogram",
            "Latency of plugin calls that had to wait.",
        )?;
        for m in metrics.iter() {
            let labels = labels(m);
            // The engine counts each bucket on its own; Prometheus wants each to include those
            // below it.
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BOUNDS_MICROS.iter().zip(m.waited) {
                cumulative += count;
                writeln!(
                    self.0,
                    "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
                    seconds(*bound)
                )?;
            }
            writeln!(
                self.0,
                "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
                m.waited_calls()
            )?;
            writeln!(
                self.0,
                "{name}_sum{{{labels}}} {}",
                seconds(m.waited_micros)
            )?;
            writeln!(self.0, "{name}_count{{{labels}}} {}", m.waited_calls())?;
        }
        Ok(())
    }
}

/// `plugin="…",hook="…"`.
fn labels(m: &HookMetrics) -> String {
    format!(
        "plugin=\"{}\",hook=\"{}\"",
        escape(m.plugin),
        escape(m.hook.name())
    )
}

/// A label value escaped as the exposition format asks (backslash, quote, newline).
pub(super) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Microseconds as exact decimal seconds, without trailing zeros: `250` → `0.00025`. Integer
/// arithmetic rather than `f64`, so that sums stay exact however large they grow.
fn seconds(micros: u64) -> String {
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::HookId;

    use super::*;

    fn hook(plugin: &'static str, waited: [u64; LATENCY_BOUNDS_MICROS.len() + 1]) -> HookMetrics {
        HookMetrics {
            plugin,
            hook: HookId::SmtpInData,
            observer: false,
            continues: 5,
            completes: 1,
            retries: 0,
            rejects: 2,
            timeouts: 1,
            panics: 0,
            slow_polls: 3,
            waited,
            waited_micros: 1_250_000,
        }
    }

    fn page(entries: Vec<HookMetrics>) -> String {
        let stats = Stats::default();
        stats.sessions.store(4, Ordering::Relaxed);
        stats.active.store(1, Ordering::Relaxed);
        stats.messages.store(3, Ordering::Relaxed);
        stats.bytes.store(1_024, Ordering::Relaxed);
        let mut metrics = Metrics::default();
        metrics.merge(&Metrics::new(entries));
        render_metrics(&stats, &metrics, 7)
    }

    fn samples(page: &str) -> Vec<&str> {
        page.lines().filter(|line| !line.starts_with('#')).collect()
    }

    #[test]
    fn server_counters_are_plain_samples() {
        let page = page(Vec::new());
        let samples = samples(&page);
        for expected in [
            "mq_smtp_sessions_total 4",
            "mq_smtp_sessions_active 1",
            "mq_messages_total 3",
            "mq_message_bytes_total 1024",
            "mq_queue_entries 7",
        ] {
            assert!(samples.contains(&expected), "{expected} in\n{page}");
        }
        assert!(
            page.contains("# TYPE mq_smtp_sessions_active gauge\n"),
            "{page}"
        );
    }

    #[test]
    fn every_plugin_hook_has_its_counters_by_control() {
        let mut waited = [0; LATENCY_BOUNDS_MICROS.len() + 1];
        waited[0] = 1;
        let page = page(vec![hook("headers", waited)]);
        let labels = "plugin=\"headers\",hook=\"smtp_in_data\"";
        for expected in [
            format!("mq_plugin_calls_total{{{labels},control=\"continue\"}} 5"),
            format!("mq_plugin_calls_total{{{labels},control=\"complete\"}} 1"),
            format!("mq_plugin_calls_total{{{labels},control=\"retry\"}} 0"),
            format!("mq_plugin_rejects_total{{{labels}}} 2"),
            format!("mq_plugin_timeouts_total{{{labels}}} 1"),
            format!("mq_plugin_panics_total{{{labels}}} 0"),
            format!("mq_plugin_slow_polls_total{{{labels}}} 3"),
        ] {
            assert!(
                samples(&page).contains(&expected.as_str()),
                "{expected} in\n{page}"
            );
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut waited = [0; LATENCY_BOUNDS_MICROS.len() + 1];
        waited[0] = 2; // ≤ 100 µs
        waited[3] = 1; // ≤ 1 ms
        waited[LATENCY_BOUNDS_MICROS.len()] = 1; // above 30 s
        let page = page(vec![hook("slow", waited)]);
        let buckets: Vec<&str> = samples(&page)
            .into_iter()
            .filter(|line| line.starts_with("mq_plugin_wait_seconds_bucket"))
            .collect();
        assert_eq!(buckets.len(), LATENCY_BOUNDS_MICROS.len() + 1);
        let l = "plugin=\"slow\",hook=\"smtp_in_data\"";
        assert_eq!(
            buckets[0],
            format!("mq_plugin_wait_seconds_bucket{{{l},le=\"0.0001\"}} 2")
        );
        assert_eq!(
            buckets[2],
            format!("mq_plugin_wait_seconds_bucket{{{l},le=\"0.0005\"}} 2")
        );
        assert_eq!(
            buckets[3],
            format!("mq_plugin_wait_seconds_bucket{{{l},le=\"0.001\"}} 3")
        );
        assert_eq!(
            buckets[13],
            format!("mq_plugin_wait_seconds_bucket{{{l},le=\"30\"}} 3")
        );
        assert_eq!(
            buckets[14],
            format!("mq_plugin_wait_seconds_bucket{{{l},le=\"+Inf\"}} 4")
        );
        assert!(
            page.contains(&format!("\nmq_plugin_wait_seconds_sum{{{l}}} 1.25\n")),
            "{page}"
        );
        assert!(
            page.contains(&format!("\nmq_plugin_wait_seconds_count{{{l}}} 4\n")),
            "{page}"
        );
    }

    #[test]
    fn replies_are_labelled_by_code() {
        let stats = Stats::default();
        stats.reply(250);
        stats.reply(250);
        stats.reply(554);
        let page = render_metrics(&stats, &Metrics::default(), 0);
        assert!(
            page.contains("\nmq_smtp_replies_total{code=\"250\"} 2\n"),
            "{page}"
        );
        assert!(
            page.contains("\nmq_smtp_replies_total{code=\"554\"} 1\n"),
            "{page}"
        );
    }

    #[test]
    fn seconds_are_exact_and_short() {
        assert_eq!(seconds(0), "0");
        assert_eq!(seconds(250), "0.00025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(30_000_001), "30.000001");
    }

    #[test]
    fn observers_have_their_own_family_and_stay_out_of_the_chain_counters() {
        let mut observer = hook("audit", [0; LATENCY_BOUNDS_MICROS.len() + 1]);
        observer.observer = true;
        let page = page(vec![observer]);
        let labels = "plugin=\"audit\",hook=\"smtp_in_data\"";
        let samples = samples(&page);
        for expected in [
            format!("mq_plugin_observer_calls_total{{{labels},result=\"done\"}} 5"),
            format!("mq_plugin_observer_calls_total{{{labels},result=\"timeout\"}} 1"),
            format!("mq_plugin_observer_calls_total{{{labels},result=\"panic\"}} 0"),
        ] {
            assert!(
                samples.contains(&expected.as_str()),
                "{expected} in\n{page}"
            );
        }
        assert!(!page.contains("mq_plugin_calls_total{"), "{page}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
