//! The `mq` binary as an operator runs it: its output, its errors and exit codes, and a real
//! server on loopback ports with its data in temporary directories.

mod check_config;
#[cfg(feature = "webhook")]
mod event_sink;
mod inject;
mod local;
mod maildrop;
mod operations;
#[cfg(feature = "webhook")]
mod plugin_life;
mod plugin_metrics;
mod plugins;
mod queue;
mod reload;
mod replay;
mod sendmail;
mod serve;
mod service;
mod settings;
mod support;
mod surgery;
