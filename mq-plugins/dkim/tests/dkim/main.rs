//! The `dkim` plugin through the testkit: each signature checked by mail-auth's verifier, an
//! implementation independent of the plugin's, and the dialogues snapshotted.

mod signing;
mod support;
mod transcripts;
