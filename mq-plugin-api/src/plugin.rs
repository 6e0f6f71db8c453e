//! The plugin trait.

use async_trait::async_trait;

use crate::event::{
    Authenticate, Close, Connect, Data, DeliveryResult, Helo, MailFrom, MessageCopy, OutConnect,
    OutData, OutMailFrom, OutRcptTo, OutSent, Pickup, RcptTo, Secure,
};
use crate::{Context, Control, HookSet};
#[cfg(doc)]
use crate::{Defaults, Order};

/// A plugin: one async method per hook, each resolving to a [`Control`].
///
/// Write the `impl Plugin` block with plain `async fn`s for the hooks you want and put
/// [`#[hooks]`](crate::hooks) on it; register the type with [`#[plugin]`](crate::plugin). Hooks
/// you do not write are not in your plugin's chains and cost nothing.
///
/// # Lifecycle of a plugin
///
/// 1. At start-up the engine collects every registered plugin, sorts them by [`Order`] and then
///    by name, and refuses two with one name. `[plugins.NAME]` is the plugin's own table, all of
///    it; the engine's settings for the plugin are in `[engine.plugins.NAME]` (below).
/// 2. On each worker core the plugin's factory (its `new`) runs once, so an instance is per-core
///    state: use `Cell`/`RefCell` for what changes, and an `Arc` of your own for what must be
///    shared across cores.
/// 3. Then, on each core, the engine calls every instance's [`start`](Plugin::start) once,
///    before any chain runs: the place to spawn a plugin's own tasks
///    ([`Context::spawn`]), which the engine tracks.
/// 4. At each step the engine runs that hook's chain: the enabled plugins that implement the hook,
///    **by order, then in name order**. A hook may await on the worker's event loop (timers,
///    sockets, DNS) through
///    its [`Context`]; the message waits, the worker serves other work.
/// 5. At shutdown the engine waits for chains in flight, calls every instance's
///    [`stop`](Plugin::stop), waits for the tasks the plugin spawned to end (within `[engine]
///    shutdown_timeout`), then drops the instances. A reload does the same for the instances
///    it replaces, once their last chain has finished, and starts the new ones before they run.
///
/// # Chain rules
///
/// - [`Control::Continue`] calls the next plugin; after the last, the step goes on.
/// - [`Control::Complete`] skips the rest of the chain; the step goes on.
/// - [`Control::Retry`] restarts the chain from its first plugin, which sees the event as later
///   plugins left it. A chain restarts at most its retry budget (default 10) times; then the step
///   fails temporarily and the log names the plugin.
/// - A plugin that rejects the step (`return event.reject(reply);`) ends the chain with that
///   reply, whatever the hook returns: `reject` hands back [`Control::Complete`], the control
///   the engine treats a reject as, so the hook says what happens.
/// - Later plugins see earlier plugins' changes.
/// - A call that does not resolve before its deadline (default 30 s) is dropped, and one that
///   panics is caught; either fails the step under the plugin's policy (default: temporarily).
/// - A single poll that holds the worker longer than the slow-poll threshold (default 10 ms) is
///   logged and counted: block on nothing, await instead.
///
/// # Engine settings: `[engine.plugins.NAME]`
///
/// | key        | what                                                        | default                        |
/// |------------|-------------------------------------------------------------|--------------------------------|
/// | `enabled`  | `false` leaves the plugin out of every chain                | `true`                         |
/// | `timeout`  | the deadline of one call (`"5s"`, `"250ms"`, seconds)       | `[engine] timeout` (30 s)      |
/// | `on_error` | a timed-out or panicking call: `tempfail`, `reject`, `skip` | `[engine] on_error` (tempfail) |
/// | `order`    | place in chains: `"first"`, `"last"` or an integer          | `0`                            |
///
/// A plugin may give its own defaults in its registration, which the operator's settings
/// override: `#[plugin(name = "dkim", on_error = "skip", order = "last")]` (also `timeout =
/// "10s"`, `enabled = false`; see [`Defaults`]). One of these keys left in `[plugins.NAME]` is
/// refused at start-up with its new place, so a plugin's own table never has them.
///
/// Order exists for plugins whose work later plugins must not undo: a signer that must see the
/// message as it is queued runs last, so that a plugin named after it cannot change what it
/// signed.
///
/// # Observers
///
/// A hook method marked `#[observe]` inside [`#[hooks]`](crate::hooks) is an *observer*: it
/// takes `&Context` and the event by shared reference, returns nothing, and is in no chain.
/// Once the chain has decided, the engine runs every observer of the step side by side, each
/// under its own deadline (its plugin's timeout). It sees the event as the chain left it, a
/// rejected step's reply included; it cannot change the event or the outcome, and a timeout or
/// a panic is logged and counted (`mq_plugin_observer_calls_total`) while the step goes on as
/// decided. Observers of `delivery_result` run on a task of their own: the next delivery never
/// waits for them, and shutdown does.
///
/// Choose an observer when the plugin only looks: a webhook, an audit log, an archive copy,
/// metrics. Four observers that each wait 100 ms cost a step about 100 ms, where four chain
/// hooks cost 400 ms, and an observer that fails never fails the step. Choose a chain hook when
/// the plugin changes the event, refuses the step, or must run before or after another plugin.
///
/// ```
/// use mq_plugin_api::{hooks, Context, DeliveryResult, Plugin};
///
/// struct Audit;
///
/// #[hooks]
/// impl Plugin for Audit {
///     #[observe]
///     async fn delivery_result(&self, ctx: &Context, event: &DeliveryResult) {
///         ctx.info(format_args!("{} attempt {}: {:?}", event.queue_id(), event.attempt(), event.state));
///     }
/// }
/// ```
///
/// An observer gets its event read-only:
///
/// ```compile_fail
/// use mq_plugin_api::{hooks, Context, Data, Plugin};
///
/// struct Meddler;
///
/// #[hooks]
/// impl Plugin for Meddler {
///     #[observe]
///     async fn smtp_in_data(&self, _ctx: &Context, data: &mut Data) {
///         data.message.headers_mut().append("X-Meddled", "yes");
///     }
/// }
/// ```
///
/// and returns nothing, so it cannot steer the chain:
///
/// ```compile_fail
/// use mq_plugin_api::{hooks, Context, Control, Data, Plugin};
///
/// struct Steerer;
///
/// #[hooks]
/// impl Plugin for Steerer {
///     #[observe]
///     async fn smtp_in_data(&self, _ctx: &Context, _data: &Data) -> Control {
///         Control::Complete
///     }
/// }
/// ```
///
/// # Examples
///
/// Two plugins at `smtp_in_data`: `"audit"` runs before `"banner"` because of their names, so
/// `banner` sees the header `audit` added.
///
/// ```
/// use mq_plugin_api::{hooks, plugin, Context, Control, Data, Plugin};
///
/// struct Audit;
///
/// #[plugin(name = "audit")]
/// impl Audit {
///     fn new() -> Self {
///         Audit
///     }
/// }
///
/// #[hooks]
/// impl Plugin for Audit {
///     async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
///         data.message.headers_mut().prepend("X-Audited", "yes");
///         Control::Continue
///     }
/// }
///
/// struct Banner;
///
/// #[plugin(name = "banner")]
/// impl Banner {
///     fn new() -> Self {
///         Banner
///     }
/// }
///
/// #[hooks]
/// impl Plugin for Banner {
///     async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
///         if data.message.headers().get("X-Audited").is_some() {
///             data.message.headers_mut().append("X-Banner", "audited mail");
///         }
///         Control::Continue
///     }
/// }
/// ```
///
/// A reject ends the chain whatever the hook returns, so `reject` hands back the `Control` the
/// engine treats it as; dropping it unused is a warning (an error where warnings are denied):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// use mq_plugin_api::{hooks, Context, Control, MailFrom, Plugin, Reply};
///
/// struct Undecided;
///
/// #[hooks]
/// impl Plugin for Undecided {
///     async fn smtp_in_mail_from(&self, _ctx: &mut Context, mail: &mut MailFrom) -> Control {
///         mail.reject(Reply::new(550, "5.7.1", "refused"));
///         Control::Continue // reads as "go on", but the chain ends here
///     }
/// }
/// ```
///
/// A hook must resolve to a `Control`; anything else does not compile:
///
/// ```compile_fail
/// use mq_plugin_api::{hooks, Context, Data, Plugin};
///
/// struct Forgetful;
///
/// #[hooks]
/// impl Plugin for Forgetful {
///     async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) {}
/// }
/// ```
#[async_trait(?Send)]
#[allow(unused_variables)]
pub trait Plugin: Hooked + 'static {
    /// Runs once on each worker core after the instance is built, before any of its chains:
    /// spawn the plugin's long-lived tasks here with [`Context::spawn`] (the engine tracks them
    /// and waits for them at shutdown). It may await; it runs under the plugin's deadline, and
    /// one that times out or panics is logged and the plugin runs on without it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use mq_plugin_api::{hooks, Context, Plugin, Timer};
    ///
    /// struct Ticker;
    ///
    /// #[hooks]
    /// impl Plugin for Ticker {
    ///     async fn start(&self, ctx: &mut Context) {
    ///         // Tracked: shutdown waits for it (within `[engine] shutdown_timeout`).
    ///         ctx.spawn(async { Timer::after(Duration::from_millis(1)).await }).detach();
    ///     }
    /// }
    /// ```
    async fn start(&self, ctx: &mut Context) {}

    /// Runs once on each worker core when shutdown has begun and the chains in flight have
    /// finished, before the instance is dropped: tell the plugin's tasks to finish (close their
    /// queues) so that the engine's wait for them ends. It may await, under the plugin's
    /// deadline.
    async fn stop(&self, ctx: &mut Context) {}

    /// `smtp_in_connect`: a client connected. May reject the connection.
    async fn smtp_in_connect(&self, ctx: &mut Context, event: &mut Connect) -> Control {
        Control::Continue
    }

    /// `smtp_in_helo`: EHLO or HELO. May reject it.
    async fn smtp_in_helo(&self, ctx: &mut Context, event: &mut Helo) -> Control {
        Control::Continue
    }

    /// `smtp_in_secure`: STARTTLS completed.
    async fn smtp_in_secure(&self, ctx: &mut Context, event: &mut Secure) -> Control {
        Control::Continue
    }

    /// `smtp_in_authenticate`: AUTH credentials given. May accept or deny the login.
    async fn smtp_in_authenticate(&self, ctx: &mut Context, event: &mut Authenticate) -> Control {
        Control::Continue
    }

    /// `smtp_in_mail_from`: MAIL FROM. May rewrite the sender or reject it.
    async fn smtp_in_mail_from(&self, ctx: &mut Context, event: &mut MailFrom) -> Control {
        Control::Continue
    }

    /// `smtp_in_rcpt_to`: each RCPT TO. May rewrite, expand, mark local or reject.
    async fn smtp_in_rcpt_to(&self, ctx: &mut Context, event: &mut RcptTo) -> Control {
        Control::Continue
    }

    /// `smtp_in_data`: the whole message received, before it is queued. May change headers and
    /// body, or reject.
    async fn smtp_in_data(&self, ctx: &mut Context, event: &mut Data) -> Control {
        Control::Continue
    }

    /// `smtp_in_message`: once per recipient, before it is queued. May change that copy, or
    /// reject that recipient.
    async fn smtp_in_message(&self, ctx: &mut Context, event: &mut MessageCopy) -> Control {
        Control::Continue
    }

    /// `smtp_in_close`: the connection closed.
    async fn smtp_in_close(&self, ctx: &mut Context, event: &mut Close) -> Control {
        Control::Continue
    }

    /// `queue_pickup`: an entry was taken from the queue for delivery. May rewrite, delay, fail
    /// or drop it.
    async fn queue_pickup(&self, ctx: &mut Context, event: &mut Pickup) -> Control {
        Control::Continue
    }

    /// `smtp_out_connect`: connected to a remote server.
    async fn smtp_out_connect(&self, ctx: &mut Context, event: &mut OutConnect) -> Control {
        Control::Continue
    }

    /// `smtp_out_mail_from`: about to send MAIL FROM.
    async fn smtp_out_mail_from(&self, ctx: &mut Context, event: &mut OutMailFrom) -> Control {
        Control::Continue
    }

    /// `smtp_out_rcpt_to`: about to send one RCPT TO.
    async fn smtp_out_rcpt_to(&self, ctx: &mut Context, event: &mut OutRcptTo) -> Control {
        Control::Continue
    }

    /// `smtp_out_data`: about to send the message. May replace or sign it for this attempt.
    async fn smtp_out_data(&self, ctx: &mut Context, event: &mut OutData) -> Control {
        Control::Continue
    }

    /// `smtp_out_sent`: the message went out, the final reply not read yet.
    async fn smtp_out_sent(&self, ctx: &mut Context, event: &mut OutSent) -> Control {
        Control::Continue
    }

    /// `delivery_result`: an attempt ended. May change the retry decision.
    async fn delivery_result(&self, ctx: &mut Context, event: &mut DeliveryResult) -> Control {
        Control::Continue
    }

    /// Observer of `smtp_in_connect`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_connect` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_connect(&self, ctx: &Context, event: &Connect) {}

    /// Observer of `smtp_in_helo`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_helo` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_helo(&self, ctx: &Context, event: &Helo) {}

    /// Observer of `smtp_in_secure`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_secure` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_secure(&self, ctx: &Context, event: &Secure) {}

    /// Observer of `smtp_in_authenticate`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_authenticate` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_authenticate(&self, ctx: &Context, event: &Authenticate) {}

    /// Observer of `smtp_in_mail_from`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_mail_from` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_mail_from(&self, ctx: &Context, event: &MailFrom) {}

    /// Observer of `smtp_in_rcpt_to`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_rcpt_to` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_rcpt_to(&self, ctx: &Context, event: &RcptTo) {}

    /// Observer of `smtp_in_data`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_data` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_data(&self, ctx: &Context, event: &Data) {}

    /// Observer of `smtp_in_message`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_message` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_message(&self, ctx: &Context, event: &MessageCopy) {}

    /// Observer of `smtp_in_close`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_in_close` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_in_close(&self, ctx: &Context, event: &Close) {}

    /// Observer of `queue_pickup`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn queue_pickup` inside [`#[hooks]`](crate::hooks).
    async fn observe_queue_pickup(&self, ctx: &Context, event: &Pickup) {}

    /// Observer of `smtp_out_connect`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_out_connect` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_out_connect(&self, ctx: &Context, event: &OutConnect) {}

    /// Observer of `smtp_out_mail_from`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_out_mail_from` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_out_mail_from(&self, ctx: &Context, event: &OutMailFrom) {}

    /// Observer of `smtp_out_rcpt_to`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_out_rcpt_to` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_out_rcpt_to(&self, ctx: &Context, event: &OutRcptTo) {}

    /// Observer of `smtp_out_data`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_out_data` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_out_data(&self, ctx: &Context, event: &OutData) {}

    /// Observer of `smtp_out_sent`: sees the event read-only once the chain has decided. Written as
    /// `#[observe] async fn smtp_out_sent` inside [`#[hooks]`](crate::hooks).
    async fn observe_smtp_out_sent(&self, ctx: &Context, event: &OutSent) {}

    /// Observer of `delivery_result`: sees the event read-only once the chain has decided. Runs on a task of its own: it never delays the next delivery. Written as
    /// `#[observe] async fn delivery_result` inside [`#[hooks]`](crate::hooks).
    async fn observe_delivery_result(&self, ctx: &Context, event: &DeliveryResult) {}
}

/// The mark [`#[hooks]`](crate::hooks) leaves on a plugin type whose `impl Plugin` block it
/// wrote. Not to be implemented by hand: [`Plugin`] requires it so that an `impl Plugin` block
/// without `#[hooks]` is reported as that, not as the mismatch of async-trait's boxed futures
/// with plain `async fn`s that follows from it.
#[diagnostic::on_unimplemented(
    message = "`impl Plugin for {Self}` needs the `#[hooks]` attribute",
    label = "add `#[hooks]` on the line above `impl Plugin for {Self}`",
    note = "`#[hooks]` turns the block's `async fn`s into the trait's methods and records which hooks `{Self}` has"
)]
pub trait Hooked {}

/// The hooks a plugin type implements, written by [`#[hooks]`](crate::hooks) from its
/// `impl Plugin` block. Not to be implemented by hand.
#[diagnostic::on_unimplemented(
    message = "`impl Plugin for {Self}` needs the `#[hooks]` attribute",
    label = "`#[plugin]` registers the hooks that `#[hooks]` records for `{Self}`",
    note = "add `#[hooks]` on the line above `impl Plugin for {Self}`"
)]
pub trait PluginHooks: Plugin {
    /// The hooks whose methods the `impl Plugin` block defines.
    const HOOKS: HookSet;
    /// The hooks the block observes: its `#[observe]` methods.
    const OBSERVES: HookSet = HookSet::EMPTY;
}

/// A plugin type's registered name, written by [`#[plugin]`](crate::plugin).
pub trait Named {
    /// The name chains are sorted by and config sections are keyed by.
    const NAME: &'static str;
}
