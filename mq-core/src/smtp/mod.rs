//! SMTP: the protocol pieces the server (and later the client) is built from.

mod codec;
mod data;

pub use codec::{Command, parse_command};
pub use data::{DataError, DataReader, read_data};
