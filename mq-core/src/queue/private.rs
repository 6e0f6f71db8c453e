//! The queue holds message bodies, so only its owner may read it: directories are created
//! with mode 0700 and files with 0600 (as the Maildirs are), and older ones that others could
//! read are closed to them when the queue opens.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::error::QueueError;

/// Sets `path`'s mode to `mode` if its group or others have any access, with a log line.
pub(crate) fn restrict(path: &Path, mode: u32) -> Result<(), QueueError> {
    let current = fs::metadata(path)
        .map_err(|e| QueueError::io(format!("read the mode of {}", path.display()), e))?
        .permissions()
        .mode();
    let others = current & 0o077;
    if others == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| QueueError::io(format!("restrict the mode of {}", path.display()), e))?;
    tracing::info!(
        path = %path.display(),
        was = format_args!("{:o}", current & 0o7777),
        now = format_args!("{mode:o}"),
        "queue file was readable by others; restricted to its owner"
    );
    Ok(())
}
