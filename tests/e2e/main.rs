//! mq's end-to-end tests of the plugin framework, built as one test binary.
//!
//! One module per area; shared helpers live in the `mq_tests` support library
//! (`tests/support/lib.rs`).
//!
//! - `chain_rules`: the seed's chain rules (order, Continue, Complete, Retry, replies).
//! - `guards`: deadlines, caught panics, failure policies and the watchdog.
//! - `concurrency`: many chains waiting side by side on one worker core.
//! - `observers`: `#[observe]` methods after the chain, side by side, outside the outcome.
//! - `registration`: plugins found through inventory, from a separate crate, and the config.
//! - `settings`: `[engine.plugins.NAME]` over a plugin's own defaults: the order of chains,
//!   the failure policy, and engine keys left in a plugin's section.
//! - `runtime`: worker threads, their cores and graceful shutdown.
//! - `reload`: new plugin instances at a chain boundary, and a refused reload that changes
//!   nothing.
//!
//! Every `#[plugin]` in this binary, and the fixture crate's, is in `Registry::linked()`: tests
//! that start a runtime from the linked registry enable only the plugins they are about
//! (`mq_tests::config_enabling`).

// Links the fixture plugin crate, so that its inventory registration is in this binary.
use mq_plugin_fixture as _;

mod chain_rules;
mod concurrency;
mod guards;
mod observers;
mod registration;
mod reload;
mod runtime;
mod settings;
