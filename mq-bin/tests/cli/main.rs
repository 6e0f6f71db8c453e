//! The `mq` binary as an operator runs it: its output, its errors and exit codes, and a real
//! server on loopback ports with its data in temporary directories.

mod check_config;
mod inject;
mod local;
mod plugins;
mod queue;
mod reload;
mod replay;
mod serve;
mod support;
