//! SMTP: the server, and the protocol pieces it is built from.
//!
//! - `codec`: command lines → [`Command`], with the reply for each malformed one; `helo`: the
//!   HELO names it takes.
//! - `data`: the message after DATA ([`DataReader`]): dot-unstuffing, size, bare CR/LF.
//! - `conn`: a connection's buffers and its STARTTLS upgrade.
//! - `session`: one session's state machine and hook chains; `recipient_set`, a
//!   transaction's recipients, each once; `counts`, its commands for the `disconnect` line.
//! - `server`: the listeners, one per core, and the limits all sessions share ([`Server`]);
//!   `client_key`: the address (IPv6: the network) a client is counted under.
//! - `recipients`: bare local parts made whole, and which local recipients exist, after
//!   `recipient_map` ([`RecipientMap`]), the file that lists them.
//! - `config`, `relay`, `received`, `tls`, `auth`: settings, relay networks, the Received
//!   field, certificates, and AUTH.
//! - `esmtp`: the SMTPUTF8 and DSN parameters of MAIL and RCPT ([`MailParams`], [`RcptParams`]).
//! - `auth_guard`: the bound on password checks at once and the failed-login count per address.

pub mod auth;
mod auth_guard;
pub mod client;
mod client_key;
mod codec;
mod config;
mod conn;
mod counts;
mod data;
mod esmtp;
mod helo;
mod received;
mod recipient_map;
mod recipient_set;
mod recipients;
mod record;
mod relay;
mod server;
mod session;
pub mod tls;

pub use auth_guard::AuthStats;
pub use codec::{Command, parse_command};
pub use config::{AuthConfig, SmtpConfig, TlsFiles};
pub use data::{DataError, DataReader, read_data};
pub use esmtp::{MailParams, Notify, RcptParams, Ret, needs_smtputf8, xtext_decode, xtext_encode};
pub use recipient_map::{RecipientMap, RecipientMapError};
pub use record::{Recording, RecordingError, Side};
pub use relay::{Cidr, CidrError};
pub use server::{Listeners, Prepared, Server, ServerError, Stats};

#[cfg(feature = "testkit")]
pub(crate) use conn::SessionStream;
pub(crate) use received::rfc5322_date;
#[cfg(feature = "testkit")]
pub(crate) use server::Shared;
#[cfg(feature = "testkit")]
pub(crate) use session::run as run_session;
