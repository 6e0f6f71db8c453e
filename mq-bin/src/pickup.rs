//! `mq serve`'s pickup: the files `mq sendmail` left in the maildrop are queued, at start and
//! then every `[queue] maildrop_interval`, as a local submission is (a missing `From`, `Date`
//! or `Message-ID` added), through the queue in use, embedded or the broker's.
//!
//! A file is removed only once the queue has its message durably: a crash in between queues it
//! again at the next start, so pickup delivers at least once. A file that is not a maildrop
//! file, cannot be read, is not a plain file of one link, or holds a message over `[smtp]
//! max_message_size` is moved to `corrupt/` with an error in the log; the pickup goes on.
//!
//! The envelope sender is taken as written, as Postfix's pickup does; the uid logged is the
//! file's owner, which a user cannot forge, and the one the file names is logged beside it
//! when they differ.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use mq_core::Config;
use mq_core::queue::{Extensions, NewMessage, Queue, QueueError};

use crate::clock::unix_now;
use crate::header::{Message, Missing};
use crate::inject::needs_smtputf8;
use crate::maildrop::{CORRUPT, Dropped, MAX_ENVELOPE, TEMPORARY};
use crate::reload::Reloader;

/// How often `stop` is looked at between scans.
const STEP: Duration = Duration::from_millis(100);

/// Makes the maildrop and its private `corrupt/` directory, and gives the maildrop
/// `[queue] maildrop_mode`; returns the maildrop's path.
///
/// # Errors
///
/// When a directory cannot be made. A mode that cannot be set (a directory the operator made,
/// owned by another user) is only logged.
pub(crate) fn prepare(config: &Config) -> anyhow::Result<PathBuf> {
    let dir = config.queue.maildrop();
    let corrupt = dir.join(CORRUPT);
    std::fs::create_dir_all(&corrupt)
        .with_context(|| format!("cannot make the maildrop {}", corrupt.display()))?;
    // Its files are readable by others (see `maildrop`): only mq's user may list them here.
    std::fs::set_permissions(&corrupt, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", corrupt.display()))?;
    let mode = config.queue.maildrop_mode;
    let now = std::fs::metadata(&dir).map(|m| m.permissions().mode() & 0o7777);
    if now.ok() != Some(mode) {
        let permissions = std::fs::Permissions::from_mode(mode);
        if let Err(error) = std::fs::set_permissions(&dir, permissions) {
            tracing::warn!(
                dir = %dir.display(),
                "cannot give the maildrop mode {mode:o}: {error}"
            );
        }
    }
    Ok(dir)
}

/// Picks up the maildrop of the configuration in force until `stop` is set.
pub(crate) fn run(reloader: &Reloader<'_>, queue: &dyn Queue, stop: &AtomicBool) {
    let mut pickup = Pickup {
        queue,
        stuck: HashSet::new(),
        unreadable: false,
    };
    loop {
        let config = reloader.running();
        pickup.scan(&config, stop);
        let mut waited = Duration::ZERO;
        while waited < config.queue.maildrop_interval {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(STEP);
            waited += STEP;
        }
    }
}

/// Why a file is moved to `corrupt/`.
#[derive(Debug)]
enum Refused {
    Unreadable(std::io::Error),
    NotPlain,
    TooLarge(u64),
    Malformed(crate::maildrop::Malformed),
    Invalid(&'static str),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unreadable(error) => write!(f, "cannot read it: {error}"),
            Refused::NotPlain => f.write_str("not a plain file with one link"),
            Refused::TooLarge(size) => write!(f, "{size} bytes, over smtp.max_message_size"),
            Refused::Malformed(why) => write!(f, "not a maildrop file: {why}"),
            Refused::Invalid(why) => write!(f, "the queue refuses it: {why}"),
        }
    }
}

/// What one file came to.
enum Taken {
    Queued,
    /// Gone before it was read: another pickup, or its writer, removed it.
    Vanished,
    Refused(Refused),
    /// The queue did not take it (the broker is away): tried again at the next scan.
    NotQueued,
}

struct Pickup<'a> {
    queue: &'a dyn Queue,
    /// Files that could be neither queued nor moved: logged once, then passed over.
    stuck: HashSet<OsString>,
    /// Whether the maildrop could not be read at the last scan: logged once.
    unreadable: bool,
}

impl Pickup<'_> {
    /// Takes every whole file in the maildrop, oldest name first.
    fn scan(&mut self, config: &Config, stop: &AtomicBool) {
        let dir = config.queue.maildrop();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) => {
                if !std::mem::replace(&mut self.unreadable, true) {
                    tracing::error!(dir = %dir.display(), "cannot read the maildrop: {error}");
                }
                return;
            }
        };
        self.unreadable = false;
        let mut names: Vec<OsString> = entries
            .filter_map(|entry| Some(entry.ok()?.file_name()))
            .filter(|name| {
                let text = name.to_string_lossy();
                if text.starts_with(TEMPORARY) {
                    remove_if_stale(&dir.join(name));
                    return false;
                }
                text != CORRUPT && !self.stuck.contains(name)
            })
            .collect();
        names.sort();
        for name in names {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let path = dir.join(&name);
            match self.take(&path, config) {
                Taken::Queued | Taken::Vanished => {}
                Taken::NotQueued => return,
                Taken::Refused(why) => self.refuse(&dir, &name, &why),
            }
        }
    }

    /// Queues the message in `path`, then removes the file.
    fn take(&self, path: &Path, config: &Config) -> Taken {
        let (dropped, owner) = match read(path, config.smtp.max_message_size) {
            Ok(Some(read)) => read,
            Ok(None) => return Taken::Vanished,
            Err(why) => return Taken::Refused(why),
        };
        let sender = dropped.sender.as_str().to_owned();
        let mut message = Message::read(&dropped.message, true);
        message.complete(&Missing {
            from: &sender,
            full_name: dropped.full_name.as_deref(),
            now: unix_now(),
            hostname: &config.smtp.hostname,
        });
        // As sendmail decides: an envelope or header that is not ASCII goes with SMTPUTF8.
        let mut addresses = std::iter::once(&dropped.sender).chain(&dropped.recipients);
        let smtputf8 = !message.header_is_ascii() || addresses.any(needs_smtputf8);
        let new = NewMessage {
            sender: dropped.sender,
            recipients: dropped.recipients,
            body: message.into_bytes(),
            client: "localhost[maildrop]".into(),
            extensions: smtputf8.then(|| {
                Arc::new(Extensions {
                    smtputf8: true,
                    ..Extensions::default()
                })
            }),
        };
        let id = match smol::block_on(self.queue.enqueue(new)) {
            Ok(id) => id,
            // Not this time nor any other: a bad file, not a queue away.
            Err(QueueError::Invalid(why)) => return Taken::Refused(Refused::Invalid(why)),
            Err(error) => {
                tracing::warn!(file = %path.display(), "cannot queue a maildrop file yet: {error}");
                return Taken::NotQueued;
            }
        };
        if let Err(error) = std::fs::remove_file(path) {
            // Queued already: the next scan would queue it twice.
            tracing::error!(
                queue_id = %id,
                file = %path.display(),
                "cannot remove a picked-up maildrop file; remove it by hand: {error}"
            );
        }
        if dropped.uid == owner {
            tracing::info!(queue_id = %id, "{id}: uid={owner} from=<{sender}>");
        } else {
            tracing::info!(
                queue_id = %id,
                "{id}: uid={owner} from=<{sender}> (the file claims uid={})",
                dropped.uid
            );
        }
        Taken::Queued
    }

    /// Moves `name` to `corrupt/`, with an error in the log.
    fn refuse(&mut self, dir: &Path, name: &OsString, why: &Refused) {
        let to = dir.join(CORRUPT).join(name);
        let path = dir.join(name);
        match std::fs::rename(&path, &to) {
            Ok(()) => tracing::error!(
                file = %path.display(),
                moved_to = %to.display(),
                "maildrop file refused: {why}"
            ),
            Err(error) => {
                self.stuck.insert(name.clone());
                tracing::error!(
                    file = %path.display(),
                    "maildrop file refused: {why}; cannot move it to {CORRUPT}/: {error}"
                );
            }
        }
    }
}

/// The maildrop file at `path` and its owner's uid; `None` if it is gone.
///
/// It is opened without following a symbolic link and without waiting on a FIFO, and must be
/// a plain file of one link: a user may not have mq read, and mail, a file of someone else's.
fn read(path: &Path, max_size: usize) -> Result<Option<(Dropped, u32)>, Refused> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits().cast_signed())
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Refused::Unreadable(error)),
    };
    let metadata = file.metadata().map_err(Refused::Unreadable)?;
    if !metadata.is_file() || metadata.nlink() != 1 {
        return Err(Refused::NotPlain);
    }
    let limit = u64::try_from(max_size.saturating_add(MAX_ENVELOPE)).unwrap_or(u64::MAX);
    if metadata.len() > limit {
        return Err(Refused::TooLarge(metadata.len()));
    }
    let bytes = read_at_most(file, limit)?;
    let dropped = Dropped::parse(&bytes).map_err(Refused::Malformed)?;
    if dropped.message.len() > max_size {
        return Err(Refused::TooLarge(dropped.message.len() as u64));
    }
    Ok(Some((dropped, metadata.uid())))
}

/// The file's bytes, refused if more than `limit` (it grew since it was measured).
fn read_at_most(file: File, limit: u64) -> Result<Vec<u8>, Refused> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Refused::Unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(Refused::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// How old a sendmail's temporary file may get: one is renamed within moments of its writing
/// (sendmail reads the whole message first), so an older one is what a crash left.
const STALE_TEMPORARY: Duration = Duration::from_hours(1);

/// Removes the temporary file at `path` when a crashed sendmail left it, as Postfix's postsuper
/// removes stale maildrop files.
fn remove_if_stale(path: &Path) {
    let age = std::fs::symlink_metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok());
    if age.is_some_and(|age| age >= STALE_TEMPORARY) {
        match std::fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(file = %path.display(), "removed a stale maildrop temporary file");
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), "cannot remove a stale maildrop temporary file: {error}");
            }
        }
    }
}
