//! mq's `aliases` plugin: rewrites and expands recipients at `RCPT TO` from a Postfix
//! `virtual(5)` map file.
//!
//! At `smtp_in_rcpt_to` each recipient with an entry in the map (`user@domain`, else the
//! domain's `@domain` catch-all) is replaced by the entry's results, recursively; the event's
//! recipients become the expansion and the recipient is marked local (the alias exists here, so
//! mq accepts it even when every target is remote). A recipient without an entry is left as it
//! is. An expansion deeper than `max_depth` or larger than `max_expansion` fails the RCPT with
//! `451 4.3.0`: a temporary refusal, since the map is what is wrong and fixing it lets the
//! client's retry through (Postfix defers such mail too).
//!
//! # Layout
//!
//! - `lib.rs`: [`Aliases`], the plugin, its registration under the name `aliases`, and the
//!   reload check it runs before expanding.
//! - `config`: [`AliasesConfig`], the section's keys and their checks.
//! - `map`: [`AliasMap`], the file's format, its parser and lookups; [`MapError`] names the line.
//! - `expand`: [`AliasMap::expand`] with its [`Limits`], loop cutting and [`ExpandError`].
//! - `store`: the one parsed map all cores share, and the check that swaps in a changed file;
//!   [`Error`] for a file that cannot be read or parsed.
//!
//! # Why the map is shared and checked this way
//!
//! - One parsed map for all cores (`PluginConfig::shared`): a large map costs its memory once,
//!   and a reload on one core serves every core.
//! - Readers clone an `Arc` under a read lock held for no longer than that; a reload parses the
//!   new file off the worker (`Context::unblock`) and swaps the `Arc` whole, so an RCPT sees the
//!   old map or the new one, never half of each.
//! - The file is checked only when a recipient arrives and `reload` has passed on that core:
//!   an idle server does no I/O, a busy one one `stat` per interval per core.
//! - A file that breaks on reload keeps the map that worked and logs a warning; a file that is
//!   missing or broken at start-up stops mq, naming the line.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//!
//! use mq_plugin_api::{Address, Context, Plugin, RcptTo};
//! use mq_plugin_aliases::{Aliases, AliasesConfig};
//!
//! let path = std::env::temp_dir().join(format!("mq-aliases-doc-{}", std::process::id()));
//! std::fs::write(&path, "sales@example.org  jane@example.org, bob@example.net\n").unwrap();
//! let plugin = Aliases::open(&AliasesConfig::new(&path)).unwrap();
//!
//! let rcpt: Address = "Sales@example.org".parse().unwrap();
//! let mut event = RcptTo::new("a@example.net".parse().unwrap(), rcpt, false);
//! let mut ctx = mq_plugin_api::Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
//! let _ = smol::block_on(plugin.smtp_in_rcpt_to(&mut ctx, &mut event));
//! let recipients: Vec<String> = event.recipients.iter().map(|r| r.to_string()).collect();
//! assert_eq!(recipients, ["jane@example.org", "bob@example.net"]);
//! assert!(event.local);
//! # std::fs::remove_file(&path).unwrap();
//! ```

mod config;
mod expand;
mod map;
mod store;

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mq_plugin_api::{
    Address, Context, Control, Plugin, PluginConfig, RcptTo, TimeoutExt, hooks, plugin,
};

pub use config::AliasesConfig;
pub use expand::{ExpandError, Expansion, Limits};
pub use map::{AliasMap, MapError, MapErrorKind};
pub use store::Error;
use store::{Refresh, Store};

/// The longest an RCPT waits for a check of the map file; a slower one (a hung network file
/// system) goes on in the background and the RCPT uses the map in use.
const CHECK_WAIT: Duration = Duration::from_secs(1);

/// The `aliases` plugin: expands each recipient through the shared alias map.
///
/// One instance runs per worker core; all share one [`AliasMap`]. Each instance keeps only the
/// time it last checked the file.
#[derive(Debug)]
pub struct Aliases {
    store: Arc<Store>,
    limits: Limits,
    /// Zero: never check.
    reload: Duration,
    /// When this core last checked the file (or, at first, when it was built).
    checked: Cell<Instant>,
}

/// Where the instances find the store the first of them opened.
#[derive(Debug, Default)]
struct Slot(Mutex<Option<Arc<Store>>>);

#[plugin(name = "aliases")]
impl Aliases {
    /// The instance for one core, from its parsed section: on the first core to ask, reads
    /// the map that every core then shares (`plugin.shared`).
    ///
    /// # Errors
    ///
    /// A limit is out of range, or the map file cannot be read or has a bad line; mq then
    /// refuses to start, naming the plugin (and the line).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_aliases::{Aliases, AliasesConfig};
    /// use mq_plugin_api::PluginConfig;
    ///
    /// let plugin = PluginConfig::new("aliases", 0, toml::Table::new());
    /// let error = Aliases::new(&AliasesConfig::new("/nonexistent/virtual"), &plugin).unwrap_err();
    /// assert!(error.to_string().contains("/nonexistent/virtual"), "{error}");
    /// ```
    pub fn new(config: &AliasesConfig, plugin: &PluginConfig) -> Result<Aliases, Error> {
        let slot = plugin.shared(Slot::default);
        let mut store = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
        let store = match &*store {
            Some(shared) => Arc::clone(shared),
            None => Arc::clone(store.insert(Arc::new(open(config)?))),
        };
        Ok(Aliases::with_store(store, config))
    }

    /// An instance with a map of its own, shared with no other instance: for embedding and
    /// tests.
    ///
    /// # Errors
    ///
    /// As [`new`](Aliases::new).
    pub fn open(config: &AliasesConfig) -> Result<Aliases, Error> {
        Ok(Aliases::with_store(Arc::new(open(config)?), config))
    }

    fn with_store(store: Arc<Store>, config: &AliasesConfig) -> Aliases {
        Aliases {
            store,
            limits: config.limits(),
            // Without a file there is nothing to reload.
            reload: if config.map.is_some() {
                config.reload
            } else {
                Duration::ZERO
            },
            checked: Cell::new(Instant::now()),
        }
    }

    /// Checks the file if `reload` has passed since this core last did, and swaps in its new
    /// map if it changed; waits for that at most [`CHECK_WAIT`] and the call's time left.
    async fn refresh(&self, ctx: &Context) {
        if self.reload.is_zero() || self.checked.get().elapsed() < self.reload {
            return;
        }
        self.checked.set(Instant::now());
        // Another core is checking: its swap serves this core too.
        let Some(check) = Store::begin_check(&self.store) else {
            return;
        };
        let mut task = ctx.unblock(move || check.run());
        let path = self.store.path().display();
        match (&mut task).timeout(ctx.remaining().min(CHECK_WAIT)).await {
            Ok(Refresh::Unchanged) => {}
            Ok(Refresh::Reloaded(patterns)) => {
                ctx.info(format_args!("reloaded map {path}: {patterns} patterns"));
            }
            Ok(Refresh::Failed(error)) => {
                ctx.warn(format_args!("{error}; the map read before stays in use"));
            }
            Err(_) => {
                task.detach();
                ctx.warn(format_args!(
                    "checking map {path} is slow; it goes on alone"
                ));
            }
        }
    }
}

#[hooks]
impl Plugin for Aliases {
    async fn smtp_in_rcpt_to(&self, ctx: &mut Context, event: &mut RcptTo) -> Control {
        self.refresh(ctx).await;
        match self.store.map().expand(&event.recipients, self.limits) {
            Ok(None) => {}
            Ok(Some(expansion)) => {
                if !expansion.loops.is_empty() {
                    let at = list(&expansion.loops);
                    ctx.warn(format_args!("alias loop cut at {at}: check the map"));
                }
                event.recipients = expansion.recipients;
                event.local = true;
            }
            Err(error) => {
                let recipients = list(&event.recipients);
                ctx.warn(format_args!("{recipients}: {error}"));
                return event.reject(error.reply());
            }
        }
        Control::Continue
    }
}

/// Reads the map at start-up: blocking, as factories may be.
fn open(config: &AliasesConfig) -> Result<Store, Error> {
    config.validate().map_err(Error::Config)?;
    match &config.map {
        Some(path) => Store::open(path, config.case_sensitive),
        None => Ok(Store::empty(config.case_sensitive)),
    }
}

fn list(addresses: &[Address]) -> String {
    let texts: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    texts.join(", ")
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::{HookId, Named, PluginHooks, Registration, SharedState};

    use super::*;

    fn registration() -> &'static Registration {
        Registration::all()
            .find(|r| r.name() == "aliases")
            .expect("the plugin registers itself")
    }

    fn temp_map(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn section(map: &tempfile::NamedTempFile, rest: &str) -> toml::Table {
        toml::from_str(&format!("map = '{}'\n{rest}", map.path().display())).unwrap()
    }

    #[test]
    fn registers_as_aliases_at_smtp_in_rcpt_to_only() {
        assert_eq!(Aliases::NAME, "aliases");
        let hooks: Vec<_> = Aliases::HOOKS.iter().map(HookId::name).collect();
        assert_eq!(hooks, ["smtp_in_rcpt_to"]);
        assert_eq!(registration().hooks(), Aliases::HOOKS);
    }

    #[test]
    fn the_factory_names_the_plugin_and_the_bad_line() {
        let map = temp_map("a@x b@x\n\njane c@x\n");
        let config = PluginConfig::new("aliases", 0, section(&map, ""));
        let error = registration().build(&config).err().expect("a bad line");
        assert_eq!(error.plugin(), "aliases");
        let text = error.to_string();
        assert!(
            text.starts_with("plugin \"aliases\": invalid config: map "),
            "{text}"
        );
        assert!(
            text.ends_with(" line 3: \"jane\" is not a pattern (user@domain or @domain)"),
            "{text}"
        );
    }

    #[test]
    fn the_factory_refuses_unknown_keys_and_bad_limits() {
        let map = temp_map("a@x b@x\n");
        for table in [
            section(&map, "max_dept = 3"),
            section(&map, "max_expansion = 0"),
        ] {
            let config = PluginConfig::new("aliases", 0, table);
            let error = registration().build(&config).err().expect("refused");
            assert_eq!(
                error.to_string().matches("invalid config").count(),
                1,
                "{error}"
            );
        }
    }

    #[test]
    fn without_a_section_the_plugin_builds_and_expands_nothing() {
        let plugin = registration()
            .build(&PluginConfig::new("aliases", 0, toml::Table::new()))
            .expect("an absent section is accepted");
        let executor = std::rc::Rc::new(smol::LocalExecutor::new());
        let mut ctx = mq_plugin_api::Host::new(0, std::rc::Rc::clone(&executor)).into_context();
        let recipient: Address = "a@x.example".parse().expect("an address");
        let mut rcpt = mq_plugin_api::RcptTo::new(Address::null(), recipient.clone(), false);
        let control = smol::block_on(executor.run(plugin.smtp_in_rcpt_to(&mut ctx, &mut rcpt)));
        assert_eq!(control, Control::Continue);
        assert_eq!(rcpt.recipients, [recipient]);
    }

    /// The instances on cores 0 and 1 of one server, as its registry makes them.
    fn two_cores(config: &AliasesConfig) -> (Aliases, Aliases) {
        let shared = SharedState::default();
        let core = |n| {
            let plugin = shared.config("aliases", n, toml::Table::new());
            Aliases::new(config, &plugin).unwrap()
        };
        (core(0), core(1))
    }

    #[test]
    fn the_cores_share_one_map() {
        let map = temp_map("a@x b@x\n");
        let (first, second) = two_cores(&AliasesConfig::new(map.path()));
        assert!(Arc::ptr_eq(&first.store, &second.store));
        assert!(Arc::ptr_eq(&first.store.map(), &second.store.map()));
    }

    #[test]
    fn a_reload_on_one_core_serves_the_others() {
        let map = temp_map("a@x b@x\n");
        let mut config = AliasesConfig::new(map.path());
        config.reload = Duration::from_millis(1);
        let (first, second) = two_cores(&config);
        let modified = std::fs::metadata(map.path()).unwrap().modified().unwrap();
        std::fs::write(map.path(), "a@x c@x, d@x\n").unwrap();
        map.as_file()
            .set_modified(modified + Duration::from_mins(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));

        let ctx = mq_plugin_api::Host::new(0, std::rc::Rc::new(smol::LocalExecutor::new()))
            .into_context();
        smol::block_on(first.refresh(&ctx));
        let a: Address = "a@x".parse().unwrap();
        let expansion = second.store.map().expand(&[a], Limits::default()).unwrap();
        assert_eq!(list(&expansion.unwrap().recipients), "c@x, d@x");
        assert!(
            Store::begin_check(&second.store).is_some(),
            "the check let go of its flag"
        );
    }
}
