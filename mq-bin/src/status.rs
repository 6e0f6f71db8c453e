//! `mq status`: whether `mq serve` is running, and since when, with its sessions and queue,
//! read from the metrics page of its admin port.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use mq_core::Config;

use crate::admin_client::AdminClient;

/// Prints the running server's state; an error when no server answers on the admin port.
pub(crate) fn run(config: &Config) -> anyhow::Result<()> {
    let Some(address) = config.admin.listen else {
        bail!("the admin port is off ([admin] listen is empty): mq status needs it");
    };
    let client = AdminClient::new(address, crate::admin_client::token(config)?);
    let page = client.ok("GET", "/metrics").map_err(|error| {
        anyhow!(
            "mq serve is not running: no answer on admin port {address}: {}",
            error.root_cause()
        )
    })?;
    let page = String::from_utf8_lossy(&page);
    crate::print(&report(&page, &address.to_string(), SystemTime::now()))
}

/// The report on a metrics `page` scraped at `now`.
fn report(page: &str, address: &str, now: SystemTime) -> String {
    let value = |name: &str| sample(page, name);
    let count = |name: &str| value(name).map_or_else(|| "?".to_owned(), |v| format!("{v:.0}"));
    let mut text = format!("mq serve is running (admin port {address})\n");
    if let Some(started) = value("mq_start_time_seconds") {
        let since = UNIX_EPOCH + Duration::from_secs_f64(started.max(0.0));
        let up = now.duration_since(since).unwrap_or_default();
        let _ = writeln!(text, "  up:       {}", span(up));
    }
    let _ = writeln!(
        text,
        "  sessions: {} open, {} since start",
        count("mq_smtp_sessions_active"),
        count("mq_smtp_sessions_total")
    );
    let _ = writeln!(
        text,
        "  messages: {} accepted since start",
        count("mq_messages_total")
    );
    let entries = value("mq_queue_entries").unwrap_or(0.0);
    let mut queue = format!("{entries:.0} {}", plural(entries, "entry", "entries"));
    if entries > 0.0 {
        let deferred = count("mq_queue_deferred_entries");
        let oldest = value("mq_queue_oldest_entry_age_seconds").unwrap_or(0.0);
        let _ = write!(
            queue,
            " ({deferred} deferred, oldest {})",
            span(Duration::from_secs_f64(oldest.max(0.0)))
        );
    }
    let _ = writeln!(text, "  queue:    {queue}");
    text
}

/// The value of an unlabelled sample `name` on a metrics page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn plural<'a>(n: f64, one: &'a str, many: &'a str) -> &'a str {
    if (n - 1.0).abs() < f64::EPSILON {
        one
    } else {
        many
    }
}

/// A duration as an operator reads it: `3d 4h`, `2h 5m`, `4m 10s`, `12s`.
fn span(duration: Duration) -> String {
    let s = duration.as_secs();
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_an_operator_says_them() {
        assert_eq!(span(Duration::from_secs(12)), "12s");
        assert_eq!(span(Duration::from_secs(250)), "4m 10s");
        assert_eq!(span(Duration::from_mins(125)), "2h 5m");
        assert_eq!(
            span(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5)),
            "3d 4h"
        );
    }

    #[test]
    fn the_report_reads_the_page() {
        let page = "mq_start_time_seconds 1000\nmq_smtp_sessions_active 2\n\
                    mq_smtp_sessions_total 40\nmq_messages_total 30\nmq_queue_entries 1\n\
                    mq_queue_deferred_entries 1\nmq_queue_oldest_entry_age_seconds 250\n";
        let now = UNIX_EPOCH + Duration::from_secs(1000 + 7500);
        let text = report(page, "127.0.0.1:9025", now);
        assert_eq!(
            text,
            "mq serve is running (admin port 127.0.0.1:9025)\n  up:       2h 5m\n  \
             sessions: 2 open, 40 since start\n  messages: 30 accepted since start\n  \
             queue:    1 entry (1 deferred, oldest 4m 10s)\n"
        );
    }
}
