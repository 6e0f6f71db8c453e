//! `mq queue delete|hold|release|requeue`: a change to messages named by id, read from stdin
//! (`-`), or all of them (`ALL`), as Postfix's postsuper takes them.
//!
//! On the disk the changes go to the queue together, so that they share the journal's syncs;
//! through a running server they go in batches of ids per admin request.

use std::fmt::Write as _;
use std::io::{self, BufRead as _};

use anyhow::{Context as _, bail};
use clap::Args;
use mq_core::queue::{QueueError, QueueId, Surgery, all_messages};

use crate::print;
use crate::queue::{Access, plural};

/// Ids per admin request: 17 bytes each, well inside the admin port's 8 KiB request head.
const IDS_PER_REQUEST: usize = 400;

/// The messages a change is for.
#[derive(Debug, Args)]
pub(crate) struct Targets {
    /// Queue ids; `-` reads them from stdin, one per line (the first word of each line, so
    /// `mq queue list` output can be piped in); `ALL` is every queued message.
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    ids: Vec<String>,
}

/// Which messages, once parsed.
enum Picked {
    Ids(Vec<QueueId>),
    All,
}

/// Applies `change` to the `targets` and prints what it did: a line per id named on the
/// command line, or, for `-` and `ALL`, one total as postsuper prints it.
pub(crate) fn run(access: &Access, change: Surgery, targets: &Targets) -> anyhow::Result<()> {
    let bulk = targets.ids.iter().any(|id| id == "-" || id == "ALL");
    let picked = picked(targets)?;
    let outcomes = apply(access, change, &picked)?;
    let mut text = String::new();
    let mut failures = Vec::new();
    let mut changed = 0;
    for (id, outcome) in outcomes {
        match outcome {
            Ok(entries) => {
                changed += 1;
                if !bulk {
                    let verb = past(change);
                    let entries = plural(entries, "entry", "entries");
                    let _ = writeln!(text, "{id}: {verb} {entries}");
                }
            }
            Err(error) => failures.push(error),
        }
    }
    if bulk {
        let _ = writeln!(
            text,
            "{}: {}",
            change.done(),
            plural(changed, "message", "messages")
        );
    }
    print(&text)?;
    match failures.len() {
        0 => Ok(()),
        1 => Err(anyhow::Error::msg(failures.remove(0))),
        n => bail!("{n} messages were not changed, e.g.: {}", failures[0]),
    }
}

/// `removed`, `held`, …, for the line of one message.
fn past(change: Surgery) -> &'static str {
    match change {
        Surgery::Hold => "held",
        Surgery::Release => "released",
        Surgery::Requeue => "requeued",
        _ => "removed",
    }
}

fn picked(targets: &Targets) -> anyhow::Result<Picked> {
    let mut ids = Vec::new();
    for target in &targets.ids {
        match target.as_str() {
            "ALL" => return Ok(Picked::All),
            "-" => {
                for line in io::stdin().lock().lines() {
                    let line = line.context("cannot read queue ids from stdin")?;
                    let Some(word) = line.split_whitespace().next() else {
                        continue;
                    };
                    // A listing's header and summary lines are not ids; anything else must be.
                    if word == "QUEUE" || word == "--" {
                        continue;
                    }
                    ids.push(word.parse().with_context(|| format!("stdin: {word:?}"))?);
                }
            }
            id => ids.push(id.parse()?),
        }
    }
    // Each message once, in the order given: a message with several recipients is listed once
    // per recipient.
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    Ok(Picked::Ids(ids))
}

type Outcomes = Vec<(QueueId, Result<usize, String>)>;

fn apply(access: &Access, change: Surgery, picked: &Picked) -> anyhow::Result<Outcomes> {
    let as_text = |outcomes: Vec<(QueueId, Result<usize, QueueError>)>| {
        outcomes
            .into_iter()
            .map(|(id, outcome)| (id, outcome.map_err(|e| e.to_string())))
            .collect()
    };
    match (access, picked) {
        (Access::Disk(queue), Picked::All) => {
            let ids = all_messages(queue);
            Ok(as_text(smol::block_on(change.apply_all(queue, &ids))))
        }
        (Access::Disk(queue), Picked::Ids(ids)) => {
            Ok(as_text(smol::block_on(change.apply_all(queue, ids))))
        }
        (Access::Nothing, Picked::All) => Ok(Vec::new()),
        (Access::Nothing, Picked::Ids(ids)) => Ok(ids
            .iter()
            .map(|id| (*id, Err(QueueError::NotFound(*id).to_string())))
            .collect()),
        (Access::Server(client), Picked::All) => server(client, change, "ALL"),
        (Access::Server(client), Picked::Ids(ids)) => {
            let mut outcomes = Vec::with_capacity(ids.len());
            for batch in ids.chunks(IDS_PER_REQUEST) {
                let list: Vec<String> = batch.iter().map(QueueId::to_string).collect();
                outcomes.extend(server(client, change, &list.join(","))?);
            }
            Ok(outcomes)
        }
    }
}

/// One admin request for `ids` (comma-separated, or `ALL`).
fn server(
    client: &crate::admin_client::AdminClient,
    change: Surgery,
    ids: &str,
) -> anyhow::Result<Outcomes> {
    let body = client.ok("POST", &format!("/queue/{change}?ids={ids}"))?;
    let text = String::from_utf8(body).context("admin port: answer is not UTF-8")?;
    let mut outcomes = Vec::new();
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).context("admin port: malformed answer line")?;
        let id: QueueId = value["queue_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("admin port: answer line without a queue id")?;
        let outcome = match (value["entries"].as_u64(), value["error"].as_str()) {
            (Some(entries), _) => Ok(entries as usize),
            (None, Some(error)) => Err(error.to_owned()),
            (None, None) => bail!("admin port: answer line without entries or error"),
        };
        outcomes.push((id, outcome));
    }
    Ok(outcomes)
}

/// `text` with every byte but letters, digits, `.` and `-` percent-escaped, for a query.
pub(crate) fn escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
