//! mq's `dnsbl` plugin: refuses clients that DNS blocklists list, when they connect.
//!
//! At `smtp_in_connect` the plugin asks every configured DNSBL zone at once whether the
//! client's address is listed (RFC 5782: `2.0.0.192.zen.example` for `192.0.2.0`, the nibbles
//! reversed for IPv6), through the worker's resolver, whose cache keeps each answer for its
//! TTL. The first zone in configured order that lists the client names it in the reply:
//!
//! ```text
//! 554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.example
//! ```
//!
//! A zone that does not answer within `lookup_timeout` (and within the hook's deadline), fails,
//! or answers with an error code (`127.255.255.x`) does not list anyone: a broken blocklist
//! never stops mail. Loopback clients (or the configured `allow` networks) and clients in the
//! server's relay networks are never asked about, as Postfix's postscreen skips `mynetworks`.
//!
//! # Layout
//!
//! - `lib.rs`: [`Dnsbl`], the plugin and its registration under the name `dnsbl`.
//! - `config`: [`DnsblConfig`], its keys, and [`InvalidConfig`] for a section it refuses.
//! - `query`: [`query_name`], the name to ask a zone about an address.
//! - `lookup`: every zone asked at once, the answers read in the zones' order.
//! - `network`: [`Network`], the addresses and networks of `allow` and `listed`.
//!
//! # Why these choices
//!
//! - All zones are asked at once, so a connection waits for the slowest zone, not for the sum.
//! - The answers are read in configured order, so the reply names the zone the operator put
//!   first, whichever answered first; once every zone before a listing one has answered, the
//!   rest are not waited for.
//! - Each lookup waits at most nine tenths of the hook's remaining time: the plugin's own
//!   timeout fires before the engine's deadline, which would fail the connection instead.
//! - The plugin keeps no cache of its own: the resolver's (per worker core, by TTL, negative
//!   answers included) already makes a second connection from one address ask nothing.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//!
//! use mq_core::dns::{DnsConfig, Resolver, TestServer};
//! use mq_core::testkit;
//! use mq_plugin_dnsbl as _; // link the plugin in
//!
//! let server = TestServer::start();
//! server.add_a("1.2.0.192.zen.example", [127, 0, 0, 2].into());
//! let mut dns = DnsConfig::default();
//! dns.nameservers = vec![server.address()];
//!
//! let transcript = testkit::session()
//!     .dns(Rc::new(Resolver::new(&dns).unwrap()))
//!     .registered("dnsbl", r#"zones = ["zen.example"]"#)
//!     .client("192.0.2.1:40000".parse().unwrap())
//!     .ehlo("client.example")
//!     .run();
//! assert!(transcript.to_string().contains(
//!     "S: 554 5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.example"
//! ));
//! ```

mod config;
mod lookup;
mod network;
mod query;

use std::net::IpAddr;

use mq_plugin_api::{
    Connect, Context, Control, Counter, Plugin, PluginConfig, Reply, hooks, plugin,
};

pub use config::{DnsblConfig, InvalidConfig};
pub use network::{InvalidNetwork, Network};
pub use query::query_name;

use lookup::Zones;

/// The `dnsbl` plugin: refuses a connecting client that a configured DNSBL zone lists.
///
/// One instance runs per worker core; it holds only its checked config and asks through the
/// core's resolver, so the cores share nothing.
#[derive(Debug, Clone)]
pub struct Dnsbl {
    zones: Zones,
    allow: Vec<Network>,
    /// Clients refused, by the zone that listed them:
    /// `mq_plugin_dnsbl_listed_total{zone="..."}`.
    listings: Counter,
}

#[plugin(name = "dnsbl")]
impl Dnsbl {
    /// The plugin for `config`, once its zones, answers and timeout are checked, counting into
    /// the metrics it declares through `plugin` (listings and lookup failures, by zone).
    ///
    /// # Errors
    ///
    /// A zone is not a DNS name or is listed twice, a `listed` entry is IPv6, or the timeout
    /// is zero; the engine then refuses to start and names the plugin.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::PluginConfig;
    /// use mq_plugin_dnsbl::{Dnsbl, DnsblConfig};
    ///
    /// let plugin = PluginConfig::new("dnsbl", 0, toml::Table::new());
    /// assert!(Dnsbl::new(&DnsblConfig::default(), &plugin).is_ok());
    /// let bad: DnsblConfig = toml::from_str(r#"zones = ["zen example"]"#).unwrap();
    /// assert!(Dnsbl::new(&bad, &plugin).is_err());
    /// ```
    pub fn new(config: &DnsblConfig, plugin: &PluginConfig) -> Result<Dnsbl, InvalidConfig> {
        config.validate()?;
        let names = config.zones.iter();
        let zones = Zones {
            names: names.map(|z| z.trim_end_matches('.').to_owned()).collect(),
            timeout: config.lookup_timeout,
            listed: config.listed.clone(),
            failures: plugin.counter(
                "lookup_failures",
                "Lookups that gave no verdict (timeout, failure, error code), by zone.",
                &["zone"],
            ),
        };
        Ok(Dnsbl {
            zones,
            allow: config.allow.clone(),
            listings: plugin.counter(
                "listed",
                "Clients refused, by the zone that listed them.",
                &["zone"],
            ),
        })
    }

    /// Whether `ip` is let in without asking: an `allow` network, or a relay-network client.
    fn exempt(&self, ctx: &Context, ip: IpAddr) -> bool {
        ctx.session().relay_network || self.allow.iter().any(|n| n.contains(ip))
    }
}

#[hooks]
impl Plugin for Dnsbl {
    async fn smtp_in_connect(&self, ctx: &mut Context, conn: &mut Connect) -> Control {
        let ip = conn.client_ip().to_canonical();
        if self.zones.names.is_empty() || self.exempt(ctx, ip) {
            return Control::Continue;
        }
        if let Some(listing) = self.zones.first_listing(ctx, ip).await {
            let zone = listing.zone;
            self.listings.inc(&[zone]);
            ctx.info(format_args!(
                "client [{ip}] listed in {zone} ({})",
                listing.answer
            ));
            let text = format!("Service unavailable; client [{ip}] blocked using {zone}");
            return conn.reject(Reply::new(554, "5.7.1", text));
        }
        Control::Continue
    }
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::{HookId, Named, PluginConfig, PluginHooks, Registration};

    use super::*;

    fn registration() -> &'static Registration {
        Registration::all()
            .find(|r| r.name() == "dnsbl")
            .expect("the plugin registers itself")
    }

    fn build(section: &str) -> Result<Box<dyn Plugin>, mq_plugin_api::ConfigError> {
        let table = toml::from_str(section).unwrap();
        registration().build(&PluginConfig::new("dnsbl", 0, table))
    }

    #[test]
    fn registers_as_dnsbl_at_smtp_in_connect_only() {
        assert_eq!(Dnsbl::NAME, "dnsbl");
        let hooks: Vec<_> = Dnsbl::HOOKS.iter().map(HookId::name).collect();
        assert_eq!(hooks, ["smtp_in_connect"]);
        assert_eq!(registration().hooks(), Dnsbl::HOOKS);
    }

    #[test]
    fn the_factory_refuses_a_bad_section_naming_the_plugin() {
        let error = build("zones = [\"zen..example\"]").err().expect("refused");
        assert_eq!(error.plugin(), "dnsbl");
        assert!(error.to_string().contains("empty label"), "{error}");
        assert!(build("zones = \"zen.example\"").is_err());
        assert!(build("lookup_timeout = \"0ms\"").is_err());
    }

    #[test]
    fn the_factory_accepts_an_absent_section() {
        assert!(build("").is_ok());
    }

    #[test]
    fn trailing_dots_are_dropped_from_zones() {
        let config: DnsblConfig = toml::from_str("zones = [\"zen.example.\"]").unwrap();
        let plugin =
            Dnsbl::new(&config, &PluginConfig::new("dnsbl", 0, toml::Table::new())).unwrap();
        assert_eq!(plugin.zones.names, ["zen.example"]);
    }
}
