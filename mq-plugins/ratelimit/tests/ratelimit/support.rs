//! What the tests share: sections, instances built as the engine builds them, a worker core to
//! call hooks on, and the Redis the Redis tests need.

use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mq_plugin_api::{
    Address, Connect, Context, Event, MailFrom, Plugin, PluginConfig, RcptTo, Registration, Reply,
    SharedState,
};
use mq_plugin_ratelimit::RateLimit;
use smol::LocalExecutor;

/// A section with one limit on `key`: `rate` per `per`, default burst.
pub(crate) fn limit(key: &str, rate: u32, per: &str) -> String {
    format!("[[limit]]\nkey = \"{key}\"\nrate = {rate}\nper = \"{per}\"\n")
}

/// The plugin's config on `core`, sharing `shared` with the other cores of its process.
pub(crate) fn config(section: &str, core: usize, shared: &SharedState) -> PluginConfig {
    let table = toml::from_str(section).expect("the test section is TOML");
    shared.config("ratelimit", core, table)
}

/// An instance for `core` of a process whose cores share `shared`.
pub(crate) fn instance(section: &str, core: usize, shared: &SharedState) -> RateLimit {
    let config = config(section, core, shared);
    let section = config.parse().expect("the test section parses");
    RateLimit::new(&section, &config).expect("the test section is valid")
}

/// An instance built by the registered factory, as `mq serve` builds one per core.
pub(crate) fn registered(section: &str, core: usize, shared: &SharedState) -> Box<dyn Plugin> {
    registration()
        .build(&config(section, core, shared))
        .expect("the test section is valid")
}

pub(crate) fn registration() -> &'static Registration {
    Registration::all()
        .find(|r| r.name() == "ratelimit")
        .expect("the plugin registers itself")
}

/// A worker core: an executor that runs while hooks are called, as the engine's does, so that
/// the Redis connection's driver task runs.
pub(crate) struct Core {
    executor: Rc<LocalExecutor<'static>>,
}

impl Core {
    pub(crate) fn new() -> Core {
        Core {
            executor: Rc::new(LocalExecutor::new()),
        }
    }

    pub(crate) fn context(&self) -> Context {
        mq_plugin_api::Host::new(0, Rc::clone(&self.executor)).into_context()
    }

    /// Runs `future` on this core until it resolves.
    pub(crate) fn run<T>(&self, future: impl Future<Output = T>) -> T {
        smol::block_on(self.executor.run(future))
    }

    pub(crate) fn executor(&self) -> &Rc<LocalExecutor<'static>> {
        &self.executor
    }

    /// `MAIL FROM:<sender>` through `plugin`: the reply it set, if any.
    pub(crate) fn mail_from(&self, plugin: &dyn Plugin, sender: &str) -> Option<Reply> {
        let mut event = MailFrom::new(address(sender));
        let _ = self.run(plugin.smtp_in_mail_from(&mut self.context(), &mut event));
        event.reply().cloned()
    }

    /// `RCPT TO:<recipient>` through `plugin`: the reply it set, if any.
    pub(crate) fn rcpt_to(&self, plugin: &dyn Plugin, recipient: &str) -> Option<Reply> {
        let mut event = RcptTo::new(address("a@example.org"), address(recipient), false);
        let _ = self.run(plugin.smtp_in_rcpt_to(&mut self.context(), &mut event));
        event.reply().cloned()
    }

    /// A connection from `client`: the reply `plugin` set, if any.
    pub(crate) fn connect(&self, plugin: &dyn Plugin, client: &str) -> Option<Reply> {
        let client: SocketAddr = client.parse().expect("a socket address");
        let mut event = Connect::new(client, SocketAddr::from(([192, 0, 2, 25], 25)));
        let _ = self.run(plugin.smtp_in_connect(&mut self.context(), &mut event));
        event.reply().cloned()
    }
}

pub(crate) fn address(text: &str) -> Address {
    text.parse().expect("a valid address")
}

/// Whether each call was let through (no reply).
pub(crate) fn passed(replies: &[Option<Reply>]) -> Vec<bool> {
    replies.iter().map(Option::is_none).collect()
}

/// The Redis the tests use.
pub(crate) const REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// Whether the Redis tests can run: Redis answers on 127.0.0.1:6379. Those tests are
/// `#[ignore = "needs redis at 127.0.0.1:6379"]`, so they run only when asked for
/// (`-- --ignored`); asked for without Redis, they fail under `MQ_TEST_SERVICES=required` (as
/// CI sets it) and otherwise print why and return.
pub(crate) fn redis_available(test: &str) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], 6379));
    match TcpStream::connect_timeout(&address, Duration::from_secs(2)) {
        Ok(_) => true,
        Err(error) if std::env::var("MQ_TEST_SERVICES").as_deref() == Ok("required") => {
            panic!("{test}: Redis at {address} is required (MQ_TEST_SERVICES=required): {error}")
        }
        Err(error) => {
            eprintln!(
                "skipping {test}: no Redis at {address} ({error}); set MQ_TEST_SERVICES=required to fail instead"
            );
            false
        }
    }
}

/// A key prefix no other test run uses, so that runs never see each other's buckets.
pub(crate) fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    format!("mq:ratelimit:test:{}:{nanos}:{test}:", std::process::id())
}

/// A Redis section with one limit, under `prefix`.
pub(crate) fn redis_section(prefix: &str, limit_section: &str) -> String {
    format!(
        "backend = \"redis\"\nredis_url = \"{REDIS_URL}\"\nkey_prefix = \"{prefix}\"\n{limit_section}"
    )
}
