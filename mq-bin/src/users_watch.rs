//! `[smtp.auth] users_file`, watched while `mq serve` runs: a change to the file (its time,
//! size or inode, as an editor's rename gives) reloads the configuration as SIGHUP does, so
//! that added, changed and removed users apply to connections accepted from then on.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
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

/// Watches `path` until `stop` is set, reloading through `reloader` at each change.
pub(crate) fn watch(path: &Path, reloader: &Reloader<'_>, stop: &AtomicBool) {
    let mut last = stamp(path);
    loop {
        let mut waited = Duration::ZERO;
        while waited < EVERY {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(STEP);
            waited += STEP;
        }
        let now = stamp(path);
        if now != last {
            last = now;
            tracing::info!(path = %path.display(), "[smtp.auth] users_file changed: reloading");
            // Logged either way; a failed reload (a bad line) keeps the users in force.
            let _ = reloader.reload_and_log();
        }
    }
}
