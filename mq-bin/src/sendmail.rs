//! `mq sendmail`, and the `mq` binary run under the name `sendmail`: submission as scripts and
//! cron expect it. The message is read from stdin; recipients come from the arguments and,
//! with `-t`, from its `To`, `Cc` and `Bcc` fields (a `Bcc` field is then removed).
//!
//! When no server holds the queue, the message is queued on the disk directly, holding the
//! queue's lock as `mq serve` does, and the next `mq serve` delivers it; when a server holds it,
//! the message goes to that server over SMTP, as `mq inject` sends it, through the same hooks as
//! mail from the network. Either way, a missing `From`, `Date` or `Message-ID` field is added
//! first, as Postfix's cleanup does for local submissions. A message whose envelope or header
//! is not ASCII is submitted with SMTPUTF8, so that it goes only to servers that offer it.
//!
//! A user who may not open the queue (it is mq's user's) submits to the server too; when no
//! server answers, the message is left in the maildrop (`maildrop`), which `mq serve` picks up
//! when it runs, as Postfix's postdrop and pickup do.

use std::io::{self, Read as _};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser};
use mq_core::Config;
use mq_core::queue::{
    EmbeddedOptions, EmbeddedQueue, Extensions, NewMessage, Queue as _, QueueError,
};
use mq_plugin_api::Address;

use crate::clock::unix_now;
use crate::header::{Message, Missing};
use crate::inject::{Client, needs_smtputf8, reachable};
use crate::maildrop::Dropped;
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
    /// The mode: only `-bm` (read a message from stdin, the default) is supported.
    #[arg(short = 'b', value_name = "MODE", hide = true)]
    mode: Option<String>,
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
    if let Some(mode) = args.mode.as_deref().filter(|mode| *mode != "m") {
        bail!("-b{mode} is not supported: only -bm, a message on stdin");
    }
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
    let mut addresses = std::iter::once(&sender).chain(&recipients);
    let smtputf8 = !message.header_is_ascii() || addresses.any(needs_smtputf8);
    let submission = Submission {
        sender,
        recipients,
        full_name: args.full_name.clone(),
        body: message.into_bytes(),
        smtputf8,
    };
    submit(config, submission)
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

/// The message as submitted: its envelope, and what the maildrop also records.
struct Submission {
    sender: Address,
    recipients: Vec<Address>,
    full_name: Option<String>,
    body: Vec<u8>,
    /// The envelope or the header is not ASCII: the message goes with SMTPUTF8.
    smtputf8: bool,
}

/// Queues the message: on the disk if no server holds the queue, else through the server;
/// into the maildrop when this user may not open the queue, or the server that holds it does
/// not answer.
fn submit(config: &Config, submission: Submission) -> anyhow::Result<()> {
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
                sender: submission.sender,
                recipients: submission.recipients,
                body: submission.body,
                client: "localhost[local submission]".into(),
                extensions: submission.smtputf8.then(|| {
                    Arc::new(Extensions {
                        smtputf8: true,
                        ..Extensions::default()
                    })
                }),
            };
            let id = smol::block_on(queue.enqueue(message)).context("cannot queue the message")?;
            tracing::info!(queue_id = %id, "queued on disk: no server holds the queue");
            Ok(())
        }
        Err(QueueError::InUse(_)) => through_server(config, submission),
        Err(QueueError::Io { source, .. }) if source.kind() == io::ErrorKind::PermissionDenied => {
            through_server(config, submission)
        }
        Err(error) => {
            Err(error).with_context(|| format!("cannot open the queue in {}", data_dir.display()))
        }
    }
}

/// Submits over SMTP to the server at `[smtp] listen`; if none answers, into the maildrop.
fn through_server(config: &Config, submission: Submission) -> anyhow::Result<()> {
    let server = reachable(config.smtp.listen).to_string();
    match Client::connect(&server) {
        Ok(mut client) => {
            let to: Vec<String> = submission
                .recipients
                .iter()
                .map(ToString::to_string)
                .collect();
            client.submit(
                submission.sender.as_str(),
                &to,
                &submission.body,
                submission.smtputf8,
            )?;
            Ok(())
        }
        Err(unreachable) => into_maildrop(config, submission)
            .with_context(|| format!("{unreachable:#}, and the queue is not this user's")),
    }
}

/// Leaves the message in the maildrop, for `mq serve` to queue when it runs.
fn into_maildrop(config: &Config, submission: Submission) -> anyhow::Result<()> {
    let max = config.smtp.max_message_size;
    if submission.body.len() > max {
        bail!(
            "the message has {} bytes, over smtp.max_message_size ({max})",
            submission.body.len()
        );
    }
    let dir = config.queue.maildrop();
    if !dir.is_dir() {
        bail!(
            "the maildrop {} does not exist (mq serve makes it when it starts)",
            dir.display()
        );
    }
    let dropped = Dropped {
        uid: rustix::process::getuid().as_raw(),
        sender: submission.sender,
        full_name: submission.full_name,
        recipients: submission.recipients,
        message: submission.body,
    };
    let path = dropped.write_to(&dir)?;
    tracing::info!(file = %path.display(), "left in the maildrop: no server to submit to");
    Ok(())
}

/// The user's login name, for a default sender.
fn login_name() -> String {
    ["LOGNAME", "USER"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "root".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
