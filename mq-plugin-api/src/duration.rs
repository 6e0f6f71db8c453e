//! Durations in configuration: `"30s"`, `"250ms"`, `"2m"`, `"1h"`, `"1d"` or a number of
//! seconds, as every mq section writes them. Plugins use the same forms:
//!
//! ```
//! use std::time::Duration;
//!
//! #[derive(serde::Deserialize)]
//! struct Options {
//!     #[serde(deserialize_with = "mq_plugin_api::duration::deserialize")]
//!     wait: Duration,
//! }
//!
//! let options: Options = toml::from_str("wait = \"250ms\"").unwrap();
//! assert_eq!(options.wait, Duration::from_millis(250));
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Reads, with serde, `"30s"`, `"250ms"`, `"2m"`, `"1h"` or a number of seconds; every form
/// is bounded as [`parse`] bounds it (`u32::MAX` of its unit).
///
/// # Errors
///
/// The value is neither a number nor a duration string, or it is too long.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    match Raw::deserialize(deserializer)? {
        // Bounded as "…s" is: a deadline is the clock plus the duration, which must not
        // overflow (TOML's integers reach i64::MAX seconds).
        Raw::Seconds(seconds) => parse(&seconds.to_string()).map_err(serde::de::Error::custom),
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
    }
}

/// Parses a duration such as `"30s"` or `"250ms"`.
///
/// # Errors
///
/// Says what is wrong with the text.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(mq_plugin_api::duration::parse("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(mq_plugin_api::duration::parse("2m"), Ok(Duration::from_secs(120)));
/// assert!(mq_plugin_api::duration::parse("soon").is_err());
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. \"30s\""))?;
    let per_unit = match unit {
        "ms" => Duration::from_millis(1),
        "s" | "" => Duration::from_secs(1),
        "m" => Duration::from_mins(1),
        "h" => Duration::from_hours(1),
        "d" => Duration::from_hours(24),
        _ => {
            return Err(format!(
                "invalid duration {text:?}: the unit is one of ms, s, m, h, d"
            ));
        }
    };
    per_unit
        .checked_mul(u32::try_from(number).map_err(|_| format!("duration {text:?} is too long"))?)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}
