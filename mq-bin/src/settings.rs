//! `mq config`: the effective configuration, as Postfix's postconf prints its own, one
//! `section.key = value` line per setting (values in TOML), secrets as `<redacted>`; and
//! `mq passwd`, which hashes a password for `[smtp.auth] users`.
//!
//! - `mq config`: every setting, the file's over the defaults.
//! - `mq config --non-default`: only those that differ from the defaults (postconf -n).
//! - `mq config --defaults`: the built-in defaults (postconf -d).
//!
//! Plugin tables (`[plugins.NAME]`) are printed as the file has them; a key whose name says it
//! is a secret (`password`, `secret`, `token`, `key` in its name) is redacted there too.

use std::io::{self, BufRead as _, IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use clap::Args;
use mq_core::Config;

use crate::print;

/// `mq config`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// Only the settings that differ from the built-in defaults (as postconf -n).
    #[arg(long, short = 'n', conflicts_with = "defaults")]
    non_default: bool,
    /// The built-in defaults, whatever the file says (as postconf -d).
    #[arg(long, short = 'd')]
    defaults: bool,
}

/// Prints the settings `args` asks for.
pub(crate) fn config(config: &Config, args: &ConfigArgs) -> anyhow::Result<()> {
    let defaults = lines(&Config::default())?;
    let text = if args.defaults {
        defaults.join("")
    } else {
        let effective = lines(config)?;
        effective
            .into_iter()
            .filter(|line| !args.non_default || !defaults.contains(line))
            .collect()
    };
    print(&text)
}

/// Every setting of `config` as `section.key = value\n`, in section and key order.
fn lines(config: &Config) -> anyhow::Result<Vec<String>> {
    let mut sections = toml::Table::new();
    let mut add =
        |name: &str, value: Result<toml::Value, toml::ser::Error>| -> anyhow::Result<()> {
            sections.insert(
                name.to_owned(),
                value.with_context(|| format!("cannot write [{name}]"))?,
            );
            Ok(())
        };
    add("engine", toml::Value::try_from(&config.engine))?;
    add("smtp", toml::Value::try_from(&config.smtp))?;
    add("queue", toml::Value::try_from(&config.queue))?;
    add("admin", toml::Value::try_from(&config.admin))?;
    add("delivery", toml::Value::try_from(&config.delivery))?;
    add("dns", toml::Value::try_from(&config.dns))?;
    add("log", toml::Value::try_from(&config.log))?;
    add("server", toml::Value::try_from(&config.server))?;
    let mut plugins = toml::Table::new();
    for (name, table) in &config.plugins {
        plugins.insert(name.clone(), toml::Value::Table(redact_plugin(table)));
    }
    if !plugins.is_empty() {
        sections.insert("plugins".to_owned(), toml::Value::Table(plugins));
    }
    let mut out = Vec::new();
    flatten("", &toml::Value::Table(sections), &mut out);
    Ok(out)
}

/// A plugin's table with the values of secret-looking keys redacted.
fn redact_plugin(table: &toml::Table) -> toml::Table {
    table
        .iter()
        .map(|(key, value)| {
            let lower = key.to_ascii_lowercase();
            let secret = ["password", "secret", "token", "key"]
                .iter()
                .any(|word| lower.contains(word));
            let value = match value {
                _ if secret => toml::Value::String("<redacted>".into()),
                toml::Value::Table(inner) => toml::Value::Table(redact_plugin(inner)),
                other => other.clone(),
            };
            (key.clone(), value)
        })
        .collect()
}

/// `value`'s leaves as `path = value` lines; tables nest into dotted paths, other values
/// (arrays too) are written inline.
fn flatten(path: &str, value: &toml::Value, out: &mut Vec<String>) {
    match value {
        // An empty section with nothing set (`[server]` by default) says nothing; an empty
        // table inside one (a plugin's section) says that it is there.
        toml::Value::Table(table) if path.contains('.') && table.is_empty() => {
            out.push(format!("{path} = {{}}\n"));
        }
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = bare_or_quoted(key);
                let path = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                flatten(&path, value, out);
            }
        }
        leaf => out.push(format!("{path} = {leaf}\n")),
    }
}

/// A key as TOML writes it in a dotted path: bare when it can be, else quoted.
fn bare_or_quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

/// `mq passwd`: reads a password (twice, without echo, at a terminal; else the first line of
/// stdin) and prints its Argon2id hash for `[smtp.auth] users`.
pub(crate) fn passwd() -> anyhow::Result<()> {
    let password = if io::stdin().is_terminal() {
        let first = prompt("Password: ")?;
        let again = prompt("Again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        bail!("an empty password");
    }
    print(&format!(
        "{}\n",
        mq_core::smtp::auth::hash_argon2(&password)
    ))
}

/// Asks for a line at the terminal with echo off, restoring the terminal after.
fn prompt(question: &str) -> anyhow::Result<String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    eprint!("{question}");
    io::stderr().flush().ok();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bare_or_quoted() {
        assert_eq!(bare_or_quoted("max_age"), "max_age");
        assert_eq!(bare_or_quoted("example.com"), "\"example.com\"");
    }

    #[test]
    fn defaults_print_as_lines_the_config_reads_back() {
        let defaults = lines(&Config::default()).unwrap();
        assert!(
            defaults.contains(&"smtp.listen = \"127.0.0.1:2525\"\n".to_owned()),
            "{defaults:?}"
        );
        assert!(
            defaults.contains(&"engine.timeout = \"30s\"\n".to_owned()),
            "{defaults:?}"
        );
        // Each line, as a TOML document of its own, is a valid config.
        for line in &defaults {
            let (path, value) = line.trim_end().split_once(" = ").unwrap();
            let (section, key) = path.split_once('.').unwrap();
            if key.contains('.') || section == "plugins" {
                continue;
            }
            let text = format!("[{section}]\n{key} = {value}\n");
            assert!(Config::from_toml(&text).is_ok(), "{text}");
        }
    }
}
