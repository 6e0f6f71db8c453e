//! What can go wrong talking to a server, and at which step.

use std::fmt;
use std::io;

use mq_plugin_api::Reply;

/// A step of the client's side of the dialogue, for errors, timeouts and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the server's `220` greeting.
    Greeting,
    /// `EHLO`, or `HELO` after EHLO was refused.
    Ehlo,
    /// `STARTTLS` and the TLS handshake.
    StartTls,
    /// `AUTH PLAIN`.
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` and the message's lines.
    Data,
    /// The final `.` and its reply.
    Dot,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO/HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Dot => "end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

/// Why a connection could not be opened or used.
///
/// Refused steps of a mail transaction are not errors but replies in
/// [`Sent`](super::Sent); these are the failures of the connection itself.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The TCP connection could not be opened.
    Connect(io::Error),
    /// The server did not answer, or did not take data, within the stage's timeout.
    Timeout(Stage),
    /// The connection failed or closed at a stage.
    Io(Stage, io::Error),
    /// The server's greeting was not `220`.
    Greeting(Reply),
    /// The server refused a step the session cannot go on without: EHLO and HELO, STARTTLS
    /// under [`TlsPolicy::Required`](super::TlsPolicy::Required), AUTH, RSET; or it closes
    /// the session (`421`).
    Rejected(Stage, Reply),
    /// The route requires TLS and the server does not offer STARTTLS.
    TlsRequired,
    /// The TLS handshake failed, for example on a certificate that does not verify.
    Tls(io::Error),
    /// The server's reply is not a well-formed SMTP reply.
    Protocol(Stage, String),
    /// A parameter (or the EHLO name) holds what cannot go on the wire: a space, a control
    /// character, a malformed keyword. Nothing was sent for it.
    InvalidParameter(Stage, String),
    /// The connection cannot take this step: an earlier step failed, or a message's final reply
    /// was not read with [`finish`](super::Connection::finish) yet (or was read already).
    NotReady(Stage),
}

impl ClientError {
    /// Whether trying again later is pointless: the server gave a 5xx reply to a step the
    /// session needs. Everything else, `TlsRequired` included (a route's setting, like
    /// Postfix), is temporary.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::smtp::client::{ClientError, Stage};
    /// use mq_plugin_api::Reply;
    ///
    /// let refused = ClientError::Greeting(Reply::new(554, "5.7.1", "go away"));
    /// assert!(refused.is_permanent());
    /// assert!(!ClientError::TlsRequired.is_permanent());
    /// assert!(!ClientError::Timeout(Stage::Greeting).is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        self.reply().is_some_and(Reply::is_permanent)
    }

    /// The server's reply that caused the error, if one did.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::Greeting(reply) | ClientError::Rejected(_, reply) => Some(reply),
            _ => None,
        }
    }

    /// The stage the error happened at.
    pub fn stage(&self) -> Stage {
        match self {
            ClientError::Connect(_) => Stage::Connect,
            ClientError::Greeting(_) => Stage::Greeting,
            ClientError::TlsRequired | ClientError::Tls(_) => Stage::StartTls,
            ClientError::Timeout(stage)
            | ClientError::Io(stage, _)
            | ClientError::Rejected(stage, _)
            | ClientError::Protocol(stage, _)
            | ClientError::InvalidParameter(stage, _)
            | ClientError::NotReady(stage) => *stage,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(error) => write!(f, "connect failed: {error}"),
            ClientError::Timeout(stage) => write!(f, "timed out at {stage}"),
            ClientError::Io(stage, error) => write!(f, "connection lost at {stage}: {error}"),
            ClientError::Greeting(reply) => write!(f, "server refused the session: {reply}"),
            ClientError::Rejected(stage, reply) => write!(f, "server refused {stage}: {reply}"),
            ClientError::TlsRequired => {
                f.write_str("tls required but the server does not offer STARTTLS")
            }
            ClientError::Tls(error) => write!(f, "tls handshake failed: {error}"),
            ClientError::Protocol(stage, error) => {
                write!(f, "malformed reply at {stage}: {error}")
            }
            ClientError::InvalidParameter(stage, parameter) => {
                write!(f, "invalid parameter for {stage}: {parameter:?}")
            }
            ClientError::NotReady(stage) => write!(f, "connection not ready for {stage}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect(error) | ClientError::Io(_, error) | ClientError::Tls(error) => {
                Some(error)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permanent_replies_make_permanent_errors() {
        let temporary = Reply::new(421, "4.3.2", "shutting down");
        assert!(!ClientError::Rejected(Stage::Mail, temporary).is_permanent());
        let permanent = Reply::new(550, "5.7.1", "no");
        assert!(ClientError::Rejected(Stage::Ehlo, permanent).is_permanent());
        let io = ClientError::Io(Stage::Data, io::ErrorKind::BrokenPipe.into());
        assert!(!io.is_permanent());
        assert_eq!(io.stage(), Stage::Data);
    }

    #[test]
    fn messages_are_lowercase_and_name_the_stage() {
        let error = ClientError::Rejected(Stage::Ehlo, Reply::new(554, "", "no"));
        assert_eq!(error.to_string(), "server refused EHLO/HELO: 554 no");
        assert_eq!(
            ClientError::Timeout(Stage::Dot).to_string(),
            "timed out at end of data"
        );
    }
}
