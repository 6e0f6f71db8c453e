//! `mq queue`: list, show, delete and flush queued mail.
//!
//! One process at a time may have a queue open (it locks `<data-dir>/queue/lock`), so a command
//! first tries to open the queue itself: if that works no server runs, and it acts on the disk
//! while holding the lock. If the queue is locked, a server runs, and the command asks it
//! through the admin port (`[admin] listen`), so that the two never write one journal.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use mq_core::Config;
use mq_core::admin::QueueRecord;
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Queue as _, QueueError, QueueId};

use crate::admin_client::AdminClient;
use crate::serve::queue_dir;
use crate::{print, queue_view};

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
    /// Lists every queued recipient: queue id, sender, recipient, size, age, state, next attempt.
    List,
    /// Shows one message: its envelope, each recipient's state, then its text.
    Show {
        /// The message's queue id, as `mq queue list` shows it.
        id: QueueId,
    },
    /// Removes a message, all its recipients, from the queue.
    Delete {
        /// The message's queue id.
        id: QueueId,
    },
    /// Makes a running server retry every deferred entry now.
    Flush,
}

/// Where the queue is to be read and changed.
enum Access {
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
            Action::List => crate::broker::list(config),
            Action::Show { .. } => Err(crate::broker::unsupported("show")),
            Action::Delete { .. } => Err(crate::broker::unsupported("delete")),
            Action::Flush => Err(crate::broker::unsupported("flush")),
        };
    }
    let data_dir = args.data_dir.as_deref().unwrap_or(&config.queue.data_dir);
    let access = access(config, data_dir)?;
    let now = unix_now();
    match &args.action {
        Action::List => print(&queue_view::list(&records(&access)?, now)),
        Action::Show { id } => {
            let (records, body) = message(&access, *id)?;
            print(&queue_view::show(&records, &body, now))
        }
        Action::Delete { id } => {
            let removed = delete(&access, *id)?;
            print(&format!("{id}: removed {removed} entries\n"))
        }
        Action::Flush => print(flush(&access)?),
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

fn records(access: &Access) -> anyhow::Result<Vec<QueueRecord>> {
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

/// Removes message `id`; how many entries it had.
fn delete(access: &Access, id: QueueId) -> anyhow::Result<usize> {
    match access {
        Access::Disk(queue) => Ok(smol::block_on(queue.delete(&id))?),
        Access::Nothing => Err(QueueError::NotFound(id).into()),
        Access::Server(client) => {
            let response = client.request("POST", &format!("/queue/delete/{id}"))?;
            match response.status {
                200 => response
                    .text()
                    .parse()
                    .context("admin port: malformed delete count"),
                404 => Err(QueueError::NotFound(id).into()),
                status => bail!("admin port: {status}: {}", response.text()),
            }
        }
    }
}

/// What `flush` says it did.
fn flush(access: &Access) -> anyhow::Result<&'static str> {
    match access {
        // Flushing is a hint to a running server's deliveries; without one there is nothing
        // to hurry, and a server retries what is due when it starts.
        Access::Disk(_) | Access::Nothing => {
            Ok("no running server; deferred entries are retried when mq serve starts\n")
        }
        Access::Server(client) => {
            client.ok("POST", "/queue/flush")?;
            Ok("queue flushed: deferred entries are due now\n")
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
