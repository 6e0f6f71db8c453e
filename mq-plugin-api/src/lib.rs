//! The contract an mq plugin compiles against, and nothing else.
//!
//! mq runs MailerQ's plugin model natively: at every step of receiving or delivering a message
//! the engine runs that step's *chain*, the enabled plugins that implement the step's hook, in
//! name order unless a plugin or the operator sets an [`Order`]. Each hook is an `async fn` that
//! resolves to a [`Control`]: go on, skip the rest, or restart the chain. A hook that waits (DNS,
//! HTTP, a timer) awaits on its worker's event loop through the [`Context`]; the message waits
//! and the worker does other work. A plugin that only looks (a webhook, an audit log) marks its
//! method `#[observe]` instead: observers see the event read-only once the chain has decided,
//! side by side, and cannot change the outcome (see [Observers](Plugin#observers) for when to
//! choose one).
//!
//! # Layout
//!
//! - [`Plugin`] (`plugin`): the trait, one async method per hook, and its lifecycle and chain
//!   rules; [`Hooked`], [`PluginHooks`] and [`Named`], which the attributes write.
//! - [`Control`] (`control`): what a hook hands back.
//! - The events (`event`): one type per hook ([`Connect`], [`Data`], ...), the [`Event`] trait
//!   that ties each to its [`HookId`] (`hook`), and to its observer method (`observe`).
//! - [`Context`] (`context`): timers, spawning, sockets, the deadline, data passed between hooks,
//!   logging, the read-only [`Session`] facts, and [`Dns`] lookups (`dns`).
//! - [`Host`] (`host`): the engine's side of a context, the only writer of its session facts;
//!   tests make one to call a hook directly.
//! - Mail types: [`Address`] (`address`), [`Message`] and [`Headers`] (`message`), [`Reply`]
//!   (`reply`); [`normalize_domain`] (`domain`), the one spelling of a domain.
//! - [`Registration`] (`registration`): what [`#[plugin]`](plugin) submits through inventory,
//!   and each plugin's [`PluginConfig`].
//! - [`Defaults`] (`settings`): a plugin's own defaults for the engine's settings, its
//!   [`Order`] in chains and its [`FailurePolicy`].
//! - [`metrics`]: the counters, gauges and histograms a plugin declares through its
//!   [`PluginConfig`], shown on `/metrics` with a `plugin` label.
//!
//! # Example
//!
//! A plugin that stamps every accepted message with the core that received it:
//!
//! ```
//! use mq_plugin_api::{hooks, plugin, Context, Control, Data, Plugin};
//!
//! #[derive(serde::Deserialize)]
//! pub struct StampConfig {
//!     header: String,
//! }
//!
//! pub struct Stamp {
//!     header: String,
//! }
//!
//! #[plugin(name = "stamp")] // registers through inventory; the factory gets our config
//! impl Stamp {
//!     fn new(config: &StampConfig) -> Self {
//!         Stamp { header: config.header.clone() }
//!     }
//! }
//!
//! #[hooks] // the engine learns from this impl which hooks we have
//! impl Plugin for Stamp {
//!     async fn smtp_in_data(&self, ctx: &mut Context, data: &mut Data) -> Control {
//!         data.message.headers_mut().prepend(&self.header, ctx.core().to_string());
//!         Control::Continue
//!     }
//! }
//! ```
//!
//! # The hooks
//!
//! Every hook, in the order a message meets them. A hook changes its event through the event's
//! public fields; what it may only read has accessors. "Reject" is `return event.reject(reply);`:
//! the chain ends there whatever the hook returns, and the last column says what the engine then
//! does. A step with no `reject` cannot be refused.
//!
//! | Hook | Runs | Event | May change | A reject |
//! |------|------|-------|------------|----------|
//! | `smtp_in_connect` | a client connected, before the greeting | [`Connect`] | nothing | greets with the reply and closes the connection |
//! | `smtp_in_helo` | EHLO or HELO | [`Helo`] | `name`, the name the session records | refuses the command; the client may say it again |
//! | `smtp_in_secure` | STARTTLS completed | [`Secure`] | nothing | — |
//! | `smtp_in_authenticate` | AUTH gave credentials | [`Authenticate`] | `verdict` (accept or deny the login) | refuses the login with the reply |
//! | `smtp_in_mail_from` | MAIL FROM | [`MailFrom`] | `sender`, `params` | refuses the sender |
//! | `smtp_in_rcpt_to` | each RCPT TO | [`RcptTo`] | `recipients` (rewrite, expand), `params`, `local` | refuses this recipient; the others stand |
//! | `smtp_in_data` | the message received, before it is queued | [`Data`] | `message` (headers and body) | refuses the message: nothing is queued |
//! | `smtp_in_message` | once per recipient, before its copy is queued | [`MessageCopy`] | `recipient`, `message` (this copy only) | refuses this recipient's copy; the others are queued |
//! | `smtp_in_close` | the connection closed | [`Close`] | nothing | — |
//! | `queue_pickup` | an entry taken from the queue for delivery | [`Pickup`] | `sender`, `recipient`, `action` (deliver, delay, drop) | ends the entry as the reply's code says: 4xx tries it again later, 5xx bounces it |
//! | `smtp_out_connect` | connected to a remote server | [`OutConnect`] | nothing | gives the server up; the entries are settled by the reply's code |
//! | `smtp_out_mail_from` | before MAIL FROM is sent | [`OutMailFrom`] | `sender`, `params` (what goes on the wire) | settles every entry of the transaction by the reply's code |
//! | `smtp_out_rcpt_to` | before each RCPT TO is sent | [`OutRcptTo`] | `recipient`, `params` | settles this entry by the reply's code |
//! | `smtp_out_data` | before the message is sent | [`OutData`] | `message`, for this attempt (the queued copy stays) | settles the transaction's entries by the reply's code |
//! | `smtp_out_sent` | the message went out, the final reply not read yet | [`OutSent`] | nothing | — |
//! | `delivery_result` | an attempt ended | [`DeliveryResult`] | `state` (delivered, deferred for how long, failed) | — |
//!
//! The session facts (client address, EHLO name, TLS, authenticated user) are the engine's:
//! every hook reads them through [`Context::session`], none can set them.
//!
//! # Why async-trait and one box per call
//!
//! - Chains hold plugins as `dyn Plugin`, and a trait with native `async fn` is not dyn
//!   compatible; async-trait boxes each hook's future instead (about 11 ns a call).
//! - Chains run on one executor per core, so hook futures need not be `Send` (`?Send`): a plugin
//!   may hold `Rc` and `RefCell` across awaits.
//! - The engine polls the boxed future once inline; a hook that completes at once costs no timer,
//!   no clock read and no allocation beyond the box.

mod address;
mod context;
mod control;
mod dns;
mod domain;
pub mod duration;
mod event;
mod hook;
mod host;
mod message;
pub mod metrics;
mod observe;
mod plugin;
mod registration;
mod reply;
mod settings;

pub use address::{Address, AddressError};
pub use context::{
    CallState, Clock, Context, Elapsed, Extensions, Session, Sleep, TaskTracker, TimeoutExt,
};
pub use control::Control;
pub use dns::{Dns, DnsFailure};
pub use domain::{InvalidDomain, normalize_domain};
pub use event::{
    AuthVerdict, Authenticate, Close, Connect, Data, DeliveryResult, DeliveryState, Envelope,
    Event, Helo, HookFuture, MailFrom, MessageCopy, OutConnect, OutData, OutMailFrom, OutRcptTo,
    OutSent, Params, Pickup, PickupAction, RcptTo, Secret, Secure,
};
pub use hook::{HookId, HookSet};
pub use host::Host;
pub use message::{FoldError, Header, Headers, Message};
pub use metrics::{Counter, Gauge, Histogram, MetricRegistry};
pub use mq_plugin_api_macros::{hooks, plugin};
#[doc(hidden)]
pub use observe::Observable;
pub use observe::ObserverFuture;
pub use plugin::{Hooked, Named, Plugin, PluginHooks};
pub use registration::{ConfigError, Factory, PluginConfig, Registration, SharedState};
pub use reply::Reply;
pub use settings::{Defaults, FailurePolicy, Order};
pub use smol::{Async, Task, Timer};

/// Not public API: what the attribute macros expand to.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use inventory;
}
