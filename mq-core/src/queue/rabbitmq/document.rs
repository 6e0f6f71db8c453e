//! MailerQ's JSON documents: the message (one recipient each), the fields mq honours, and the
//! result with one entry per attempt.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mq_plugin_api::Address;
use serde::Serialize;
use serde_json::{Map, Value};

use super::super::{AttemptReport, Origin, Relay, RetryRules};

/// Fields of MailerQ's format that mq does not support: a document naming one is refused into
/// `failure` rather than sent without it.
const UNSUPPORTED: [(&str, &str); 4] = [
    ("data", "personalisation (`data`)"),
    ("ips", "source IP selection (`ips`)"),
    ("pool", "IP pools (`pool`)"),
    ("key", "the message store (`key`)"),
];

/// A message document taken from the outbox, with what mq reads from it.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The whole document but its `mime`: what the results carry (every key, known or not).
    pub(crate) fields: Map<String, Value>,
    pub(crate) sender: Address,
    pub(crate) recipient: Address,
    /// The `mime`, kept once: delivery reads it, and [`Document::with_mime`] puts it back
    /// where a copy of the document needs it.
    pub(crate) mime: Arc<[u8]>,
    /// Attempts made so far: the entries of its `results`.
    pub(crate) attempts: u32,
    pub(crate) next_attempt: Option<SystemTime>,
    pub(crate) relay: Option<Relay>,
}

/// Why a document cannot be delivered at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The document as far as it is one (an object), for the result.
    pub(crate) fields: Map<String, Value>,
    pub(crate) why: String,
}

impl Document {
    /// Reads a document from a message body.
    pub(crate) fn parse(payload: &[u8]) -> Result<Document, Refusal> {
        let mut fields = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(fields)) => fields,
            Ok(_) => return Err(refusal(Map::new(), "the message is not a JSON object")),
            Err(error) => {
                let mut fields = Map::new();
                fields.insert(
                    "payload".into(),
                    String::from_utf8_lossy(payload).into_owned().into(),
                );
                return Err(refusal(
                    fields,
                    &format!("the message is not JSON: {error}"),
                ));
            }
        };
        for (key, what) in UNSUPPORTED {
            if fields.get(key).is_some_and(|v| !v.is_null()) {
                let why = format!("mq does not support {what}");
                return Err(refusal(fields, &why));
            }
        }
        let mime: Arc<[u8]> = match fields.remove("mime") {
            Some(Value::String(mime)) => Arc::from(mime.into_bytes()),
            Some(mime @ Value::Object(_)) => {
                fields.insert("mime".into(), mime);
                return Err(refusal(
                    fields,
                    "mq does not support a `mime` object (responsive email)",
                ));
            }
            other => {
                if let Some(mime) = other {
                    fields.insert("mime".into(), mime);
                }
                return Err(refusal(fields, "the message has no `mime` string"));
            }
        };
        let recipient = match fields.get("recipient").and_then(Value::as_str) {
            Some(text) => match address(text) {
                Some(recipient) if !recipient.is_null() => recipient,
                _ => return Err(refusal(fields, "the `recipient` is not an address")),
            },
            None => return Err(refusal(fields, "the message has no `recipient`")),
        };
        let sender = match fields.get("envelope") {
            None | Some(Value::Null) => Address::null(),
            Some(Value::String(text)) => match address(text) {
                Some(sender) => sender,
                None => return Err(refusal(fields, "the `envelope` is not an address")),
            },
            Some(_) => return Err(refusal(fields, "the `envelope` is not a string")),
        };
        let next_attempt = match fields.get("nextattempt") {
            None | Some(Value::Null) => None,
            Some(value) => match value.get("time").and_then(time_value) {
                Some(time) => Some(time),
                None => return Err(refusal(fields, "`nextattempt` has no valid `time`")),
            },
        };
        let relay = match fields.get("smarthost") {
            None | Some(Value::Null) => None,
            Some(value) => match smarthost(value) {
                Some(relay) => Some(relay),
                None => return Err(refusal(fields, "`smarthost` has no valid `hostname`")),
            },
        };
        let attempts = fields
            .get("results")
            .and_then(Value::as_array)
            .map_or(0, |results| {
                u32::try_from(results.len()).unwrap_or(u32::MAX)
            });
        Ok(Document {
            fields,
            sender,
            recipient,
            mime,
            attempts,
            next_attempt,
            relay,
        })
    }

    /// The document's `retries`, `maxattempts` and `maxdelivertime`, when it has any.
    pub(crate) fn retry_rules(&self) -> Option<RetryRules> {
        let delays: Vec<Duration> = self
            .fields
            .get("retries")
            .and_then(Value::as_array)
            .map(|retries| {
                retries
                    .iter()
                    .filter_map(Value::as_u64)
                    .map(Duration::from_secs)
                    .collect()
            })
            .unwrap_or_default();
        let max_attempts = self
            .fields
            .get("maxattempts")
            .and_then(Value::as_u64)
            .map(|max| u32::try_from(max).unwrap_or(u32::MAX));
        let deadline = self.fields.get("maxdelivertime").and_then(time_value);
        let rules = RetryRules {
            delays,
            max_attempts,
            deadline,
        };
        (rules != RetryRules::default()).then_some(rules)
    }

    /// Whether the result keeps the MIME (`keepmime`).
    fn keeps_mime(&self) -> bool {
        self.fields.get("keepmime").is_some_and(truthy)
    }

    /// The document (without its `mime`) with `report` added to its `results`.
    pub(crate) fn with_result(&self, report: &AttemptReport) -> Map<String, Value> {
        let mut fields = self.fields.clone();
        add_result(&mut fields, report);
        fields
    }

    /// `fields` with the document's `mime` back in: the whole document, to deliver later.
    pub(crate) fn with_mime(&self, mut fields: Map<String, Value>) -> Map<String, Value> {
        // It was a JSON string: UTF-8, so nothing is replaced here.
        let mime = String::from_utf8_lossy(&self.mime).into_owned();
        fields.insert("mime".into(), mime.into());
        fields
    }

    /// `fields` (from [`Document::with_result`]) as a result is published: with the MIME
    /// only when the document keeps it (`keepmime`).
    pub(crate) fn for_result(&self, fields: Map<String, Value>) -> Map<String, Value> {
        if self.keeps_mime() {
            self.with_mime(fields)
        } else {
            fields
        }
    }

    /// What the document's `queues` says of the queue for `kind` (`results`, `success`, …).
    pub(crate) fn queue_choice(&self, kind: &str) -> QueueChoice {
        let named = self
            .fields
            .get("queues")
            .and_then(Value::as_object)
            .and_then(|queues| queues.get(kind));
        match named {
            Some(Value::Null) => QueueChoice::Off,
            Some(Value::String(name)) if name.is_empty() => QueueChoice::Off,
            Some(Value::String(name)) => QueueChoice::Named(name.clone()),
            _ => QueueChoice::Configured,
        }
    }
}

/// A document's say on one of its result queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueueChoice {
    /// It does not say: the configured queue.
    Configured,
    /// `null`: not published for this message.
    Off,
    /// This queue instead.
    Named(String),
}

/// Adds `report` to the `results` of `fields`.
pub(crate) fn add_result(fields: &mut Map<String, Value>, report: &AttemptReport) {
    let entry = result_entry(report);
    match fields.get_mut("results") {
        Some(Value::Array(results)) => results.push(entry),
        _ => {
            fields.insert("results".into(), Value::Array(vec![entry]));
        }
    }
}

fn refusal(fields: Map<String, Value>, why: &str) -> Refusal {
    Refusal {
        fields,
        why: why.to_owned(),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty() && s != "0" && s != "false",
        _ => false,
    }
}

/// An address as MailerQ writes one: bare, or in angle brackets; empty or `<>` is the null
/// path.
fn address(text: &str) -> Option<Address> {
    let text = text.trim();
    let bare = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(text);
    if bare.is_empty() {
        return Some(Address::null());
    }
    bare.parse().ok()
}

fn smarthost(value: &Value) -> Option<Relay> {
    let host = value.get("hostname")?.as_str()?.trim();
    if host.is_empty() {
        return None;
    }
    let port = match value.get("port") {
        None | Some(Value::Null) => 25,
        Some(Value::Number(n)) => u16::try_from(n.as_u64()?).ok()?,
        Some(Value::String(s)) => s.parse().ok()?,
        Some(_) => return None,
    };
    let username = value.get("username").and_then(Value::as_str);
    let password = value.get("password").and_then(Value::as_str);
    let auth = match (username, password) {
        (Some(user), Some(password)) if !user.is_empty() => {
            Some((user.to_owned(), password.to_owned()))
        }
        _ => None,
    };
    Some(Relay {
        host: host.to_owned(),
        port,
        auth,
    })
}

/// The inbound document of one recipient: `envelope`, `recipient`, `mime`, and what mq knows
/// of where it came from.
pub(crate) fn inbound(
    sender: &Address,
    recipient: &Address,
    mime: &[u8],
    hostname: &str,
    origin: Option<&Origin>,
    queue_id: &str,
    now: SystemTime,
) -> Vec<u8> {
    let document = Inbound {
        envelope: sender.as_str(),
        recipient: recipient.as_str(),
        hostname,
        received: format_time(now),
        message_id: queue_id,
        connection: origin.map(|origin| Connection {
            remote_ip: origin.remote.ip().to_string(),
            remote_port: origin.remote.port(),
            local_ip: origin.local.ip().to_string(),
            local_port: origin.local.port(),
            secure: origin.secure,
            user: origin.user.as_deref(),
        }),
    };
    let mut json = to_json(&document, mime.len());
    // The `mime` last, escaped by `json::write_str` (much faster on mail than serde_json): the
    // closing brace makes room for it.
    json.pop();
    json.extend_from_slice(b",\"mime\":");
    // JSON holds text: a body that is not UTF-8 keeps what it can (8-bit mail is rare and
    // usually UTF-8 today). UTF-8 is borrowed, not copied; `from_utf8` checks it much faster
    // than `from_utf8_lossy` does.
    match std::str::from_utf8(mime) {
        Ok(text) => super::json::write_str(&mut json, text),
        Err(_) => super::json::write_str(&mut json, &String::from_utf8_lossy(mime)),
    }
    json.push(b'}');
    json
}

/// A document as JSON, written into one buffer with room for `size` bytes of content and the
/// rest of the document.
pub(crate) fn to_json(document: &impl Serialize, size: usize) -> Vec<u8> {
    let mut json = Vec::with_capacity(size + size / 16 + 512);
    // Serializing maps with string keys and plain values into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut json, document);
    json
}

/// The document of accepted mail, as it is published, but its `mime` (see [`inbound`]).
#[derive(Serialize)]
struct Inbound<'a> {
    envelope: &'a str,
    recipient: &'a str,
    hostname: &'a str,
    received: String,
    #[serde(rename = "message-id")]
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<Connection<'a>>,
}

/// Where accepted mail came from (`connection`).
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Connection<'a> {
    remote_ip: String,
    remote_port: u16,
    local_ip: String,
    local_port: u16,
    secure: bool,
    user: Option<&'a str>,
}

fn result_entry(report: &AttemptReport) -> Value {
    let mut entry = Map::new();
    entry.insert("state".into(), report.state.into());
    entry.insert("result".into(), report.result.into());
    entry.insert("time".into(), format_time(report.time).into());
    if let Some(code) = report.code {
        entry.insert("code".into(), code.into());
    }
    if let Some(status) = &report.status {
        entry.insert("status".into(), status.clone().into());
    }
    entry.insert("description".into(), report.description.clone().into());
    if let Some(mta) = &report.mta {
        entry.insert("mta".into(), mta.clone().into());
    }
    if let Some(to) = &report.to {
        entry.insert("to".into(), to.clone().into());
    }
    Value::Object(entry)
}

/// mq's own decision about a document (refused, expired), as a results entry.
pub(crate) fn process_report(result: &'static str, description: String) -> AttemptReport {
    AttemptReport {
        state: "process",
        result,
        time: SystemTime::now(),
        code: None,
        status: None,
        description,
        mta: None,
        to: None,
    }
}

/// A time as MailerQ writes it: `YYYY-MM-DD HH:MM:SS`, UTC.
pub(crate) fn format_time(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// A time given as `YYYY-MM-DD HH:MM:SS` (UTC) or as seconds since the epoch.
fn time_value(value: &Value) -> Option<SystemTime> {
    match value {
        Value::Number(n) => Some(UNIX_EPOCH + Duration::from_secs(n.as_u64()?)),
        Value::String(text) => parse_time(text),
        _ => None,
    }
}

/// Reads `YYYY-MM-DD HH:MM:SS` (UTC); `T` may separate the date and time.
pub(crate) fn parse_time(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let (date, time) = text.split_once([' ', 'T']).unwrap_or((text, "00:00:00"));
    let mut date = date.split('-').map(str::parse::<u32>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut clock = time.trim_end_matches('Z').split(':').map(str::parse::<u32>);
    let (hour, minute) = (clock.next()?.ok()?, clock.next()?.ok()?);
    let second = clock.next().transpose().ok()?.unwrap_or(0);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second.min(60));
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_mailerqs_format() {
        let time = parse_time("2026-12-06 01:02:03").unwrap();
        assert_eq!(format_time(time), "2026-12-06 01:02:03");
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01 00:00:00");
        assert_eq!(
            format_time(parse_time("2000-02-29 23:59:59").unwrap()),
            "2000-02-29 23:59:59"
        );
        assert_eq!(parse_time("2026-13-01 00:00:00"), None);
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn an_inbound_document_reads_back_with_its_mime_and_fields() {
        let sender: Address = "a@example.org".parse().unwrap();
        let recipient: Address = "b@example.net".parse().unwrap();
        let mime = "Subject: \"x\"\r\n\r\nhi\\there\tü\r\n".repeat(30);
        let json = inbound(
            &sender,
            &recipient,
            mime.as_bytes(),
            "mx.test",
            None,
            "Q1",
            UNIX_EPOCH,
        );
        let doc = Document::parse(&json).unwrap();
        assert_eq!(&*doc.mime, mime.as_bytes());
        assert_eq!(doc.sender.as_str(), "a@example.org");
        assert_eq!(doc.recipient.as_str(), "b@example.net");
        assert_eq!(doc.fields["hostname"], "mx.test");
        assert_eq!(doc.fields["message-id"], "Q1");
        assert_eq!(doc.fields["received"], "1970-01-01 00:00:00");
        assert!(!doc.fields.contains_key("connection"));
        // A body that is not UTF-8 keeps what it can.
        let latin1 = inbound(
            &sender,
            &recipient,
            b"caf\xe9\r\n",
            "mx.test",
            None,
            "Q2",
            UNIX_EPOCH,
        );
        let doc = Document::parse(&latin1).unwrap();
        assert_eq!(&*doc.mime, "caf\u{fffd}\r\n".as_bytes());
    }

    #[test]
    fn a_document_gives_its_fields() {
        let doc = Document::parse(
            br#"{"envelope":"a@example.org","recipient":"<b@example.net>","mime":"Subject: x\r\n\r\nhi\r\n",
                "retries":[1,5],"maxattempts":3,"smarthost":{"hostname":"127.0.0.1","port":2525},
                "results":[{"state":"message"}],"nextattempt":{"time":"2030-01-01 00:00:00"},"my-id":7}"#,
        )
        .unwrap();
        assert_eq!(doc.sender.as_str(), "a@example.org");
        assert_eq!(doc.recipient.as_str(), "b@example.net");
        assert_eq!(doc.attempts, 1);
        let rules = doc.retry_rules().unwrap();
        let now = SystemTime::now();
        assert_eq!(
            rules.next_attempt(1, now, None),
            Some(now + Duration::from_secs(1))
        );
        assert_eq!(
            rules.next_attempt(2, now, None),
            Some(now + Duration::from_secs(5))
        );
        assert_eq!(rules.next_attempt(3, now, None), None);
        assert_eq!(
            doc.relay.as_ref().map(|r| (r.host.as_str(), r.port)),
            Some(("127.0.0.1", 2525))
        );
        assert_eq!(doc.next_attempt, parse_time("2030-01-01 00:00:00"));
        let result = doc.for_result(doc.with_result(&process_report("error", "x".into())));
        assert!(!result.contains_key("mime"));
        assert_eq!(result["my-id"], 7);
        assert_eq!(result["results"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn unsupported_fields_are_refused_with_a_reason() {
        for payload in [
            &br#"{"recipient":"b@x.net","mime":"x","data":{"a":1}}"#[..],
            br#"{"recipient":"b@x.net","mime":{"subject":"x"}}"#,
            br#"{"recipient":"b@x.net","key":"k"}"#,
            br#"{"recipient":"b@x.net","mime":"x","ips":["192.0.2.1"]}"#,
        ] {
            let refusal = Document::parse(payload).unwrap_err();
            assert!(refusal.why.contains("does not support"), "{}", refusal.why);
            assert_eq!(refusal.fields["recipient"], "b@x.net");
        }
        assert!(
            Document::parse(b"not json")
                .unwrap_err()
                .why
                .contains("not JSON")
        );
    }
}
