//! Local delivery: a message for a local domain becomes one file in a Maildir under the data
//! directory, `<data-dir>/mail/<domain>/<local-part>/{tmp,new,cur}`.
//!
//! The file is written to `tmp/`, synced, renamed into `new/`, and `new/` is synced, so a
//! delivery that returned `Ok` survives a crash and a reader never sees a half-written file
//! (the Maildir protocol, <https://cr.yp.to/proto/maildir.html>).

use std::fmt::{self, Write as _};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mq_plugin_api::Address;

/// The Maildirs of all local mailboxes, under one root (`<data-dir>/mail`).
///
/// A recipient's mailbox is `<root>/<domain>/<local-part>`. The domain is in its one spelling
/// (lower case, no trailing dot, IDNA ASCII form: the address was parsed into it), so
/// `B@Example.NET` and `B@example.net` share a mailbox; the local part keeps its case, so mailbox
/// lookup is case-sensitive (`B@example.net` and `b@example.net` are two mailboxes). Routing that
/// wants case-insensitive local parts must fold them before delivery.
///
/// Both parts come from the network: a part that is empty, starts with a dot (`.`, `..`,
/// `.hidden`), or holds a `/` or a control character (NUL included) is refused with [`MaildirError::UnsafeAddress`], so no
/// address can reach outside the root.
///
/// [`deliver`](Maildir::deliver) blocks on the file system; async callers run it on a blocking
/// thread (`smol::unblock`).
///
/// # Examples
///
/// ```
/// use mq_core::delivery::maildir::Maildir;
///
/// let dir = tempfile::tempdir()?;
/// let maildir = Maildir::new(dir.path().join("mail"));
/// let sender = "alice@example.org".parse().unwrap();
/// let recipient = "bob@Example.NET".parse().unwrap();
/// let path = maildir.deliver(&sender, &recipient, b"Subject: hi\r\n\r\nhello\r\n")?;
/// assert!(path.starts_with(dir.path().join("mail/example.net/bob/new")));
/// assert_eq!(
///     std::fs::read(&path)?,
///     b"Return-Path: <alice@example.org>\r\nDelivered-To: bob@example.net\r\n\
///       Subject: hi\r\n\r\nhello\r\n"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Maildir {
    /// `<data-dir>/mail`: every mailbox is two levels below it.
    root: PathBuf,
}

impl Maildir {
    /// The Maildirs under `root`, usually `<data-dir>/mail`. Nothing is created until the first
    /// delivery.
    pub fn new(root: impl Into<PathBuf>) -> Maildir {
        Maildir { root: root.into() }
    }

    /// The root all mailboxes are under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Maildir of `recipient`: `<root>/<domain, lowercased>/<local-part>`, which may not
    /// exist yet.
    ///
    /// # Errors
    ///
    /// [`MaildirError::UnsafeAddress`] when the local part or the domain is not a plain name.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::delivery::maildir::{Maildir, MaildirError};
    ///
    /// let maildir = Maildir::new("/var/lib/mq/mail");
    /// let path = maildir.mailbox_path(&"Bob@Example.NET".parse().unwrap()).unwrap();
    /// assert_eq!(path, std::path::Path::new("/var/lib/mq/mail/example.net/Bob"));
    ///
    /// let err = maildir.mailbox_path(&"../etc@example.net".parse().unwrap()).unwrap_err();
    /// assert!(matches!(err, MaildirError::UnsafeAddress { .. }));
    /// assert!(err.is_permanent());
    /// let hidden = maildir.mailbox_path(&".hidden@example.net".parse().unwrap()).unwrap_err();
    /// assert_eq!(
    ///     hidden.to_string(),
    ///     "unsafe mailbox address \".hidden@example.net\": local part starts with a dot"
    /// );
    /// ```
    pub fn mailbox_path(&self, recipient: &Address) -> Result<PathBuf, MaildirError> {
        let unsafe_address = |reason| MaildirError::UnsafeAddress {
            address: recipient.as_str().to_owned(),
            reason,
        };
        let domain = recipient.domain().to_lowercase();
        check_name(&domain).map_err(|why| unsafe_address(UnsafePart::Domain(why)))?;
        let local = recipient.local_part();
        check_name(local).map_err(|why| unsafe_address(UnsafePart::LocalPart(why)))?;
        Ok(self.root.join(domain).join(local))
    }

    /// Delivers `message` to `recipient`'s Maildir and returns the path of the new file in
    /// `new/`.
    ///
    /// The mailbox directories are created as needed (mode 0700, their parents synced). The
    /// file (mode 0600) holds a `Return-Path: <sender>` line (`<>` for the null sender) and a
    /// `Delivered-To: <recipient>` line, as Postfix's local(8) writes them, then the message
    /// byte for byte; the added lines end as the message's first line does (CRLF unless the
    /// message uses bare LF).
    ///
    /// # Errors
    ///
    /// [`MaildirError::UnsafeAddress`] (permanent: bounce) for an address that is not a plain
    /// name; [`MaildirError::Io`] (temporary: retry later) when creating, writing, syncing or
    /// renaming fails. A failed delivery leaves no file behind in `tmp/` when it can remove it.
    pub fn deliver(
        &self,
        sender: &Address,
        recipient: &Address,
        message: &[u8],
    ) -> Result<PathBuf, MaildirError> {
        let mailbox = self.mailbox_path(recipient)?;
        self.create_mailbox(&mailbox)?;
        let name = unique_name(SystemTime::now());
        let tmp = mailbox.join("tmp").join(&name);
        let new = mailbox.join("new").join(&name);
        let written = write_synced(&tmp, sender, recipient, message)
            .and_then(|()| fs::rename(&tmp, &new).map_err(|source| MaildirError::io(&new, source)));
        if let Err(err) = written {
            // Best effort: the error being returned is the one that matters.
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
        sync_dir(&mailbox.join("new"))?;
        Ok(new)
    }

    /// Creates the root, the domain's directory, the mailbox and its `tmp`, `new` and `cur`,
    /// whichever are missing, then syncs the parent of each one created so the new directory
    /// entries are durable before a message is renamed into them.
    fn create_mailbox(&self, mailbox: &Path) -> Result<(), MaildirError> {
        let mut parents: Vec<&Path> = Vec::new();
        if !self.root.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(|source| MaildirError::io(&self.root, source))?;
            parents.extend(self.root.parent());
        }
        let (tmp, new, cur) = (
            mailbox.join("tmp"),
            mailbox.join("new"),
            mailbox.join("cur"),
        );
        let domain = mailbox.parent().unwrap_or(&self.root);
        for dir in [domain, mailbox, &tmp, &new, &cur] {
            if create_dir(dir)?
                && let Some(parent) = dir.parent()
                && !parents.contains(&parent)
            {
                parents.push(parent);
            }
        }
        parents.into_iter().try_for_each(sync_dir)
    }
}

/// Why a local delivery failed.
///
/// # Examples
///
/// ```
/// use mq_core::delivery::maildir::{Maildir, MaildirError};
///
/// let err = Maildir::new("/m").mailbox_path(&"a/b@example.net".parse().unwrap()).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "unsafe mailbox address \"a/b@example.net\": local part contains a slash"
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MaildirError {
    /// Creating, writing, syncing or renaming a file or directory failed: a full disk, a
    /// permission, a read-only file system. Temporary: the entry is retried.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The local part or the domain is not a plain file name, so it has no mailbox and never
    /// will. Permanent: the entry bounces.
    UnsafeAddress {
        /// The recipient as received.
        address: String,
        /// Which part is unsafe, and why.
        reason: UnsafePart,
    },
}

/// The part of an address [`MaildirError::UnsafeAddress`] refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsafePart {
    /// The local part (before the last `@`).
    LocalPart(&'static str),
    /// The domain (after the last `@`), lowercased.
    Domain(&'static str),
}

impl MaildirError {
    fn io(path: &Path, source: io::Error) -> MaildirError {
        MaildirError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Whether retrying cannot help: `true` for an unsafe address (bounce now), `false` for an
    /// I/O error (defer and retry).
    pub fn is_permanent(&self) -> bool {
        matches!(self, MaildirError::UnsafeAddress { .. })
    }
}

impl fmt::Display for MaildirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaildirError::Io { path, source } => {
                write!(f, "cannot deliver to {}: {source}", path.display())
            }
            // Debug quoting escapes whatever control characters the address holds.
            MaildirError::UnsafeAddress { address, reason } => {
                let (part, why) = match reason {
                    UnsafePart::LocalPart(why) => ("local part", why),
                    UnsafePart::Domain(why) => ("domain", why),
                };
                write!(f, "unsafe mailbox address {address:?}: {part} {why}")
            }
        }
    }
}

impl std::error::Error for MaildirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MaildirError::Io { source, .. } => Some(source),
            MaildirError::UnsafeAddress { .. } => None,
        }
    }
}

/// Refuses a name that is not one plain, visible path component. The SMTP server refuses the
/// same local parts at RCPT; this is the check that holds whatever reaches the queue.
pub(crate) fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name == "." || name == ".." {
        Err("is a relative path")
    } else if name.starts_with('.') {
        Err("starts with a dot")
    } else if name.contains('/') {
        Err("contains a slash")
    } else if name.chars().any(char::is_control) {
        Err("contains a control character")
    } else {
        Ok(())
    }
}

/// Creates one directory (mode 0700); says whether it was created.
fn create_dir(dir: &Path) -> Result<bool, MaildirError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(MaildirError::io(dir, source)),
    }
}

/// Writes the Return-Path and Delivered-To lines and the message to a new file and syncs it.
fn write_synced(
    path: &Path,
    sender: &Address,
    recipient: &Address,
    message: &[u8],
) -> Result<(), MaildirError> {
    let newline = if uses_crlf(message) { "\r\n" } else { "\n" };
    let added = format!(
        "Return-Path: <{}>{newline}Delivered-To: {}{newline}",
        sender.as_str(),
        recipient.as_str()
    );
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| MaildirError::io(path, source))?;
    file.write_all(added.as_bytes())
        .and_then(|()| file.write_all(message))
        .and_then(|()| file.sync_all())
        .map_err(|source| MaildirError::io(path, source))
}

/// Whether the message's first line ends in CRLF; SMTP's CRLF when it has no line at all (as
/// [`mq_plugin_api::Message::parse`] decides).
fn uses_crlf(message: &[u8]) -> bool {
    message
        .iter()
        .position(|&b| b == b'\n')
        .is_none_or(|n| n > 0 && message[n - 1] == b'\r')
}

/// Syncs a directory, making the entries created or renamed in it durable.
fn sync_dir(dir: &Path) -> Result<(), MaildirError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| MaildirError::io(dir, source))
}

/// `<secs>.M<micros>P<pid>Q<counter>.<hostname>`: unique per delivery on this host, as the
/// Maildir spec asks (the counter tells apart deliveries within one microsecond).
fn unique_name(now: SystemTime) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{}.M{}P{}Q{count}.{}",
        since.as_secs(),
        since.subsec_micros(),
        std::process::id(),
        hostname()
    )
}

/// This host's name from `/etc/hostname` (`localhost` without one), read once and escaped for
/// a file name: `/`, `:` and anything but printable ASCII become `\` and three octal digits,
/// as the Maildir spec does for `/` (`\057`) and `:` (`\072`).
fn hostname() -> &'static str {
    static HOSTNAME: OnceLock<String> = OnceLock::new();
    HOSTNAME.get_or_init(|| {
        let name = fs::read_to_string("/etc/hostname").unwrap_or_default();
        let name = match name.trim() {
            "" => "localhost",
            name => name,
        };
        escape_hostname(name)
    })
}

fn escape_hostname(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_graphic() && b != b'/' && b != b':' {
            escaped.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(escaped, "\\{b:03o}");
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_are_escaped_as_the_spec_says() {
        assert_eq!(escape_hostname("mx.example"), "mx.example");
        assert_eq!(escape_hostname("a/b:c"), "a\\057b\\072c");
        assert_eq!(escape_hostname("a b"), "a\\040b");
    }

    #[test]
    fn unique_names_differ_within_one_microsecond() {
        let now = SystemTime::now();
        let (a, b) = (unique_name(now), unique_name(now));
        assert_ne!(a, b);
        assert!(!a.contains('/'));
    }

    #[test]
    fn the_added_line_follows_the_message_line_ending() {
        assert!(uses_crlf(b"A: b\r\n\r\n"));
        assert!(!uses_crlf(b"A: b\n\n"));
        assert!(uses_crlf(b""));
    }
}
