//! mq's `webhook` plugin: POSTs every `delivery_result` as JSON to a configured HTTP URL.
//!
//! The plugin observes `delivery_result` (an `#[observe]` hook: it sees the event read-only,
//! beside the other observers and after the chain, on a task of its own, so it cannot delay a
//! delivery or change its outcome). It turns the event into a JSON body (queue id, attempt,
//! state, retry delay, sender, recipient, remote reply, time) and puts it on its core's bounded
//! queue; it never waits. A sender task on the same core, spawned by the plugin's `start`, takes
//! the bodies in order and POSTs each until the endpoint answers 2xx, backing off between
//! attempts, and gives an event up after `max_attempts`. A full queue drops the new event. What
//! became of the events is counted in [`Counters`], shared by all cores, and on `/metrics` as
//! `mq_plugin_webhook_sent_total`, `_retried_total`, `_dropped_total` and `_failed_total`.
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
//!   again. At shutdown the plugin's `stop` closes the queue and the engine waits for the
//!   sender task to send what is queued, within `[engine] shutdown_timeout`; what is still
//!   queued after that is lost (the queue lives in memory).
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
//! let executor = Rc::new(smol::LocalExecutor::new());
//! let mut ctx = mq_plugin_api::Host::new(0, Rc::clone(&executor)).into_context();
//! smol::block_on(plugin.start(&mut ctx)); // spawns the core's sender task
//! // Queued for the sender task (which runs when the worker's executor does).
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
use smol::channel::{Receiver, Sender};

pub use config::{InvalidConfig, WebhookConfig};
pub use outbox::Counters;

use crate::http::Client;
use crate::outbox::{Meters, Outbox};

/// The `webhook` plugin: queues each delivery result for its core's sender task.
///
/// One instance runs per worker core, with its own queue and task; the [`Counters`] are shared
/// by all of them.
#[derive(Debug)]
pub struct Webhook {
    /// How this core's events are sent; `None` without a URL, when the plugin sends nothing.
    outbox: Option<Rc<Outbox>>,
    queue_size: usize,
    /// The queue's sending end; `stop` drops it, which ends the sender task once the queue is
    /// empty.
    queue: RefCell<Option<Sender<Vec<u8>>>>,
    /// The queue's receiving end until `start` hands it to the sender task.
    pending: RefCell<Option<Receiver<Vec<u8>>>>,
    counters: Arc<Counters>,
    meters: Meters,
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
        let meters = Meters::declare(config);
        let outbox = options.endpoint()?.map(|endpoint| {
            Rc::new(Outbox {
                client: Client::new(endpoint, &options.headers, options.request_timeout),
                retry: options.retry.clone(),
                max_attempts: options.max_attempts,
                counters: Arc::clone(&counters),
                meters: meters.clone(),
                core: config.core(),
            })
        });
        // Events that come before `start` wait in the queue; without a URL there is none.
        let (queue, pending) = match outbox {
            Some(_) => {
                let (sender, receiver) = smol::channel::bounded(options.queue_size);
                (Some(sender), Some(receiver))
            }
            None => (None, None),
        };
        Ok(Webhook {
            outbox,
            queue_size: options.queue_size,
            queue: RefCell::new(queue),
            pending: RefCell::new(pending),
            counters,
            meters,
            full: Cell::new(false),
        })
    }

    /// What became of the events so far, summed over every core.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Puts the event's JSON on this core's queue; drops it when the queue is full, or closed
    /// because the plugin stopped.
    fn enqueue(&self, ctx: &Context, event: &DeliveryResult) {
        let queue = self.queue.borrow();
        let Some(sender) = queue.as_ref() else {
            if self.outbox.is_some() {
                self.count_drop(ctx);
            }
            return;
        };
        match sender.try_send(payload::to_json(event, SystemTime::now())) {
            Ok(()) => self.full.set(false),
            Err(_) => self.count_drop(ctx),
        }
    }

    /// Spawns the task that empties this core's queue, tracked by the engine, so that shutdown
    /// waits for the queue to be sent.
    fn spawn_sender(&self, ctx: &Context) {
        let (Some(outbox), Some(receiver)) = (&self.outbox, self.pending.borrow_mut().take())
        else {
            return;
        };
        let outbox = Rc::clone(outbox);
        ctx.spawn(async move { outbox.run(receiver).await })
            .detach();
    }

    fn count_drop(&self, ctx: &Context) {
        self.meters.dropped.inc(&[]);
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
    async fn start(&self, ctx: &mut Context) {
        self.spawn_sender(ctx);
    }

    /// Closes the queue: the sender task sends what is in it, then ends.
    async fn stop(&self, _ctx: &mut Context) {
        self.queue.borrow_mut().take();
    }

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
        shared.config("webhook", core, table)
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
