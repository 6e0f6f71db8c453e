//! A DNS server on loopback with the blocklists the tests need, and sessions that ask it.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use mq_core::dns::{DnsConfig, Resolver, TestServer};
use mq_core::testkit::{self, Session};
use mq_plugin_dnsbl as _;

/// The testkit's default client, and the name each test zone lists it under.
pub(crate) const CLIENT: &str = "192.0.2.1:40000";
pub(crate) const CLIENT_NAME: &str = "1.2.0.192";

/// A listing answer.
pub(crate) const LISTED: [u8; 4] = [127, 0, 0, 2];

/// A test DNS server and one resolver asking it, shared by the sessions of a test so that
/// its cache lives from one connection to the next.
pub(crate) struct Lists {
    pub(crate) server: TestServer,
    resolver: Rc<Resolver>,
}

impl Lists {
    pub(crate) fn start() -> Lists {
        let server = TestServer::start();
        let mut config = DnsConfig::default();
        config.nameservers = vec![server.address()];
        // Longer than any test waits: the only timeouts that fire are the plugin's own.
        config.timeout = Duration::from_mins(1);
        config.attempts = 1;
        let resolver = Rc::new(Resolver::new(&config).expect("a resolver for the test server"));
        Lists { server, resolver }
    }

    /// Makes `zone` list the default client with `answer`.
    pub(crate) fn list(&self, zone: &str, answer: [u8; 4]) -> &Lists {
        self.server
            .add_a(&format!("{CLIENT_NAME}.{zone}"), answer.into());
        self
    }

    /// A session through the registered plugin built from `section`, from `client`.
    pub(crate) fn session(&self, section: &str, client: &str) -> Session {
        self.session_with("", section, client)
    }

    /// A session as [`Lists::session`], the engine's `settings` for the plugin
    /// (`[engine.plugins.dnsbl]`) over its defaults.
    pub(crate) fn session_with(&self, settings: &str, section: &str, client: &str) -> Session {
        let client: SocketAddr = client.parse().expect("a socket address");
        testkit::session()
            .dns(self.resolver.clone())
            .registered_with("dnsbl", settings, section)
            .client(client)
    }

    /// Connects from the default client, says EHLO and quits; the transcript as text.
    pub(crate) fn connect(&self, section: &str) -> String {
        self.connect_with("", section)
    }

    /// Connects as [`Lists::connect`] under the engine's `settings` for the plugin.
    pub(crate) fn connect_with(&self, settings: &str, section: &str) -> String {
        self.session_with(settings, section, CLIENT)
            .ehlo("client.example")
            .quit()
            .run()
            .to_string()
    }
}
