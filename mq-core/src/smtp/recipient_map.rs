//! `[smtp] local_recipient_map`: who exists in the local domains, from a file re-read when it
//! changes.
//!
//! The file has Postfix's `local_recipient_maps` (or `virtual_mailbox_maps`) form: one key per
//! logical line, `user` (that user in every local domain), `user@domain` or `@domain` (every
//! user of that domain), optionally followed by a value that mq ignores; empty lines, lines
//! whose first non-blank character is `#`, and lines that start with a blank (the value going
//! on) are skipped. Keys are compared without regard to case.
//!
//! # Why it is checked this way
//!
//! - One parsed table for all cores, behind an `Arc` swapped whole: an RCPT sees the old table
//!   or the new one, never half of each.
//! - The file's modification time, size and inode are looked at when a recipient arrives, at
//!   most once a second over all cores, off the worker; an idle server does no I/O.
//! - A file that breaks or goes missing on reload keeps the table that worked and logs a
//!   warning once; at start-up it stops mq, naming the line.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use mq_plugin_api::Address;

/// How often the file is looked at, at most.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The longest an RCPT waits for a look at the file; a slower one (a hung network file
/// system) goes on in the background.
const CHECK_WAIT: Duration = Duration::from_secs(1);

/// A local recipient map, loaded from its file and re-read when the file changes.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("recipients");
/// std::fs::write(&path, "# users\njane\nbob@example.org  anything\n@lists.example.org\n")?;
/// let map = mq_core::smtp::RecipientMap::open(&path)?;
/// assert_eq!(map.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RecipientMap {
    path: PathBuf,
    loaded: Mutex<Loaded>,
    /// A look at the file is under way.
    checking: AtomicBool,
}

#[derive(Debug)]
struct Loaded {
    table: Arc<Table>,
    /// The file as it was when last looked at; `None` if it could not be.
    stamp: Option<Stamp>,
    checked: Instant,
}

/// What tells a changed file from the one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The keys of a map: each folded to lower case, with the spelling the file gives.
#[derive(Debug, Default)]
pub(crate) struct Table {
    keys: HashMap<String, String>,
}

/// Why a recipient map could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecipientMapError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A line holds no key mq understands.
    Line {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The key as written.
        key: String,
    },
}

impl fmt::Display for RecipientMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecipientMapError::Read { path, source } => {
                write!(
                    f,
                    "cannot read local recipient map {}: {source}",
                    path.display()
                )
            }
            RecipientMapError::Line { path, line, key } => write!(
                f,
                "local recipient map {} line {line}: {key:?} is not a recipient (user, user@domain or @domain)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RecipientMapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecipientMapError::Read { source, .. } => Some(source),
            RecipientMapError::Line { .. } => None,
        }
    }
}

impl RecipientMap {
    /// Reads the map at `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or a line has a key that is not `user`, `user@domain` or
    /// `@domain`.
    pub fn open(path: &Path) -> Result<RecipientMap, RecipientMapError> {
        let (stamp, table) = load(path)?;
        Ok(RecipientMap {
            path: path.to_owned(),
            loaded: Mutex::new(Loaded {
                table: Arc::new(table),
                stamp: Some(stamp),
                checked: Instant::now(),
            }),
            checking: AtomicBool::new(false),
        })
    }

    /// How many keys the map holds.
    pub fn len(&self) -> usize {
        self.lock().table.keys.len()
    }

    /// Whether the map holds no key (then no local recipient is known but postmaster).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The table in use, after a look at the file if one is due.
    pub(crate) async fn table(self: &Arc<Self>) -> Arc<Table> {
        if self.check_due() {
            let map = Arc::clone(self);
            let mut check = smol::unblock(move || map.check());
            let done = smol::future::or(
                async {
                    (&mut check).await;
                    true
                },
                async {
                    smol::Timer::after(CHECK_WAIT).await;
                    false
                },
            )
            .await;
            if !done {
                tracing::warn!(path = %self.path.display(), "checking the local recipient map is slow; it goes on alone");
                check.detach();
            }
        }
        Arc::clone(&self.lock().table)
    }

    /// Whether this caller should look at the file: it is time, and no one else is.
    fn check_due(&self) -> bool {
        let mut loaded = self.lock();
        if loaded.checked.elapsed() < CHECK_EVERY || self.checking.swap(true, Ordering::AcqRel) {
            return false;
        }
        loaded.checked = Instant::now();
        true
    }

    /// Looks at the file and swaps in its new table if it changed; blocking.
    fn check(&self) {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| stamp_of(&m));
        let previous = self.lock().stamp;
        if stamp != previous {
            let path = self.path.display();
            match (stamp, load(&self.path)) {
                (Some(_), Ok((stamp, table))) => {
                    tracing::info!(%path, keys = table.keys.len(), "reloaded the local recipient map");
                    let mut loaded = self.lock();
                    loaded.table = Arc::new(table);
                    loaded.stamp = Some(stamp);
                }
                (_, Err(error)) => {
                    tracing::warn!("{error}; the map read before stays in use");
                    self.lock().stamp = stamp;
                }
                (None, Ok(_)) => self.lock().stamp = None,
            }
        }
        self.checking.store(false, Ordering::Release);
    }
}

fn stamp_of(metadata: &std::fs::Metadata) -> Stamp {
    Stamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode: metadata.ino(),
    }
}

/// Reads and parses the file, with the stamp of what was read.
fn load(path: &Path) -> Result<(Stamp, Table), RecipientMapError> {
    let read = |source| RecipientMapError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let stamp = stamp_of(&file.metadata().map_err(read)?);
    let text = std::io::read_to_string(file).map_err(read)?;
    let table = Table::parse(&text).map_err(|(line, key)| RecipientMapError::Line {
        path: path.to_owned(),
        line,
        key,
    })?;
    Ok((stamp, table))
}

impl Table {
    /// The keys of `text`; a bad key as its line number and text.
    fn parse(text: &str) -> Result<Table, (usize, String)> {
        let mut keys = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.starts_with([' ', '\t']) || line.trim_start().starts_with('#') {
                continue;
            }
            let Some(key) = line.split_whitespace().next() else {
                continue;
            };
            let valid = match key.rsplit_once('@') {
                Some((_, "")) => false,
                Some(("", domain)) => domain.parse::<Address>().is_ok(),
                _ => key.parse::<Address>().is_ok(),
            };
            if !valid {
                return Err((index + 1, key.to_owned()));
            }
            keys.insert(key.to_lowercase(), key.to_owned());
        }
        Ok(Table { keys })
    }

    /// The local part to deliver `recipient` to if the map knows it: the spelling of its
    /// `user@domain` or `user` key, or its own under an `@domain` key.
    pub(crate) fn local_part<'a>(&'a self, recipient: &'a Address) -> Option<&'a str> {
        let local = recipient.local_part().to_lowercase();
        let domain = recipient.domain().to_lowercase();
        let spelled = |key: &'a String| key.rsplit_once('@').map_or(key.as_str(), |(l, _)| l);
        self.keys
            .get(&format!("{local}@{domain}"))
            .or_else(|| self.keys.get(&local))
            .map(spelled)
            .or_else(|| {
                self.keys
                    .contains_key(&format!("@{domain}"))
                    .then(|| recipient.local_part())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Address {
        text.parse().unwrap()
    }

    #[test]
    fn keys_are_users_addresses_and_domains_compared_without_case() {
        let table = Table::parse(
            "# comment\n\nJane\n  continued value\nBob@Example.org  bob-mailbox\n@lists.example\n",
        )
        .unwrap();
        let found = |text: &str| {
            let recipient = address(text);
            table.local_part(&recipient).map(str::to_owned)
        };
        assert_eq!(found("jane@localhost").as_deref(), Some("Jane"));
        assert_eq!(found("JANE@example.org").as_deref(), Some("Jane"));
        assert_eq!(found("bob@EXAMPLE.ORG").as_deref(), Some("Bob"));
        assert_eq!(
            found("bob@localhost"),
            None,
            "bob exists in example.org only"
        );
        assert_eq!(found("Anyone@Lists.example").as_deref(), Some("Anyone"));
        assert_eq!(found("continued@localhost"), None);
        assert_eq!(found("comment@localhost"), None);
    }

    #[test]
    fn a_key_that_is_no_recipient_names_its_line() {
        assert_eq!(
            Table::parse("jane\nbob@\n").unwrap_err(),
            (2, "bob@".to_owned())
        );
        assert!(Table::parse("a<b\n").is_err());
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_old_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map");
        std::fs::write(&path, "jane\n").unwrap();
        let map = RecipientMap::open(&path).unwrap();
        let jane = address("jane@localhost");
        let bob = address("bob@localhost");

        std::fs::write(&path, "jane\nbob\n").unwrap();
        map.check();
        assert!(map.lock().table.local_part(&bob).is_some());

        std::fs::write(&path, "jane\nbob@\n").unwrap();
        map.check();
        let table = Arc::clone(&map.lock().table);
        assert!(
            table.local_part(&bob).is_some(),
            "the broken file is not used"
        );

        std::fs::remove_file(&path).unwrap();
        map.check();
        assert!(map.lock().table.local_part(&jane).is_some());
        assert!(!map.checking.load(Ordering::Acquire));
    }
}
