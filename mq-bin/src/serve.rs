//! `mq serve`: the queue, the worker cores, the SMTP server and the admin port, from start to a
//! drained stop on SIGTERM or SIGINT; SIGHUP reloads the configuration (`reload`).

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_signal::{Signal, Signals};
use clap::Args;
use mq_core::admin::{AdminServer, Sources};
use mq_core::delivery::{Delivery, DeliveryStats, Smarthost};
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Queue, QueueError, RabbitQueue};
use mq_core::smtp::{Cidr, Listeners, Server};
use mq_core::{Config, Plan, Runtime};
use smol::stream::StreamExt as _;

use crate::reload::Reloader;
use crate::service::PidFile;

/// `mq serve`'s flags; each overrides its key in the config file.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The SMTP address to listen on (smtp.listen; default 127.0.0.1:2525).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The data directory; the queue lives in DIR/queue (queue.data_dir; default ./mq-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A domain delivered here; repeat for more. Replaces smtp.domains.
    #[arg(long = "domain", value_name = "D", value_parser = parse_domain)]
    domains: Vec<String>,
    /// A client network that may relay, e.g. 192.0.2.0/24; repeat for more. Replaces
    /// smtp.relay_networks.
    #[arg(long = "relay-network", value_name = "CIDR")]
    relay_networks: Vec<Cidr>,
    /// Relay all outbound mail through HOST:PORT (delivery.smarthost).
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_smarthost)]
    smarthost: Option<String>,
}

impl ServeArgs {
    /// Puts the flags given into `config`.
    pub(crate) fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.smtp.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.queue.data_dir.clone_from(dir);
        }
        if !self.domains.is_empty() {
            config.smtp.domains.clone_from(&self.domains);
        }
        if !self.relay_networks.is_empty() {
            config.smtp.relay_networks.clone_from(&self.relay_networks);
        }
        if let Some(smarthost) = &self.smarthost {
            config.delivery.smarthost = Some(Smarthost::new(smarthost.clone()));
        }
    }
}

/// Runs the server until SIGTERM or SIGINT, then lets sessions in progress finish and closes
/// the queue. SIGHUP reloads `config` from `path` with `args` over it.
pub(crate) fn run(
    config: &Config,
    plan: &Plan,
    path: Option<&Path>,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let account = crate::service::account(&config.server)?;
    let signals =
        || Signals::new([Signal::Term, Signal::Int, Signal::Hup]).context("cannot handle signals");
    // First, so that a signal sent as soon as the port answers is already ours to handle; but
    // after a change of user, since they start the reactor's thread.
    let early = if account.is_none() {
        Some(signals()?)
    } else {
        None
    };
    // Written once this server is known to be the only one (it holds the queue's lock, or
    // the SMTP port), while it may still write where root may.
    let pid_file = || {
        let path = config.server.pid_file.as_deref();
        path.map(PidFile::write).transpose()
    };
    let (queue, admin, listeners, pid_file) = match &account {
        // Without a change of user: the queue before the ports, so that a second server on
        // the same data directory stops at its lock. Every port is bound before anything
        // serves: a taken admin port stops mq here, before SMTP clients or deliveries have
        // seen it.
        None => {
            let queue = open_backend(config)?;
            let admin = AdminServer::from_config(&config.admin, &config.queue.data_dir)?;
            (queue, admin, None, pid_file()?)
        }
        // The SMTP port as root, then the user's rights before any thread starts (the
        // queue's writer, the reactor's), so that the queue's files are the user's. The
        // admin port, unprivileged, is bound as the user: it starts the reactor.
        Some(account) => {
            let workers = config.engine.worker_count();
            let listeners = Listeners::bind(config.smtp.listen, workers)?;
            let pid_file = pid_file()?;
            crate::service::become_account(account)?;
            let admin = AdminServer::from_config(&config.admin, &config.queue.data_dir)?;
            (open_backend(config)?, admin, Some(listeners), pid_file)
        }
    };
    // As mq's user, after any change of user: the maildrop is its to list and empty.
    crate::pickup::prepare(config)?;
    let signals = match early {
        Some(signals) => signals,
        None => signals()?,
    };
    crate::check::relay_ca_files(config)?;
    let runtime = Runtime::start(plan, config.engine.worker_count())?;
    let delivery = Delivery::new(
        config.delivery.clone(),
        &config.smtp.hostname,
        &config.smtp.domains,
        config.dns.clone(),
        &config.queue.data_dir,
        Arc::clone(&queue),
    );
    // New mail and flushes wake the scheduler through this handle of the queue.
    let waking = delivery.queue();
    let server = match listeners {
        Some(bound) => Server::start_on(&runtime, config.smtp.clone(), Arc::clone(&waking), bound)?,
        None => Server::start(&runtime, config.smtp.clone(), Arc::clone(&waking))?,
    };
    delivery.listening_on(&[server.local_addr()]);
    if config.delivery.enabled {
        delivery.start(&runtime);
    }
    tracing::info!(
        address = %server.local_addr(),
        data_dir = %config.queue.data_dir.display(),
        workers = runtime.workers(),
        admin = %admin.as_ref().map_or("off".to_owned(), |a| a.local_addr().to_string()),
        "mq serving"
    );
    let reloader = Reloader::new(path, args, config, &runtime, &server);
    let delivering = config.delivery.enabled.then(|| delivery.stats());
    serve_until_signal(
        &reloader,
        &runtime,
        &server,
        waking.as_ref(),
        delivering,
        admin,
        signals,
    )?;
    // Drained already: this joins the worker threads.
    runtime.shutdown();
    // The sessions held the server's share of the queue; with them gone the last handle is
    // ours, and dropping it lets the journal writer finish.
    drop(server);
    drop((waking, delivery));
    drop(queue);
    drop(pid_file);
    tracing::info!("mq stopped");
    Ok(())
}

/// The queue `[queue] backend` names: the embedded one, or the broker's.
fn open_backend(config: &Config) -> anyhow::Result<Arc<dyn Queue>> {
    if !crate::broker::in_use(config) {
        return Ok(open_queue(config)? as Arc<dyn Queue>);
    }
    let rabbit = config.queue.rabbitmq.clone();
    let outbox = rabbit.outbox.clone();
    let queue = RabbitQueue::start(rabbit, &config.smtp.hostname, config.delivery.enabled)
        .context("cannot start the RabbitMQ queue")?;
    // Not required: mq serves without the broker (SMTP answers 451) and connects when it can.
    if !queue.wait_connected(Duration::from_secs(5)) {
        tracing::warn!(
            outbox,
            "the message broker is not reachable yet; mail is refused with 451 until it is"
        );
    }
    Ok(Arc::new(queue))
}

/// The queue in `<data_dir>/queue`, locked for this process alone.
pub(crate) fn open_queue(config: &Config) -> anyhow::Result<Arc<EmbeddedQueue>> {
    let data_dir = &config.queue.data_dir;
    let options = EmbeddedOptions {
        fsync: config.queue.fsync,
        ..EmbeddedOptions::default()
    };
    match EmbeddedQueue::open(&queue_dir(data_dir), options) {
        Ok(queue) => Ok(Arc::new(queue)),
        Err(QueueError::InUse(_)) => bail!(
            "data directory {} is in use by another mq process (is mq serve already running?)",
            data_dir.display()
        ),
        Err(error) => {
            Err(error).with_context(|| format!("cannot open the queue in {}", data_dir.display()))
        }
    }
}

/// Where the queue of `data_dir` lives.
pub(crate) fn queue_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("queue")
}

/// Serves the admin port, if any, on a thread of its own until SIGTERM or SIGINT arrives and
/// the sessions are drained, then stops it: the port answers to the end; SIGHUP reloads
/// meanwhile. A scoped thread, so that the port borrows the runtime, the server's counters and
/// the queue without making them shared.
fn serve_until_signal(
    reloader: &Reloader<'_>,
    runtime: &Runtime,
    server: &Server,
    queue: &dyn Queue,
    delivery: Option<&DeliveryStats>,
    admin: Option<AdminServer>,
    mut signals: Signals,
) -> anyhow::Result<Signal> {
    // Serving from here on: what `mq_start_time_seconds` reports.
    let started = std::time::SystemTime::now();
    let metrics = || runtime.metrics();
    let reload = || reloader.reload_and_log();
    let sources = Sources {
        stats: server.stats(),
        metrics: &metrics,
        queue,
        reload: &reload,
        delivery,
        started: Some(started),
    };
    let stopping = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let pickup = std::thread::Builder::new().name("mq-pickup".into());
        pickup
            .spawn_scoped(scope, || crate::pickup::run(reloader, queue, &stopping))
            .context("cannot start the maildrop pickup")?;
        // Always: a reload may name a users file where the start had none.
        let thread = std::thread::Builder::new().name("mq-users-file".into());
        thread
            .spawn_scoped(scope, || crate::users_watch::watch(reloader, &stopping))
            .context("cannot start the users_file watcher")?;
        let stop = admin.as_ref().map(AdminServer::stop_handle);
        if let Some(admin) = admin {
            let thread = std::thread::Builder::new().name("mq-admin".into());
            thread
                .spawn_scoped(scope, || admin.serve(&sources))
                .context("cannot start the admin thread")?;
        }
        let signal = wait_for_stop(&mut signals, reloader);
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(signal) = &signal {
            tracing::info!(?signal, "draining sessions; a second signal stops at once");
            exit_on_next(signals);
            runtime.drain();
        }
        if let Some(stop) = stop {
            stop.stop();
        }
        signal
    })
}

/// Waits for SIGTERM or SIGINT, reloading at each SIGHUP until then.
fn wait_for_stop(signals: &mut Signals, reloader: &Reloader<'_>) -> anyhow::Result<Signal> {
    loop {
        match wait_for(signals)? {
            Signal::Hup => {
                // Logged either way; a failed reload leaves the server as it was.
                let _ = reloader.reload_and_log();
            }
            signal => return Ok(signal),
        }
    }
}

/// Exits the process at the next SIGTERM or SIGINT, for an operator who will not wait for a
/// slow client to finish its DATA. Nothing acknowledged is lost: a 250 is sent only once the
/// message is on disk.
fn exit_on_next(mut signals: Signals) {
    std::thread::spawn(move || {
        while let Ok(signal) = wait_for(&mut signals) {
            if signal == Signal::Hup {
                tracing::warn!("SIGHUP ignored: mq is stopping");
                continue;
            }
            tracing::warn!(?signal, "second signal: stopping without draining");
            std::process::exit(1);
        }
    });
}

/// Blocks until one of `signals` arrives.
fn wait_for(signals: &mut Signals) -> anyhow::Result<Signal> {
    match smol::block_on(signals.next()) {
        Some(signal) => signal.context("cannot receive signals"),
        None => bail!("the signal stream ended"),
    }
}

/// Checks `HOST:PORT` (`[v6]:PORT` for an IPv6 address) and returns it as given.
/// A domain in its one spelling, as `smtp.domains` is read.
fn parse_domain(text: &str) -> Result<String, String> {
    mq_plugin_api::normalize_domain(text).map_err(|error| error.to_string())
}

fn parse_smarthost(text: &str) -> Result<String, String> {
    let wrong = || format!("expected HOST:PORT, got {text:?}");
    let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        }
    };
    match port.parse::<u16>() {
        Ok(port) if port > 0 && host_ok => Ok(text.to_owned()),
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smarthosts_are_host_and_port() {
        for good in ["relay.example.net:587", "192.0.2.1:25", "[2001:db8::1]:25"] {
            assert_eq!(parse_smarthost(good).as_deref(), Ok(good));
        }
        for bad in [
            "relay.example.net",
            ":25",
            "relay:0",
            "relay:99999",
            "2001:db8::1:25",
            "a b:25",
            "[x]:25",
        ] {
            assert!(parse_smarthost(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_replace_the_config_lists() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let cli = Cli::parse_from([
            "serve",
            "--domain",
            "A.Example.",
            "--domain",
            "b.example",
            "--relay-network",
            "192.0.2.0/24",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/tmp/x",
        ]);
        let mut config = Config::default();
        cli.serve.apply(&mut config);
        assert_eq!(config.smtp.domains, ["a.example", "b.example"]);
        assert_eq!(config.smtp.relay_networks.len(), 1);
        assert_eq!(config.smtp.listen.port(), 0);
        assert_eq!(config.queue.data_dir, Path::new("/tmp/x"));
    }

    #[test]
    fn without_flags_the_config_stays() {
        let args = ServeArgs {
            listen: None,
            data_dir: None,
            domains: Vec::new(),
            relay_networks: Vec::new(),
            smarthost: None,
        };
        let mut config = Config::default();
        args.apply(&mut config);
        assert_eq!(config.smtp.domains, ["localhost"]);
        assert_eq!(config.queue.data_dir, Path::new("mq-data"));
    }
}
