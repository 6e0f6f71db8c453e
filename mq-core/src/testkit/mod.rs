//! Runs plugins and chains through hooks without a network, and returns transcripts that read
//! like the SMTP dialogue for insta snapshots.
//!
//! - [`chain`] builds a [`Harness`]: plugins run through one hook at a time, as the engine runs
//!   them (same chain rules, same guards).
//! - [`session`] builds a [`Session`]: a scripted SMTP dialogue, each command running its hook's
//!   chain, answered as mq's server answers (Postfix's replies).
//! - [`sink`] starts a [`Sink`](sink::Sink): a scripted SMTP server on loopback that records
//!   what a client sent, for testing the outbound client over real sockets.
//!
//! A transcript lists each plugin called, its control, the reply it set and the changes it made
//! to the event (`-` and `+` lines), so a reviewer sees behaviour change in a snapshot's diff.
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
//!     .ehlo("client.example")
//!     .mail_from("a@example.org")
//!     .rcpt_to("b@example.net")
//!     .data("Subject: hi\r\n\r\nbody\r\n")
//!     .run();
//! assert!(transcript.to_string().contains("+ X-Core: 0"));
//! assert_eq!(transcript.queued().len(), 1);
//! ```

mod diff;
mod session;
pub mod sink;
mod transcript;

use std::rc::Rc;
use std::time::Duration;

use mq_plugin_api::{Context, Event, Named, Plugin, PluginConfig, PluginHooks, Registration};
use smol::LocalExecutor;

use crate::chain::Outcome;
use crate::config::{EngineConfig, FailurePolicy};
use crate::engine::{Engine, Loaded};
use crate::registry::Settings;
use crate::watchdog::Beat;

pub use session::Session;
pub use transcript::{Queued, Transcript};

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("plugins", &self.plugins)
            .field("dns", &self.dns.is_some())
            .finish_non_exhaustive()
    }
}

/// A harness to run plugins through single hooks.
pub fn chain() -> Harness {
    Harness::default()
}

/// A scripted SMTP dialogue through the plugins' hooks.
pub fn session() -> Session {
    Session::new(Harness::default())
}

/// Plugins and engine settings for a test. Plugins run on core 0, in name order.
#[derive(Default)]
pub struct Harness {
    plugins: Vec<Loaded>,
    config: EngineConfig,
    dns: Option<Rc<dyn mq_plugin_api::Dns>>,
}

impl Harness {
    /// Adds a plugin instance under its registered name.
    pub fn plugin<P: Plugin + PluginHooks + Named>(self, plugin: P) -> Harness {
        self.plugin_named(P::NAME, plugin)
    }

    /// Adds a plugin instance under `name`, for plugins that are not registered.
    pub fn plugin_named<P: Plugin + PluginHooks>(
        mut self,
        name: &'static str,
        plugin: P,
    ) -> Harness {
        let (timeout, policy) = (self.config.timeout, self.config.on_error);
        self.plugins.push(Loaded {
            name,
            hooks: P::HOOKS,
            timeout,
            policy,
            plugin: Box::new(plugin),
        });
        self
    }

    /// Adds the registered plugin `name`, built by its factory from `config`, the TOML of its
    /// `[plugins.NAME]` section (engine keys such as `timeout` included). A section with
    /// `enabled = false` adds nothing, as the registry does.
    ///
    /// # Panics
    ///
    /// If no plugin of that name is linked into the test binary, or the config is refused: a
    /// test harness reports a broken test by panicking.
    pub fn registered(mut self, name: &str, config: &str) -> Harness {
        let registration = Registration::all()
            .find(|r| r.name() == name)
            .unwrap_or_else(|| {
                panic!("no plugin {name:?} is linked into this test binary; mention its crate")
            });
        let mut table: toml::Table = toml::from_str(config).expect("the plugin's config is TOML");
        let settings =
            Settings::take(name, &mut table, &self.config).expect("the engine keys are valid");
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
            timeout: settings.timeout,
            policy: settings.policy,
            plugin,
        });
        self
    }

    /// Sets the deadline of every plugin added after this call.
    pub fn timeout(mut self, timeout: Duration) -> Harness {
        self.config.timeout = timeout;
        self
    }

    /// Sets the policy for failed calls of every plugin added after this call.
    pub fn on_error(mut self, policy: FailurePolicy) -> Harness {
        self.config.on_error = policy;
        self
    }

    /// Gives the plugins a resolver for `Context::dns`, such as a
    /// [`Resolver`](crate::dns::Resolver) pointed at a [`TestServer`](crate::dns::TestServer).
    pub fn dns(mut self, dns: Rc<dyn mq_plugin_api::Dns>) -> Harness {
        self.dns = Some(dns);
        self
    }

    /// Sets how often a chain may restart.
    pub fn retry_budget(mut self, restarts: u32) -> Harness {
        self.config.retry_budget = restarts;
        self
    }

    /// Runs `event` through its hook's chain and returns the transcript and the outcome; the
    /// event is left as the plugins left it.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    pub fn run<E: Event>(self, event: &mut E) -> (Transcript, Outcome) {
        self.run_on(&Rc::new(LocalExecutor::new()), event)
    }

    /// Runs `event` through its hook's chain as [`run`](Harness::run) does, on `executor`
    /// instead of a fresh one: the caller keeps it, as a worker core keeps its executor between
    /// events, so the tasks the plugins spawned (a sender, a flush) outlive the run and go on
    /// when the caller runs the executor again. The plugins themselves are dropped at the end.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    pub fn run_on<E: Event>(
        self,
        executor: &Rc<LocalExecutor<'static>>,
        event: &mut E,
    ) -> (Transcript, Outcome) {
        let mut transcript = Transcript::default();
        let outcome = self.block_on_with(executor, async |engine, ctx| {
            transcript.run(engine, ctx, event).await
        });
        transcript.outcome(&outcome);
        (transcript, outcome)
    }

    /// Builds the engine on a fresh core-0 executor and runs `body` to completion on it.
    fn block_on<T>(self, body: impl AsyncFnOnce(&Engine, &mut Context) -> T) -> T {
        self.block_on_with(&Rc::new(LocalExecutor::new()), body)
    }

    /// Builds the engine on core 0 of `executor` and runs `body` to completion on it.
    fn block_on_with<T>(
        self,
        executor: &Rc<LocalExecutor<'static>>,
        body: impl AsyncFnOnce(&Engine, &mut Context) -> T,
    ) -> T {
        let engine = Engine::new(0, &self.config, self.plugins, Beat::unwatched())
            .expect("plugin names are unique");
        let mut ctx = Context::new(0, Rc::clone(executor));
        if let Some(dns) = self.dns {
            ctx.set_dns(dns);
        }
        smol::block_on(executor.run(body(&engine, &mut ctx)))
    }
}
