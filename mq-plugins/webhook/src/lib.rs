//! mq's `webhook` plugin: POSTs every `delivery_result` as JSON to a configured HTTP URL.
//!
//! The plugin observes `delivery_result` (an `#[observe]` hook: it sees the event read-only,
//! beside the other observers and after the chain, on a task of its own, so it cannot delay a
//! delivery or change its outcome). It turns the event into a JSON body (queue id, attempt,
//! state, retry delay, sender, recipient, remote reply, time) and puts it on its core's bounded
//! queue; it never waits. A sender task on the same
//! core takes the bodies in order and POSTs each until the endpoint answers 2xx, backing off
//! between attempts, and gives an event up after `max_attempts`. A full queue drops the new
//! event. What became of the events is counted in [`Counters`], shared by all cores.
//!
//! # Layout
//!
//! - `lib.rs`: [`Webhook`], the plugin and its registration under the name `webhook`; the hook
//!   and the queue.
//! - `config`: [`WebhookConfig`], its keys, and [`InvalidConfig`] for a section mq refuses.
//! - `payload`: the JSON body of one event and its RFC 3339 time.
//! - `outbox`: the per-core sender task, its retries and back-off, and [`Counters`].
//! - `http`: a minimal HTTP/1.1 client, one `Connection: close` POST at a time.
//!
//! # Why a queue per core, and dropping when full
//!
//! - The sender task runs on the worker's own executor beside the chains, so the plugin needs
//!   no thread, no lock and no `Send` state; each core's events reach the endpoint in order.
//! - A webhook is a report, not part of delivery: a slow or absent endpoint must never hold a
//!   worker or a message. So the hook only `try_send`s, and a full queue costs one counted
//!   event, not a stalled delivery.
//! - Delivery is at least once within `max_attempts`: a POST whose answer was lost is sent
//!   again. Events still queued at shutdown are lost; the queue lives in memory.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//!
//! use mq_plugin_api::{Context, DeliveryResult, DeliveryState, Plugin, PluginConfig};
//! use mq_plugin_webhook::Webhook;
//!
//! let section = toml::from_str(r#"url = "http://127.0.0.1:9/mq-events""#).unwrap();
//! let plugin = Webhook::new(&PluginConfig::new("webhook", 0, section)).unwrap();
//!
//! let envelope = ("a@example.org".parse().unwrap(), "b@example.net".parse().unwrap());
//! let event = DeliveryResult::new("Q1", 1, envelope, None, DeliveryState::Delivered);
//! let ctx = Context::new(0, Rc::new(smol::LocalExecutor::new()));
//! // Queued for the core's sender task (which runs when the worker's executor does).
//! smol::block_on(plugin.observe_delivery_result(&ctx, &event));
//! assert_eq!(plugin.counters().dropped(), 0);
//! ```

mod config;
mod http;
mod outbox;
mod payload;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use mq_plugin_api::{Context, DeliveryResult, Plugin, PluginConfig, hooks, plugin};
use smol::channel::Sender;

pub use config::{InvalidConfig, WebhookConfig};
pub use outbox::Counters;

use crate::http::Client;
use crate::outbox::Outbox;

/// The `webhook` plugin: queues each delivery result for its core's sender task.
///
/// One instance runs per worker core, with its own queue and task; the [`Counters`] are shared
/// by all of them.
#[derive(Debug)]
pub struct Webhook {
    /// How this core's events are sent; `None` without a URL, when the plugin sends nothing.
    outbox: Option<Rc<Outbox>>,
    queue_size: usize,
    /// The queue's sending end, made (with the task) at the first event, and again if the
    /// task is gone because its executor was dropped.
    queue: RefCell<Option<Sender<Vec<u8>>>>,
    counters: Arc<Counters>,
    /// Whether the last event was dropped: only the first drop of a run is logged.
    full: Cell<bool>,
}

#[plugin(name = "webhook")]
impl Webhook {
    /// The plugin for the section in `config`, counting into the state shared by the plugin's
    /// instances on every core.
    ///
    /// # Errors
    ///
    /// The section does not parse or does not pass [`WebhookConfig::validate`]; the engine
    /// then refuses to start and names the plugin.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::PluginConfig;
    /// use mq_plugin_webhook::Webhook;
    ///
    /// let section = |text: &str| PluginConfig::new("webhook", 0, toml::from_str(text).unwrap());
    /// assert!(Webhook::new(&section("")).is_ok()); // no URL: sends nothing
    /// assert!(Webhook::new(&section(r#"url = "http://hooks.example/mq""#)).is_ok());
    /// assert!(Webhook::new(&section(r#"url = "https://hooks.example/mq""#)).is_err());
    /// ```
    pub fn new(config: &PluginConfig) -> Result<Webhook, InvalidConfig> {
        let options = WebhookConfig::from_table(config.table())?;
        let counters = crate::counters(config);
        let outbox = options.endpoint()?.map(|endpoint| {
            Rc::new(Outbox {
                client: Client::new(endpoint, &options.headers, options.request_timeout),
                retry: options.retry.clone(),
                max_attempts: options.max_attempts,
                counters: Arc::clone(&counters),
                core: config.core(),
            })
        });
        Ok(Webhook {
            outbox,
            queue_size: options.queue_size,
            queue: RefCell::new(None),
            counters,
            full: Cell::new(false),
        })
    }

    /// What became of the events so far, summed over every core.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Puts the event's JSON on this core's queue, starting the sender task if there is none;
    /// drops it when the queue is full.
    fn enqueue(&self, ctx: &Context, event: &DeliveryResult) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        let body = payload::to_json(event, SystemTime::now());
        let mut queue = self.queue.borrow_mut();
        let sender = match queue.take() {
            Some(sender) if !sender.is_closed() => queue.insert(sender),
            _ => queue.insert(self.start(ctx, outbox)),
        };
        match sender.try_send(body) {
            Ok(()) => self.full.set(false),
            Err(_) => self.count_drop(ctx),
        }
    }

    /// A fresh queue, and the task that empties it on this core's executor.
    fn start(&self, ctx: &Context, outbox: &Rc<Outbox>) -> Sender<Vec<u8>> {
        let (sender, receiver) = smol::channel::bounded(self.queue_size);
        let outbox = Rc::clone(outbox);
        ctx.spawn(async move { outbox.run(receiver).await })
            .detach();
        sender
    }

    fn count_drop(&self, ctx: &Context) {
        let dropped = self.counters.count_drop();
        if !self.full.replace(true) {
            ctx.warn(format_args!(
                "queue full ({} events): dropping events until it drains ({dropped} dropped)",
                self.queue_size
            ));
        }
    }
}

/// The counters of the plugin whose instances are built from `config` (or from configs sharing
/// its state): how an engine or a test reads them without holding an instance.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::{PluginConfig, Registration};
///
/// let config = PluginConfig::new("webhook", 0, toml::Table::new());
/// let webhook = Registration::all().find(|r| r.name() == "webhook").unwrap();
/// let _plugin = webhook.build(&config).unwrap();
/// assert_eq!(mq_plugin_webhook::counters(&config).sent(), 0);
/// ```
pub fn counters(config: &PluginConfig) -> Arc<Counters> {
    config.shared(Counters::default)
}

#[hooks]
impl Plugin for Webhook {
    #[observe]
    async fn delivery_result(&self, ctx: &Context, event: &DeliveryResult) {
        self.enqueue(ctx, event);
    }
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::{HookId, Named, PluginHooks, Registration, SharedState};

    use super::*;

    fn registration() -> &'static Registration {
        Registration::all()
            .find(|r| r.name() == "webhook")
            .expect("the plugin registers itself")
    }

    fn config(core: usize, section: &str, shared: &SharedState) -> PluginConfig {
        let table = toml::from_str(section).unwrap();
        PluginConfig::new("webhook", core, table).with_shared(shared.clone())
    }

    #[test]
    fn registers_as_webhook_observing_delivery_result_only() {
        assert_eq!(Webhook::NAME, "webhook");
        assert!(Webhook::HOOKS.is_empty(), "in no chain");
        let observed: Vec<_> = Webhook::OBSERVES.iter().map(HookId::name).collect();
        assert_eq!(observed, ["delivery_result"]);
        assert_eq!(registration().hooks(), Webhook::HOOKS);
        assert_eq!(registration().observers(), Webhook::OBSERVES);
    }

    #[test]
    fn the_factory_refuses_a_bad_section_naming_the_plugin() {
        let shared = SharedState::default();
        let error = registration()
            .build(&config(0, "url = \"http://h/\"\nqueue_size = 0", &shared))
            .err()
            .expect("a zero queue is refused");
        assert_eq!(error.plugin(), "webhook");
        assert_eq!(
            error.to_string(),
            "plugin \"webhook\": invalid config: queue_size must be above zero"
        );
        let unknown = registration().build(&config(0, "ulr = \"http://h/\"", &shared));
        assert!(unknown.err().unwrap().to_string().contains("ulr"));
    }

    #[test]
    fn the_instances_on_every_core_share_one_set_of_counters() {
        let shared = SharedState::default();
        let section = "url = \"http://h/\"";
        let core0 = Webhook::new(&config(0, section, &shared)).unwrap();
        let core1 = Webhook::new(&config(1, section, &shared)).unwrap();
        core0.counters.count_drop();
        assert_eq!(core1.counters().dropped(), 1);
        assert_eq!(counters(&config(2, "", &shared)).dropped(), 1);
    }
}
