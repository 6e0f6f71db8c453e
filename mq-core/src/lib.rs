//! mq's engine: it runs the plugin chains of MailerQ's model on one smol executor per core.
//!
//! # Layout
//!
//! - `config`: [`Config`], `[engine]` and each plugin's own section; `domains`, the configured
//!   domains read into their one spelling.
//! - `registry`: [`Registry`], the plugins compiled in (collected through inventory), and
//!   [`Plan`], which of them a config enables; `plugin_settings`, [`PluginSettings`]
//!   (`[engine.plugins.NAME]`) over each plugin's own defaults.
//! - `engine`: [`Engine`], one core's plugin instances and the chain of each hook.
//! - `chain`: [`Engine::run`], the chain rules and the guarantees around each call (deadline,
//!   retry budget, caught panics), and the [`Outcome`] of a step.
//! - [`watchdog`]: seeing a plugin block its worker, at one store per poll.
//! - `metrics`: counters per plugin × hook, per core.
//! - `runtime`: [`Runtime`], the worker threads, and [`Worker`], a core's handle;
//!   [`Runtime::reload`] gives every core new plugin instances at a chain boundary.
//! - [`queue`]: the [`Queue`](queue::Queue) trait and the durable [`EmbeddedQueue`](queue::EmbeddedQueue),
//!   a journal on local disk with group commit.
//! - [`dns`]: the stub resolver of the outbound path: MX, A/AAAA, TXT, PTR over UDP and TCP,
//!   cached per core, and [`dns::resolve_mail_route`].
//! - [`smtp`]: the protocol pieces: command parsing, the DATA reader.
//! - [`delivery`]: local delivery into Maildirs, and the DSN bounce for a failed delivery.
//! - [`service`]: `[log]` and `[server]`, how `mq serve` runs as a system service.
//! - [`admin`]: the loopback HTTP port: Prometheus metrics and the queue commands of a running
//!   server.
//! - `fuzzing` (feature `fuzzing`, for the fuzz targets only): the parsers of outside input
//!   that are not public API (journal, DNS responses, server replies, admin requests).
//! - `testkit` (feature `testkit`): plugins and chains through hooks without a network, with
//!   transcripts for insta snapshots.
//!
//! # Example
//!
//! Start the compiled-in plugins on two workers and run a chain on worker 1:
//!
//! ```
//! use mq_core::{Config, Outcome, Registry, Runtime};
//! use mq_plugin_api::{Address, RcptTo};
//!
//! let plan = Registry::linked()?.plan(&Config::default())?;
//! let runtime = Runtime::start(&plan, 2)?;
//! let outcome = runtime.spawn_on(1, |worker| async move {
//!     let mut ctx = worker.context();
//!     let mut rcpt = RcptTo::new(Address::null(), "b@example.net".parse().unwrap(), true);
//!     worker.engine().run(&mut ctx, &mut rcpt).await
//! });
//! assert_eq!(outcome.wait(), Some(Outcome::Proceed));
//! runtime.shutdown();
//! # Ok::<(), mq_core::RegistryError>(())
//! ```

pub mod admin;
mod chain;
mod config;
mod deadline;
pub mod delivery;
pub mod dns;
mod domains;
mod engine;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod lifecycle;
mod logline;
mod metrics;
mod observe;
mod plugin_settings;
pub mod queue;
mod registry;
mod runtime;
pub mod service;
pub mod smtp;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod watchdog;

pub use chain::{Failure, FailureKind, Outcome};
pub use config::{Config, ConfigError, EngineConfig, FailurePolicy, parse_duration};
pub use engine::{Engine, Loaded};
pub use metrics::{HookMetrics, LATENCY_BOUNDS_MICROS, Metrics};
pub use plugin_settings::PluginSettings;
pub use registry::{BUNDLED_PLUGINS, Plan, Registry, RegistryError};
pub use runtime::{JobHandle, Runtime, Spawner, Worker};
