//! The plugins compiled into this binary, and which of them a configuration enables.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mq_plugin_api::{ConfigError, HookSet, Plugin, PluginConfig, Registration};

use crate::config::{Config, EngineConfig, FailurePolicy};
use crate::engine::{Engine, Loaded};
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
    /// An engine key in a plugin's section is wrong.
    Setting {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        message: String,
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
                    "config section [plugins.{name}] names a plugin that is not compiled in; no plugin is"
                )
            }
            RegistryError::NotCompiledIn { name, compiled_in } => write!(
                f,
                "config section [plugins.{name}] names a plugin that is not compiled in; compiled in: {}",
                compiled_in.join(", ")
            ),
            RegistryError::Setting { plugin, message } => {
                write!(f, "[plugins.{plugin}]: {message}")
            }
            RegistryError::Plugin(error) => error.fmt(f),
            RegistryError::Stopping => f.write_str("the workers are shutting down"),
        }
    }
}

impl std::error::Error for RegistryError {}

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

    /// Checks `config` against the compiled-in plugins and settles which run, with what settings.
    ///
    /// # Errors
    ///
    /// A section names a plugin that is not compiled in, or an engine key in a section is wrong.
    pub fn plan(&self, config: &Config) -> Result<Plan, RegistryError> {
        if let Some(name) = config
            .plugins
            .keys()
            .find(|name| !self.entries.iter().any(|r| r.name() == *name))
        {
            return Err(RegistryError::NotCompiledIn {
                name: name.clone(),
                compiled_in: self.names(),
            });
        }
        let mut plugins = Vec::new();
        for &registration in &self.entries {
            let mut table = config
                .plugins
                .get(registration.name())
                .cloned()
                .unwrap_or_default();
            let settings = Settings::take(registration.name(), &mut table, &config.engine)?;
            if settings.enabled {
                plugins.push(Planned {
                    registration,
                    timeout: settings.timeout,
                    policy: settings.policy,
                    table,
                    shared: mq_plugin_api::SharedState::default(),
                });
            }
        }
        Ok(Plan {
            engine: config.engine.clone(),
            dns: config.dns.clone(),
            plugins: Arc::from(plugins),
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

/// The engine's keys in one `[plugins.NAME]` section.
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) timeout: Duration,
    pub(crate) policy: FailurePolicy,
}

impl Settings {
    /// Removes the engine's keys from `table`, leaving the plugin's own.
    pub(crate) fn take(
        plugin: &str,
        table: &mut toml::Table,
        engine: &EngineConfig,
    ) -> Result<Settings, RegistryError> {
        let wrong = |message: String| RegistryError::Setting {
            plugin: plugin.to_owned(),
            message,
        };
        let enabled = match table.remove("enabled") {
            None => true,
            Some(toml::Value::Boolean(enabled)) => enabled,
            Some(other) => {
                return Err(wrong(format!("enabled must be true or false, not {other}")));
            }
        };
        let timeout = match table.remove("timeout") {
            None => engine.timeout,
            Some(toml::Value::Integer(seconds)) if seconds > 0 => {
                Duration::from_secs(seconds.unsigned_abs())
            }
            Some(toml::Value::String(text)) => {
                crate::config::parse_duration(&text).map_err(wrong)?
            }
            Some(other) => {
                return Err(wrong(format!(
                    "timeout must be a duration such as \"5s\", not {other}"
                )));
            }
        };
        if timeout.is_zero() {
            return Err(wrong("timeout must be longer than zero".into()));
        }
        let policy = match table.remove("on_error") {
            None => engine.on_error,
            Some(value) => value
                .try_into()
                .map_err(|_| wrong("on_error is one of tempfail, reject, skip".into()))?,
        };
        Ok(Settings {
            enabled,
            timeout,
            policy,
        })
    }
}

/// The plugins a configuration enables, with their settings: enough to build an [`Engine`] on
/// each worker core.
#[derive(Debug, Clone)]
pub struct Plan {
    engine: EngineConfig,
    dns: crate::dns::DnsConfig,
    plugins: Arc<[Planned]>,
}

#[derive(Debug)]
struct Planned {
    registration: &'static Registration,
    timeout: Duration,
    policy: FailurePolicy,
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

    /// The enabled plugins, by name, with their hooks.
    pub fn plugins(&self) -> impl Iterator<Item = (&'static str, HookSet)> + '_ {
        self.plugins
            .iter()
            .map(|p| (p.registration.name(), p.registration.hooks()))
    }

    /// The enabled plugins' names, in order: the index of a name is its plugin's index in every
    /// engine built from this plan.
    pub fn names(&self) -> Arc<[&'static str]> {
        self.plugins.iter().map(|p| p.registration.name()).collect()
    }

    /// Builds the engine for worker `core`: one instance of each enabled plugin.
    ///
    /// # Errors
    ///
    /// A plugin's factory refused its config.
    pub fn build_engine(&self, core: usize, beat: Arc<Beat>) -> Result<Engine, RegistryError> {
        let mut loaded = Vec::with_capacity(self.plugins.len());
        for planned in self.plugins.iter() {
            let registration = planned.registration;
            let config = PluginConfig::new(registration.name(), core, planned.table.clone())
                .with_shared(planned.shared.clone());
            let plugin = build_guarded(registration, &config)?;
            loaded.push(Loaded {
                name: registration.name(),
                hooks: registration.hooks(),
                observes: registration.observers(),
                timeout: planned.timeout,
                policy: planned.policy,
                plugin,
            });
        }
        Engine::new(core, &self.engine, loaded, beat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(section: &str) -> Result<Settings, RegistryError> {
        let mut table: toml::Table = toml::from_str(section).expect("TOML");
        Settings::take("p", &mut table, &EngineConfig::default())
    }

    #[test]
    fn engine_keys_leave_the_plugins_own_keys() {
        let mut table: toml::Table =
            toml::from_str("enabled = false\ntimeout = \"2s\"\nmine = 1").expect("TOML");
        let settings = Settings::take("p", &mut table, &EngineConfig::default()).expect("valid");
        assert!(!settings.enabled);
        assert_eq!(settings.timeout, Duration::from_secs(2));
        assert_eq!(table.keys().collect::<Vec<_>>(), ["mine"]);
    }

    #[test]
    fn a_timeout_of_zero_or_less_is_refused() {
        for section in [
            "timeout = 0",
            "timeout = -5",
            "timeout = \"0s\"",
            "timeout = true",
        ] {
            let error = take(section).err().expect("refused");
            assert!(error.to_string().contains("timeout"), "{section}: {error}");
        }
        assert!(take("on_error = \"sometimes\"").is_err());
        assert!(take("enabled = \"yes\"").is_err());
    }
}
