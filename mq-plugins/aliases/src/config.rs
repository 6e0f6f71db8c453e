//! `[plugins.aliases]`: where the map is, how far an expansion may go, and how often the file
//! is checked for changes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::Limits;

/// The plugin's own keys in `[plugins.aliases]`; without `map` it does nothing.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_aliases::AliasesConfig;
///
/// let config: AliasesConfig = toml::from_str(r#"
///     map = "/etc/mq/virtual"
///     reload = "1m"
/// "#).unwrap();
/// assert_eq!(config.max_depth, 10);
/// assert_eq!(config.reload, Duration::from_secs(60));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AliasesConfig {
    /// The map file, in Postfix `virtual(5)` form; without one the plugin expands nothing,
    /// so that a build with the plugin runs with no `[plugins.aliases]` section.
    #[serde(default)]
    pub map: Option<PathBuf>,
    /// How many aliases deep one chain (alias → alias → ...) may go; deeper fails the RCPT
    /// with `451 4.3.0`.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// How many recipients one RCPT may expand to; more fails it with `451 4.3.0`.
    #[serde(default = "default_max_expansion")]
    pub max_expansion: usize,
    /// How often a core checks the file's modification time and size, at most once per this
    /// long and only when a recipient arrives; zero reads the file at start-up only.
    #[serde(
        default = "default_reload",
        deserialize_with = "mq_plugin_api::duration::deserialize"
    )]
    pub reload: Duration,
    /// Whether local parts are compared exactly. Domains are always compared without regard
    /// to case; local parts too unless this is true (as Postfix's lookup tables do).
    #[serde(default)]
    pub case_sensitive: bool,
}

/// Postfix allows 1000 (`virtual_alias_recursion_limit`); ten is plenty for hand-written maps.
const fn default_max_depth() -> usize {
    10
}

/// Postfix's `virtual_alias_expansion_limit`.
const fn default_max_expansion() -> usize {
    1000
}

const fn default_reload() -> Duration {
    Duration::from_secs(5)
}

/// The highest `max_depth`: expansion recurses once per level.
const DEPTH_CEILING: usize = 1000;

impl AliasesConfig {
    /// A config for the map at `map`, every other key at its default.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = mq_plugin_aliases::AliasesConfig::new("/etc/mq/virtual");
    /// assert_eq!(config.max_expansion, 1000);
    /// ```
    pub fn new(map: impl Into<PathBuf>) -> AliasesConfig {
        AliasesConfig {
            map: Some(map.into()),
            max_depth: default_max_depth(),
            max_expansion: default_max_expansion(),
            reload: default_reload(),
            case_sensitive: false,
        }
    }

    /// Checks the limits, so that a section which could never expand anything stops start-up.
    ///
    /// # Errors
    ///
    /// Says which key is out of range.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut config = mq_plugin_aliases::AliasesConfig::new("/etc/mq/virtual");
    /// config.max_expansion = 0;
    /// assert_eq!(config.validate().unwrap_err(), "max_expansion must be at least 1");
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=DEPTH_CEILING).contains(&self.max_depth) {
            return Err(format!("max_depth must be from 1 to {DEPTH_CEILING}"));
        }
        if self.max_expansion == 0 {
            return Err("max_expansion must be at least 1".to_owned());
        }
        if self
            .map
            .as_ref()
            .is_some_and(|map| map.as_os_str().is_empty())
        {
            return Err("map must name a file".to_owned());
        }
        Ok(())
    }

    /// The expansion limits this section sets.
    pub fn limits(&self) -> Limits {
        Limits {
            max_depth: self.max_depth,
            max_expansion: self.max_expansion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AliasesConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn every_key_has_a_default_and_no_map_means_none() {
        assert_eq!(
            parse("map = \"/etc/mq/virtual\"").unwrap(),
            AliasesConfig::new("/etc/mq/virtual")
        );
        assert_eq!(parse("").unwrap().map, None);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(parse("map = \"/m\"\nmax_dept = 3").is_err());
    }

    #[test]
    fn reload_takes_units_plain_seconds_and_zero() {
        let reload =
            |text: &str| parse(&format!("map = \"/m\"\nreload = {text}")).map(|c| c.reload);
        assert_eq!(reload("\"1ms\"").unwrap(), Duration::from_millis(1));
        assert_eq!(reload("\"2m\"").unwrap(), Duration::from_mins(2));
        assert_eq!(reload("\"1h\"").unwrap(), Duration::from_hours(1));
        assert_eq!(reload("7").unwrap(), Duration::from_secs(7));
        assert_eq!(reload("\"0\"").unwrap(), Duration::ZERO);
        assert!(reload("\"soon\"").is_err());
        assert!(reload("\"5 s\"").is_err());
        assert!(reload("\"99999999999999999h\"").is_err());
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        let mut config = AliasesConfig::new("/m");
        config.max_depth = 0;
        assert_eq!(
            config.validate().unwrap_err(),
            "max_depth must be from 1 to 1000"
        );
        config.max_depth = 1001;
        assert!(config.validate().is_err());
        config.max_depth = 1;
        assert!(config.validate().is_ok());
        assert!(AliasesConfig::new("").validate().is_err());
    }
}
