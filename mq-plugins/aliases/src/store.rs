//! The map file and the one parsed map every core reads, swapped whole when the file changes.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use crate::map::{AliasMap, MapError};

/// The map a plugin's instances share across cores, and what the file looked like when it was
/// read.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    case_sensitive: bool,
    /// The map in use. Readers clone the `Arc` and let go of the lock at once; a reload swaps it.
    map: RwLock<Arc<AliasMap>>,
    /// Modification time and size the file had just before its last read.
    stamp: Mutex<Option<Stamp>>,
    /// Set while a core checks the file, so that the cores do not all read it at once.
    checking: AtomicBool,
}

/// What identifies a version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Stamp {
        Stamp {
            modified: metadata.modified().ok(),
            len: metadata.len(),
        }
    }
}

/// What a check of the file found.
#[derive(Debug)]
pub(crate) enum Refresh {
    /// The file has the stamp it had when last read.
    Unchanged,
    /// The file changed and its new map, of this many patterns, is in use.
    Reloaded(usize),
    /// The file changed but could not be read or parsed; the map in use stays.
    Failed(Error),
}

/// Why the plugin cannot start, or a reload kept the map it had: a bad section, or a map file
/// that cannot be read or parsed.
///
/// # Examples
///
/// ```
/// use mq_plugin_aliases::{Aliases, AliasesConfig};
///
/// let error = Aliases::open(&AliasesConfig::new("/nonexistent/virtual")).unwrap_err();
/// assert!(error.to_string().starts_with("cannot read map /nonexistent/virtual: "), "{error}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The section's keys are wrong.
    Config(String),
    /// Reading the file failed.
    Read {
        /// The map file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A line of the file is not an entry.
    Parse {
        /// The map file.
        path: PathBuf,
        /// The line and what is wrong with it.
        error: MapError,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message) => f.write_str(message),
            Error::Read { path, error } => {
                write!(f, "cannot read map {}: {error}", path.display())
            }
            Error::Parse { path, error } => write!(f, "map {} {error}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(_) => None,
            Error::Read { error, .. } => Some(error),
            Error::Parse { error, .. } => Some(error),
        }
    }
}

impl Store {
    /// Reads and parses the file at `path`. Blocking: for start-up, or inside `unblock`.
    pub(crate) fn open(path: &Path, case_sensitive: bool) -> Result<Store, Error> {
        let (stamp, map) = read(path, case_sensitive)?;
        Ok(Store {
            path: path.to_owned(),
            case_sensitive,
            map: RwLock::new(Arc::new(map)),
            stamp: Mutex::new(Some(stamp)),
            checking: AtomicBool::new(false),
        })
    }

    /// A store with an empty map and no file: the plugin configured without `map`.
    pub(crate) fn empty(case_sensitive: bool) -> Store {
        Store {
            path: PathBuf::new(),
            case_sensitive,
            map: RwLock::new(Arc::new(
                AliasMap::parse("", case_sensitive).unwrap_or_default(),
            )),
            stamp: Mutex::new(None),
            checking: AtomicBool::new(false),
        }
    }

    /// The map in use now.
    pub(crate) fn map(&self) -> Arc<AliasMap> {
        Arc::clone(&self.map.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The map file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The right to check the file, unless another core is checking it now.
    pub(crate) fn begin_check(store: &Arc<Store>) -> Option<Check> {
        let free =
            store
                .checking
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed);
        free.is_ok().then(|| Check(Arc::clone(store)))
    }

    fn stamp(&self) -> std::sync::MutexGuard<'_, Option<Stamp>> {
        self.stamp.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One core's check of the file; dropping it, run or not, lets the next check begin.
#[derive(Debug)]
pub(crate) struct Check(Arc<Store>);

impl Check {
    /// Stats the file and, if its time or size changed, reads it and swaps the map in.
    /// Blocking: run it in `Context::unblock`.
    pub(crate) fn run(self) -> Refresh {
        let store = &self.0;
        let stamp = match fs::metadata(&store.path) {
            Ok(metadata) => Stamp::of(&metadata),
            Err(error) => return Refresh::Failed(store.read_error(error)),
        };
        if *store.stamp() == Some(stamp) {
            return Refresh::Unchanged;
        }
        match read(&store.path, store.case_sensitive) {
            Ok((stamp, map)) => {
                let patterns = map.len();
                *store.map.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(map);
                *store.stamp() = Some(stamp);
                Refresh::Reloaded(patterns)
            }
            Err(error) => {
                // A file that does not parse stays broken until it is written again: remember
                // its stamp so that it is reported once, not at every check.
                if matches!(error, Error::Parse { .. }) {
                    *store.stamp() = Some(stamp);
                }
                Refresh::Failed(error)
            }
        }
    }
}

impl Drop for Check {
    fn drop(&mut self) {
        self.0.checking.store(false, Ordering::Release);
    }
}

impl Store {
    fn read_error(&self, error: io::Error) -> Error {
        let path = self.path.clone();
        Error::Read { path, error }
    }
}

/// The file's stamp, taken before reading so that a write during the read shows up as a
/// change at the next check, and its map.
fn read(path: &Path, case_sensitive: bool) -> Result<(Stamp, AliasMap), Error> {
    let read_error = |error| Error::Read {
        path: path.to_owned(),
        error,
    };
    let stamp = Stamp::of(&fs::metadata(path).map_err(read_error)?);
    let bytes = fs::read(path).map_err(read_error)?;
    let map = AliasMap::from_bytes(&bytes, case_sensitive).map_err(|error| Error::Parse {
        path: path.to_owned(),
        error,
    })?;
    Ok((stamp, map))
}
