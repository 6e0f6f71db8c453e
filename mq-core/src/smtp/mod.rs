//! SMTP: the server, and the protocol pieces it is built from.
//!
//! - `codec`: command lines → [`Command`], with the reply for each malformed one.
//! - `data`: the message after DATA ([`DataReader`]): dot-unstuffing, size, bare CR/LF.
//! - `conn`: a connection's buffers and its STARTTLS upgrade.
//! - `session`: one session's state machine and hook chains.
//! - `server`: the listeners, one per core, and the limits all sessions share ([`Server`]).
//! - `config`, `relay`, `received`, `tls`, `auth`: settings, relay networks, the Received
//!   field, certificates, and AUTH.
//! - `auth_guard`: the bound on password checks at once and the failed-login count per address.

pub mod auth;
mod auth_guard;
pub mod client;
mod codec;
mod config;
mod conn;
mod data;
mod received;
mod relay;
mod server;
mod session;
pub mod tls;

pub use auth_guard::AuthStats;
pub use codec::{Command, parse_command};
pub use config::{AuthConfig, SmtpConfig, TlsFiles};
pub use data::{DataError, DataReader, read_data};
pub use relay::{Cidr, CidrError};
pub use server::{Server, ServerError, Stats};

pub(crate) use received::rfc5322_date;
