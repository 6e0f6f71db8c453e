//! What `mq queue summary` prints: the queue's shape as Postfix's qshape shows it, one row per
//! destination domain (the busiest first, then a total), one column per age bucket.
//!
//! ```text
//!              T 5 10 20 40 80 160 320 640 1280 1280+
//!        TOTAL 3 2  0  0  0  0   0   0   0    0     1
//!  example.net 2 1  0  0  0  0   0   0   0    0     1
//! ```
//!
//! `T` is the row's total; a bucket `N` counts entries younger than `N` minutes and at least
//! as old as the bucket before it; `1280+` is everything older. Each queued recipient (entry)
//! counts once, as qshape counts recipients.

use std::collections::HashMap;
use std::fmt::Write as _;

use mq_core::admin::QueueRecord;

/// The upper bounds of the age buckets, in minutes: qshape's, doubling from 5.
const BUCKETS: [u64; 9] = [5, 10, 20, 40, 80, 160, 320, 640, 1280];

/// One row: the total and a count per bucket (the last is `1280+`).
type Counts = [u64; BUCKETS.len() + 2];

/// The summary of `records` at `now`, with the `top` busiest domains. `by_sender` shapes by the
/// sender's domain instead of the recipient's (qshape -s).
pub(crate) fn summary(records: &[&QueueRecord], now: u64, top: usize, by_sender: bool) -> String {
    let mut total: Counts = [0; BUCKETS.len() + 2];
    let mut domains: HashMap<String, Counts> = HashMap::new();
    for record in records {
        let address = if by_sender {
            &record.sender
        } else {
            &record.recipient
        };
        let domain = address
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_ascii_lowercase();
        let bucket = bucket(now.saturating_sub(record.arrived) / 60);
        let row = domains.entry(domain).or_insert([0; BUCKETS.len() + 2]);
        for counts in [&mut total, row] {
            counts[0] += 1;
            counts[bucket + 1] += 1;
        }
    }
    let mut rows: Vec<(String, Counts)> = domains.into_iter().collect();
    // The busiest first; a tie in domain order, so that the output is stable.
    rows.sort_by(|(a, x), (b, y)| y[0].cmp(&x[0]).then_with(|| a.cmp(b)));
    rows.truncate(top);
    let mut header = vec![String::new(), "T".to_owned()];
    header.extend(BUCKETS.iter().map(u64::to_string));
    header.push(format!("{}+", BUCKETS[BUCKETS.len() - 1]));
    let mut table = vec![header];
    table.push(row("TOTAL", &total));
    table
        .extend(rows.iter().map(|(domain, counts)| {
            row(if domain.is_empty() { "(none)" } else { domain }, counts)
        }));
    render(&table)
}

/// The bucket of an entry `minutes` old.
fn bucket(minutes: u64) -> usize {
    BUCKETS
        .iter()
        .position(|&bound| minutes < bound)
        .unwrap_or(BUCKETS.len())
}

fn row(name: &str, counts: &Counts) -> Vec<String> {
    std::iter::once(name.to_owned())
        .chain(counts.iter().map(u64::to_string))
        .collect()
}

/// Every column right-aligned to its widest cell, one space apart.
fn render(table: &[Vec<String>]) -> String {
    let columns = table[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in table {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, " {cell:>width$}");
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn record(recipient: &str, minutes_old: u64) -> QueueRecord {
        let line = serde_json::json!({
            "queue_id": "0006123456789ABC", "recipient_index": 0, "sender": "a@example.org",
            "recipient": recipient, "size": 10, "arrived": NOW - minutes_old * 60, "attempts": 0,
            "next_attempt": NOW, "last_error": null, "state": "ready",
        });
        serde_json::from_value(line).unwrap()
    }

    #[test]
    fn rows_are_domains_busiest_first_under_a_total() {
        let records = [
            record("a@example.net", 0),
            record("b@EXAMPLE.net", 7),
            record("c@example.com", 4),
            record("d@example.net", 2_000),
        ];
        let refs: Vec<&QueueRecord> = records.iter().collect();
        let expected = [
            "             T 5 10 20 40 80 160 320 640 1280 1280+",
            "       TOTAL 4 2  1  0  0  0   0   0   0    0     1",
            " example.net 3 1  1  0  0  0   0   0   0    0     1",
            " example.com 1 1  0  0  0  0   0   0   0    0     0",
            "",
        ]
        .join("\n");
        assert_eq!(summary(&refs, NOW, 10, false), expected);
        let top = summary(&refs, NOW, 1, false);
        assert_eq!(top.lines().count(), 3, "{top}");
        let senders = summary(&refs, NOW, 10, true);
        assert!(senders.contains(" example.org 4 2  1"), "{senders}");
    }

    #[test]
    fn buckets_are_bounded_by_their_minutes() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(4), 0);
        assert_eq!(bucket(5), 1);
        assert_eq!(bucket(1_279), 8);
        assert_eq!(bucket(1_280), 9);
    }
}
