//! `mq queue`: list, summarise, show, delete, hold, release, requeue and flush queued mail.
//!
//! One process at a time may have a queue open (it locks `<data-dir>/queue/lock`), so a command
//! first tries to open the queue itself: if that works no server runs, and it acts on the disk
//! while holding the lock. If the queue is locked, a server runs, and the command asks it
//! through the admin port (`[admin] listen`), so that the two never write one journal.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use mq_core::Config;
use mq_core::admin::QueueRecord;
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Queue as _, QueueError, QueueId, Surgery};

use crate::admin_client::AdminClient;
use crate::clock::unix_now;
use crate::serve::queue_dir;
use crate::surgery::{self, Targets};
use crate::{print, qshape, queue_view};

/// `mq queue`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    #[command(subcommand)]
    action: Action,
    /// The data directory whose queue to use (queue.data_dir; default ./mq-data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Lists queued recipients: queue id, sender, recipient, size, age, state, next attempt.
    List {
        #[command(flatten)]
        filter: Filter,
        /// One JSON object per entry and line, as the admin port's `GET /queue` sends them.
        #[arg(long)]
        json: bool,
    },
    /// The queue's shape, as Postfix's qshape: entries per destination domain and age.
    Summary {
        /// Only deferred entries (qshape deferred).
        #[arg(long)]
        deferred: bool,
        /// How many domains to show, the busiest first, under the total.
        #[arg(long, value_name = "N", default_value_t = 10)]
        top: usize,
        /// By the sender's domain instead of the recipient's (qshape -s).
        #[arg(long)]
        senders: bool,
    },
    /// Shows one message: its envelope, each recipient's state, then its text.
    Show {
        /// The message's queue id, as `mq queue list` shows it.
        id: QueueId,
        /// The entries and the text as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Removes messages, all their recipients, from the queue.
    Delete(Targets),
    /// Puts messages on hold: none of their entries is delivered until released.
    Hold(Targets),
    /// Releases held messages: their entries are delivered as before.
    Release(Targets),
    /// Starts messages afresh: every entry due now, attempts and last error cleared, no hold.
    Requeue(Targets),
    /// Makes a running server retry deferred entries now: all, one message's, or one domain's.
    Flush {
        /// Only this message's entries.
        id: Option<QueueId>,
        /// Only entries to this recipient domain.
        #[arg(long, value_name = "DOMAIN", conflicts_with = "id")]
        domain: Option<String>,
    },
}

/// Where the queue is to be read and changed.
pub(crate) enum Access {
    /// No server runs: this process holds the queue's lock.
    Disk(EmbeddedQueue),
    /// The queue directory does not exist: nothing was ever queued there.
    Nothing,
    /// A server holds the queue: ask it.
    Server(AdminClient),
}

/// Runs one `mq queue` command.
pub(crate) fn run(config: &Config, args: &QueueArgs) -> anyhow::Result<()> {
    if crate::broker::in_use(config) {
        return match &args.action {
            Action::List { .. } => crate::broker::list(config),
            Action::Summary { .. } => Err(crate::broker::unsupported("summary")),
            Action::Show { .. } => Err(crate::broker::unsupported("show")),
            Action::Delete(_) => Err(crate::broker::unsupported("delete")),
            Action::Hold(_) => Err(crate::broker::unsupported("hold")),
            Action::Release(_) => Err(crate::broker::unsupported("release")),
            Action::Requeue(_) => Err(crate::broker::unsupported("requeue")),
            Action::Flush { .. } => Err(crate::broker::unsupported("flush")),
        };
    }
    let data_dir = args.data_dir.as_deref().unwrap_or(&config.queue.data_dir);
    let access = access(config, data_dir)?;
    let now = unix_now();
    match &args.action {
        Action::List { filter, json } => {
            let records = records(&access)?;
            let picked: Vec<&QueueRecord> = filter.apply(&records, now).collect();
            if *json {
                print(&queue_view::json_lines(&picked))
            } else {
                print(&queue_view::list(&picked, now))
            }
        }
        Action::Summary {
            deferred,
            top,
            senders,
        } => {
            let records = records(&access)?;
            let picked: Vec<&QueueRecord> = records
                .iter()
                .filter(|r| !*deferred || r.state == "deferred")
                .collect();
            print(&qshape::summary(&picked, now, *top, *senders))
        }
        Action::Show { id, json } => {
            let (records, body) = message(&access, *id)?;
            if *json {
                print(&queue_view::show_json(&records, &body))
            } else {
                print(&queue_view::show(&records, &body, now))
            }
        }
        Action::Delete(targets) => surgery::run(&access, Surgery::Delete, targets),
        Action::Hold(targets) => surgery::run(&access, Surgery::Hold, targets),
        Action::Release(targets) => surgery::run(&access, Surgery::Release, targets),
        Action::Requeue(targets) => surgery::run(&access, Surgery::Requeue, targets),
        Action::Flush { id, domain } => print(&flush(&access, *id, domain.as_deref())?),
    }
}

fn access(config: &Config, data_dir: &Path) -> anyhow::Result<Access> {
    if !data_dir.is_dir() {
        bail!("data directory {} does not exist", data_dir.display());
    }
    let dir = queue_dir(data_dir);
    if !dir.exists() {
        return Ok(Access::Nothing);
    }
    let options = EmbeddedOptions {
        fsync: config.queue.fsync,
        ..EmbeddedOptions::default()
    };
    match EmbeddedQueue::open(&dir, options) {
        Ok(queue) => Ok(Access::Disk(queue)),
        Err(QueueError::InUse(_)) => match config.admin.listen {
            Some(address) => server_owning(config, address, data_dir).map(Access::Server),
            None => bail!(
                "the queue in {} is in use (by a running mq serve?) and [admin] listen is off",
                data_dir.display()
            ),
        },
        Err(error) => {
            Err(error).with_context(|| format!("cannot open the queue in {}", data_dir.display()))
        }
    }
}

/// The admin port at `address`, once its server says it owns `data_dir`: the config may name
/// the port of a server whose queue is elsewhere, and its answers would be about that queue.
fn server_owning(
    config: &Config,
    address: std::net::SocketAddr,
    data_dir: &Path,
) -> anyhow::Result<AdminClient> {
    let token = crate::admin_client::token(config)?;
    let client = AdminClient::new(address, token);
    let ours = std::fs::canonicalize(data_dir)
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let theirs = client.data_dir()?;
    if theirs != ours {
        bail!(
            "the queue in {} is in use, but the server at admin port {address} owns {}, not it",
            ours.display(),
            theirs.display()
        );
    }
    Ok(client)
}

pub(crate) fn records(access: &Access) -> anyhow::Result<Vec<QueueRecord>> {
    match access {
        Access::Disk(queue) => Ok(queue.list().iter().map(QueueRecord::from).collect()),
        Access::Nothing => Ok(Vec::new()),
        Access::Server(client) => Ok(client.records("/queue")?.unwrap_or_default()),
    }
}

/// Message `id`'s entries and text.
fn message(access: &Access, id: QueueId) -> anyhow::Result<(Vec<QueueRecord>, Vec<u8>)> {
    let found = match access {
        Access::Disk(queue) => {
            let records: Vec<_> = queue
                .list()
                .iter()
                .filter(|e| e.queue_id == id)
                .map(QueueRecord::from)
                .collect();
            let body = smol::block_on(queue.body(&id));
            match body {
                Ok(body) if !records.is_empty() => Some((records, body.to_vec())),
                Ok(_) | Err(QueueError::NotFound(_)) => None,
                Err(error) => return Err(error).context("cannot read the message"),
            }
        }
        Access::Nothing => None,
        Access::Server(client) => match client.records(&format!("/queue/{id}"))? {
            Some(records) => Some((records, client.ok("GET", &format!("/queue/{id}/body"))?)),
            None => None,
        },
    };
    found.ok_or_else(|| QueueError::NotFound(id).into())
}

/// What `flush` says it did: for everything, message `id`, or `domain`.
fn flush(access: &Access, id: Option<QueueId>, domain: Option<&str>) -> anyhow::Result<String> {
    match access {
        // Flushing is a hint to a running server's deliveries; without one there is nothing
        // to hurry, and a server retries what is due when it starts.
        Access::Disk(_) | Access::Nothing => {
            if let Some(id) = id {
                message(access, id)?;
            }
            Ok("no running server; deferred entries are retried when mq serve starts\n".into())
        }
        Access::Server(client) => {
            let (path, what) = match (id, domain) {
                (Some(id), _) => (format!("/queue/flush/{id}"), format!("{id}: ")),
                (None, Some(domain)) => (
                    format!("/queue/flush?domain={}", surgery::escaped(domain)),
                    format!("{domain}: "),
                ),
                (None, None) => {
                    client.ok("POST", "/queue/flush")?;
                    return Ok("queue flushed: deferred entries are due now\n".into());
                }
            };
            let response = client.request("POST", &path)?;
            match (response.status, id) {
                (200, _) => {
                    let count: usize = response
                        .text()
                        .parse()
                        .context("admin port: malformed flush count")?;
                    Ok(format!(
                        "{what}{} due now\n",
                        plural(count, "deferred entry", "deferred entries")
                    ))
                }
                (404, Some(id)) => Err(QueueError::NotFound(id).into()),
                (status, _) => bail!("admin port: {status}: {}", response.text()),
            }
        }
    }
}

/// `1 entry`, `2 entries`.
pub(crate) fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// Which entries `mq queue list` shows; every filter given must match.
#[derive(Debug, Args)]
struct Filter {
    /// Only entries to this recipient domain.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// Only messages from this envelope sender (`<>` for the null sender).
    #[arg(long, value_name = "ADDR")]
    sender: Option<String>,
    /// Only entries in this state: ready, deferred, in-flight or hold.
    #[arg(long, value_name = "STATE", value_parser = ["ready", "deferred", "in-flight", "hold"])]
    state: Option<String>,
    /// Only messages queued longer ago than this: 90s, 30m, 2h, 3d.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<u64>,
}

impl Filter {
    fn apply<'a>(
        &'a self,
        records: &'a [QueueRecord],
        now: u64,
    ) -> impl Iterator<Item = &'a QueueRecord> + 'a {
        records.iter().filter(move |r| self.picks(r, now))
    }

    fn picks(&self, record: &QueueRecord, now: u64) -> bool {
        let domain = |address: &str| address.rsplit_once('@').map_or("", |(_, d)| d).to_owned();
        self.domain
            .as_ref()
            .is_none_or(|d| domain(&record.recipient).eq_ignore_ascii_case(d))
            && self.sender.as_ref().is_none_or(|s| {
                let s = if s.is_empty() { "<>" } else { s.as_str() };
                record.sender.eq_ignore_ascii_case(s)
            })
            && self.state.as_ref().is_none_or(|s| record.state == *s)
            && self
                .older_than
                .is_none_or(|age| now.saturating_sub(record.arrived) > age)
    }
}

/// `90s`, `30m`, `2h`, `3d` (or bare seconds) in seconds.
fn parse_age(text: &str) -> Result<u64, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not an age such as 90s, 30m, 2h or 3d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d or w)")),
    };
    Ok(number.saturating_mul(scale))
}
