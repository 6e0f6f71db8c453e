//! The `webhook` plugin against an HTTP server on loopback: one binary, one module per area.
//!
//! The testkit builds a fresh executor for each `run`, so the sender task would die with it;
//! `delivery` therefore drives the plugin on one long-lived executor of its own
//! (`support::Core`), as a worker core does, and `transcripts` covers the chain itself.

mod delivery;
mod support;
mod transcripts;
