//! `[smtp.auth] users_file`, watched while `mq serve` runs: a change to the file (its time,
//! size or inode, as an editor's rename gives) reloads the configuration as SIGHUP does, so
//! that added, changed and removed users apply to connections accepted from then on.
//!
//! The file watched is the one the configuration in force names: a reload that names another
//! file (or the first one, or none) moves the watch to it, without reloading again for the
//! move.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::reload::Reloader;

/// How often the file is looked at.
const EVERY: Duration = Duration::from_secs(1);
/// How often `stop` is looked at meanwhile.
const STEP: Duration = Duration::from_millis(100);

/// What tells a changed file: modification time, size, inode; `None` when it cannot be read.
type Stamp = Option<(Option<SystemTime>, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok(), metadata.len(), metadata.ino()))
}

/// The file watched and how it looked when last seen.
struct Watched {
    path: Option<PathBuf>,
    last: Stamp,
}

impl Watched {
    fn new(path: Option<PathBuf>) -> Watched {
        let last = path.as_deref().and_then(stamp);
        Watched { path, last }
    }

    /// Whether the file changed since last seen; remembers how it looks now.
    fn changed(&mut self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let now = stamp(path);
        let changed = now != self.last;
        self.last = now;
        changed
    }
}

/// Watches the users file of the configuration in force until `stop` is set, reloading
/// through `reloader` at each change.
pub(crate) fn watch(reloader: &Reloader<'_>, stop: &AtomicBool) {
    let mut watched = Watched::new(reloader.users_file());
    loop {
        let mut waited = Duration::ZERO;
        while waited < EVERY {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(STEP);
            waited += STEP;
        }
        // A reload since the last look (SIGHUP, `mq reload`, this watch's own) may name
        // another file: that one is watched from how it is now, which the reload has read.
        let in_force = reloader.users_file();
        if in_force != watched.path {
            if let Some(path) = &in_force {
                tracing::info!(path = %path.display(), "watching [smtp.auth] users_file");
            }
            watched = Watched::new(in_force);
            continue;
        }
        if watched.changed() {
            if let Some(path) = &watched.path {
                tracing::info!(path = %path.display(), "[smtp.auth] users_file changed: reloading");
            }
            // Logged either way; a failed reload (a bad line) keeps the users in force.
            let _ = reloader.reload_and_log();
        }
    }
}
