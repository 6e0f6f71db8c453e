//! Recorded sessions (`[smtp] record = "DIR"`): each session's client facts, every byte the
//! client sent and every reply, one file per session, for `testkit::replay` and `mq replay`.
//!
//! The stream under the session is wrapped, so the recording sees what the session read and
//! wrote, after TLS: commands, credentials and message content in the clear. The file is
//! written when the session ends, mode 0600.
//!
//! # Format
//!
//! Text, one item per line: a header of `key value` lines (`mq-session 1`, `client`, `local`,
//! `hostname`, `relay_network`, `starttls`, `domain` once per local domain), then `C ` lines (bytes the
//! client sent, as read) and `S ` lines (bytes the server wrote, as flushed) in order. Bytes
//! are escaped: `\\`, `\r`, `\n`, `\t`, and `\xNN` for anything else outside printable ASCII.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::io::{AsyncRead, AsyncWrite};

use super::conn::SessionStream;

/// Who sent a recorded chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client.
    Client,
    /// The server.
    Server,
}

/// A recorded session: the client facts and the bytes each side sent, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recording {
    /// The client's address.
    pub client: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// The server's name in its replies.
    pub hostname: String,
    /// Whether the client was in the relay networks.
    pub relay_network: bool,
    /// Whether the server offered STARTTLS.
    pub starttls: bool,
    /// The server's local domains.
    pub domains: Vec<String>,
    /// What each side sent, in order; consecutive chunks of one side are one.
    pub chunks: Vec<(Side, Vec<u8>)>,
}

/// Why a recording cannot be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecordingError {
    /// The file cannot be read.
    Io(PathBuf, io::Error),
    /// A line is not what the format says.
    Format {
        /// Which line, from 1.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

impl std::fmt::Display for RecordingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordingError::Io(path, error) => write!(f, "cannot read {}: {error}", path.display()),
            RecordingError::Format { line, problem } => {
                write!(f, "not a recorded session: line {line}: {problem}")
            }
        }
    }
}

impl std::error::Error for RecordingError {}

impl Recording {
    fn new(client: SocketAddr, local: SocketAddr, hostname: &str) -> Recording {
        Recording {
            client,
            local,
            hostname: hostname.to_owned(),
            relay_network: false,
            starttls: false,
            domains: Vec::new(),
            chunks: Vec::new(),
        }
    }

    fn push(&mut self, side: Side, bytes: &[u8]) {
        match self.chunks.last_mut() {
            Some((last, chunk)) if *last == side => chunk.extend_from_slice(bytes),
            _ => self.chunks.push((side, bytes.to_vec())),
        }
    }

    /// Reads a recording from `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::smtp::{Recording, Side};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("one.session");
    /// std::fs::write(&path, "mq-session 1\nclient 192.0.2.1:40000\nlocal 127.0.0.1:25\n\
    ///     hostname mx.example\nrelay_network no\ndomain localhost\n\
    ///     S 220 mx.example ESMTP mq\\r\\n\nC QUIT\\r\\n\nS 221 2.0.0 Bye\\r\\n\n")?;
    /// let recording = Recording::read(&path)?;
    /// assert_eq!(recording.chunks[1], (Side::Client, b"QUIT\r\n".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(path: &Path) -> Result<Recording, RecordingError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| RecordingError::Io(path.to_owned(), error))?;
        Recording::parse(&text)
    }

    /// Reads a recording from its text.
    pub fn parse(text: &str) -> Result<Recording, RecordingError> {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut recording = Recording::new(unspecified, unspecified, "localhost");
        let mut seen_magic = false;
        for (index, line) in text.lines().enumerate() {
            let bad = |problem: &str| RecordingError::Format {
                line: index + 1,
                problem: problem.to_owned(),
            };
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            if !seen_magic {
                if key != "mq-session" || value != "1" {
                    return Err(bad("the first line is not `mq-session 1`"));
                }
                seen_magic = true;
                continue;
            }
            let address = |value: &str| value.parse().map_err(|_| bad("not an address"));
            match key {
                "client" => recording.client = address(value)?,
                "local" => recording.local = address(value)?,
                "hostname" => value.clone_into(&mut recording.hostname),
                "relay_network" => recording.relay_network = value == "yes",
                "starttls" => recording.starttls = value == "yes",
                "domain" => recording.domains.push(value.to_owned()),
                "C" | "S" => {
                    let side = if key == "C" {
                        Side::Client
                    } else {
                        Side::Server
                    };
                    let bytes = unescape(value).ok_or_else(|| bad("a bad escape"))?;
                    recording.push(side, &bytes);
                }
                _ => return Err(bad("an unknown key")),
            }
        }
        if !seen_magic {
            return Err(RecordingError::Format {
                line: 1,
                problem: "empty".to_owned(),
            });
        }
        Ok(recording)
    }

    /// The recording as its file holds it.
    pub fn to_text(&self) -> String {
        let mut text = String::from("mq-session 1\n");
        let _ = writeln!(text, "client {}", self.client);
        let _ = writeln!(text, "local {}", self.local);
        let _ = writeln!(text, "hostname {}", self.hostname);
        let relay = if self.relay_network { "yes" } else { "no" };
        let _ = writeln!(text, "relay_network {relay}");
        let starttls = if self.starttls { "yes" } else { "no" };
        let _ = writeln!(text, "starttls {starttls}");
        for domain in &self.domains {
            let _ = writeln!(text, "domain {domain}");
        }
        for (side, bytes) in &self.chunks {
            let key = if *side == Side::Client { 'C' } else { 'S' };
            // One line of the file per line sent, so that a recording reads like the dialogue.
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                let _ = writeln!(text, "{key} {}", escape(line));
            }
        }
        text
    }
}

fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 4);
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out
}

fn unescape(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        match bytes.next()? {
            b'\\' => out.push(b'\\'),
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'x' => {
                let high = char::from(bytes.next()?).to_digit(16)?;
                let low = char::from(bytes.next()?).to_digit(16)?;
                out.push((high * 16 + low) as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A session's stream that records what passes through it, and writes the recording into its
/// directory when the session drops it.
pub(crate) struct Recorder<S> {
    inner: S,
    recording: Recording,
    dir: PathBuf,
}

impl<S> Recorder<S> {
    pub(crate) fn new(
        inner: S,
        dir: PathBuf,
        client: SocketAddr,
        local: SocketAddr,
        config: &super::SmtpConfig,
        relay_network: bool,
        starttls: bool,
    ) -> Recorder<S> {
        let mut recording = Recording::new(client, local, &config.hostname);
        recording.relay_network = relay_network;
        recording.starttls = starttls;
        recording.domains.clone_from(&config.domains);
        Recorder {
            inner,
            recording,
            dir,
        }
    }

    fn save(&self) -> io::Result<PathBuf> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{}.{:06}-{}-{number}.session",
            since.as_secs(),
            since.subsec_micros(),
            std::process::id()
        );
        let path = self.dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        io::Write::write_all(&mut file, self.recording.to_text().as_bytes())?;
        Ok(path)
    }
}

impl<S> Drop for Recorder<S> {
    fn drop(&mut self) {
        match self.save() {
            Ok(path) => tracing::debug!(path = %path.display(), "session recorded"),
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot record a session");
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            this.recording.push(Side::Client, &buf[..n]);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            this.recording.push(Side::Server, &buf[..n]);
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<S: SessionStream> SessionStream for Recorder<S> {
    async fn start_tls(
        &mut self,
        acceptor: &futures_rustls::TlsAcceptor,
        timeout: Duration,
    ) -> io::Result<(String, String)> {
        self.inner.start_tls(acceptor, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_reads_back_as_written() {
        let mut recording = Recording::new(
            SocketAddr::from(([192, 0, 2, 1], 40_000)),
            SocketAddr::from(([127, 0, 0, 1], 25)),
            "mx.example",
        );
        recording.domains = vec!["localhost".into(), "example.org".into()];
        recording.starttls = true;
        recording.push(Side::Server, b"220 mx.example ESMTP mq\r\n");
        recording.push(Side::Client, b"EHLO a\r\nMAIL FROM:<>\r\n");
        recording.push(Side::Client, b"\\ \x00\xff\tx\r\n");
        let text = recording.to_text();
        assert_eq!(Recording::parse(&text).unwrap(), recording);
        assert!(text.contains("C \\\\ \\x00\\xff\\tx\\r\\n\n"), "{text}");
    }

    #[test]
    fn a_file_that_is_no_recording_is_refused() {
        assert!(Recording::parse("").is_err());
        assert!(Recording::parse("hello\n").is_err());
        assert!(Recording::parse("mq-session 1\nC \\q\n").is_err());
        assert!(Recording::parse("mq-session 1\nclient nowhere\n").is_err());
    }
}
