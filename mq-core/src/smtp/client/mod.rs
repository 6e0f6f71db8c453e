//! The outbound SMTP client: one [`Connection`] to a server, reused for several messages.
//!
//! # Layout
//!
//! - `mod`: the settings ([`ClientConfig`], [`Timeouts`], [`TlsPolicy`]) and the [`Connection`].
//! - `open`: greeting, EHLO (HELO when refused), STARTTLS, AUTH PLAIN.
//! - `commands`: the MAIL and RCPT lines, with SIZE, BODY and checked parameters.
//! - `transaction`: MAIL, RCPT, DATA ([`Connection::send`]), the final reply
//!   ([`Connection::finish`]), RSET and QUIT.
//! - `reply`: [`parse_reply`], the pure parser of server replies.
//! - `extensions`: [`Extensions`], what the EHLO reply offers.
//! - `data`: [`dot_stuff`], the message's wire form.
//! - `io`, `tls`, `error`: the stream and its timeouts, the built-in rustls configurations, and
//!   [`ClientError`] with its [`Stage`].
//!
//! The steps are separate calls because the delivery code runs plugin hooks between them:
//! `send` returns once the message is written, and the hook for the end of data runs before
//! `finish` reads the server's verdict.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # smol::block_on(async {
//! # let sink = mq_core::testkit::sink::Sink::start(mq_core::testkit::sink::Script::new());
//! use mq_core::smtp::client::{ClientConfig, Connection, Sent};
//!
//! let config = ClientConfig { helo_name: "mx.example.org".into(), ..ClientConfig::default() };
//! let mut connection = Connection::open(sink.address(), "localhost", &config, None).await?;
//! let sender = "a@example.org".parse()?;
//! let recipients = [("b@example.net".parse()?, vec![])];
//! let sent = connection.send(&sender, &[], &recipients, b"Subject: hi\n\nhello\n").await?;
//! assert!(matches!(sent, Sent::Pending { .. }));
//! let reply = connection.finish().await?;
//! assert_eq!(reply.code(), 250);
//! connection.quit().await;
//! # assert_eq!(sink.messages()[0].data, b"Subject: hi\r\n\r\nhello\r\n");
//! # Ok(()) })
//! # }
//! ```

mod commands;
mod data;
mod error;
pub(crate) mod extensions;
mod io;
mod open;
pub(crate) mod reply;
mod tls;
mod transaction;

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) use data::PieceReader;
pub use data::{Pieces, Shape, ShapeScan, dot_stuff};
pub use error::{ClientError, Stage};
pub use extensions::Extensions;
pub use reply::{MAX_REPLY, MalformedReply, ParsedReply, parse_reply};
pub use transaction::Sent;

/// How the client talks to servers.
#[derive(Clone)]
pub struct ClientConfig {
    /// The name given in EHLO and HELO: this host's fully-qualified name. The default,
    /// `localhost`, only suits tests.
    pub helo_name: String,
    /// How long each step may take.
    pub timeouts: Timeouts,
    /// Whether STARTTLS is used.
    pub tls: TlsPolicy,
    /// User name and password for AUTH PLAIN, sent only over TLS and only when the server
    /// offers PLAIN.
    pub auth: Option<(String, String)>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            helo_name: "localhost".to_owned(),
            timeouts: Timeouts::default(),
            tls: TlsPolicy::default(),
            auth: None,
        }
    }
}

impl fmt::Debug for ClientConfig {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("helo_name", &self.helo_name)
            .field("timeouts", &self.timeouts)
            .field("tls", &self.tls)
            .field(
                "auth",
                &self.auth.as_ref().map(|(user, _)| (user, "<redacted>")),
            )
            .finish()
    }
}

/// How long the client waits at each step; the defaults are RFC 5321 §4.5.3.2's.
///
/// A server that has not answered (or taken data) by then is given up on with
/// [`ClientError::Timeout`], and the connection is not used again.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_core::smtp::client::Timeouts;
///
/// let timeouts = Timeouts { greeting: Duration::from_secs(30), ..Timeouts::default() };
/// assert_eq!(timeouts.data_end, Duration::from_secs(600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Opening the TCP connection: 30 s.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub connect: Duration,
    /// The `220` greeting: 5 min.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub greeting: Duration,
    /// Each reply to EHLO, HELO, STARTTLS (and its handshake), AUTH, MAIL, RCPT, RSET and
    /// QUIT: 5 min.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub command: Duration,
    /// The `354` reply to DATA: 2 min.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub data_init: Duration,
    /// Each block of message handed to the network: 3 min.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub data_block: Duration,
    /// The reply to the final `.`: 10 min, as the server may be checking the message.
    #[serde(
        deserialize_with = "crate::config::duration",
        serialize_with = "crate::config::duration_text"
    )]
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let minutes = |n: u64| Duration::from_secs(60 * n);
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: minutes(5),
            command: minutes(5),
            data_init: minutes(2),
            data_block: minutes(3),
            data_end: minutes(10),
        }
    }
}

/// Whether the client uses STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsPolicy {
    /// Never, even when offered.
    Disabled,
    /// When the server offers it, without verifying the certificate (Postfix's `may`): it
    /// protects from eavesdroppers, not from a man in the middle. A refused STARTTLS goes on in
    /// plaintext; a failed handshake is an error ([`ClientError::Tls`]), not retried in
    /// plaintext.
    #[default]
    Opportunistic,
    /// Always: a server that does not offer STARTTLS gets no mail
    /// ([`ClientError::TlsRequired`]).
    Required {
        /// Whether the certificate must verify for the host name: against the Mozilla roots
        /// (webpki-roots), or the configuration given to [`Connection::open`].
        verify: bool,
    },
}

/// Where a connection is in its use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between transactions.
    Ready,
    /// The message is written; its final reply is due.
    AwaitingDot,
    /// A step failed: the dialogue's state is unknown.
    Broken,
}

/// An open SMTP session with one server, greeted and (as the policy says) encrypted and
/// authenticated, ready for messages.
///
/// Send each message with [`send`](Connection::send), then read its verdict with
/// [`finish`](Connection::finish); reuse the connection while
/// [`is_ready`](Connection::is_ready), and end it with [`quit`](Connection::quit).
pub struct Connection {
    io: io::Io,
    host: String,
    peer: SocketAddr,
    extensions: Extensions,
    /// The first word of the greeting and of each EHLO reply: the names the server gave.
    names: Vec<String>,
    timeouts: Timeouts,
    state: State,
    /// Messages written so far.
    transactions: usize,
    /// When the session was opened.
    opened: Instant,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("peer", &self.peer)
            .field("tls", &self.is_tls())
            .field("extensions", &self.extensions)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// What the server offered in its last EHLO reply (after STARTTLS, the one under TLS).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// The names the server gave itself: the first word of its greeting and of each EHLO
    /// reply (RFC 5321 §4.2), as sent. A server that gives the client's own name is the
    /// client itself, or pretends to be: a mail loop.
    pub fn server_names(&self) -> &[String] {
        &self.names
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.io.is_tls()
    }

    /// The server's name as given to [`open`](Connection::open).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Whether the connection can take another message: no step failed, and no final reply is
    /// waiting to be read.
    pub fn is_ready(&self) -> bool {
        self.state == State::Ready
    }

    /// How many messages the connection has carried: each [`send`](Connection::send) that
    /// wrote one counts, whatever its verdict.
    pub fn transactions(&self) -> usize {
        self.transactions
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> Duration {
        self.opened.elapsed()
    }
}
