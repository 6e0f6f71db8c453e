//! Delivery status notifications: the bounce (RFC 3464 `multipart/report`) sent to the envelope
//! sender when a delivery fails for good (a 5xx reply, or the entry expired), the warning
//! sent while it is still being retried, or the success report a sender asked for with
//! `NOTIFY=SUCCESS` (RFC 3461).
//!
//! The message reads as Postfix's bounce(8) writes it: a human explanation, the
//! machine-readable `message/delivery-status`, and the original message's header block (not its
//! body) as `text/rfc822-headers`.
//!
//! A message that came with SMTPUTF8, or whose sender or a reported recipient has a UTF-8
//! address, gets the internationalized report of RFC 6533 instead: the status part is
//! `message/global-delivery-status` (and the report's `report-type` says so, RFC 6522), a
//! non-ASCII address is reported as `utf-8; <address>`, and the original comes back as
//! `message/global` or `message/global-headers`. The notice is then queued with SMTPUTF8 itself.
//!
//! Rules every notice follows:
//!
//! - No notice to the null reverse path `<>`: a bounce is itself sent from `<>`, so a bounce
//!   that fails is never bounced, and loops end.
//! - Lines end in CRLF and no line is longer than 998 octets: the explanation is wrapped, a
//!   diagnostic is cut at [`MAX_DIAGNOSTIC`] octets, an original header line at 998.
//! - What came from the network (the remote reply, the remote host's name) is made printable
//!   ASCII: control characters become spaces, other bytes `?`. Addresses are written as they
//!   are, a UTF-8 one in RFC 6533's `utf-8-addr-unitext` form.
//! - Everything is a function of the inputs, the boundary included, so the notice can be
//!   snapshotted; callers pass a random `boundary_seed`.

use std::fmt::Write as _;
use std::time::SystemTime;

use mq_plugin_api::{Address, Message};

use crate::smtp::rfc5322_date;

/// The longest diagnostic kept, in octets; a longer one is cut and ends in `...`.
pub const MAX_DIAGNOSTIC: usize = 900;

/// The most of the original header block a notice returns, in octets: Postfix's
/// `bounce_size_limit`. Whole fields only; those past the limit are left out.
pub const MAX_RETURNED_HEADERS: usize = 50_000;

/// The most a notice takes, in octets, when its report leaves room: the original headers get
/// what the two report parts leave of it (and at most [`MAX_RETURNED_HEADERS`]). The report
/// itself is never cut, since each recipient must be reported; its size is bounded by the
/// recipients' number, each line by [`MAX_DIAGNOSTIC`].
pub const MAX_NOTICE: usize = 64 * 1024;

/// The longest line of an original header field kept in the notice (RFC 5322's limit).
const MAX_LINE: usize = 998;

/// Width the human explanation is wrapped to, continuation lines indented by four spaces.
const WRAP: usize = 76;

/// A message whose delivery failed (or is delayed) for some of its recipients: what the
/// notice reports.
#[derive(Debug, Clone)]
pub struct Bounce<'a> {
    /// This host's name, as in `Reporting-MTA: dns; <name>` and `MAILER-DAEMON@<name>`.
    pub reporting_mta: &'a str,
    /// The queue id of the failed message.
    pub queue_id: &'a str,
    /// The envelope sender: who the notice goes to.
    pub sender: &'a Address,
    /// When the message was accepted.
    pub arrival: SystemTime,
    /// One entry per recipient reported; a notice without any is not built.
    pub failures: Vec<FailedRecipient<'a>>,
    /// The queued message; its header block is quoted, or all of it with `return_full`.
    pub original: &'a [u8],
    /// The sender's `ENVID` (RFC 3461), reported as `Original-Envelope-Id`.
    pub envid: Option<&'a str>,
    /// The sender asked for the whole message back (`RET=FULL`): it is returned as
    /// `message/rfc822` when it fits in [`MAX_NOTICE`], else its header block is.
    pub return_full: bool,
    /// The message came with SMTPUTF8 (RFC 6531): the notice is an internationalized one
    /// (RFC 6533), as it is when the sender or a reported recipient is a UTF-8 address.
    pub smtputf8: bool,
}

impl Bounce<'_> {
    /// Whether the notice is RFC 6533's internationalized report: the message came with
    /// SMTPUTF8, or the sender or a reported recipient has a UTF-8 address. Such a notice is
    /// to be sent with SMTPUTF8 itself.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::UNIX_EPOCH;
    /// # use mq_core::delivery::dsn::{Action, Bounce, FailedRecipient};
    /// # use mq_plugin_api::Address;
    /// let sender: Address = "alice@example.org".parse().unwrap();
    /// let jos: Address = "j\u{f6}s@example.net".parse().unwrap();
    /// let failure = FailedRecipient {
    ///     recipient: &jos,
    ///     status: "5.1.1".into(),
    ///     action: Action::Failed,
    ///     remote_mta: None,
    ///     diagnostic: None,
    ///     last_attempt: UNIX_EPOCH,
    ///     original_recipient: None,
    /// };
    /// let bounce = Bounce {
    ///     reporting_mta: "mx.example.org",
    ///     queue_id: "0006123456789ABC",
    ///     sender: &sender,
    ///     arrival: UNIX_EPOCH,
    ///     failures: vec![failure],
    ///     original: b"Subject: hi\r\n\r\n",
    ///     envid: None,
    ///     return_full: false,
    ///     smtputf8: false,
    /// };
    /// assert!(bounce.is_global());
    /// ```
    pub fn is_global(&self) -> bool {
        let utf8 = |address: &Address| !address.as_str().is_ascii();
        self.smtputf8 || utf8(self.sender) || self.failures.iter().any(|f| utf8(f.recipient))
    }
}

/// One recipient of a [`Bounce`] and what happened to it.
#[derive(Debug, Clone)]
pub struct FailedRecipient<'a> {
    /// The recipient.
    pub recipient: &'a Address,
    /// The enhanced status code (RFC 3463), e.g. `5.1.1`; a malformed one is reported as
    /// `5.0.0` (failed) or `4.0.0` (delayed).
    pub status: String,
    /// Whether delivery failed for good or is still being retried.
    pub action: Action,
    /// The host that gave the diagnostic, when a remote server did.
    pub remote_mta: Option<&'a str>,
    /// What went wrong, as `type; text`, e.g. `smtp; 550 5.1.1 no such user`; without a type
    /// `smtp` is assumed.
    pub diagnostic: Option<String>,
    /// When delivery was last tried.
    pub last_attempt: SystemTime,
    /// The recipient's `ORCPT` (RFC 3461), `type;address` as given, reported as
    /// `Original-Recipient`.
    pub original_recipient: Option<&'a str>,
}

/// The `Action` field of a recipient in the notice (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Delivery failed for good: a 5xx reply, or the entry expired.
    Failed,
    /// Delivery has not succeeded yet and is still being retried.
    Delayed,
    /// Delivered to the mailbox: a success report the sender asked for (`NOTIFY=SUCCESS`).
    Delivered,
    /// Handed to a server that does not offer DSN, so that no later report can be asked of
    /// it: a success report the sender asked for.
    Relayed,
}

impl Action {
    /// The field's value: `failed` or `delayed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// Builds the notice for `bounce`: the address to send it to (the envelope sender) and the
/// message, to be queued with the null reverse path `<>`.
///
/// `now` is the notice's date; `boundary_seed` picks the MIME boundary (with the queue id), so
/// pass a random one in production and a fixed one in tests. The boundary is checked against
/// the parts' content and changed if any part holds it.
///
/// Returns `None` when the sender is the null path (never bounce a bounce) or there is no
/// recipient to report.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use mq_core::delivery::dsn::{self, Action, Bounce, FailedRecipient};
/// use mq_plugin_api::{Address, Message};
///
/// let sender: Address = "alice@example.org".parse().unwrap();
/// let bob: Address = "bob@example.net".parse().unwrap();
/// let at = UNIX_EPOCH + Duration::from_secs(1_795_877_425);
/// let bounce = Bounce {
///     reporting_mta: "mx.example.org",
///     queue_id: "0006123456789ABC",
///     sender: &sender,
///     arrival: at,
///     failures: vec![FailedRecipient {
///         recipient: &bob,
///         status: "5.1.1".into(),
///         action: Action::Failed,
///         remote_mta: Some("mx.example.net"),
///         diagnostic: Some("smtp; 550 5.1.1 no such user".into()),
///         last_attempt: at,
///         original_recipient: None,
///     }],
///     original: b"Subject: hi\r\n\r\nhello\r\n",
///     envid: None,
///     return_full: false,
///     smtputf8: false,
/// };
/// let (to, message) = dsn::build(&bounce, at, 7).unwrap();
/// assert_eq!(to, sender);
/// let message = Message::parse(&message);
/// assert_eq!(message.headers().get("Subject"), Some("Undelivered Mail Returned to Sender"));
///
/// let null = Address::null();
/// assert!(dsn::build(&Bounce { sender: &null, ..bounce }, at, 7).is_none());
/// ```
pub fn build(
    bounce: &Bounce<'_>,
    now: SystemTime,
    boundary_seed: u64,
) -> Option<(Address, Vec<u8>)> {
    if bounce.sender.is_null() || bounce.failures.is_empty() {
        return None;
    }
    let host = token(bounce.reporting_mta, 255);
    let notification = notification(bounce, &host, now).into_bytes();
    let status = delivery_status(bounce, &host).into_bytes();
    // The notice's own header block and boundaries take well under 1 KiB.
    let left = MAX_NOTICE.saturating_sub(notification.len() + status.len() + 1024);
    let returned = if bounce.return_full && bounce.original.len() + 128 <= left {
        returned_message(bounce)
    } else {
        original_headers(bounce, left.min(MAX_RETURNED_HEADERS))
    };
    let parts = [notification, status, returned];
    let boundary = boundary(bounce.queue_id, boundary_seed, &parts);
    let mut out = top_headers(bounce, &host, now, &boundary).into_bytes();
    out.extend_from_slice(b"This is a MIME-encapsulated message.\r\n");
    for part in &parts {
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Some((bounce.sender.clone(), out))
}

/// The notice's own header block, with the blank line that ends it.
fn top_headers(bounce: &Bounce<'_>, host: &str, now: SystemTime, boundary: &str) -> String {
    let subject = if all_delayed(bounce) {
        "Delayed Mail (still being retried)"
    } else if all_successful(bounce) {
        "Successful Mail Delivery Report"
    } else {
        "Undelivered Mail Returned to Sender"
    };
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let global = if bounce.is_global() { "global-" } else { "" };
    format!(
        "Date: {date}\r\n\
         From: MAILER-DAEMON@{host} (Mail Delivery System)\r\n\
         Subject: {subject}\r\n\
         To: {to}\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type={global}delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         Message-Id: <{secs}.{boundary}@{host}>\r\n\r\n",
        date = rfc5322_date(now),
        to = bounce.sender.as_str(),
    )
}

/// Part 1: Postfix's explanation for people, then one wrapped line per recipient.
fn notification(bounce: &Bounce<'_>, host: &str, now: SystemTime) -> String {
    let mut text = format!("This is the mail system at host {host}.\r\n\r\n");
    if all_delayed(bounce) {
        let tenths = now
            .duration_since(bounce.arrival)
            .map_or(0, |d| d.as_secs() / 360);
        let _ = write!(
            text,
            "####################################################################\r\n\
             # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n\
             ####################################################################\r\n\r\n\
             Your message could not be delivered for {}.{} hour(s).\r\n\
             It will be retried until it is delivered or expires.\r\n\r\n",
            tenths / 10,
            tenths % 10
        );
    } else if all_successful(bounce) {
        text.push_str(
            "Your message was successfully delivered to the destination(s)\r\n\
             listed below. If the message was delivered to mailbox you will\r\n\
             receive no further notifications. Otherwise you may still receive\r\n\
             notifications of mail delivery errors from other systems.\r\n\r\n",
        );
    } else {
        text.push_str(
            "I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients. Its headers are attached below.\r\n\r\n",
        );
    }
    text.push_str(
        "For further assistance, please send mail to postmaster.\r\n\r\n\
         If you do so, please include this problem report.\r\n\r\n\
         \x20                  The mail system\r\n",
    );
    for failure in &bounce.failures {
        text.push_str("\r\n");
        let line = format!("<{}>: {}", failure.recipient.as_str(), explain(failure));
        wrap(&line, &mut text);
    }
    let charset = if text.is_ascii() { "us-ascii" } else { "utf-8" };
    format!(
        "Content-Description: Notification\r\n\
         Content-Type: text/plain; charset={charset}\r\n\r\n{text}"
    )
}

/// What happened to one recipient, in words.
fn explain(failure: &FailedRecipient<'_>) -> String {
    let text = failure.diagnostic.as_deref().map(|d| diagnostic(d).1);
    match (failure.remote_mta, text) {
        (Some(remote), Some(text)) => format!("host {} said: {text}", token(remote, 255)),
        (None, Some(text)) => text,
        (_, None) => format!(
            "delivery {}, status {}",
            failure.action.as_str(),
            status(failure)
        ),
    }
}

/// Part 2: the per-message fields, then a block of fields per recipient.
fn delivery_status(bounce: &Bounce<'_>, host: &str) -> String {
    let global = bounce.is_global();
    let mut fields = format!(
        "Content-Description: Delivery report\r\n\
         Content-Type: message/{}delivery-status\r\n\r\n\
         Reporting-MTA: dns; {host}\r\n\
         X-Mq-Queue-ID: {}\r\n\
         Arrival-Date: {}\r\n",
        if global { "global-" } else { "" },
        token(bounce.queue_id, 64),
        rfc5322_date(bounce.arrival)
    );
    if let Some(envid) = bounce.envid {
        let _ = write!(fields, "Original-Envelope-Id: {}\r\n", token(envid, 100));
    }
    for failure in &bounce.failures {
        fields.push_str("\r\n");
        if let Some(original) = failure.original_recipient {
            let _ = write!(
                fields,
                "Original-Recipient: {}\r\n",
                original_recipient(original, global)
            );
        }
        let _ = write!(
            fields,
            "Final-Recipient: {}\r\nAction: {}\r\nStatus: {}\r\n",
            typed_address(failure.recipient.as_str()),
            failure.action.as_str(),
            status(failure)
        );
        if let Some(remote) = failure.remote_mta {
            let _ = write!(fields, "Remote-MTA: dns; {}\r\n", token(remote, 255));
        }
        if let Some(d) = failure.diagnostic.as_deref() {
            let (kind, text) = diagnostic(d);
            let _ = write!(fields, "Diagnostic-Code: {kind}; {text}\r\n");
        }
        let _ = write!(
            fields,
            "Last-Attempt-Date: {}\r\n",
            rfc5322_date(failure.last_attempt)
        );
    }
    fields
}

/// An address as the `Final-Recipient` field types it: `rfc822; a@b`, or for a UTF-8 one
/// `utf-8; ` and its `utf-8-addr-unitext` form (RFC 6533 §3).
fn typed_address(address: &str) -> String {
    if address.is_ascii() {
        format!("rfc822; {address}")
    } else {
        format!("utf-8; {}", unitext(address))
    }
}

/// An `ORCPT` (`type;xtext`, as given) as the `Original-Recipient` field writes it. In an
/// internationalized report a `utf-8` one is written as unitext, its `\x{HEX}` escapes
/// decoded; anything else is kept in printable ASCII.
fn original_recipient(orcpt: &str, global: bool) -> String {
    let (kind, address) = orcpt.split_once(';').unwrap_or(("rfc822", orcpt));
    let address = address.trim();
    let decoded = (global && kind.eq_ignore_ascii_case("utf-8"))
        .then(|| crate::smtp::xtext_decode(address).and_then(|a| unescape_unicode(&a)))
        .flatten();
    match decoded {
        Some(address) => format!("utf-8; {}", unitext(&address)),
        None => format!("{}; {}", token(kind, 32), token(address, 200)),
    }
}

/// RFC 6533's `utf-8-addr-unitext`: UTF-8 as it is, and as `\x{HEX}` the characters it may
/// not hold as such: controls, space, `\`, `+` and `=`.
fn unitext(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for c in address.chars() {
        if c.is_control() || matches!(c, ' ' | '\\' | '+' | '=') {
            let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes RFC 6533's `EmbeddedUnicodeChar`s (`\x{HEX}`) in `text`; `None` when one is
/// malformed or names no character.
fn unescape_unicode(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = rest[at..].strip_prefix("\\x{")?;
        let (hex, tail) = escape.split_once('}')?;
        let valid = (1..=6).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let code = u32::from_str_radix(hex, 16).ok().filter(|_| valid)?;
        out.push(char::from_u32(code)?);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

/// Part 3: the original header block, lines ending in CRLF and cut at 998 octets, whole fields
/// only while they fit in `limit` octets.
fn original_headers(bounce: &Bounce<'_>, limit: usize) -> Vec<u8> {
    let message = Message::parse(bounce.original);
    let what = if all_successful(bounce) {
        "Delivered"
    } else {
        "Undelivered"
    };
    let kind = if bounce.is_global() {
        "message/global-headers"
    } else {
        "text/rfc822-headers"
    };
    let mut out = format!(
        "Content-Description: {what} Message Headers\r\n\
         Content-Type: {kind}\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    let start = out.len();
    let mut field = Vec::new();
    for header in message.headers() {
        field.clear();
        let lines = header.raw_value().split(|&b| b == b'\n');
        let mut first = true;
        for line in lines.filter(|l| !l.is_empty() && *l != b"\r") {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let name = if first { header.name().as_bytes() } else { b"" };
            let line = [name, if first { b":" } else { b"" }, line].concat();
            field.extend_from_slice(&line[..line.len().min(MAX_LINE)]);
            field.extend_from_slice(b"\r\n");
            first = false;
        }
        if first {
            // A field with an empty value.
            field.extend_from_slice(header.name().as_bytes());
            field.extend_from_slice(b":\r\n");
        }
        if out.len() - start + field.len() > limit {
            break;
        }
        out.extend_from_slice(&field);
    }
    out
}

/// Part 3 for `RET=FULL`: the whole original message, which the caller checked fits.
fn returned_message(bounce: &Bounce<'_>) -> Vec<u8> {
    let what = if all_successful(bounce) {
        "Delivered"
    } else {
        "Undelivered"
    };
    let kind = if bounce.is_global() {
        "message/global"
    } else {
        "message/rfc822"
    };
    let mut out = format!(
        "Content-Description: {what} Message\r\n\
         Content-Type: {kind}\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(bounce.original);
    out
}

/// Whether every recipient was delivered or relayed, which makes the notice a success report.
fn all_successful(bounce: &Bounce<'_>) -> bool {
    let success = |f: &FailedRecipient<'_>| matches!(f.action, Action::Delivered | Action::Relayed);
    bounce.failures.iter().all(success)
}

/// Whether every recipient is delayed, which makes the notice a warning.
fn all_delayed(bounce: &Bounce<'_>) -> bool {
    bounce.failures.iter().all(|f| f.action == Action::Delayed)
}

/// The recipient's status if it is `class.subject.detail` (RFC 3463), else the generic one.
fn status<'f>(failure: &'f FailedRecipient<'_>) -> &'f str {
    let mut parts = failure.status.split('.');
    let class_ok = parts.next().is_some_and(|c| matches!(c, "2" | "4" | "5"));
    let rest: Vec<&str> = parts.collect();
    let rest_ok = rest.len() == 2
        && rest
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    match (class_ok && rest_ok, failure.action) {
        (true, _) => &failure.status,
        (false, Action::Failed) => "5.0.0",
        (false, Action::Delayed) => "4.0.0",
        (false, Action::Delivered | Action::Relayed) => "2.0.0",
    }
}

/// A diagnostic split into its type (`smtp` when it has none) and its text, made printable
/// and cut at [`MAX_DIAGNOSTIC`] octets.
fn diagnostic(raw: &str) -> (String, String) {
    let typed = raw.split_once(';').filter(|(kind, _)| {
        !kind.trim().is_empty()
            && kind
                .trim()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let (kind, text) = typed.map_or(("smtp", raw), |(kind, text)| (kind.trim(), text));
    (
        kind.to_ascii_lowercase(),
        printable(text.trim(), MAX_DIAGNOSTIC),
    )
}

/// Text from the network as one printable ASCII line of at most `max` octets.
fn printable(text: &str, max: usize) -> String {
    let mut line: String = text
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_control() => ' ',
            _ => '?',
        })
        .collect();
    if line.len() > max {
        line.truncate(max - 3);
        line.push_str("...");
    }
    line
}

/// A name (host, queue id) as printable ASCII without spaces, at most `max` octets.
fn token(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .take(max)
        .collect()
}

/// Appends `text` wrapped at [`WRAP`] columns, continuation lines indented by four spaces; a
/// word too long for a line is split.
fn wrap(text: &str, out: &mut String) {
    const INDENT: &str = "    ";
    let mut line = String::new();
    let mut has_word = false;
    let pieces = text
        .split(' ')
        .filter(|w| !w.is_empty())
        .flat_map(|w| chunks(w, WRAP - INDENT.len()));
    for piece in pieces {
        if has_word && line.len() + 1 + piece.len() > WRAP {
            out.push_str(&line);
            out.push_str("\r\n");
            line.clear();
            line.push_str(INDENT);
            has_word = false;
        }
        if has_word {
            line.push(' ');
        }
        line.push_str(piece);
        has_word = true;
    }
    if has_word {
        out.push_str(&line);
        out.push_str("\r\n");
    }
}

/// `word` in pieces of at most `max` octets, split between characters.
fn chunks(word: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = word;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        // A character wider than `max` still makes progress.
        if end == 0 {
            end = rest.chars().next().map_or(rest.len(), char::len_utf8);
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// A boundary from the queue id and the seed that no part contains: Postfix's
/// `<queue id>.<number>` shape, the number rehashed until it is absent from every part.
fn boundary(queue_id: &str, seed: u64, parts: &[Vec<u8>]) -> String {
    let id: String = queue_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    let mut hash = queue_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) ^ seed;
    loop {
        hash = splitmix64(hash);
        let boundary = format!("{id}.{hash:016X}");
        let needle = boundary.as_bytes();
        if !parts
            .iter()
            .any(|part| part.windows(needle.len()).any(|w| w == needle))
        {
            return boundary;
        }
    }
}

/// One step of SplitMix64: a cheap, well-mixed bijection on `u64`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_splits_long_words_and_indents() {
        let mut out = String::new();
        wrap(&format!("<a@b>: {}", "x".repeat(200)), &mut out);
        assert!(out.lines().all(|l| l.len() <= WRAP));
        assert!(out.lines().skip(1).all(|l| l.starts_with("    x")));
        assert_eq!(out.matches('x').count(), 200);
    }

    #[test]
    fn diagnostics_keep_their_type_or_get_smtp() {
        assert_eq!(
            diagnostic("SMTP; 550 no"),
            ("smtp".to_owned(), "550 no".to_owned())
        );
        assert_eq!(
            diagnostic("550 a; b"),
            ("smtp".to_owned(), "550 a; b".to_owned())
        );
        assert_eq!(diagnostic("x; a\r\nb\u{e9}").1, "a  b?");
    }

    #[test]
    fn a_boundary_found_in_a_part_is_replaced() {
        let first = boundary("ID", 1, &[]);
        let second = boundary("ID", 1, &[first.clone().into_bytes()]);
        assert_ne!(first, second);
        assert!(second.starts_with("ID."));
    }

    /// A notice for one failed recipient of `original`.
    fn notice_for(original: &[u8]) -> Vec<u8> {
        let sender: Address = "alice@example.org".parse().unwrap();
        let bob: Address = "bob@example.net".parse().unwrap();
        let at = std::time::UNIX_EPOCH;
        let bounce = Bounce {
            reporting_mta: "mx.example.org",
            queue_id: "0006123456789ABC",
            sender: &sender,
            arrival: at,
            failures: vec![FailedRecipient {
                recipient: &bob,
                status: "5.1.1".into(),
                action: Action::Failed,
                remote_mta: Some("mx.example.net"),
                diagnostic: Some("smtp; 550 5.1.1 no such user".into()),
                last_attempt: at,
                original_recipient: None,
            }],
            original,
            envid: None,
            return_full: false,
            smtputf8: false,
        };
        build(&bounce, at, 7).unwrap().1
    }

    /// The returned header block of `notice`: the third part's lines.
    fn returned_headers(notice: &[u8]) -> String {
        let text = String::from_utf8_lossy(notice).into_owned();
        let part = text.split("text/rfc822-headers").nth(1).unwrap();
        let part = part.split_once("\r\n\r\n").unwrap().1;
        part.split("\r\n--").next().unwrap().to_owned()
    }

    #[test]
    fn a_huge_header_block_is_returned_cut_on_a_field_boundary_within_the_cap() {
        let mut original = b"Subject: first\r\nX-Folded: a\r\n b\r\n".to_vec();
        for n in 0..9_000 {
            let field = format!("X-Filler-{n:04}: {}\r\n", "y".repeat(85));
            original.extend_from_slice(field.as_bytes());
        }
        original.extend_from_slice(b"\r\nbody\r\n");
        assert!(original.len() > 900_000);

        let notice = notice_for(&original);
        assert!(notice.len() <= MAX_NOTICE, "{} octets", notice.len());
        let headers = returned_headers(&notice);
        assert!(headers.len() <= MAX_RETURNED_HEADERS, "{}", headers.len());
        assert!(headers.len() > MAX_NOTICE / 2, "{}", headers.len());
        assert!(headers.starts_with("Subject: first\r\nX-Folded: a\r\n b\r\nX-Filler-0000: y"));
        let last = headers.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with("X-Filler-") && last.ends_with(&"y".repeat(85)),
            "{last}"
        );
    }

    #[test]
    fn a_small_header_block_is_returned_whole() {
        let original = b"Subject: hi\r\nTo: <bob@example.net>\r\nX-Empty:\r\n\r\nbody\r\n";
        let headers = returned_headers(&notice_for(original));
        assert_eq!(
            headers,
            "Subject: hi\r\nTo: <bob@example.net>\r\nX-Empty:\r\n"
        );
    }
}
