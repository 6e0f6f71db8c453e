//! The engine's settings for one plugin, which a plugin may give defaults of its own in its
//! registration: where it runs in its chains ([`Order`]), what a failed call does
//! ([`FailurePolicy`]), its deadline and whether it is enabled ([`Defaults`]).
//!
//! The operator sets them in `[engine.plugins.NAME]`; `[plugins.NAME]` belongs to the plugin.
//! For each setting the first of these that has one wins: the operator's
//! `[engine.plugins.NAME]`, the plugin's [`Defaults`], `[engine]` (`timeout`, `on_error`), the
//! engine's own default (enabled, order 0).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a plugin call that timed out or panicked does to its step.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::FailurePolicy;
///
/// let policy: FailurePolicy = toml::Value::String("skip".into()).try_into().unwrap();
/// assert_eq!(policy, FailurePolicy::Skip);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum FailurePolicy {
    /// The step fails temporarily (`451 4.3.0`): the client or the queue tries again later.
    Tempfail,
    /// The step fails permanently (`554 5.3.0`).
    Reject,
    /// The plugin is skipped and the chain goes on, as if it had returned `Continue`.
    Skip,
}

/// Where a plugin runs in each of its chains. Chains sort by order, then by name: plugins of
/// one order (every plugin has order 0 unless it or the operator says otherwise) run in name
/// order. [`Order::First`] sorts before every number, [`Order::Last`] after every number.
///
/// In TOML it is `"first"`, `"last"` or an integer.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::Order;
///
/// let mut orders: Vec<Order> = ["last", "5", "first", "-3"]
///     .iter()
///     .map(|text| text.parse().unwrap())
///     .collect();
/// orders.sort();
/// assert_eq!(orders, [Order::First, Order::At(-3), Order::At(5), Order::Last]);
/// assert_eq!(Order::default(), Order::At(0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Order {
    /// Before every plugin placed by a number.
    First,
    /// Among the numbered plugins, by the number, lower first.
    At(i32),
    /// After every plugin placed by a number.
    Last,
}

impl Default for Order {
    fn default() -> Order {
        Order::At(0)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Order::First => f.write_str("first"),
            Order::At(at) => at.fmt(f),
            Order::Last => f.write_str("last"),
        }
    }
}

impl std::str::FromStr for Order {
    type Err = String;

    fn from_str(text: &str) -> Result<Order, String> {
        match text {
            "first" => Ok(Order::First),
            "last" => Ok(Order::Last),
            number => number.parse().map(Order::At).map_err(|_| {
                format!("order is \"first\", \"last\" or a 32-bit integer, not {number:?}")
            }),
        }
    }
}

impl Serialize for Order {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Order::At(at) => serializer.serialize_i32(*at),
            named => serializer.collect_str(named),
        }
    }
}

impl<'de> Deserialize<'de> for Order {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Order, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(number) => i32::try_from(number).map(Order::At).map_err(|_| {
                serde::de::Error::custom(format!("order {number} is not a 32-bit integer"))
            }),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A plugin's own defaults for the engine's settings, declared in its registration:
/// `#[plugin(name = "dkim", on_error = "skip", order = "last")]`. What it leaves unset falls
/// back to `[engine]` and the engine's defaults; the operator's `[engine.plugins.NAME]` overrides
/// each.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_api::{Defaults, FailurePolicy, Order};
///
/// const DEFAULTS: Defaults = Defaults::NONE
///     .on_error(FailurePolicy::Skip)
///     .order(Order::Last)
///     .timeout(Duration::from_secs(5));
/// assert_eq!(DEFAULTS.on_error_default(), Some(FailurePolicy::Skip));
/// assert_eq!(DEFAULTS.order_default(), Order::Last);
/// assert_eq!(DEFAULTS.enabled_default(), true);
/// ```
///
/// `#[plugin]` writes them into the registration, where the engine reads them:
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_api::{FailurePolicy, Order, Plugin, Registration, hooks, plugin};
///
/// struct Signer;
///
/// #[plugin(name = "signer", on_error = "skip", order = "last", timeout = "10s")]
/// impl Signer {
///     fn new() -> Self {
///         Signer
///     }
/// }
///
/// #[hooks]
/// impl Plugin for Signer {}
///
/// let signer = Registration::all().find(|r| r.name() == "signer").unwrap();
/// assert_eq!(signer.defaults().order_default(), Order::Last);
/// assert_eq!(signer.defaults().on_error_default(), Some(FailurePolicy::Skip));
/// assert_eq!(signer.defaults().timeout_default(), Some(Duration::from_secs(10)));
///
/// struct Gate;
///
/// #[plugin(name = "gate", order = -10, enabled = false)]
/// impl Gate {
///     fn new() -> Self {
///         Gate
///     }
/// }
///
/// #[hooks]
/// impl Plugin for Gate {}
///
/// let gate = Registration::all().find(|r| r.name() == "gate").unwrap();
/// assert_eq!(gate.defaults().order_default(), Order::At(-10));
/// assert!(!gate.defaults().enabled_default());
/// assert_eq!(gate.defaults().on_error_default(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    enabled: bool,
    timeout: Option<Duration>,
    on_error: Option<FailurePolicy>,
    order: Order,
}

impl Defaults {
    /// No defaults of the plugin's own: enabled, order 0, `[engine]`'s timeout and policy.
    pub const NONE: Defaults = Defaults {
        enabled: true,
        timeout: None,
        on_error: None,
        order: Order::At(0),
    };

    /// These defaults with the plugin left out unless the operator enables it
    /// (`[engine.plugins.NAME] enabled = true`).
    #[must_use]
    pub const fn enabled(mut self, enabled: bool) -> Defaults {
        self.enabled = enabled;
        self
    }

    /// These defaults with `timeout` as the call deadline instead of `[engine] timeout`.
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Defaults {
        self.timeout = Some(timeout);
        self
    }

    /// These defaults with `policy` for failed calls instead of `[engine] on_error`.
    #[must_use]
    pub const fn on_error(mut self, policy: FailurePolicy) -> Defaults {
        self.on_error = Some(policy);
        self
    }

    /// These defaults with the plugin placed at `order` in its chains.
    #[must_use]
    pub const fn order(mut self, order: Order) -> Defaults {
        self.order = order;
        self
    }

    /// Whether the plugin runs when the operator does not say.
    pub const fn enabled_default(&self) -> bool {
        self.enabled
    }

    /// The plugin's deadline, if it sets one.
    pub const fn timeout_default(&self) -> Option<Duration> {
        self.timeout
    }

    /// The plugin's policy, if it sets one.
    pub const fn on_error_default(&self) -> Option<FailurePolicy> {
        self.on_error
    }

    /// The plugin's place in its chains.
    pub const fn order_default(&self) -> Order {
        self.order
    }
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Holder {
        order: Order,
    }

    #[test]
    fn orders_read_and_write_as_toml_writes_them() {
        for (text, order) in [
            ("order = \"first\"", Order::First),
            ("order = \"last\"", Order::Last),
            ("order = -7", Order::At(-7)),
        ] {
            let holder: Holder = toml::from_str(text).expect("valid");
            assert_eq!(holder.order, order);
            assert_eq!(toml::to_string(&holder).expect("writes").trim(), text);
        }
    }

    #[test]
    fn an_order_that_is_not_first_last_or_a_small_integer_is_refused() {
        for text in ["order = \"middle\"", "order = 4294967296", "order = 1.5"] {
            assert!(toml::from_str::<Holder>(text).is_err(), "{text}");
        }
    }
}
