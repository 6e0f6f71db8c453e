//! mq's `headers` plugin: removes, replaces and adds header fields of every accepted message.
//!
//! At `smtp_in_data`, after the whole message arrived and before it is queued, the plugin edits
//! its header block as `[plugins.headers]` says, in a fixed order: first it removes, then it
//! replaces, then it adds. It never rejects a message and always returns
//! [`Control::Continue`]; with an empty section it changes nothing.
//!
//! # Layout
//!
//! - `lib.rs`: [`Headers`], the plugin and its registration under the name `headers`.
//! - `config`: [`HeadersConfig`], its keys, and the checks ([`InvalidField`]) that refuse a
//!   name or value which would corrupt the header block.
//!
//! # Why the order is fixed
//!
//! - Removing first lets one section drop every copy of a field and add a single fresh one.
//! - Replacing before adding means an added field is never overwritten by a replace of the same
//!   name.
//! - A fixed order keeps the section declarative: its keys say what the message ends up with,
//!   not a script to follow.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//!
//! use mq_plugin_api::{Context, Data, Envelope, Message, Plugin};
//! use mq_plugin_headers::{Headers, HeadersConfig};
//!
//! let config: HeadersConfig = toml::from_str(r#"
//!     remove = ["X-Originating-IP"]
//!     [[add]]
//!     name = "X-Relayed-By"
//!     value = "mq"
//! "#).unwrap();
//! let plugin = Headers::new(&config).unwrap();
//!
//! let message = Message::parse(b"X-Originating-IP: [10.0.0.1]\r\nSubject: hi\r\n\r\nbody\r\n");
//! let mut data = Data::new(Envelope::default(), message);
//! let mut ctx = mq_plugin_api::Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
//! let _ = smol::block_on(plugin.smtp_in_data(&mut ctx, &mut data));
//! assert_eq!(
//!     data.message.to_bytes(),
//!     b"Subject: hi\r\nX-Relayed-By: mq\r\n\r\nbody\r\n",
//! );
//! ```

mod config;

use mq_plugin_api::{Context, Control, Data, Plugin, hooks, plugin};

pub use config::{Addition, Field, HeadersConfig, InvalidField, Position};

/// The `headers` plugin: edits the header block of each accepted message as configured.
///
/// One instance runs per worker core; it holds only its checked config, so the cores share
/// nothing and need no locks.
#[derive(Debug, Clone)]
pub struct Headers {
    config: HeadersConfig,
}

#[plugin(name = "headers")]
impl Headers {
    /// The plugin for `config`, once its names and values are checked.
    ///
    /// # Errors
    ///
    /// A name is not a header field name, or a value contains CR or LF; the engine then refuses
    /// to start and names the plugin.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_headers::{Headers, HeadersConfig};
    ///
    /// assert!(Headers::new(&HeadersConfig::default()).is_ok());
    /// let bad: HeadersConfig = toml::from_str(r#"remove = ["X:Bad"]"#).unwrap();
    /// assert!(Headers::new(&bad).is_err());
    /// ```
    pub fn new(config: &HeadersConfig) -> Result<Headers, InvalidField> {
        config.validate()?;
        Ok(Headers {
            config: config.clone(),
        })
    }

    /// Applies the section to one header block: remove, then replace, then add.
    fn edit(&self, headers: &mut mq_plugin_api::Headers) {
        for name in &self.config.remove {
            headers.remove(name);
        }
        for field in &self.config.replace {
            headers.replace(&field.name, &field.value);
        }
        self.add(headers);
    }

    /// Adds the configured fields. Top fields are prepended last-first, so that they end up
    /// above the message's own fields in the order the section lists them.
    fn add(&self, headers: &mut mq_plugin_api::Headers) {
        let (top, bottom): (Vec<&Addition>, Vec<&Addition>) = self
            .config
            .add
            .iter()
            .partition(|a| a.position == Position::Top);
        for addition in top.into_iter().rev() {
            headers.prepend(&addition.name, &addition.value);
        }
        for addition in bottom {
            headers.append(&addition.name, &addition.value);
        }
    }
}

#[hooks]
impl Plugin for Headers {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        self.edit(data.message.headers_mut());
        Control::Continue
    }
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::{HookId, Message, Named, PluginConfig, PluginHooks, Registration};

    use super::*;

    fn registration() -> &'static Registration {
        Registration::all()
            .find(|r| r.name() == "headers")
            .expect("the plugin registers itself")
    }

    #[test]
    fn registers_as_headers_at_smtp_in_data_only() {
        assert_eq!(Headers::NAME, "headers");
        let hooks: Vec<_> = Headers::HOOKS.iter().map(HookId::name).collect();
        assert_eq!(hooks, ["smtp_in_data"]);
        assert_eq!(registration().hooks(), Headers::HOOKS);
    }

    #[test]
    fn the_factory_refuses_a_bad_section_naming_the_plugin() {
        let table = toml::from_str("[[add]]\nname = \"X-A\"\nvalue = \"a\\nb\"").unwrap();
        let error = registration()
            .build(&PluginConfig::new("headers", 0, table))
            .err()
            .expect("a value with LF is refused");
        assert_eq!(error.plugin(), "headers");
        assert!(error.to_string().contains("line break"), "{error}");
    }

    #[test]
    fn the_factory_refuses_unknown_keys() {
        let table = toml::from_str("remvoe = [\"X-A\"]").unwrap();
        let result = registration().build(&PluginConfig::new("headers", 0, table));
        assert!(result.is_err());
    }

    #[test]
    fn the_factory_accepts_an_absent_section() {
        let config = PluginConfig::new("headers", 0, toml::Table::new());
        assert!(registration().build(&config).is_ok());
    }

    #[test]
    fn edit_runs_remove_then_replace_then_add() {
        let config: HeadersConfig = toml::from_str(
            "remove = [\"X-A\"]\n\
             [[replace]]\nname = \"X-A\"\nvalue = \"replaced\"\n\
             [[add]]\nname = \"X-A\"\nvalue = \"added\"",
        )
        .unwrap();
        let mut message = Message::parse(b"X-A: old\r\n\r\n");
        Headers::new(&config).unwrap().edit(message.headers_mut());
        // Removed first, so the replace finds nothing; then the add.
        assert_eq!(message.to_bytes(), b"X-A: added\r\n\r\n");
    }
}
