//! The plugins compiled into this binary, and which of them a configuration enables.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mq_plugin_api::{
    ConfigError, HookSet, MetricRegistry, Order, Plugin, PluginConfig, Registration,
};

use crate::config::{Config, EngineConfig, FailurePolicy};
use crate::engine::{Engine, Loaded};
use crate::plugin_settings::{Settings, refuse_moved_keys};
use crate::watchdog::Beat;

/// Every plugin compiled in, sorted by name.
///
/// # Examples
///
/// ```
/// let registry = mq_core::Registry::linked().unwrap();
/// let names: Vec<&str> = registry.iter().map(|r| r.name()).collect();
/// assert!(names.is_sorted());
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    entries: Vec<&'static Registration>,
}

/// Why the plugins cannot start as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// Two plugins were registered under one name.
    Duplicate {
        /// The name.
        name: &'static str,
        /// The modules that registered it.
        modules: [&'static str; 2],
    },
    /// The config has a section for a plugin that is not compiled in.
    NotCompiledIn {
        /// The section's name.
        name: String,
        /// The plugins that are compiled in.
        compiled_in: Vec<&'static str>,
    },
    /// `[engine.plugins.NAME]` names a plugin that is not compiled in.
    SettingsNotCompiledIn {
        /// The plugin's name.
        name: String,
        /// The plugins that are compiled in.
        compiled_in: Vec<&'static str>,
    },
    /// A plugin's own section holds one of the engine's settings, which now live in
    /// `[engine.plugins.NAME]`.
    Moved {
        /// The plugin.
        plugin: String,
        /// The key: `enabled`, `timeout`, `on_error` or `order`.
        key: &'static str,
    },
    /// A plugin's factory refused its section.
    Plugin(mq_plugin_api::ConfigError),
    /// The workers are shutting down: no plugins are built any more.
    Stopping,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryError::Duplicate { name, modules } => {
                write!(
                    f,
                    "two plugins are named {name:?}: one in {}, one in {}",
                    modules[0], modules[1]
                )
            }
            RegistryError::NotCompiledIn { name, compiled_in } if compiled_in.is_empty() => {
                write!(
                    f,
                    "config section [plugins.{name}] names a plugin that is not compiled in; no plugin is; {}",
                    how_to_link(name)
                )
            }
            RegistryError::NotCompiledIn { name, compiled_in } => write!(
                f,
                "config section [plugins.{name}] names a plugin that is not compiled in; compiled in: {}; {}",
                compiled_in.join(", "),
                how_to_link(name)
            ),
            RegistryError::SettingsNotCompiledIn { name, compiled_in } => write!(
                f,
                "config section [engine.plugins.{name}] names a plugin that is not compiled in; compiled in: {}; {}",
                if compiled_in.is_empty() {
                    "none".to_owned()
                } else {
                    compiled_in.join(", ")
                },
                how_to_link(name)
            ),
            RegistryError::Moved { plugin, key } => write!(
                f,
                "[plugins.{plugin}] {key}: engine settings moved to [engine.plugins.{plugin}]"
            ),
            RegistryError::Plugin(error) => error.fmt(f),
            RegistryError::Stopping => f.write_str("the workers are shutting down"),
        }
    }
}

impl std::error::Error for RegistryError {}

/// The plugins that ship with mq, each with the cargo feature of `mq-bin` that compiles it in
/// (the `noop` feature's eight are for benchmarks, and named `noop-1` to `noop-8`).
pub const BUNDLED_PLUGINS: &[(&str, &str)] = &[
    ("aliases", "aliases"),
    ("dkim", "dkim"),
    ("dnsbl", "dnsbl"),
    ("headers", "headers"),
    ("ratelimit", "ratelimit"),
    ("webhook", "webhook"),
];

/// What an operator does to get plugin `name` into the binary: the cargo feature of a bundled
/// plugin, or the line that links a plugin crate of one's own (a `[dependencies]` line alone
/// does not link it).
fn how_to_link(name: &str) -> String {
    let feature = match BUNDLED_PLUGINS.iter().find(|(plugin, _)| *plugin == name) {
        Some((_, feature)) => Some(*feature),
        None if name.starts_with("noop-") => Some("noop"),
        None => None,
    };
    match feature {
        Some(feature) => format!(
            "{name} is bundled with mq: build mq with its cargo feature (cargo build -p mq-bin --features {feature})"
        ),
        None => format!(
            "to link a plugin crate, depend on it in the binary's Cargo.toml and mention it in the binary's code, \
             e.g. `use mq_plugin_{} as _;` (a [dependencies] line alone does not link it)",
            name.replace('-', "_")
        ),
    }
}

impl Registry {
    /// The plugins registered through inventory in this binary.
    ///
    /// # Errors
    ///
    /// Two plugins share a name.
    pub fn linked() -> Result<Registry, RegistryError> {
        Registry::from_registrations(Registration::all())
    }

    /// A registry of the given registrations.
    ///
    /// # Errors
    ///
    /// Two of them share a name.
    pub fn from_registrations(
        registrations: impl IntoIterator<Item = &'static Registration>,
    ) -> Result<Registry, RegistryError> {
        let mut entries: Vec<&'static Registration> = registrations.into_iter().collect();
        entries.sort_by_key(|r| r.name());
        if let Some(pair) = entries
            .windows(2)
            .find(|pair| pair[0].name() == pair[1].name())
        {
            return Err(RegistryError::Duplicate {
                name: pair[0].name(),
                modules: [pair[0].module(), pair[1].module()],
            });
        }
        Ok(Registry { entries })
    }

    /// The registrations, by name.
    pub fn iter(&self) -> impl Iterator<Item = &'static Registration> + '_ {
        self.entries.iter().copied()
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|r| r.name()).collect()
    }

    /// Checks `config` against the compiled-in plugins and settles which run, with what settings,
    /// in what order.
    ///
    /// # Errors
    ///
    /// A section (`[plugins.NAME]` or `[engine.plugins.NAME]`) names a plugin that is not
    /// compiled in, or a plugin's section holds one of the engine's settings.
    pub fn plan(&self, config: &Config) -> Result<Plan, RegistryError> {
        let unknown = |name: &String| !self.entries.iter().any(|r| r.name() == *name);
        if let Some(name) = config.plugins.keys().find(|name| unknown(name)) {
            return Err(RegistryError::NotCompiledIn {
                name: name.clone(),
                compiled_in: self.names(),
            });
        }
        if let Some(name) = config.engine.plugins.keys().find(|name| unknown(name)) {
            return Err(RegistryError::SettingsNotCompiledIn {
                name: name.clone(),
                compiled_in: self.names(),
            });
        }
        let mut plugins = Vec::new();
        let mut orders = Vec::with_capacity(self.entries.len());
        for &registration in &self.entries {
            let name = registration.name();
            let table = config.plugins.get(name).cloned().unwrap_or_default();
            refuse_moved_keys(name, &table)?;
            let settings = Settings::resolve(
                registration.defaults(),
                config.engine.plugins.get(name),
                &config.engine,
            );
            orders.push((name, settings.order));
            if settings.enabled {
                plugins.push(Planned {
                    registration,
                    timeout: settings.timeout,
                    policy: settings.policy,
                    order: settings.order,
                    table,
                    shared: mq_plugin_api::SharedState::default(),
                });
            }
        }
        // The engine sorts its plugins the same way, so that an index in this plan is the
        // plugin's index in every engine built from it.
        plugins.sort_by_key(|p| (p.order, p.registration.name()));
        Ok(Plan {
            engine: config.engine.clone(),
            dns: config.dns.clone(),
            plugins: Arc::from(plugins),
            orders: Arc::from(orders),
        })
    }
}

/// Runs a plugin's factory, turning a panic into an error that names the plugin: a factory is
/// plugin code, and the engine's guarantees start there.
fn build_guarded(
    registration: &Registration,
    config: &PluginConfig,
) -> Result<Box<dyn Plugin>, RegistryError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| registration.build(config))) {
        Ok(built) => built.map_err(RegistryError::Plugin),
        Err(_) => Err(RegistryError::Plugin(ConfigError::new(
            registration.name(),
            "its factory panicked",
        ))),
    }
}

/// The plugins a configuration enables, with their settings: enough to build an [`Engine`] on
/// each worker core.
#[derive(Debug, Clone)]
pub struct Plan {
    engine: EngineConfig,
    dns: crate::dns::DnsConfig,
    plugins: Arc<[Planned]>,
    /// Every compiled-in plugin's order, enabled or not, by name.
    orders: Arc<[(&'static str, Order)]>,
}

#[derive(Debug)]
struct Planned {
    registration: &'static Registration,
    timeout: Duration,
    policy: FailurePolicy,
    order: Order,
    table: toml::Table,
    /// What the plugin's instances on all cores share.
    shared: mq_plugin_api::SharedState,
}

impl Plan {
    /// The engine settings.
    pub fn engine_config(&self) -> &EngineConfig {
        &self.engine
    }

    /// The resolvers plugins reach through `Context::dns`.
    pub fn dns_config(&self) -> &crate::dns::DnsConfig {
        &self.dns
    }

    /// The enabled plugins, in run order (by order, then name), with their hooks.
    pub fn plugins(&self) -> impl Iterator<Item = (&'static str, HookSet)> + '_ {
        self.plugins
            .iter()
            .map(|p| (p.registration.name(), p.registration.hooks()))
    }

    /// The order of compiled-in plugin `name` in its chains, whether it is enabled or not.
    pub fn order(&self, name: &str) -> Option<Order> {
        self.orders
            .iter()
            .find(|(plugin, _)| *plugin == name)
            .map(|&(_, order)| order)
    }

    /// The enabled plugins' names, in run order (by order, then name): the index of a name is
    /// its plugin's index in every engine built from this plan.
    pub fn names(&self) -> Arc<[&'static str]> {
        self.plugins.iter().map(|p| p.registration.name()).collect()
    }

    /// Builds the engine for worker `core`: one instance of each enabled plugin.
    ///
    /// # Errors
    ///
    /// A plugin's factory refused its config.
    pub fn build_engine(&self, core: usize, beat: Arc<Beat>) -> Result<Engine, RegistryError> {
        self.build_engine_in(core, beat, &MetricRegistry::default())
    }

    /// Builds the engine for worker `core` as [`Plan::build_engine`] does, with the plugins
    /// declaring their metrics in `metrics`: a runtime keeps one for every core and reload.
    ///
    /// # Errors
    ///
    /// A plugin's factory refused its config.
    pub fn build_engine_in(
        &self,
        core: usize,
        beat: Arc<Beat>,
        metrics: &MetricRegistry,
    ) -> Result<Engine, RegistryError> {
        let mut loaded = Vec::with_capacity(self.plugins.len());
        for planned in self.plugins.iter() {
            let registration = planned.registration;
            let config = planned
                .shared
                .config(registration.name(), core, planned.table.clone())
                .with_metrics(metrics.clone());
            let plugin = build_guarded(registration, &config)?;
            loaded.push(Loaded {
                name: registration.name(),
                hooks: registration.hooks(),
                observes: registration.observers(),
                timeout: planned.timeout,
                policy: planned.policy,
                order: planned.order,
                plugin,
            });
        }
        Engine::new(core, &self.engine, loaded, beat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_compiled_in(name: &str) -> String {
        let error = Registry::from_registrations(std::iter::empty())
            .expect("no plugins, no duplicates")
            .plan(&Config::from_toml(&format!("[plugins.{name}]\n")).expect("valid TOML"))
            .expect_err("no plugin is compiled in");
        error.to_string()
    }

    #[test]
    fn a_section_for_an_unlinked_plugin_says_how_to_link_its_crate() {
        let text = not_compiled_in("spam-filter");
        assert!(text.contains("no plugin is"), "{text}");
        assert!(text.contains("`use mq_plugin_spam_filter as _;`"), "{text}");
        assert!(text.contains("a [dependencies] line alone"), "{text}");
    }

    #[test]
    fn a_section_for_a_bundled_plugin_left_out_names_its_cargo_feature() {
        let text = not_compiled_in("dkim");
        assert!(text.contains("--features dkim"), "{text}");
        let text = not_compiled_in("noop-3");
        assert!(text.contains("--features noop"), "{text}");
    }

    #[test]
    fn engine_settings_for_an_unlinked_plugin_say_how_to_link_it() {
        let error = Registry::from_registrations(std::iter::empty())
            .expect("no plugins, no duplicates")
            .plan(&Config::from_toml("[engine.plugins.dkim]\norder = 1\n").expect("valid TOML"))
            .expect_err("no plugin is compiled in");
        let text = error.to_string();
        assert!(text.contains("[engine.plugins.dkim]"), "{text}");
        assert!(text.contains("--features dkim"), "{text}");
    }
}
