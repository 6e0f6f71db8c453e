//! The `dkim` plugin through the testkit: each signature checked by mail-auth's verifier, an
//! implementation independent of the plugin's, and the dialogues snapshotted; and, through a
//! real server, the signature made after a plugin named after `dkim` changed the message.

mod order;
mod signing;
mod support;
mod transcripts;
