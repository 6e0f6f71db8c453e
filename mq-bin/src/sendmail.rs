//! `mq sendmail`, and the `mq` binary run under the name `sendmail`: submission as scripts and
//! cron expect it. The message is read from stdin; recipients come from the arguments and,
//! with `-t`, from its `To`, `Cc` and `Bcc` fields (a `Bcc` field is then removed).
//!
//! When no server holds the queue, the message is queued on the disk directly, holding the
//! queue's lock as `mq serve` does, and the next `mq serve` delivers it; when a server holds it,
//! the message goes to that server over SMTP, as `mq inject` sends it, through the same hooks as
//! mail from the network. Either way, a missing `From`, `Date` or `Message-ID` field is added
//! first, as Postfix's cleanup does for local submissions.

use std::io::{self, Read as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use clap::{Args, Parser};
use mq_core::Config;
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage, Queue as _, QueueError};
use mq_plugin_api::Address;

use crate::clock::{rfc5322, unix_now};
use crate::inject::{Client, reachable};
use crate::serve::queue_dir;

/// sendmail's options, those scripts use; others sendmail knows are refused.
#[derive(Debug, Args)]
pub(crate) struct SendmailArgs {
    /// Recipients also from the message's To, Cc and Bcc fields (Bcc is then removed).
    #[arg(short = 't')]
    headers: bool,
    /// A line with a single dot does not end the message (as -oi).
    #[arg(short = 'i')]
    ignore_dots: bool,
    /// A sendmail option: `-oi` is `-i`; others (`-odi`, `-oem`, …) are accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    options: Vec<String>,
    /// The envelope sender (default: the user's login name at smtp.default_domain).
    #[arg(short = 'f', short_alias = 'r', value_name = "SENDER")]
    sender: Option<String>,
    /// The sender's full name, for a From field mq adds.
    #[arg(short = 'F', value_name = "NAME")]
    full_name: Option<String>,
    /// Accepted and ignored, as Postfix does: body type (-B 8BITMIME), delivery status
    /// notifications (-N), verbose (-v).
    #[arg(short = 'B', value_name = "TYPE", hide = true)]
    _body_type: Option<String>,
    #[arg(short = 'N', value_name = "DSN", hide = true)]
    _notify: Option<String>,
    #[arg(short = 'v', hide = true)]
    _verbose: bool,
    /// The recipients.
    #[arg(value_name = "RECIPIENT")]
    recipients: Vec<String>,
}

/// The command line of `mq` run as `sendmail`: sendmail's options, and `-C FILE` for mq's
/// configuration (default `$MQ_CONFIG`, then `/etc/mq/mq.toml` if it exists).
#[derive(Debug, Parser)]
#[command(
    name = "sendmail",
    version,
    about = "mq's sendmail: queues the message on stdin"
)]
pub(crate) struct SendmailCli {
    /// mq's configuration file.
    #[arg(short = 'C', value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(crate) args: SendmailArgs,
}

impl SendmailCli {
    /// The config file: `-C`, else `$MQ_CONFIG`, else `/etc/mq/mq.toml` if there is one.
    pub(crate) fn config_path(&self) -> Option<std::path::PathBuf> {
        self.config
            .clone()
            .or_else(|| std::env::var_os("MQ_CONFIG").map(Into::into))
            .or_else(|| {
                let system = Path::new("/etc/mq/mq.toml");
                system.exists().then(|| system.to_owned())
            })
    }
}

/// Reads the message, completes its header, and queues it.
pub(crate) fn run(config: &Config, args: &SendmailArgs) -> anyhow::Result<()> {
    let ignore_dots = args.ignore_dots || args.options.iter().any(|o| o == "i");
    let mut input = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut input)
        .context("cannot read the message from stdin")?;
    let origin = config.smtp.origin().to_owned();
    let sender = match &args.sender {
        Some(sender) => sender.clone(),
        None => format!("{}@{origin}", login_name()),
    };
    let mut message = Message::read(&input, ignore_dots);
    let mut recipients = args.recipients.clone();
    if args.headers {
        recipients.extend(message.recipients_from_headers());
        message.remove("bcc");
    }
    if recipients.is_empty() {
        bail!("no recipients: name them as arguments, or use -t with To, Cc or Bcc fields");
    }
    let now = unix_now();
    message.complete(&Missing {
        from: &sender,
        full_name: args.full_name.as_deref(),
        now,
        hostname: &config.smtp.hostname,
    });
    let sender = envelope(&sender, &origin)?;
    let recipients = recipients
        .iter()
        .map(|r| envelope(r, &origin))
        .collect::<anyhow::Result<Vec<_>>>()?;
    submit(config, sender, recipients, message.into_bytes())
}

/// `address` as an envelope address; one without a domain gets `origin`'s, as the SMTP server
/// gives `RCPT TO:<user>`.
fn envelope(address: &str, origin: &str) -> anyhow::Result<Address> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let full = if address.is_empty() || address.contains('@') {
        address.to_owned()
    } else {
        format!("{address}@{origin}")
    };
    full.parse()
        .map_err(|error| anyhow::anyhow!("invalid address {address:?}: {error}"))
}

/// Queues the message: on the disk if no server holds the queue, else through the server.
fn submit(
    config: &Config,
    sender: Address,
    recipients: Vec<Address>,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let data_dir = &config.queue.data_dir;
    if !data_dir.is_dir() {
        bail!("data directory {} does not exist", data_dir.display());
    }
    let options = EmbeddedOptions {
        fsync: config.queue.fsync,
        ..EmbeddedOptions::default()
    };
    match EmbeddedQueue::open(&queue_dir(data_dir), options) {
        Ok(queue) => {
            let message = NewMessage {
                sender,
                recipients,
                body,
                client: "localhost[local submission]".into(),
            };
            let id = smol::block_on(queue.enqueue(message)).context("cannot queue the message")?;
            tracing::info!(queue_id = %id, "queued on disk: no server holds the queue");
            Ok(())
        }
        Err(QueueError::InUse(_)) => {
            let server = reachable(config.smtp.listen).to_string();
            let to: Vec<String> = recipients.iter().map(ToString::to_string).collect();
            let mut client = Client::connect(&server)?;
            client.submit(sender.as_str(), &to, &body)?;
            Ok(())
        }
        Err(error) => {
            Err(error).with_context(|| format!("cannot open the queue in {}", data_dir.display()))
        }
    }
}

/// The user's login name, for a default sender.
fn login_name() -> String {
    ["LOGNAME", "USER"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "root".to_owned())
}

/// What a missing field is made of.
pub(crate) struct Missing<'a> {
    /// The envelope sender, for `From`.
    pub(crate) from: &'a str,
    pub(crate) full_name: Option<&'a str>,
    /// Seconds since the epoch, for `Date` and `Message-ID`.
    pub(crate) now: u64,
    /// The right side of `Message-ID`.
    pub(crate) hostname: &'a str,
}

/// A message as header lines and a body, with CRLF line ends.
pub(crate) struct Message {
    /// Each field with its continuation lines, without the final CRLF.
    fields: Vec<String>,
    body: Vec<u8>,
}

impl Message {
    /// Splits `input` into fields and body; without `ignore_dots`, a line holding only `.`
    /// ends the message, as sendmail reads it. Lines end in CRLF afterwards.
    pub(crate) fn read(input: &[u8], ignore_dots: bool) -> Message {
        let mut lines: Vec<&[u8]> = Vec::new();
        for line in input.split_inclusive(|&b| b == b'\n') {
            let bare = line.strip_suffix(b"\n").unwrap_or(line);
            let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
            if !ignore_dots && bare == b"." {
                break;
            }
            lines.push(bare);
        }
        let mut fields: Vec<String> = Vec::new();
        let mut rest = lines.as_slice();
        while let Some((line, after)) = rest.split_first() {
            let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
            match fields.last_mut() {
                Some(field) if continuation => {
                    field.push_str("\r\n");
                    field.push_str(&String::from_utf8_lossy(line));
                }
                _ if is_field(line) => fields.push(String::from_utf8_lossy(line).into_owned()),
                _ => break,
            }
            rest = after;
        }
        // The empty line between header and body belongs to neither.
        if rest.first().is_some_and(|line| line.is_empty()) {
            rest = &rest[1..];
        }
        let mut body = Vec::new();
        for line in rest {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
        }
        Message { fields, body }
    }

    /// The value of every field named `name` (any case), unfolded.
    fn values(&self, name: &str) -> impl Iterator<Item = String> + '_ {
        let name = name.to_owned();
        self.fields.iter().filter_map(move |field| {
            let (field_name, value) = field.split_once(':')?;
            field_name
                .trim()
                .eq_ignore_ascii_case(&name)
                .then(|| value.replace("\r\n", ""))
        })
    }

    fn has(&self, name: &str) -> bool {
        self.values(name).next().is_some()
    }

    /// Removes every field named `name`.
    fn remove(&mut self, name: &str) {
        self.fields.retain(|field| {
            field
                .split_once(':')
                .is_none_or(|(n, _)| !n.trim().eq_ignore_ascii_case(name))
        });
    }

    /// The addresses in the To, Cc and Bcc fields.
    pub(crate) fn recipients_from_headers(&self) -> Vec<String> {
        ["to", "cc", "bcc"]
            .iter()
            .flat_map(|name| self.values(name).collect::<Vec<_>>())
            .flat_map(|value| addresses(&value))
            .collect()
    }

    /// Adds `From`, `Date` and `Message-ID` where missing, after the fields already there.
    pub(crate) fn complete(&mut self, missing: &Missing<'_>) {
        if !self.has("from") {
            let from = match missing.full_name {
                Some(name) if !name.is_empty() => {
                    format!("From: {} <{}>", phrase(name), missing.from)
                }
                _ => format!("From: {}", missing.from),
            };
            self.fields.push(from);
        }
        if !self.has("date") {
            self.fields.push(format!("Date: {}", rfc5322(missing.now)));
        }
        if !self.has("message-id") {
            let unique = format!(
                "{:x}.{:x}.{:x}",
                missing.now,
                std::process::id(),
                // Two submissions in one second by one process id differ in their address.
                std::ptr::from_ref(self) as usize ^ nanos()
            );
            self.fields
                .push(format!("Message-ID: <{unique}@{}>", missing.hostname));
        }
    }

    /// The whole message, CRLF line ends.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.body.len() + 512);
        for field in &self.fields {
            bytes.extend_from_slice(field.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn nanos() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize)
}

/// Whether `line` starts a header field: a name of printable characters, then a colon.
fn is_field(line: &[u8]) -> bool {
    match line.iter().position(|&b| b == b':') {
        Some(0) | None => false,
        Some(colon) => line[..colon].iter().all(|&b| (33..=126).contains(&b)),
    }
}

/// A display name as a phrase: quoted unless it is plain words.
fn phrase(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_alphanumeric() || c == ' ' || "!#$%&'*+-/=?^_`{|}~".contains(c));
    if plain {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// The addresses in an address list: `a@x, "B, b" <b@y>, group: c@z;`.
fn addresses(value: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut item, mut quoted, mut angle) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' | ';' if !quoted && !angle => {
                items.push(std::mem::take(&mut item));
                continue;
            }
            ':' if !quoted && !angle => {
                // A group's name: its members follow.
                item.clear();
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    items.push(item);
    items
        .iter()
        .filter_map(|item| {
            let address = match (item.find('<'), item.rfind('>')) {
                (Some(start), Some(end)) if start < end => &item[start + 1..end],
                _ => without_comments(item),
            };
            let address = address.trim();
            (!address.is_empty()).then(|| address.to_owned())
        })
        .collect()
}

/// `a@x (Alice)` without its comment.
fn without_comments(item: &str) -> &str {
    item.split('(').next().unwrap_or(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> Missing<'static> {
        Missing {
            from: "alice@example.org",
            full_name: Some("Alice Q. User"),
            now: 1_796_515_200,
            hostname: "mx.example.org",
        }
    }

    #[test]
    fn missing_fields_are_added_after_the_others() {
        let mut message = Message::read(b"Subject: hi\nTo: bob@example.net\n\nbody\n", false);
        message.complete(&missing());
        let text = String::from_utf8(message.into_bytes()).unwrap();
        assert!(text.starts_with(
            "Subject: hi\r\nTo: bob@example.net\r\nFrom: \"Alice Q. User\" <alice@example.org>\r\n\
             Date: Sun, 06 Dec 2026 00:00:00 +0000\r\nMessage-ID: <"
        ), "{text}");
        assert!(text.ends_with("@mx.example.org>\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn present_fields_are_kept_whatever_their_case() {
        let input =
            b"FROM: x@y\r\ndate: Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id: <a@b>\r\n\r\nb\r\n";
        let mut message = Message::read(input, false);
        message.complete(&missing());
        assert_eq!(message.into_bytes(), input.to_vec());
    }

    #[test]
    fn a_lone_dot_ends_the_message_unless_dots_are_ignored() {
        let input = b"Subject: x\n\none\n.\ntwo\n";
        assert_eq!(Message::read(input, false).body, b"one\r\n");
        assert_eq!(Message::read(input, true).body, b"one\r\n.\r\ntwo\r\n");
    }

    #[test]
    fn a_message_without_a_header_gets_one() {
        let mut message = Message::read(b"just text\n", false);
        assert!(message.fields.is_empty());
        message.complete(&missing());
        let text = String::from_utf8(message.into_bytes()).unwrap();
        assert!(text.ends_with("\r\n\r\njust text\r\n"), "{text}");
    }

    #[test]
    fn recipients_come_from_to_cc_and_bcc_folded_and_grouped() {
        let input = b"To: \"Bob, B.\" <bob@example.net>,\n  carol@example.net (Carol)\n\
                      Cc: friends: dave@example.com, <erin@example.com>;\nBcc: frank\n\
                      Subject: x\n\nbody\n";
        let message = Message::read(input, false);
        assert_eq!(
            message.recipients_from_headers(),
            [
                "bob@example.net",
                "carol@example.net",
                "dave@example.com",
                "erin@example.com",
                "frank"
            ]
        );
    }

    #[test]
    fn bare_names_get_the_origin_domain() {
        assert_eq!(
            envelope("root", "example.org").unwrap().as_str(),
            "root@example.org"
        );
        assert_eq!(
            envelope("<a@b.example>", "x").unwrap().as_str(),
            "a@b.example"
        );
        assert!(envelope("a b@c", "x").is_err());
    }
}
