//! The engine's settings for each plugin: `[engine.plugins.NAME]` over the plugin's own
//! defaults over `[engine]`. `[plugins.NAME]` is the plugin's alone.

use std::time::Duration;

use mq_plugin_api::{Defaults, FailurePolicy, Order};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::EngineConfig;
use crate::registry::RegistryError;

/// `[engine.plugins.NAME]`: the operator's settings for one plugin. A key left out takes the
/// plugin's default (its registration's [`Defaults`]), then `[engine]`'s.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::{FailurePolicy, Order};
///
/// let config = mq_core::Config::from_toml(r#"
///     [engine.plugins.headers]
///     on_error = "skip"
///     order = "first"
/// "#).unwrap();
/// let headers = &config.engine.plugins["headers"];
/// assert_eq!(headers.on_error, Some(FailurePolicy::Skip));
/// assert_eq!(headers.order, Some(Order::First));
/// assert_eq!(headers.enabled, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PluginSettings {
    /// `false` leaves the plugin out of every chain (default: the plugin's, else `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The deadline of one call (default: the plugin's, else `[engine] timeout`).
    #[serde(
        default,
        deserialize_with = "positive_duration",
        serialize_with = "duration_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// What a call that times out or panics does to its step (default: the plugin's, else
    /// `[engine] on_error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<FailurePolicy>,
    /// The plugin's place in its chains (default: the plugin's, else 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Order>,
}

/// The keys that were once read from `[plugins.NAME]` and now live in `[engine.plugins.NAME]`.
const MOVED: [&str; 4] = ["enabled", "timeout", "on_error", "order"];

/// One plugin's settings as the engine runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) enabled: bool,
    pub(crate) timeout: Duration,
    pub(crate) policy: FailurePolicy,
    pub(crate) order: Order,
}

impl Settings {
    /// The settings of a plugin with `defaults` under the operator's `settings`, if any.
    pub(crate) fn resolve(
        defaults: Defaults,
        settings: Option<&PluginSettings>,
        engine: &EngineConfig,
    ) -> Settings {
        let operator = settings.cloned().unwrap_or_default();
        Settings {
            enabled: operator.enabled.unwrap_or(defaults.enabled_default()),
            timeout: operator
                .timeout
                .or(defaults.timeout_default())
                .unwrap_or(engine.timeout),
            policy: operator
                .on_error
                .or(defaults.on_error_default())
                .unwrap_or(engine.on_error),
            order: operator.order.unwrap_or(defaults.order_default()),
        }
    }
}

/// Refuses an engine key left in plugin `plugin`'s own section, naming where it went.
pub(crate) fn refuse_moved_keys(plugin: &str, table: &toml::Table) -> Result<(), RegistryError> {
    match MOVED.iter().find(|key| table.contains_key(**key)) {
        Some(key) => Err(RegistryError::Moved {
            plugin: plugin.to_owned(),
            key,
        }),
        None => Ok(()),
    }
}

/// A duration above zero, as `[engine] timeout` reads one.
fn positive_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let duration = crate::config::duration(deserializer)?;
    if duration.is_zero() {
        return Err(serde::de::Error::custom("timeout must be longer than zero"));
    }
    Ok(Some(duration))
}

#[expect(
    clippy::ref_option,
    reason = "serde's serialize_with passes the field by reference"
)]
fn duration_text<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => crate::config::duration_text(duration, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml: &str) -> Result<PluginSettings, toml::de::Error> {
        toml::from_str(toml)
    }

    #[test]
    fn the_operator_wins_over_the_plugin_and_the_plugin_over_the_engine() {
        let engine = EngineConfig::default();
        let defaults = Defaults::NONE
            .on_error(FailurePolicy::Skip)
            .order(Order::Last);
        let plain = Settings::resolve(defaults, None, &engine);
        assert_eq!(plain.policy, FailurePolicy::Skip);
        assert_eq!(plain.order, Order::Last);
        assert_eq!(plain.timeout, engine.timeout);
        assert!(plain.enabled);
        let operator =
            settings("order = 3\non_error = \"reject\"\ntimeout = \"2s\"").expect("valid");
        let set = Settings::resolve(defaults, Some(&operator), &engine);
        assert_eq!(set.policy, FailurePolicy::Reject);
        assert_eq!(set.order, Order::At(3));
        assert_eq!(set.timeout, Duration::from_secs(2));
        let none = Settings::resolve(Defaults::NONE, None, &engine);
        assert_eq!((none.policy, none.order), (engine.on_error, Order::At(0)));
    }

    #[test]
    fn unknown_keys_and_unusable_values_are_refused() {
        for toml in [
            "timeout = 0",
            "timeout = -5",
            "timeout = \"0s\"",
            "timeout = true",
            "on_error = \"sometimes\"",
            "enabled = \"yes\"",
            "order = \"middle\"",
            "url = \"http://x\"",
        ] {
            assert!(settings(toml).is_err(), "{toml}");
        }
    }

    #[test]
    fn settings_write_back_as_they_read() {
        let text = "enabled = false\ntimeout = \"2s\"\non_error = \"skip\"\norder = \"last\"\n";
        let read = settings(text).expect("valid");
        assert_eq!(toml::to_string(&read).expect("writes"), text);
        assert_eq!(
            toml::to_string(&PluginSettings::default()).expect("writes"),
            ""
        );
    }

    #[test]
    fn an_engine_key_in_a_plugin_section_names_its_new_place() {
        for key in MOVED {
            let table: toml::Table = toml::from_str(&format!("{key} = 1\nmine = 2")).expect("TOML");
            let error = refuse_moved_keys("dkim", &table).expect_err("refused");
            assert_eq!(
                error.to_string(),
                format!("[plugins.dkim] {key}: engine settings moved to [engine.plugins.dkim]")
            );
        }
        let own: toml::Table = toml::from_str("lookup_timeout = \"2s\"").expect("TOML");
        assert!(refuse_moved_keys("dnsbl", &own).is_ok());
    }
}
