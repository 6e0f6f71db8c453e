//! The `mq` command line, as a library, so that a custom build is a few lines of its own.
//!
//! The `mq` binary is `fn main() -> ExitCode { mq_bin::main() }`. A custom MTA is the same
//! `main` in a crate of its own that also links its plugin crates in; the bundled plugins come
//! with this crate's cargo features (`headers`, on by default).
//!
//! # Layout
//!
//! - `lib.rs`: the command line ([`main`]): arguments, logging, the config file, errors to exit
//!   codes.
//! - `plugins`: the aggregator, one `extern crate` per plugin feature, and why it is needed.
//! - `listing`: what `mq plugins` prints.
//!
//! # Example
//!
//! A custom build with a plugin crate of one's own (`my_plugins`, registered with
//! `#[plugin]`) beside the bundled ones:
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! // use my_plugins as _; // a plugin crate is linked, and registered, only if code mentions it
//!
//! fn main() -> ExitCode {
//!     mq_bin::main()
//! }
//! ```

mod listing;
mod plugins;

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Parser, Subcommand};
use mq_core::watchdog::Beat;
use mq_core::{Config, Plan, Registry};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::listing::Listing;

/// mq, a mail transfer agent built around an async plugin framework.
#[derive(Debug, Parser)]
#[command(name = "mq", version, arg_required_else_help = true)]
struct Cli {
    /// The TOML configuration file; without it mq runs on built-in defaults.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands. `serve`, `inject`, `queue` and `check-config` come with the SMTP server
/// and the queue.
#[derive(Debug, Subcommand)]
enum Command {
    /// Lists the compiled-in plugins and every hook's chain, in call order.
    Plugins,
}

/// Runs the `mq` command line on this process's arguments and returns its exit code.
///
/// Logs go to stderr, filtered by `RUST_LOG` (default `info`). An error is printed as one line,
/// `mq: <error>`, and exits with 1; a usage error exits as clap decides (2), `--help` with 0.
///
/// # Examples
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     mq_bin::main()
/// }
/// ```
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` puts the whole cause chain on the one line: "context: cause".
            eprintln!("mq: {error:#}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    fn run(&self) -> anyhow::Result<()> {
        let config = load_config(self.config.as_deref())?;
        let registry = Registry::linked()?;
        let plan = self.plan(&registry, &config)?;
        match self.command {
            Command::Plugins => print(&Listing::new(&registry, &plan).to_string()),
        }
    }

    /// The plugins `config` runs. Each is built once, as a worker would at start-up, so that a
    /// section a plugin refuses is reported by every command rather than first by `serve`.
    fn plan(&self, registry: &Registry, config: &Config) -> anyhow::Result<Plan> {
        let checked = registry.plan(config).and_then(|plan| {
            plan.build_engine(0, Beat::unwatched())?;
            Ok(plan)
        });
        match &self.config {
            Some(path) => checked.with_context(|| format!("config file {}", path.display())),
            None => Ok(checked?),
        }
    }
}

/// Logs to stderr, so that stdout carries only a command's output.
fn init_logging() {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    // A custom build may have installed its own subscriber first; then that one stays.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The config in `path`, or the built-in defaults without one.
fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let config = Config::from_toml(&text)
        .map_err(|error| anyhow!("config file {}: {}", path.display(), one_line(&error)))?;
    tracing::debug!(path = %path.display(), "config read");
    Ok(config)
}

/// Writes a command's output to stdout.
fn print(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stops early (`mq plugins | head`) has all it wanted: not an error.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("cannot write to stdout"),
    }
}

/// A TOML error on one line: toml renders the offending source line and a caret under it, which
/// a one-line `mq: <error>` message cannot carry; the position and the message remain.
fn one_line(error: &impl std::fmt::Display) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_source_excerpt(line))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Whether `line` is part of toml's excerpt: `|`, `3 | key = …` or `| ^^^`.
fn is_source_excerpt(line: &str) -> bool {
    line.trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start()
        .starts_with('|')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_lose_their_excerpt_but_keep_position_and_message() {
        let error = Config::from_toml("[engine]\ntimout = \"1s\"\n").unwrap_err();
        let line = one_line(&error);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("TOML parse error at line 2"), "{line}");
        assert!(line.contains("unknown field `timout`"), "{line}");
    }

    #[test]
    fn plain_messages_pass_unchanged() {
        assert_eq!(one_line(&"no such thing"), "no such thing");
    }

    #[test]
    fn excerpt_lines_are_recognised() {
        assert!(is_source_excerpt("|"));
        assert!(is_source_excerpt("12 | timout = 1"));
        assert!(is_source_excerpt("| ^^^^^^"));
        assert!(!is_source_excerpt("unknown field `timout`"));
    }

    #[test]
    fn a_missing_config_flag_means_the_defaults() {
        let config = load_config(None).unwrap();
        assert!(config.plugins.is_empty());
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["mq", "plugins", "--config", "x.toml"]).unwrap();
        assert_eq!(cli.config.as_deref(), Some(Path::new("x.toml")));
    }
}
