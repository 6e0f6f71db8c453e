//! Replaying a recorded session (`[smtp] record = "DIR"`) through mq's session with the plugins
//! under test: a production surprise becomes a regression test with one file.

use std::path::Path;

use super::duplex::ClientEnd;
use super::server::Connection;
use super::transcript::{Live, Transcript};
use super::{Harness, Server};
use crate::smtp::{Recording, RecordingError, Side};

/// A recorded session to run again: add the plugins under test, then [`run`](Replay::run).
#[derive(Debug)]
pub struct Replay {
    harness: Harness,
    recording: Recording,
}

/// Reads the session recorded in `path` (a file of `[smtp] record`'s directory) for running
/// again. The client sends what it sent then, chunk by chunk, each once the session waits for
/// input; the transcript shows the dialogue and [`Transcript::differences`] where mq's replies
/// now differ from the recorded ones.
///
/// The session runs as the recorded one did: from the same client address, to a server of the
/// recorded name and local domains, the client in the relay networks if it was then.
///
/// # Errors
///
/// The file cannot be read or is no recorded session.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("one.session");
/// std::fs::write(&path, "mq-session 1\nclient 192.0.2.1:40000\nlocal 127.0.0.1:25\n\
///     hostname mx.example\nrelay_network no\ndomain localhost\n\
///     S 220 mx.example ESMTP mq\\r\\n\nC HELO client.example\\r\\n\nS 250 mx.example\\r\\n\n\
///     C QUIT\\r\\n\nS 221 2.0.0 Bye\\r\\n\n")?;
/// let transcript = mq_core::testkit::replay(&path)?.run();
/// assert_eq!(transcript.lines()[..2], ["C: HELO client.example", "S: 250 mx.example"]);
/// assert!(transcript.differences().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn replay(path: impl AsRef<Path>) -> Result<Replay, RecordingError> {
    Ok(Replay {
        harness: Harness::default(),
        recording: Recording::read(path.as_ref())?,
    })
}

impl Replay {
    /// The plugins to replay the session with: built as [`testkit::server()`](super::server)
    /// builds them.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("one.session");
    /// # std::fs::write(&path, "mq-session 1\nS 220 localhost ESMTP mq\\r\\n\n")?;
    /// use mq_plugin_api::{Connect, Context, Control, Plugin, hooks};
    ///
    /// struct Seen;
    ///
    /// #[hooks]
    /// impl Plugin for Seen {
    ///     async fn smtp_in_connect(&self, _ctx: &mut Context, _connect: &mut Connect) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let transcript = mq_core::testkit::replay(&path)?
    ///     .plugins(|server| server.plugin_named("seen", Seen))
    ///     .run();
    /// assert_eq!(transcript.lines()[1], "   smtp_in_connect  seen → Continue");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plugins(mut self, add: impl FnOnce(Harness) -> Harness) -> Replay {
        self.harness = add(self.harness);
        self
    }

    /// The recording being replayed.
    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    /// Runs the session and returns its transcript, with the differences from the recorded
    /// replies.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    pub fn run(self) -> Transcript {
        let Replay { harness, recording } = self;
        let mut harness = harness;
        harness.hostname = Some(recording.hostname.clone());
        let server: Server = harness.start();
        let connection = Connection {
            client: recording.client,
            local: recording.local,
            relay_network: recording.relay_network,
            local_domains: recording.domains.clone(),
            starttls: recording.starttls,
            recorded: true,
        };
        let mut differences = Vec::new();
        let found = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let into = std::rc::Rc::clone(&found);
        let mut transcript = server.run(&connection, move |client, live| async move {
            *into.borrow_mut() = play(client, live, recording).await;
        });
        differences.append(&mut found.borrow_mut());
        for line in differences {
            transcript.differ(line);
        }
        transcript
    }
}

/// Sends the client's chunks in order, each once the session waits for input, and returns
/// where the replies differ from the recorded ones.
async fn play(client: ClientEnd, live: Live, recording: Recording) -> Vec<String> {
    let mut differences = Vec::new();
    let mut recorded: Vec<u8> = Vec::new();
    let mut answer = client.answer().await;
    let mut last_reply = String::new();
    let mut chunks = recording.chunks.into_iter().peekable();
    // The replies before the client's first chunk: the greeting.
    while let Some((Side::Server, bytes)) = chunks.peek() {
        recorded.extend_from_slice(bytes);
        chunks.next();
    }
    compare(&recorded, &answer.bytes, &mut differences);
    remember_last(&answer.bytes, &mut last_reply);
    while let Some((side, bytes)) = chunks.next() {
        if side == Side::Server {
            continue;
        }
        if answer.closed {
            live.note("(connection closed; the rest of the recording not sent)");
            break;
        }
        show(&live, &bytes, &last_reply);
        client.send(&bytes);
        answer = client.answer().await;
        recorded.clear();
        while let Some((Side::Server, bytes)) = chunks.peek() {
            recorded.extend_from_slice(bytes);
            chunks.next();
        }
        compare(&recorded, &answer.bytes, &mut differences);
        remember_last(&answer.bytes, &mut last_reply);
    }
    if !answer.closed {
        client.close();
        while !client.answer().await.closed {}
    }
    differences
}

/// The client's chunk in the transcript: its lines, a message as its size, and what answers a
/// `334` prompt as `(credentials)`.
fn show(live: &Live, bytes: &[u8], last_reply: &str) {
    if last_reply.starts_with("354") {
        return live.client(format!("({} bytes of message)", bytes.len()));
    }
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\r', '\n']);
        let words: Vec<&str> = line.split(' ').collect();
        if last_reply.starts_with("334") {
            live.client("(credentials)");
        } else if words[0].eq_ignore_ascii_case("AUTH") && words.len() > 2 {
            live.client(format!("AUTH {} (credentials)", words[1]));
        } else {
            live.client(line);
        }
    }
}

fn remember_last(bytes: &[u8], last: &mut String) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(line) = text.lines().rfind(|l| !l.is_empty()) {
        line.clone_into(last);
    }
}

/// Notes where `now` differs from `recorded`, reply line by reply line. Queue ids differ by
/// nature: `queued as` and what follows it is not compared.
fn compare(recorded: &[u8], now: &[u8], differences: &mut Vec<String>) {
    let lines = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .lines()
            .map(|line| match line.find("queued as ") {
                Some(at) => format!("{}queued as (id)", &line[..at]),
                None => line.to_owned(),
            })
            .collect()
    };
    let (recorded, now) = (lines(recorded), lines(now));
    if recorded != now {
        differences.push(format!("recorded: {}", recorded.join(" | ")));
        differences.push(format!("now:      {}", now.join(" | ")));
    }
}
