//! What the server adds to a message: the Received field (RFC 5321 §4.4), and Date and
//! Message-ID for authenticated submissions that lack them.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mq_plugin_api::{Message, Reply};

/// Facts the Received field records.
#[allow(
    clippy::struct_excessive_bools,
    reason = "one flag per fact the protocol name records (RFC 3848)"
)]
pub(crate) struct Trace<'a> {
    pub(crate) helo: &'a str,
    pub(crate) ip: IpAddr,
    pub(crate) hostname: &'a str,
    pub(crate) extended: bool,
    pub(crate) tls: bool,
    pub(crate) authenticated: bool,
    /// The transaction used SMTPUTF8 (MAIL came with it).
    pub(crate) utf8: bool,
    /// The recipient, when there is exactly one.
    pub(crate) recipient: Option<&'a str>,
}

/// Prepends the Received field, as Postfix writes it but on one line. A HELO name that is not
/// one (see `helo`) is written `unknown`, so that the field always has the same structure.
pub(crate) fn stamp(message: &mut Message, trace: &Trace<'_>, now: SystemTime) {
    let protocol = protocol(trace);
    let recipient = trace
        .recipient
        .map(|r| format!(" for <{r}>"))
        .unwrap_or_default();
    // The codec takes valid names only, but a plugin may have rewritten it.
    let helo = if super::helo::is_valid(trace.helo) {
        trace.helo
    } else {
        "unknown"
    };
    let value = format!(
        "from {helo} (unknown [{}]) by {} (mq) with {protocol}{recipient}; {}",
        trace.ip,
        trace.hostname,
        rfc5322_date(now)
    );
    message.headers_mut().prepend("Received", value);
}

/// The `with` clause's protocol (RFC 3848): `SMTP` after HELO, `ESMTP` after EHLO, `S` for
/// TLS and `A` for an authenticated client; a transaction that used SMTPUTF8 is `UTF8SMTP`
/// with the same suffixes (RFC 6531 §3.7.3).
fn protocol(trace: &Trace<'_>) -> &'static str {
    match (trace.extended, trace.utf8, trace.tls, trace.authenticated) {
        (false, _, _, _) => "SMTP",
        (true, false, false, false) => "ESMTP",
        (true, false, true, false) => "ESMTPS",
        (true, false, false, true) => "ESMTPA",
        (true, false, true, true) => "ESMTPSA",
        (true, true, false, false) => "UTF8SMTP",
        (true, true, true, false) => "UTF8SMTPS",
        (true, true, false, true) => "UTF8SMTPA",
        (true, true, true, true) => "UTF8SMTPSA",
    }
}

/// The refusal of a message that went through more than `limit` hosts already: one with more
/// `Received` fields than that is most likely looping between mail servers (RFC 5321 §6.3).
/// The check and its reply are Postfix's (`hopcount_limit`).
pub(crate) fn too_many_hops(message: &Message, limit: usize) -> Option<Reply> {
    let hops = message
        .headers()
        .iter()
        .filter(|field| field.is("Received"))
        .count();
    (hops > limit).then(|| Reply::new(554, "5.4.0", "Error: too many hops"))
}

/// Adds Date and Message-ID when missing, as a submission server does for its users.
pub(crate) fn complete_submission(message: &mut Message, hostname: &str, now: SystemTime) {
    if message.headers().iter().all(|h| !h.is("Date")) {
        message.headers_mut().append("Date", rfc5322_date(now));
    }
    if message.headers().iter().all(|h| !h.is("Message-ID")) {
        message
            .headers_mut()
            .append("Message-ID", message_id(hostname, now));
    }
}

fn message_id(hostname: &str, now: SystemTime) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("<{micros:x}.{count:x}.{}@{hostname}>", std::process::id())
}

/// `Sat, 28 Nov 2026 14:50:25 +0000`: RFC 5322 date-time in UTC.
pub(crate) fn rfc5322_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = seconds / 86_400;
    let (year, month, day) = civil_from_days(days);
    let rest = seconds % 86_400;
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[month as usize - 1],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month (1–12) and day of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
        let time = UNIX_EPOCH + Duration::from_secs(1_795_877_425);
        assert_eq!(rfc5322_date(time), "Sat, 28 Nov 2026 14:50:25 +0000");
        let leap = UNIX_EPOCH + Duration::from_hours(264_384);
        assert_eq!(rfc5322_date(leap), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn more_received_fields_than_the_limit_are_too_many_hops() {
        let hops = |n: usize| Message::parse("Received: x\r\n".repeat(n).as_bytes());
        assert_eq!(too_many_hops(&hops(3), 3), None);
        let reply = too_many_hops(&hops(4), 3).expect("refused");
        assert_eq!(reply.to_string(), "554 5.4.0 Error: too many hops");
    }

    #[test]
    fn a_helo_name_that_is_not_one_cannot_change_the_fields_structure() {
        for helo in ["mail.bank.example (x [10.0.0.5])", "a;b", "a\tb", "[x]"] {
            let mut message = Message::parse(b"Subject: x\r\n\r\nbody\r\n");
            let trace = Trace {
                helo,
                ip: [192, 0, 2, 1].into(),
                hostname: "mq.example",
                extended: true,
                tls: false,
                authenticated: false,
                utf8: false,
                recipient: None,
            };
            stamp(&mut message, &trace, UNIX_EPOCH);
            assert_eq!(
                message.headers().get("Received"),
                Some(
                    "from unknown (unknown [192.0.2.1]) by mq.example (mq) with ESMTP; \
                     Thu, 1 Jan 1970 00:00:00 +0000"
                ),
                "{helo:?}"
            );
        }
    }

    #[test]
    fn an_smtputf8_transaction_is_named_utf8smtp_with_the_esmtp_suffixes() {
        let names: Vec<&str> = [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .map(|(tls, authenticated)| {
                protocol(&Trace {
                    helo: "client.example",
                    ip: [192, 0, 2, 1].into(),
                    hostname: "mq.example",
                    extended: true,
                    tls,
                    authenticated,
                    utf8: true,
                    recipient: None,
                })
            })
            .collect();
        assert_eq!(names, ["UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA"]);
    }

    #[test]
    fn submissions_get_date_and_message_id_once() {
        let mut message = Message::parse(b"Subject: x\r\n\r\nbody\r\n");
        complete_submission(&mut message, "mq.example", UNIX_EPOCH);
        complete_submission(&mut message, "mq.example", UNIX_EPOCH);
        assert_eq!(message.headers().len(), 3);
        assert!(
            message
                .headers()
                .get("Message-ID")
                .is_some_and(|id| id.ends_with("@mq.example>"))
        );
    }
}
