//! What `mq queue list` and `mq queue show` print, from [`QueueRecord`]s and the time now.
//!
//! Plain aligned text, no colour, and the Postfix-style summary line that scripts and habits
//! already know (`-- 3 Kbytes in 2 Requests.`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mq_core::admin::QueueRecord;

use crate::clock::utc;

const HEADER: [&str; 7] = [
    "QUEUE ID",
    "SENDER",
    "RECIPIENT",
    "SIZE",
    "AGE",
    "STATE",
    "NEXT ATTEMPT",
];
/// The column of sizes, aligned right.
const SIZE: usize = 3;

/// The listing: a header and one line per queued recipient, then the summary; or
/// `Mail queue is empty`.
pub(crate) fn list(records: &[&QueueRecord], now: u64) -> String {
    if records.is_empty() {
        return "Mail queue is empty\n".to_owned();
    }
    let mut rows = vec![HEADER.map(str::to_owned)];
    rows.extend(records.iter().map(|r| {
        [
            r.queue_id.clone(),
            r.sender.clone(),
            r.recipient.clone(),
            r.size.to_string(),
            age(now.saturating_sub(r.arrived)),
            r.state.clone(),
            next_attempt(r.next_attempt, now),
        ]
    }));
    let mut text = table(&rows);
    text.push_str(&summary(records));
    text
}

/// The rows aligned in columns two spaces apart, without trailing spaces.
fn table(rows: &[[String; 7]]) -> String {
    let mut widths = [0; 7];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            let _ = match column {
                0 => write!(line, "{cell:width$}"),
                SIZE => write!(line, "  {cell:>width$}"),
                _ => write!(line, "  {cell:width$}"),
            };
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// `-- 3 Kbytes in 2 Requests.`: each message counted once, however many recipients it has.
fn summary(records: &[&QueueRecord]) -> String {
    let messages: BTreeMap<&str, u64> = records
        .iter()
        .map(|r| (r.queue_id.as_str(), r.size))
        .collect();
    let kbytes = messages.values().sum::<u64>().div_ceil(1024);
    let count = messages.len();
    let plural = if count == 1 { "" } else { "s" };
    format!("-- {kbytes} Kbytes in {count} Request{plural}.\n")
}

/// One message: its envelope (with its SMTPUTF8 and DSN parameters, when it has any), each
/// recipient's state (and NOTIFY and ORCPT), then its text with LF line ends.
pub(crate) fn show(records: &[QueueRecord], body: &[u8], now: u64) -> String {
    let mut text = String::new();
    if let Some(first) = records.first() {
        let _ = writeln!(text, "Queue ID:  {}", first.queue_id);
        let _ = writeln!(text, "Sender:    {}", first.sender);
        let _ = writeln!(text, "Size:      {} bytes", first.size);
        let _ = writeln!(
            text,
            "Arrived:   {} ({} ago)",
            utc(first.arrived),
            age(now.saturating_sub(first.arrived))
        );
        if first.smtputf8 {
            text.push_str("SMTPUTF8:  yes\n");
        }
        if let Some(ret) = &first.ret {
            let _ = writeln!(text, "RET:       {ret}");
        }
        if let Some(envid) = &first.envid {
            let _ = writeln!(text, "ENVID:     {envid}");
        }
    }
    for r in records {
        let when = match next_attempt(r.next_attempt, now) {
            relative if r.next_attempt <= now => relative,
            relative => format!("{} ({relative})", utc(r.next_attempt)),
        };
        let attempts = if r.attempts == 1 {
            "attempt"
        } else {
            "attempts"
        };
        let _ = writeln!(
            text,
            "Recipient: {} ({}, {} {attempts}, next attempt {when})",
            r.recipient, r.state, r.attempts
        );
        if let Some(notify) = &r.notify {
            let _ = writeln!(text, "           notify: {notify}");
        }
        if let Some(orcpt) = &r.orcpt {
            let _ = writeln!(text, "           orcpt: {orcpt}");
        }
        if let Some(error) = &r.last_error {
            let _ = writeln!(text, "           last error: {error}");
        }
    }
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(body).replace("\r\n", "\n"));
    text
}

/// The records as JSON, one object per line: what the admin port's `GET /queue` sends.
pub(crate) fn json_lines(records: &[&QueueRecord]) -> String {
    let mut text = String::new();
    for record in records {
        // Serialising a struct of strings and numbers cannot fail.
        text.push_str(&serde_json::to_string(record).unwrap_or_default());
        text.push('\n');
    }
    text
}

/// One message as one JSON object: `{"entries": [...], "body": "..."}`, the body as text
/// (invalid UTF-8 replaced).
pub(crate) fn show_json(records: &[QueueRecord], body: &[u8]) -> String {
    let value = serde_json::json!({
        "entries": records,
        "body": String::from_utf8_lossy(body),
    });
    format!("{value}\n")
}

/// A duration in its largest whole unit: `42s`, `5m`, `3h`, `2d`.
fn age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3_600 => format!("{}m", seconds / 60),
        3_600..86_400 => format!("{}h", seconds / 3_600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// `now` for an entry that is due, else `in 9m`.
fn next_attempt(at: u64, now: u64) -> String {
    if at <= now {
        "now".to_owned()
    } else {
        format!("in {}", age(at - now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn record(id: &str, recipient: &str, size: u64, state: &str, next: u64) -> QueueRecord {
        let line = serde_json::json!({
            "queue_id": id, "recipient_index": 0, "sender": "alice@example.org",
            "recipient": recipient, "size": size, "arrived": NOW - 300, "attempts": 0,
            "next_attempt": next, "last_error": null, "state": state,
        });
        serde_json::from_value(line).unwrap()
    }

    #[test]
    fn a_listing_has_aligned_columns_and_a_summary() {
        let records = [
            record(
                "0006123456789ABC",
                "bob@example.net",
                1_500,
                "ready",
                NOW - 300,
            ),
            record(
                "0006123456789ABC",
                "carol@example.net",
                1_500,
                "ready",
                NOW - 300,
            ),
            record(
                "0006123456789ABD",
                "dave@example.net",
                900,
                "deferred",
                NOW + 540,
            ),
        ];
        let expected = "\
QUEUE ID          SENDER             RECIPIENT          SIZE  AGE  STATE     NEXT ATTEMPT
0006123456789ABC  alice@example.org  bob@example.net    1500  5m   ready     now
0006123456789ABC  alice@example.org  carol@example.net  1500  5m   ready     now
0006123456789ABD  alice@example.org  dave@example.net    900  5m   deferred  in 9m
-- 3 Kbytes in 2 Requests.
";
        assert_eq!(list(&records.each_ref(), NOW), expected);
    }

    #[test]
    fn an_empty_queue_says_so() {
        assert_eq!(list(&[], NOW), "Mail queue is empty\n");
    }

    #[test]
    fn one_message_is_one_request() {
        let records = [record(
            "0006123456789ABC",
            "bob@example.net",
            10,
            "ready",
            NOW,
        )];
        assert!(list(&records.each_ref(), NOW).ends_with("\n-- 1 Kbytes in 1 Request.\n"));
    }

    #[test]
    fn ages_use_their_largest_unit() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(60), "1m");
        assert_eq!(age(7_200), "2h");
        assert_eq!(age(200_000), "2d");
    }

    #[test]
    fn show_prints_the_envelope_the_entries_and_the_text() {
        let mut deferred = record(
            "0006123456789ABC",
            "carol@example.net",
            20,
            "deferred",
            NOW + 60,
        );
        deferred.attempts = 1;
        deferred.last_error = Some("421 4.7.0 try later".into());
        let records = [
            record("0006123456789ABC", "bob@example.net", 20, "ready", NOW),
            deferred,
        ];
        let text = show(&records, b"Subject: hi\r\n\r\nhello\r\n", NOW);
        let expected = "\
Queue ID:  0006123456789ABC
Sender:    alice@example.org
Size:      20 bytes
Arrived:   2023-11-14 22:08:20 UTC (5m ago)
Recipient: bob@example.net (ready, 0 attempts, next attempt now)
Recipient: carol@example.net (deferred, 1 attempt, next attempt 2023-11-14 22:14:20 UTC (in 1m))
           last error: 421 4.7.0 try later

Subject: hi

hello
";
        assert_eq!(text, expected);
    }

    #[test]
    fn show_prints_the_smtputf8_and_dsn_parameters_kept_with_the_message() {
        let mut told = record("0006123456789ABC", "b\u{e9}a@example.net", 20, "ready", NOW);
        told.smtputf8 = true;
        told.ret = Some("HDRS".into());
        told.envid = Some("QQ+314159".into());
        told.notify = Some("SUCCESS,FAILURE".into());
        told.orcpt = Some("rfc822;bob+2Bx@example.net".into());
        let text = show(&[told], b"Subject: hi\r\n\r\nhello\r\n", NOW);
        let expected = "\
Queue ID:  0006123456789ABC
Sender:    alice@example.org
Size:      20 bytes
Arrived:   2023-11-14 22:08:20 UTC (5m ago)
SMTPUTF8:  yes
RET:       HDRS
ENVID:     QQ+314159
Recipient: b\u{e9}a@example.net (ready, 0 attempts, next attempt now)
           notify: SUCCESS,FAILURE
           orcpt: rfc822;bob+2Bx@example.net
";
        assert!(text.starts_with(expected), "{text}");
    }
}
