//! The maildrop (`[queue] maildrop_dir`): where `mq sendmail` leaves a message when it can
//! neither open the queue nor reach a server, as a user without rights to the queue does, and
//! where `mq serve` picks it up (`pickup`).
//!
//! # The file
//!
//! One message per file: a block of `key: value` lines, each ending in LF, a blank line, then
//! the message as sendmail completed it (CRLF line ends). The keys, in this order:
//!
//! ```text
//! mq-maildrop: 1              the format, and its version
//! uid: 1000                   the submitting user's id
//! sender: cron@example.org    the envelope sender; empty for the null sender
//! full-name: Cron Daemon      sendmail's -F, if given (one line)
//! recipient: bob@example.org  one line per envelope recipient, at least one
//! ```
//!
//! A file is written as `.tmp-<random>`, synced, renamed to `<unix-nanos>.<pid>.<random>`, and
//! the rename synced: a name without the leading dot is a whole file. The random part makes
//! the names unguessable, which matters because the files are readable by mq's user only as
//! "others" (0644) and the directory's default mode (1733) keeps others from listing them.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use mq_plugin_api::Address;

/// The first line of every maildrop file.
const FORMAT: &str = "mq-maildrop: 1";
/// How a file being written begins its name; pickup passes over it.
pub(crate) const TEMPORARY: &str = ".tmp-";
/// The subdirectory malformed and refused files are moved to.
pub(crate) const CORRUPT: &str = "corrupt";
/// The most a file's key lines may take, beside the message: room for thousands of recipients.
pub(crate) const MAX_ENVELOPE: usize = 1 << 20;

/// A message in the maildrop: its envelope, who submitted it, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dropped {
    pub(crate) uid: u32,
    pub(crate) sender: Address,
    pub(crate) full_name: Option<String>,
    pub(crate) recipients: Vec<Address>,
    pub(crate) message: Vec<u8>,
}

/// Why a maildrop file cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Malformed {}

fn malformed(why: impl Into<String>) -> Malformed {
    Malformed(why.into())
}

impl Dropped {
    /// The file's bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut lines = vec![
            FORMAT.to_owned(),
            format!("uid: {}", self.uid),
            format!("sender: {}", self.sender.as_str()),
        ];
        if let Some(name) = &self.full_name {
            // One line: a name is never worth a broken file.
            lines.push(format!("full-name: {}", name.replace(['\r', '\n'], " ")));
        }
        for recipient in &self.recipients {
            lines.push(format!("recipient: {}", recipient.as_str()));
        }
        let mut bytes = (lines.join("\n") + "\n\n").into_bytes();
        bytes.extend_from_slice(&self.message);
        bytes
    }

    /// Reads a file's bytes.
    ///
    /// # Errors
    ///
    /// When they are not a maildrop file: no format line, an unknown key, a bad address, no
    /// recipient, no blank line before the message.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Dropped, Malformed> {
        let end = bytes
            .windows(2)
            .position(|pair| pair == b"\n\n")
            .ok_or_else(|| malformed("no blank line ends the envelope"))?;
        let head = std::str::from_utf8(&bytes[..end])
            .map_err(|_| malformed("the envelope is not UTF-8"))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(FORMAT) {
            return Err(malformed(format!("the first line is not {FORMAT:?}")));
        }
        let mut uid = None;
        let mut sender = None;
        let mut dropped = Dropped {
            uid: 0,
            sender: Address::null(),
            full_name: None,
            recipients: Vec::new(),
            message: bytes[end + 2..].to_vec(),
        };
        for line in lines {
            let (key, value) = line
                .split_once(": ")
                .or_else(|| line.strip_suffix(':').map(|key| (key, "")))
                .ok_or_else(|| malformed(format!("not key: value: {line:?}")))?;
            match key {
                "uid" => uid = Some(value.parse().map_err(|_| malformed("uid: not a number"))?),
                "sender" => sender = Some(address(value)?),
                "full-name" => dropped.full_name = Some(value.to_owned()),
                "recipient" if !value.is_empty() => dropped.recipients.push(address(value)?),
                _ => return Err(malformed(format!("unknown line {line:?}"))),
            }
        }
        dropped.uid = uid.ok_or_else(|| malformed("no uid"))?;
        dropped.sender = sender.ok_or_else(|| malformed("no sender"))?;
        if dropped.recipients.is_empty() {
            return Err(malformed("no recipient"));
        }
        Ok(dropped)
    }

    /// Writes the message into the maildrop `dir` and returns when the file is on disk under
    /// its final name, which it returns.
    ///
    /// # Errors
    ///
    /// When the file cannot be written, synced or renamed.
    pub(crate) fn write_to(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let random = random_hex()?;
        let temporary = dir.join(format!("{TEMPORARY}{random}"));
        let cannot = || format!("cannot write to the maildrop {}", dir.display());
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            // mq's user reads it as one of the others; see the module's docs.
            .mode(0o644)
            .open(&temporary)
            .with_context(cannot)?;
        let written = file
            .write_all(&self.to_bytes())
            .and_then(|()| file.sync_all());
        let name = format!("{}.{}.{random}", unix_nanos(), std::process::id());
        let done = dir.join(name);
        if let Err(error) = written.and_then(|()| std::fs::rename(&temporary, &done)) {
            let _ = std::fs::remove_file(&temporary);
            return Err(error).with_context(cannot);
        }
        sync_rename(dir, &file).with_context(cannot)?;
        Ok(done)
    }
}

/// `value` as an envelope address.
fn address(value: &str) -> Result<Address, Malformed> {
    value
        .parse()
        .map_err(|error| malformed(format!("bad address {value:?}: {error}")))
}

/// Makes a rename in `dir` durable: syncs the directory, or, where this user may not open it
/// (a 1733 directory is not readable by others), the whole file system `file` is on.
fn sync_rename(dir: &Path, file: &File) -> std::io::Result<()> {
    match File::open(dir) {
        Ok(dir) => dir.sync_all(),
        Err(error) if error.kind() == std::io::ErrorKind::PermissionDenied => {
            rustix::fs::syncfs(file).map_err(std::io::Error::from)
        }
        Err(error) => Err(error),
    }
}

/// Sixteen hex digits from the kernel's random source.
fn random_hex() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 8];
    let mut filled = 0;
    while filled < bytes.len() {
        filled +=
            rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty())
                .context("cannot read random bytes")?;
    }
    Ok(format!("{:016x}", u64::from_be_bytes(bytes)))
}

/// Nanoseconds since the epoch, for names that sort in the order of submission.
fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped() -> Dropped {
        Dropped {
            uid: 1000,
            sender: "cron@example.org".parse().unwrap(),
            full_name: Some("Cron\nDaemon".into()),
            recipients: vec!["bob@example.org".parse().unwrap(), "carol".parse().unwrap()],
            message: b"Subject: x\r\n\r\n\r\nbody\r\n".to_vec(),
        }
    }

    #[test]
    fn a_file_reads_back_as_written() {
        let bytes = dropped().to_bytes();
        assert!(bytes.starts_with(
            b"mq-maildrop: 1\nuid: 1000\nsender: cron@example.org\nfull-name: Cron Daemon\n\
              recipient: bob@example.org\nrecipient: carol\n\nSubject: x\r\n"
        ));
        let read = Dropped::parse(&bytes).unwrap();
        assert_eq!(read.full_name.as_deref(), Some("Cron Daemon"));
        assert_eq!(read.message, dropped().message);
        let mut null = dropped();
        null.sender = Address::null();
        null.full_name = None;
        assert_eq!(Dropped::parse(&null.to_bytes()).unwrap(), null);
    }

    #[test]
    fn malformed_files_say_why() {
        for (bytes, why) in [
            (&b"uid: 1\n\nx"[..], "first line"),
            (
                b"mq-maildrop: 1\nuid: 1\nsender: a@b.example\n",
                "no blank line",
            ),
            (
                b"mq-maildrop: 1\nuid: 1\nsender: a@b.example\n\nx",
                "no recipient",
            ),
            (
                b"mq-maildrop: 1\nsender: a@b.example\nrecipient: c@d.example\n\n",
                "no uid",
            ),
            (b"mq-maildrop: 1\nuid: x\n\n", "not a number"),
            (b"mq-maildrop: 1\nuid: 1\nhost: h\n\n", "unknown line"),
            (
                b"mq-maildrop: 1\nuid: 1\nrecipient: a b@c\n\n",
                "bad address",
            ),
        ] {
            let error = Dropped::parse(bytes).unwrap_err().to_string();
            assert!(error.contains(why), "{why}: {error}");
        }
    }

    #[test]
    fn a_written_file_has_its_final_name_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dropped().write_to(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [path.file_name().unwrap()]);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.split('.').count(), 3, "{name}");
        let read = Dropped::parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read.recipients, dropped().recipients);
    }
}
