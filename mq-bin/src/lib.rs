//! The `mq` command line, as a library, so that a custom build is a few lines of its own.
//!
//! The `mq` binary is `fn main() -> ExitCode { mq_bin::main() }`. A custom MTA is the same
//! `main` in a crate of its own that also links its plugin crates in; the bundled plugins come
//! with this crate's cargo features (`headers`, on by default).
//!
//! # Layout
//!
//! - `lib.rs`: the command line ([`main`]): arguments, the config file, errors to exit codes.
//! - `logging`: stderr as text or JSON lines (`--log-format`, `[log] format`).
//! - `serve`: `mq serve`, the server's life from start to a drained stop on SIGTERM.
//! - `service`: the pid file and the change of user after binding (`[server]`).
//! - `status`: `mq status`, the running server's state from its admin port.
//! - `reload`: SIGHUP and `POST /reload` in `mq serve`, and `mq reload`, which asks for one.
//! - `replay`: `mq replay`, a recorded session run again with this build's plugins.
//! - `inject`: `mq inject`, a small blocking SMTP client for sendmail-style submission.
//! - `sendmail`: `mq sendmail` and `mq` run as `sendmail`: sendmail's flags, the missing header
//!   fields added, queued on the disk when no server runs, or left in the maildrop.
//! - `maildrop`: the maildrop's file format, and its writer for `sendmail`; `pickup`: the
//!   thread of `mq serve` that queues what is dropped there.
//! - `users_watch`: the thread of `mq serve` that reloads when `[smtp.auth] users_file`
//!   changes.
//! - `header`: a submitted message's header: read, its recipients for `-t`, the missing
//!   `From`, `Date` and `Message-ID` added (for `sendmail` and `inject`).
//! - `queue`: `mq queue`, on the queue on disk or through a running server's admin port
//!   (`admin_client`), printed by `queue_view`.
//! - `surgery`: `mq queue delete|hold|release|requeue` on ids, stdin or `ALL`; `qshape`: what
//!   `mq queue summary` prints; `clock`: dates for people and headers.
//! - `settings`: `mq config` (the effective configuration, as postconf prints it) and
//!   `mq passwd`.
//! - `check`: what `mq check-config` checks beyond planning the plugins.
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

mod admin_client;
mod broker;
mod check;
mod clock;
mod header;
mod inject;
mod listing;
mod logging;
mod maildrop;
mod pickup;
mod plugins;
mod qshape;
mod queue;
mod queue_view;
mod reload;
mod replay;
mod sendmail;
mod serve;
mod service;
mod settings;
mod status;
mod surgery;
mod users_watch;

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::{Parser, Subcommand};
use mq_core::service::LogFormat;
use mq_core::watchdog::Beat;
use mq_core::{Config, Plan, Registry};
use tracing_subscriber::filter::LevelFilter;

use crate::listing::Listing;

/// mq, a mail transfer agent built around an async plugin framework.
#[derive(Debug, Parser)]
#[command(name = "mq", version, arg_required_else_help = true)]
struct Cli {
    /// The TOML configuration file; without it mq runs on built-in defaults.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// How log lines are written: text or json (one object per line); overrides `[log] format`.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = parse_log_format)]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the SMTP server and the admin port until SIGTERM or SIGINT, then drains sessions;
    /// SIGHUP reloads the configuration.
    Serve(serve::ServeArgs),
    /// Makes the running server reload its configuration, through its admin port.
    Reload,
    /// Says whether mq serve is running: uptime, sessions, queue size (through the admin
    /// port); exits with 1 when no server answers.
    Status,
    /// Submits a message read from stdin through the running server, as sendmail does.
    Inject(inject::InjectArgs),
    /// sendmail for scripts and cron (-t, -i, -oi, -f, -F, recipients): queues the message on
    /// stdin, on the disk when no server runs. Also what `mq` does when run as `sendmail`.
    Sendmail(sendmail::SendmailArgs),
    /// Lists, summarises, shows, deletes, holds, releases, requeues or flushes queued mail.
    Queue(queue::QueueArgs),
    /// Lists the compiled-in plugins and every hook's chain, in call order.
    Plugins,
    /// Checks the configuration: syntax, plugin sections, TLS files and AUTH hashes.
    CheckConfig,
    /// Prints the effective configuration, secrets redacted (as postconf; -n, -d).
    Config(settings::ConfigArgs),
    /// Reads a password and prints its Argon2id hash for `[smtp.auth] users`.
    Passwd,
    /// Runs a session recorded by `[smtp] record` again, with this build's plugins as
    /// configured, and prints its transcript and where the replies now differ.
    Replay(replay::ReplayArgs),
    /// Publishes a MailerQ JSON document read from stdin to the RabbitMQ outbox
    /// ([queue.rabbitmq]), once the broker confirmed it.
    Publish,
}

/// Runs the `mq` command line on this process's arguments and returns its exit code.
///
/// Logs go to stderr, filtered by `RUST_LOG` (default `info` for `mq serve`, `warn` for the
/// one-shot commands). An error is printed as one line, `mq: <error>`, and exits with 1; a
/// usage error exits as clap decides (2), `--help` with 0.
///
/// # Examples
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     mq_bin::main()
/// }
/// ```
pub fn main() -> ExitCode {
    if invoked_as_sendmail() {
        return sendmail_main();
    }
    let cli = Cli::parse();
    // The config is read again by the command, which reports its errors; here only its
    // `[log]` counts.
    let format = cli.log_format.unwrap_or_else(|| {
        load_config(cli.config.as_deref()).map_or(LogFormat::default(), |config| config.log.format)
    });
    logging::init(cli.default_log_level(), format);
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
        let mut config = load_config(self.config.as_deref())?;
        match &self.command {
            Command::Serve(args) => {
                args.apply(&mut config);
                let plan = self.in_file(Registry::linked()?.plan(&config))?;
                serve::run(&config, &plan, self.config.as_deref(), args)
            }
            Command::Reload => reload::request(&config),
            Command::Status => status::run(&config),
            Command::Inject(args) => inject::run(&config, args),
            Command::Sendmail(args) => sendmail::run(&config, args),
            Command::Queue(args) => queue::run(&config, args),
            Command::Publish => broker::publish(&config),
            Command::Plugins => {
                let registry = Registry::linked()?;
                let plan = self.plan(&registry, &config)?;
                print(&Listing::new(&registry, &plan).to_string())
            }
            Command::Config(args) => settings::config(&config, args),
            Command::Passwd => settings::passwd(),
            Command::Replay(args) => {
                let plan = self.plan(&Registry::linked()?, &config)?;
                replay::run(&config, &plan, args)
            }
            Command::CheckConfig => {
                self.plan(&Registry::linked()?, &config)?;
                self.in_file(check::run(&config))?;
                self.in_file(broker::check(&config))?;
                print("config OK\n")
            }
        }
    }

    /// The server logs what it does; a one-shot command speaks through its output and errors,
    /// so its logs start at warnings.
    fn default_log_level(&self) -> LevelFilter {
        match self.command {
            Command::Serve(_) => LevelFilter::INFO,
            _ => LevelFilter::WARN,
        }
    }

    /// The plugins `config` runs. Each is built once, as a worker would at start-up, so that a
    /// section a plugin refuses is reported by every command rather than first by `serve`.
    fn plan(&self, registry: &Registry, config: &Config) -> anyhow::Result<Plan> {
        self.in_file(registry.plan(config).and_then(|plan| {
            plan.build_engine(0, Beat::unwatched())?;
            Ok(plan)
        }))
    }

    /// `result`, its error naming the config file if there is one.
    fn in_file<T, E>(&self, result: Result<T, E>) -> anyhow::Result<T>
    where
        Result<T, E>: anyhow::Context<T, E>,
        anyhow::Error: From<E>,
    {
        match &self.config {
            Some(path) => result.with_context(|| format!("config file {}", path.display())),
            None => Ok(result?),
        }
    }
}

/// `--log-format`'s value.
fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected text or json, got {text:?}")),
    }
}

/// Whether this process was started as `sendmail` (a link to the `mq` binary, as
/// `/usr/sbin/sendmail` is on a system whose MTA is mq).
fn invoked_as_sendmail() -> bool {
    std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .is_some_and(|name| name == "sendmail")
}

/// `main` for `sendmail`: its own command line, errors as `sendmail: <error>`.
fn sendmail_main() -> ExitCode {
    let cli = sendmail::SendmailCli::parse();
    logging::init(LevelFilter::WARN, LogFormat::default());
    let result = load_config(cli.config_path().as_deref())
        .and_then(|config| sendmail::run(&config, &cli.args));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sendmail: {error:#}");
            ExitCode::FAILURE
        }
    }
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
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
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

    #[test]
    fn only_serve_logs_at_info_by_default() {
        let serve = Cli::try_parse_from(["mq", "serve"]).unwrap();
        assert_eq!(serve.default_log_level(), LevelFilter::INFO);
        let list = Cli::try_parse_from(["mq", "queue", "list"]).unwrap();
        assert_eq!(list.default_log_level(), LevelFilter::WARN);
    }
}
