//! Runs plugins through mq's own SMTP session, or through single hooks, and returns transcripts
//! that read like the SMTP dialogue for insta snapshots.
//!
//! - [`session`] builds a [`Session`]: a scripted SMTP client talking to mq's SMTP session, the
//!   one `mq serve` runs, over an in-memory connection. Its replies, state rules and hook
//!   chains are the server's own; what it queued is in [`Transcript::queued`].
//! - [`server`] builds plugins once and [`start`](Harness::start)s a [`Server`]: any number of
//!   sessions against the same instances, and [`Server::advance`] to let time pass between
//!   them. Time is virtual everywhere in the testkit: `Context::now` reads the test's clock,
//!   and a `ctx.sleep` fires without the test waiting (the transcript shows the wait).
//! - [`replay`] runs a session recorded by `[smtp] record = "DIR"` again, and shows where the
//!   replies now differ from the recorded ones.
//! - [`chain`] builds a [`Harness`]: plugins run through one hook at a time, as the engine runs
//!   them (same chain rules, same guards).
//! - [`sink`] starts a [`Sink`](sink::Sink): a scripted SMTP server on loopback that records
//!   what a client sent, for testing mq's outbound client over real sockets.
//! - [`unused_port`] picks a port for a server whose port a test must write down before it
//!   starts (an admin port in a config file), where no connection opened meanwhile can take it.
//!
//! A transcript lists each plugin called, its control, the reply it set and the changes it made
//! to the event (`-` and `+` lines), so a reviewer sees behaviour change in a snapshot's diff.
//! The greeting is shown when a plugin runs at connect, a multi-line reply (EHLO's) by its first
//! line, a message by its size, credentials not at all, and queue ids as `QUEUE1`, `QUEUE2`, ...
//!
//! # Examples
//!
//! ```
//! use mq_core::testkit;
//! use mq_plugin_api::{hooks, Context, Control, Data, Plugin};
//!
//! struct Stamp;
//!
//! #[hooks]
//! impl Plugin for Stamp {
//!     async fn smtp_in_data(&self, ctx: &mut Context, data: &mut Data) -> Control {
//!         data.message.headers_mut().prepend("X-Core", ctx.core().to_string());
//!         Control::Continue
//!     }
//! }
//!
//! let transcript = testkit::session()
//!     .plugin_named("stamp", Stamp)
//!     .relay_network()
//!     .ehlo("client.example")
//!     .mail_from("a@example.org")
//!     .rcpt_to("b@example.net")
//!     .data("Subject: hi\r\n\r\nbody\r\n")
//!     .run();
//! assert!(transcript.to_string().contains("+ X-Core: 0"));
//! assert_eq!(transcript.queued().len(), 1);
//! ```

mod clock;
mod diff;
mod duplex;
mod port;
mod queue;
mod replay;
mod server;
mod session;
pub mod sink;
mod transcript;

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use mq_plugin_api::{Event, Host, Named, Plugin, PluginConfig, PluginHooks, Registration};
use smol::LocalExecutor;

use crate::chain::Outcome;
use crate::config::{EngineConfig, FailurePolicy};
use crate::engine::{Engine, Loaded};
use crate::plugin_settings::{PluginSettings, Settings, refuse_moved_keys};
use crate::watchdog::Beat;

pub(crate) use clock::VirtualClock;
pub use port::unused_port;
pub use replay::{Replay, replay};
pub use server::Server;
pub use session::Session;
pub(crate) use transcript::Live;
pub use transcript::{Queued, Transcript};

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugins", &self.plugins)
            .field("local_domains", &self.local_domains)
            .field("dns", &self.dns.is_some())
            .finish_non_exhaustive()
    }
}

/// A harness to run plugins through single hooks.
///
/// # Examples
///
/// ```
/// use mq_core::{Outcome, testkit};
/// use mq_plugin_api::MailFrom;
///
/// let mut event = MailFrom::new("a@example.org".parse().unwrap());
/// let (transcript, outcome) = testkit::chain().run(&mut event);
/// assert_eq!(outcome, Outcome::Proceed);
/// assert_eq!(transcript.to_string(), "=> proceed\n");
/// ```
pub fn chain() -> Harness {
    Harness::default()
}

/// A scripted SMTP dialogue with mq's own SMTP session, through the plugins' hooks.
///
/// # Examples
///
/// ```
/// let transcript = mq_core::testkit::session()
///     .ehlo("client.example")
///     .mail_from("a@example.org")
///     .run();
/// assert_eq!(transcript.lines()[3], "S: 250 2.1.0 Ok");
/// ```
pub fn session() -> Session {
    Session::new(Harness::default())
}

/// Plugins for a [`Server`]: add them, then [`start`](Harness::start) it, and run sessions
/// against the same plugin instances with time passing in between.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let server = mq_core::testkit::server().start();
/// let first = server.session().ehlo("client.example").run();
/// server.advance(Duration::from_secs(3600));
/// let second = server.session().ehlo("client.example").run();
/// assert_eq!(first, second);
/// ```
pub fn server() -> Harness {
    Harness::default()
}

/// Plugins and engine settings for a test. Plugins run on core 0, by order, then in name order.
#[derive(Default)]
pub struct Harness {
    plugins: Vec<Loaded>,
    config: EngineConfig,
    local_domains: Vec<String>,
    /// The server's name (default `mq.test`).
    hostname: Option<String>,
    /// The plugins of a configuration, built as `mq serve` builds them.
    plan: Option<crate::Plan>,
    /// `[smtp]` settings of a configuration.
    smtp: Option<crate::smtp::SmtpConfig>,
    dns: Option<Rc<dyn mq_plugin_api::Dns>>,
}

impl Harness {
    /// Adds a plugin instance under its registered name, with its registration's defaults for
    /// the engine's settings (its order, its `on_error`) over the harness's.
    ///
    /// # Examples
    ///
    /// ```standalone_crate
    /// use mq_plugin_api::{Context, Control, MailFrom, Plugin, hooks, plugin};
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct NoConfig {}
    ///
    /// struct Pass;
    ///
    /// #[plugin(name = "pass")]
    /// impl Pass {
    ///     fn new(_config: &NoConfig) -> Self {
    ///         Pass
    ///     }
    /// }
    ///
    /// #[hooks]
    /// impl Plugin for Pass {
    ///     async fn smtp_in_mail_from(&self, _ctx: &mut Context, _mail: &mut MailFrom) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let mut event = MailFrom::new("a@example.org".parse().unwrap());
    /// let (transcript, _) = mq_core::testkit::chain().plugin(Pass).run(&mut event);
    /// assert_eq!(transcript.lines()[0], "   smtp_in_mail_from  pass → Continue");
    /// ```
    pub fn plugin<P: Plugin + PluginHooks + Named>(mut self, plugin: P) -> Harness {
        let defaults = Registration::all()
            .find(|r| r.name() == P::NAME)
            .map_or(mq_plugin_api::Defaults::NONE, Registration::defaults);
        let settings = Settings::resolve(defaults, None, &self.config);
        self.plugins.push(Loaded {
            name: P::NAME,
            hooks: P::HOOKS,
            observes: P::OBSERVES,
            timeout: settings.timeout,
            policy: settings.policy,
            order: settings.order,
            plugin: Box::new(plugin),
        });
        self
    }

    /// Adds a plugin instance under `name`, for plugins that are not registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::{Context, Control, MailFrom, Plugin, hooks};
    ///
    /// struct Pass;
    ///
    /// #[hooks]
    /// impl Plugin for Pass {
    ///     async fn smtp_in_mail_from(&self, _ctx: &mut Context, _mail: &mut MailFrom) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let mut event = MailFrom::new("a@example.org".parse().unwrap());
    /// let (transcript, _) = mq_core::testkit::chain().plugin_named("pass", Pass).run(&mut event);
    /// assert_eq!(transcript.lines()[0], "   smtp_in_mail_from  pass → Continue");
    /// ```
    pub fn plugin_named<P: Plugin + PluginHooks>(
        mut self,
        name: &'static str,
        plugin: P,
    ) -> Harness {
        let (timeout, policy) = (self.config.timeout, self.config.on_error);
        self.plugins.push(Loaded {
            name,
            hooks: P::HOOKS,
            observes: P::OBSERVES,
            timeout,
            policy,
            order: mq_plugin_api::Order::default(),
            plugin: Box::new(plugin),
        });
        self
    }

    /// Adds the registered plugin `name`, built by its factory from `config`, the TOML of its
    /// `[plugins.NAME]` section, as `mq serve` builds it, under the plugin's own defaults for
    /// the engine's settings (its order, its `on_error`).
    ///
    /// # Panics
    ///
    /// If no plugin of that name is linked into the test binary, or the config is refused (an
    /// engine setting such as `timeout` in it is): a test harness reports a broken test by
    /// panicking.
    ///
    /// # Examples
    ///
    /// ```standalone_crate
    /// use mq_plugin_api::{Context, Control, MailFrom, Plugin, hooks, plugin};
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct TagConfig {
    ///     tag: String,
    /// }
    ///
    /// struct Tag(String);
    ///
    /// #[plugin(name = "tag")]
    /// impl Tag {
    ///     fn new(config: &TagConfig) -> Self {
    ///         Tag(config.tag.clone())
    ///     }
    /// }
    ///
    /// #[hooks]
    /// impl Plugin for Tag {
    ///     async fn smtp_in_mail_from(&self, _ctx: &mut Context, mail: &mut MailFrom) -> Control {
    ///         mail.params.push((self.0.clone(), None));
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let mut event = MailFrom::new("a@example.org".parse().unwrap());
    /// let (_, _) = mq_core::testkit::chain()
    ///     .registered("tag", r#"tag = "X-TAG""#)
    ///     .run(&mut event);
    /// assert_eq!(event.params, [("X-TAG".to_owned(), None)]);
    /// ```
    pub fn registered(self, name: &str, config: &str) -> Harness {
        self.registered_with(name, "", config)
    }

    /// Adds the registered plugin `name` as [`Harness::registered`] does, with `settings`, the
    /// TOML of its `[engine.plugins.NAME]` table (`enabled`, `timeout`, `on_error`, `order`),
    /// over the plugin's defaults. `enabled = false` adds nothing, as the registry does.
    ///
    /// # Panics
    ///
    /// As [`Harness::registered`], and when `settings` is refused.
    ///
    /// # Examples
    ///
    /// ```standalone_crate
    /// use mq_plugin_api::{Context, Control, MailFrom, Plugin, hooks, plugin};
    ///
    /// struct Pass;
    ///
    /// #[plugin(name = "pass")]
    /// impl Pass {
    ///     fn new() -> Self {
    ///         Pass
    ///     }
    /// }
    ///
    /// #[hooks]
    /// impl Plugin for Pass {
    ///     async fn smtp_in_mail_from(&self, _ctx: &mut Context, _mail: &mut MailFrom) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let mut event = MailFrom::new("a@example.org".parse().unwrap());
    /// let (transcript, _) = mq_core::testkit::chain()
    ///     .registered_with("pass", "enabled = false", "")
    ///     .run(&mut event);
    /// assert!(transcript.lines().iter().all(|line| !line.contains("pass")));
    /// ```
    pub fn registered_with(mut self, name: &str, settings: &str, config: &str) -> Harness {
        let registration = Registration::all()
            .find(|r| r.name() == name)
            .unwrap_or_else(|| {
                panic!("no plugin {name:?} is linked into this test binary; mention its crate")
            });
        let table: toml::Table = toml::from_str(config).expect("the plugin's config is TOML");
        if let Err(error) = refuse_moved_keys(name, &table) {
            panic!("{error}");
        }
        let settings: PluginSettings =
            toml::from_str(settings).expect("the engine settings are valid");
        let settings = Settings::resolve(registration.defaults(), Some(&settings), &self.config);
        if !settings.enabled {
            return self;
        }
        let plugin = registration
            .build(&PluginConfig::new(name, 0, table))
            .expect("the plugin accepts its config");
        let (name, hooks) = (registration.name(), registration.hooks());
        self.plugins.push(Loaded {
            name,
            hooks,
            observes: registration.observers(),
            timeout: settings.timeout,
            policy: settings.policy,
            order: settings.order,
            plugin,
        });
        self
    }

    /// Runs the plugins `plan` enables, with their settings, built as `mq serve` builds them on
    /// each core; plugins added one by one are not run beside them. `mq replay` replays a
    /// recorded session this way, with the configured build.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::{Config, Registry};
    ///
    /// let plan = Registry::linked()?.plan(&Config::default())?;
    /// let transcript = mq_core::testkit::server().plan(&plan).start().session().noop().run();
    /// assert_eq!(transcript.lines(), ["C: NOOP", "S: 250 2.0.0 Ok"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plan(mut self, plan: &crate::Plan) -> Harness {
        self.plan = Some(plan.clone());
        self
    }

    /// Runs the sessions under these `[smtp]` settings (limits, timeouts, AUTH users, the name
    /// and local domains) instead of the testkit's: name `mq.test`, local domain `localhost`, no
    /// relay networks. The listening address, TLS files and `record` are not used: sessions
    /// run in memory, STARTTLS without a handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut smtp = mq_core::smtp::SmtpConfig::default();
    /// smtp.hostname = "mx.example".to_owned();
    /// let transcript = mq_core::testkit::server().smtp(&smtp).start().session().helo("c").run();
    /// assert_eq!(transcript.lines()[1], "S: 250 mx.example");
    /// ```
    pub fn smtp(mut self, config: &crate::smtp::SmtpConfig) -> Harness {
        self.smtp = Some(config.clone());
        self
    }

    /// The `[smtp]` settings the sessions start from.
    fn smtp_settings(&self) -> crate::smtp::SmtpConfig {
        let mut config = self
            .smtp
            .clone()
            .unwrap_or_else(|| crate::smtp::SmtpConfig {
                hostname: server::HOSTNAME.to_owned(),
                relay_networks: Vec::new(),
                connection_limit_exemptions: Some(Vec::new()),
                ..crate::smtp::SmtpConfig::default()
            });
        if let Some(hostname) = &self.hostname {
            hostname.clone_into(&mut config.hostname);
        }
        config.record = None;
        config
    }

    /// Sets the deadline of every plugin added after this call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let harness = mq_core::testkit::chain().timeout(Duration::from_millis(50));
    /// # let _ = harness;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Harness {
        self.config.timeout = timeout;
        self
    }

    /// Sets the policy for failed calls of every plugin added after this call.
    ///
    /// # Examples
    ///
    /// ```
    /// let harness = mq_core::testkit::chain().on_error(mq_core::FailurePolicy::Skip);
    /// # let _ = harness;
    /// ```
    pub fn on_error(mut self, policy: FailurePolicy) -> Harness {
        self.config.on_error = policy;
        self
    }

    /// Gives the plugins a resolver for `Context::dns`, such as a
    /// [`Resolver`](crate::dns::Resolver) pointed at a [`TestServer`](crate::dns::TestServer).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use mq_core::dns::{DnsConfig, Resolver, TestServer};
    ///
    /// let zone = TestServer::start();
    /// let mut config = DnsConfig::default();
    /// config.nameservers = vec![zone.address()];
    /// let resolver = Resolver::new(&config).unwrap();
    /// let harness = mq_core::testkit::chain().dns(Rc::new(resolver));
    /// # let _ = harness;
    /// ```
    pub fn dns(mut self, dns: Rc<dyn mq_plugin_api::Dns>) -> Harness {
        self.dns = Some(dns);
        self
    }

    /// Sets how often a chain may restart.
    ///
    /// # Examples
    ///
    /// ```
    /// let harness = mq_core::testkit::chain().retry_budget(0);
    /// # let _ = harness;
    /// ```
    pub fn retry_budget(mut self, restarts: u32) -> Harness {
        self.config.retry_budget = restarts;
        self
    }

    /// Adds a domain whose recipients are local (`localhost` always is), as `[smtp] domains`
    /// does.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::server()
    ///     .local_domain("example.org")
    ///     .start()
    ///     .session()
    ///     .ehlo("client.example")
    ///     .mail_from("a@example.net")
    ///     .rcpt_to("jane@example.org")
    ///     .run();
    /// assert_eq!(transcript.lines().last().unwrap(), "S: 250 2.1.5 Ok");
    /// ```
    pub fn local_domain(mut self, domain: &str) -> Harness {
        self.local_domains.push(domain.to_owned());
        self
    }

    /// Builds the engine once and starts a [`Server`] on it: every session then runs against
    /// these plugin instances, on one virtual clock.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    ///
    /// # Examples
    ///
    /// ```
    /// let server = mq_core::testkit::server().start();
    /// let transcript = server.session().helo("client.example").run();
    /// assert_eq!(transcript.lines(), ["C: HELO client.example", "S: 250 mq.test"]);
    /// ```
    pub fn start(self) -> Server {
        Server::new(self)
    }

    /// Runs `event` through its hook's chain and returns the transcript and the outcome; the
    /// event is left as the plugins left it. Time is virtual, as in a [`Server`]: a plugin's
    /// `ctx.sleep` passes without the test waiting.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::{Address, Data, Envelope, Message};
    ///
    /// let envelope = Envelope { sender: Address::null(), recipients: vec![] };
    /// let mut data = Data::new(envelope, Message::parse(b"Subject: x\r\n\r\n"));
    /// let (transcript, outcome) = mq_core::testkit::chain().run(&mut data);
    /// assert_eq!(outcome, mq_core::Outcome::Proceed);
    /// # let _ = transcript;
    /// ```
    pub fn run<E: Event>(self, event: &mut E) -> (Transcript, Outcome) {
        self.run_on(&Rc::new(LocalExecutor::new()), event)
    }

    /// Runs `event` through its hook's chain as [`run`](Harness::run) does, on `executor`
    /// instead of a fresh one: the caller keeps it, as a worker core keeps its executor between
    /// events, so the tasks the plugins spawned (a sender, a flush) outlive the run and go on
    /// when the caller runs the executor again. The plugins' `start` runs before the chain and
    /// their `stop` after it; the plugins themselves are dropped at the end.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    pub fn run_on<E: Event>(
        mut self,
        executor: &Rc<LocalExecutor<'static>>,
        event: &mut E,
    ) -> (Transcript, Outcome) {
        let engine = self.engine();
        let clock = VirtualClock::new();
        let mut host = Host::new(0, Rc::clone(executor));
        if let Some(dns) = self.dns {
            host.set_dns(dns);
        }
        host.set_clock(Rc::new(clock.clone()));
        // The plugins' `start` and `stop` around the chain, as a worker core calls them.
        let mut lifecycle = Host::new(0, Rc::clone(executor));
        lifecycle.set_clock(Rc::new(clock.clone()));
        let live = Live::new(clock.clone());
        let outcome = drive(executor, &clock, async {
            crate::lifecycle::start(&engine, &mut lifecycle).await;
            let outcome = live.run(&engine, host.context(), event).await;
            crate::lifecycle::stop(&engine, &mut lifecycle).await;
            outcome
        });
        let mut transcript = live.take();
        transcript.outcome(&outcome);
        (transcript, outcome)
    }

    /// The engine of these plugins, on core 0.
    fn engine(&mut self) -> Engine {
        if let Some(plan) = &self.plan {
            return plan
                .build_engine(0, Beat::unwatched())
                .expect("the configured plugins build");
        }
        let plugins = std::mem::take(&mut self.plugins);
        Engine::new(0, &self.config, plugins, Beat::unwatched()).expect("plugin names are unique")
    }
}

/// Runs `future` to its end with the tasks of `executor` beside it, on the virtual `clock`: when
/// nothing else can run and a plugin call waits on a timer of its own, the clock moves to the
/// next timer instead of the test waiting.
fn drive<T>(
    executor: &LocalExecutor<'static>,
    clock: &VirtualClock,
    future: impl Future<Output = T>,
) -> T {
    let mut future = pin!(future);
    smol::block_on(async {
        loop {
            let step = smol::future::or(async { Some(future.as_mut().await) }, async {
                while executor.try_tick() {
                    // Lets `future` run too if what ran woke it.
                    smol::future::yield_now().await;
                }
                if !clock.move_to_waited_timer() {
                    executor.tick().await;
                }
                None
            });
            if let Some(output) = step.await {
                return output;
            }
        }
    })
}
