//! A map file in a temporary directory, and the dialogue every test runs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mq_core::testkit::{self, Transcript};
use mq_plugin_aliases as _;

/// A map file that lives as long as the value.
pub(crate) struct MapFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl MapFile {
    pub(crate) fn new(text: &str) -> MapFile {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("virtual");
        std::fs::write(&path, text).expect("the map file is written");
        MapFile { _dir: dir, path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The `[plugins.aliases]` section for this file, with more keys after `map`.
    pub(crate) fn section(&self, rest: &str) -> String {
        format!("map = '{}'\n{rest}", self.path.display())
    }

    /// Writes `text` and dates the file a minute after its last version, so that the change
    /// shows in its stamp on any file system, whatever the clock's granularity.
    pub(crate) fn rewrite(&self, text: &str) {
        let before = std::fs::metadata(&self.path).and_then(|m| m.modified());
        std::fs::write(&self.path, text).expect("the map file is rewritten");
        let later = before.expect("the file system keeps mtimes") + Duration::from_mins(1);
        let file = File::options().write(true).open(&self.path).unwrap();
        file.set_modified(later).expect("the mtime can be set");
    }
}

/// EHLO, MAIL FROM, one RCPT TO per recipient, DATA and QUIT through `session`.
pub(crate) fn dialogue(session: testkit::Session, recipients: &[&str]) -> Transcript {
    let mut session = session
        .local_domain("example.org")
        .ehlo("client.example")
        .mail_from("sender@example.net");
    for recipient in recipients {
        session = session.rcpt_to(recipient);
    }
    session.data("Subject: hi\r\n\r\nbody\r\n").quit().run()
}

/// The dialogue with the registered plugin built from `section`.
pub(crate) fn run(section: &str, recipients: &[&str]) -> Transcript {
    dialogue(
        testkit::session().registered("aliases", section),
        recipients,
    )
}

/// The recipients the session queued the message for.
pub(crate) fn queued(transcript: &Transcript) -> Vec<String> {
    transcript
        .queued()
        .iter()
        .map(|q| q.recipient.to_string())
        .collect()
}
