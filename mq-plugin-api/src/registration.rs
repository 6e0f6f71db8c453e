//! How plugins make themselves known: a registration per plugin, collected by inventory.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::de::DeserializeOwned;

use crate::metrics::{Counter, Declaration, Gauge, Histogram, MetricKind, MetricRegistry};
use crate::{Defaults, HookSet, Plugin};

/// A plugin compiled into this binary: its name, its hooks, its defaults for the engine's
/// settings and its factory.
///
/// [`#[plugin]`](crate::plugin) submits one through `inventory`; the engine reads them all with
/// [`Registration::all`]. A plugin crate is only linked into a binary that mentions it (`use
/// my_plugin as _;`, or `extern crate my_plugin;`): a `[dependencies]` line alone is not enough.
pub struct Registration {
    name: &'static str,
    hooks: HookSet,
    /// The hooks it observes (its `#[observe]` methods).
    observes: HookSet,
    module: &'static str,
    factory: Factory,
    defaults: Defaults,
}

/// Builds a plugin instance from its config section; called once per worker core.
pub type Factory = fn(&PluginConfig) -> Result<Box<dyn Plugin>, ConfigError>;

inventory::collect!(Registration);

impl Registration {
    /// Not public API: [`#[plugin]`](crate::plugin) writes this.
    #[doc(hidden)]
    pub const fn __new(
        name: &'static str,
        hooks: HookSet,
        module: &'static str,
        factory: Factory,
    ) -> Self {
        Registration {
            name,
            hooks,
            observes: HookSet::EMPTY,
            module,
            factory,
            defaults: Defaults::NONE,
        }
    }

    /// Not public API: [`#[plugin]`](crate::plugin) writes this when it is given defaults.
    #[doc(hidden)]
    #[must_use]
    pub const fn __with_defaults(mut self, defaults: Defaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// Not public API: [`#[plugin]`](crate::plugin) writes this, with the hooks the plugin's
    /// `#[observe]` methods observe.
    #[doc(hidden)]
    #[must_use]
    pub const fn __with_observers(mut self, observes: HookSet) -> Self {
        self.observes = observes;
        self
    }

    /// Every plugin registered in this binary, in no particular order.
    pub fn all() -> impl Iterator<Item = &'static Registration> {
        inventory::iter::<Registration>.into_iter()
    }

    /// The plugin's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The hooks the plugin implements.
    pub fn hooks(&self) -> HookSet {
        self.hooks
    }

    /// The plugin's own defaults for the engine's settings (`#[plugin(on_error = .., order =
    /// ..)]`); `[engine.plugins.NAME]` overrides them.
    pub fn defaults(&self) -> Defaults {
        self.defaults
    }

    /// The hooks the plugin observes: its `#[observe]` methods, which run beside each other
    /// after the chain and cannot change the event.
    pub fn observers(&self) -> HookSet {
        self.observes
    }

    /// The module that registered it, to tell two plugins of one name apart.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// Builds an instance for one worker core.
    ///
    /// # Errors
    ///
    /// The plugin's config section does not fit its config type, or its factory refused it.
    pub fn build(&self, config: &PluginConfig) -> Result<Box<dyn Plugin>, ConfigError> {
        (self.factory)(config)
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("hooks", &self.hooks)
            .field("observes", &self.observes)
            .field("module", &self.module)
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

/// A plugin's own config section (`[plugins.NAME]`, the plugin's alone: the engine's settings
/// for it are in `[engine.plugins.NAME]`) and the core its instance is for.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::PluginConfig;
///
/// #[derive(serde::Deserialize)]
/// struct Options { header: String }
///
/// let table = toml::from_str("header = \"X-Core\"").unwrap();
/// let config = PluginConfig::new("stamp", 0, table);
/// assert_eq!(config.parse::<Options>().unwrap().header, "X-Core");
/// ```
#[derive(Debug, Clone)]
pub struct PluginConfig {
    name: String,
    core: usize,
    table: toml::Table,
    shared: SharedState,
    metrics: MetricRegistry,
}

/// State one plugin shares across its instances on every core: [`PluginConfig::shared`].
/// The engine makes one per plugin and builds each core's config from it with
/// [`SharedState::config`]; a config's state is fixed when it is built.
#[derive(Clone, Default)]
pub struct SharedState(Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>);

impl SharedState {
    /// The config of plugin `name`'s instance on worker `core`, with section `table`, sharing
    /// this state with every other config built from it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use mq_plugin_api::SharedState;
    ///
    /// let shared = SharedState::default();
    /// let core0 = shared.config("limits", 0, toml::Table::new());
    /// let core1 = shared.config("limits", 1, toml::Table::new());
    /// core0.shared(|| AtomicU64::new(0)).fetch_add(1, Ordering::Relaxed);
    /// assert_eq!(core1.shared(|| AtomicU64::new(0)).load(Ordering::Relaxed), 1);
    /// ```
    pub fn config(&self, name: impl Into<String>, core: usize, table: toml::Table) -> PluginConfig {
        PluginConfig {
            name: name.into(),
            core,
            table,
            shared: self.clone(),
            metrics: MetricRegistry::default(),
        }
    }
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedState")
    }
}

impl PluginConfig {
    /// The section `table` of plugin `name`, for the instance on worker `core`, sharing state
    /// with no other instance (see [`SharedState::config`]).
    pub fn new(name: impl Into<String>, core: usize, table: toml::Table) -> PluginConfig {
        SharedState::default().config(name, core, table)
    }

    /// This config with `metrics` as where the plugin's declared metrics live: one registry
    /// for every plugin on every core, kept across reloads. Engines call this.
    #[must_use]
    pub fn with_metrics(mut self, metrics: MetricRegistry) -> PluginConfig {
        self.metrics = metrics;
        self
    }

    /// Declares a counter of this plugin: `name`, a `help` line and its `labels` (names). Every
    /// core's factory gets the same series; see [`metrics`](crate::metrics) for how it shows
    /// on `/metrics` and the rules for names.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::{Counter, PluginConfig, hooks, plugin, Plugin, Registration};
    ///
    /// struct Refusals { refused: Counter }
    ///
    /// #[plugin(name = "refusals")]
    /// impl Refusals {
    ///     fn new(config: &PluginConfig) -> Self {
    ///         Refusals { refused: config.counter("refused", "Commands refused.", &["limit"]) }
    ///     }
    /// }
    ///
    /// #[hooks]
    /// impl Plugin for Refusals {}
    ///
    /// let config = PluginConfig::new("refusals", 0, toml::Table::new());
    /// let counter = config.counter("refused", "Commands refused.", &["limit"]);
    /// let registration = Registration::all().find(|r| r.name() == "refusals").unwrap();
    /// registration.build(&config).unwrap();
    /// counter.inc(&["per_ip"]);
    /// assert_eq!(counter.get(&["per_ip"]), 1);
    /// ```
    pub fn counter(&self, name: &str, help: &str, labels: &[&str]) -> Counter {
        Counter::new(self.declare(name, help, MetricKind::Counter, labels, &[]))
    }

    /// Declares a gauge of this plugin, as [`counter`](PluginConfig::counter) does a counter.
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Gauge {
        Gauge::new(self.declare(name, help, MetricKind::Gauge, labels, &[]))
    }

    /// Declares a histogram of this plugin with the upper `buckets` bounds (ascending; a last
    /// bucket takes the rest), as [`counter`](PluginConfig::counter) does a counter.
    pub fn histogram(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> Histogram {
        Histogram::new(self.declare(name, help, MetricKind::Histogram, labels, buckets))
    }

    fn declare(
        &self,
        name: &str,
        help: &str,
        kind: MetricKind,
        labels: &[&str],
        buckets: &[f64],
    ) -> std::sync::Arc<crate::metrics::Family> {
        self.metrics.declare(&Declaration {
            plugin: &self.name,
            name,
            help,
            kind,
            labels,
            buckets,
        })
    }

    /// A value of type `T` shared by the plugin's instances on every core: the first factory
    /// to ask makes it with `init`, the others get the same `Arc`. For counters and caches that
    /// must hold across cores (a rate limit, a connection pool); keep per-core state in the
    /// plugin itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use mq_plugin_api::SharedState;
    ///
    /// let shared = SharedState::default();
    /// let core0 = shared.config("limits", 0, toml::Table::new());
    /// let core1 = shared.config("limits", 1, toml::Table::new());
    /// core0.shared(|| AtomicU64::new(0)).fetch_add(1, Ordering::Relaxed);
    /// assert_eq!(core1.shared(|| AtomicU64::new(0)).load(Ordering::Relaxed), 1);
    /// ```
    ///
    /// A plugin that wants both its typed section and the shared state takes both in `new`:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::AtomicU64;
    /// use mq_plugin_api::{hooks, plugin, Plugin, PluginConfig, Registration};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Limits { rate: u64 }
    ///
    /// struct Limiter { rate: u64, used: Arc<AtomicU64> }
    ///
    /// #[plugin(name = "limiter")]
    /// impl Limiter {
    ///     fn new(limits: &Limits, plugin: &PluginConfig) -> Self {
    ///         Limiter { rate: limits.rate, used: plugin.shared(|| AtomicU64::new(0)) }
    ///     }
    /// }
    ///
    /// #[hooks]
    /// impl Plugin for Limiter {}
    ///
    /// let registration = Registration::all().find(|r| r.name() == "limiter").unwrap();
    /// let section = toml::from_str("rate = 5").unwrap();
    /// assert!(registration.build(&PluginConfig::new("limiter", 0, section)).is_ok());
    /// ```
    pub fn shared<T: Any + Send + Sync>(&self, init: impl FnOnce() -> T) -> Arc<T> {
        let mut map = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        let value = map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(init()));
        match Arc::clone(value).downcast::<T>() {
            Ok(value) => value,
            // Entries are keyed by their own type's TypeId, so this arm is never taken.
            Err(_) => unreachable!("an entry keyed by a type holds that type"),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The worker core the instance is for.
    pub fn core(&self) -> usize {
        self.core
    }

    /// The raw table.
    pub fn table(&self) -> &toml::Table {
        &self.table
    }

    /// The table as the plugin's config type; an absent section parses as an empty table.
    ///
    /// # Errors
    ///
    /// A key is missing, of the wrong type, or unknown to a type that denies unknown fields.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::Value::Table(self.table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::new(&self.name, e.message()))
    }
}

/// A plugin refused its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    plugin: String,
    message: String,
}

impl ConfigError {
    /// Plugin `plugin`'s config is wrong, for the reason `message`.
    pub fn new(plugin: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError {
            plugin: plugin.to_owned(),
            message: message.to_string(),
        }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin {:?}: invalid config: {}",
            self.plugin, self.message
        )
    }
}

impl std::error::Error for ConfigError {}
