//! The aggregator: the bundled plugin crates this build links in, one line per cargo feature.
//!
//! A plugin registers itself through `inventory` before `main`, but only if its crate is linked
//! into the binary, and rustc links a dependency only when some code mentions it: a
//! `[dependencies]` line (or an enabled feature) alone is not enough, and the plugin would
//! silently be missing from `mq plugins`. So each bundled plugin takes two lines:
//!
//! - in `mq-bin/Cargo.toml`: `name = ["dep:mq-plugin-name"]` under `[features]`, and the crate as
//!   an optional dependency;
//! - here: `#[cfg(feature = "name")] extern crate mq_plugin_name;`.
//!
//! Nothing here names an item of these crates, so rustc (through the workspace's
//! `rust_2018_idioms`) would call each `extern crate` unused: mentioning them is the point, hence
//! the `allow` below. The same rule holds one level up: a binary or test that wants these
//! plugins must mention this crate (`use mq_bin as _;`), and a custom build mentions its own
//! plugin crates the same way.

#![allow(
    unused_extern_crates,
    reason = "each crate is mentioned only so that it is linked and its plugin registered"
)]

#[cfg(feature = "headers")]
extern crate mq_plugin_headers;

#[cfg(feature = "dnsbl")]
extern crate mq_plugin_dnsbl;

#[cfg(feature = "webhook")]
extern crate mq_plugin_webhook;

#[cfg(feature = "ratelimit")]
extern crate mq_plugin_ratelimit;

#[cfg(feature = "aliases")]
extern crate mq_plugin_aliases;

#[cfg(feature = "dkim")]
extern crate mq_plugin_dkim;

#[cfg(feature = "noop")]
extern crate mq_plugin_noop;
