//! Reloading a running `mq serve` (SIGHUP, `POST /reload` on the admin port), and `mq reload`,
//! which asks for one through the admin port.
//!
//! A reload reads the config file again, with `mq serve`'s flags over it as at start, and puts
//! it in force whole or not at all:
//!
//! - every plugin is built anew from its section on every core; a chain in progress finishes
//!   on the instances it began with, the next one runs on the new;
//! - `[smtp]`'s relay networks, limits and timeouts, the TLS certificate and key, and the AUTH
//!   users apply to connections accepted from then on;
//! - what the running server cannot change without dropping connections or mail in flight
//!   (the listening address, the queue, the admin port, delivery, the resolvers, the worker
//!   count and the slow-poll threshold) stays as it is, and a changed one is logged as waiting
//!   for a restart. So do `[smtp]`'s `hostname` and `domains`, which delivery shares: the
//!   server must not accept mail as local that delivery would route elsewhere.
//!
//! A config that cannot be read, that names a plugin not compiled in, whose plugin section a
//! factory refuses, or whose TLS files or AUTH hashes cannot be loaded is refused with the
//! cause, and the running configuration stays, as Postfix's `postfix reload` keeps running on
//! the old `main.cf` when the new one is broken.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use anyhow::{Context as _, anyhow, bail};
use mq_core::smtp::Server;
use mq_core::{Config, Registry, Runtime};

use crate::admin_client::AdminClient;
use crate::serve::ServeArgs;

/// What a reload reads and what it changes, for the life of `mq serve`.
pub(crate) struct Reloader<'a> {
    /// The config file, if `mq serve` was given one; without it the defaults are reloaded.
    path: Option<&'a Path>,
    /// The flags, laid over the file again at each reload.
    args: &'a ServeArgs,
    runtime: &'a Runtime,
    server: &'a Server,
    /// The configuration in force; the lock also makes reloads take turns.
    running: Mutex<Config>,
}

impl<'a> Reloader<'a> {
    /// A reloader for a server started with `config`, read from `path` and `args`.
    pub(crate) fn new(
        path: Option<&'a Path>,
        args: &'a ServeArgs,
        config: &Config,
        runtime: &'a Runtime,
        server: &'a Server,
    ) -> Reloader<'a> {
        Reloader {
            path,
            args,
            runtime,
            server,
            running: Mutex::new(config.clone()),
        }
    }

    /// `[smtp.auth] users_file` of the configuration in force.
    pub(crate) fn users_file(&self) -> Option<std::path::PathBuf> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.smtp.auth.users_file.clone()
    }

    /// The configuration in force.
    pub(crate) fn running(&self) -> Config {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reloads and logs the outcome; returns the logged line, as an error if it failed.
    pub(crate) fn reload_and_log(&self) -> Result<String, String> {
        match self.reload() {
            Ok(done) => {
                tracing::info!("{done}");
                Ok(done)
            }
            Err(error) => {
                let failed = format!("reload failed, keeping the running configuration: {error:#}");
                tracing::error!("{failed}");
                Err(failed)
            }
        }
    }

    /// Reads the configuration and puts it in force, or nothing if any of it is wrong.
    fn reload(&self) -> anyhow::Result<String> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let mut config = crate::load_config(self.path)?;
        self.args.apply(&mut config);
        let plan = self.in_file(Registry::linked()?.plan(&config))?;
        let waiting = needs_restart(&running, &config);
        let config = keep_restart_only(&running, config);
        let smtp = self.in_file(self.server.prepare(config.smtp.clone()))?;
        self.in_file(self.runtime.reload(&plan))?;
        self.server.install(smtp);
        if !waiting.is_empty() {
            // Said at every reload until the restart, since the running value stays.
            tracing::warn!(
                keys = waiting.join(", "),
                "changed settings that take effect only after a restart"
            );
        }
        *running = config;
        Ok(match self.path {
            Some(path) => format!("configuration reloaded from {}", path.display()),
            None => "configuration reloaded from the built-in defaults".to_owned(),
        })
    }

    /// `result`, its error naming the config file if there is one.
    fn in_file<T, E>(&self, result: Result<T, E>) -> anyhow::Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        match self.path {
            Some(path) => result.with_context(|| format!("config file {}", path.display())),
            None => Ok(result?),
        }
    }
}

/// `new` with the settings only a restart changes as they are in `running`: what is in force
/// after a reload.
fn keep_restart_only(running: &Config, mut new: Config) -> Config {
    new.smtp.listen = running.smtp.listen;
    new.smtp.hostname.clone_from(&running.smtp.hostname);
    new.smtp.domains.clone_from(&running.smtp.domains);
    // The password-check threads and the failed-login counts live as long as the server.
    new.smtp.auth.max_verifications = running.smtp.auth.max_verifications;
    new.smtp.auth.max_waiting = running.smtp.auth.max_waiting;
    new.smtp.auth.max_failures = running.smtp.auth.max_failures;
    new.smtp.auth.failure_window = running.smtp.auth.failure_window;
    new.queue = running.queue.clone();
    new.admin = running.admin.clone();
    new.engine.workers = running.engine.workers;
    new.engine.slow_poll = running.engine.slow_poll;
    new.delivery = running.delivery.clone();
    new.dns = running.dns.clone();
    new
}

/// `[smtp.auth]`'s bounds on password checks and failed logins.
fn auth_limits(config: &Config) -> (Option<usize>, usize, u32, std::time::Duration) {
    let auth = &config.smtp.auth;
    (
        auth.max_verifications,
        auth.max_waiting,
        auth.max_failures,
        auth.failure_window,
    )
}

/// The settings that differ between `running` and `new` but stay as they are until a restart.
fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    // Delivery's settings have no equality of their own; their debug form holds every field,
    // in a fixed order (no hash maps), and serves to tell a change.
    let changed = [
        ("smtp.listen", running.smtp.listen != new.smtp.listen),
        ("smtp.hostname", running.smtp.hostname != new.smtp.hostname),
        ("smtp.domains", running.smtp.domains != new.smtp.domains),
        ("smtp.auth limits", auth_limits(running) != auth_limits(new)),
        (
            "queue.data_dir",
            running.queue.data_dir != new.queue.data_dir,
        ),
        ("queue.fsync", running.queue.fsync != new.queue.fsync),
        (
            "queue.maildrop",
            running.queue.maildrop_dir != new.queue.maildrop_dir
                || running.queue.maildrop_mode != new.queue.maildrop_mode
                || running.queue.maildrop_interval != new.queue.maildrop_interval,
        ),
        ("admin.listen", running.admin.listen != new.admin.listen),
        (
            "engine.workers",
            running.engine.workers != new.engine.workers,
        ),
        (
            "engine.slow_poll",
            running.engine.slow_poll != new.engine.slow_poll,
        ),
        (
            "delivery",
            format!("{:?}", running.delivery) != format!("{:?}", new.delivery),
        ),
        ("dns", running.dns != new.dns),
        (
            "log",
            format!("{:?}", running.log) != format!("{:?}", new.log),
        ),
        (
            "server",
            format!("{:?}", running.server) != format!("{:?}", new.server),
        ),
    ];
    changed
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
}

/// `mq reload`: asks the running server, through its admin port, to reload, and prints what it
/// answered.
pub(crate) fn request(config: &Config) -> anyhow::Result<()> {
    let Some(address) = config.admin.listen else {
        bail!("the admin port is off ([admin] listen is empty): send mq serve SIGHUP instead");
    };
    let response = AdminClient::new(address, crate::admin_client::token(config)?)
        .request("POST", "/reload")
        .map_err(|error| {
            anyhow!(
                "no mq serve answers on admin port {address}: {}",
                error.root_cause()
            )
        })?;
    match response.status {
        200 => crate::print(&format!("{}\n", response.text())),
        // The server's own words: why the reload failed.
        500 => bail!("{}", response.text()),
        status => bail!(
            "admin port {address}: {status} /reload: {}",
            response.text()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_only_a_restart_changes_are_named() {
        let running = Config::default();
        assert!(needs_restart(&running, &running.clone()).is_empty());
        let mut new = running.clone();
        new.smtp.listen = "127.0.0.1:25".parse().unwrap();
        new.queue.data_dir = "/var/spool/mq".into();
        new.delivery.concurrency += 1;
        new.smtp.max_errors = 3;
        new.smtp.auth.max_failures = 3;
        assert_eq!(
            needs_restart(&running, &new),
            [
                "smtp.listen",
                "smtp.auth limits",
                "queue.data_dir",
                "delivery"
            ]
        );
    }

    #[test]
    fn settings_only_a_restart_changes_stay_in_force_until_then() {
        let running = Config::default();
        let mut new = running.clone();
        new.smtp.domains = vec!["example.net".to_owned()];
        new.smtp.listen = "127.0.0.1:25".parse().unwrap();
        new.smtp.max_errors = 3;
        new.engine.retry_budget = 1;
        let in_force = keep_restart_only(&running, new.clone());
        assert!(needs_restart(&running, &in_force).is_empty());
        assert_eq!(in_force.smtp.domains, running.smtp.domains);
        assert_eq!(in_force.smtp.max_errors, 3);
        assert_eq!(in_force.engine.retry_budget, 1);
        // A second reload of the same file still names what waits.
        assert_eq!(
            needs_restart(&in_force, &new),
            ["smtp.listen", "smtp.domains"]
        );
    }
}
