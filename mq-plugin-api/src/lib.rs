//! The contract an mq plugin compiles against, and nothing else.
//!
//! mq runs MailerQ's plugin model natively: at every step of receiving or delivering a message
//! the engine runs that step's *chain*, the enabled plugins that implement the step's hook, in
//! name order. Each hook is an `async fn` that resolves to a [`Control`]: go on, skip the rest,
//! or restart the chain. A hook that waits (DNS, HTTP, a timer) awaits on its worker's event loop
//! through the [`Context`]; the message waits and the worker does other work. A plugin that only
//! looks (a webhook, an audit log) marks its method `#[observe]` instead: observers see the event
//! read-only once the chain has decided, side by side, and cannot change the outcome (see
//! [Observers](Plugin#observers) for when to choose one).
//!
//! # Layout
//!
//! - [`Plugin`] (`plugin`): the trait, one async method per hook, and its lifecycle and chain
//!   rules; [`PluginHooks`] and [`Named`], which the attributes write.
//! - [`Control`] (`control`): what a hook hands back.
//! - The events (`event`): one type per hook ([`Connect`], [`Data`], ...), the [`Event`] trait
//!   that ties each to its [`HookId`] (`hook`), and to its observer method (`observe`).
//! - [`Context`] (`context`): timers, spawning, sockets, the deadline, data passed between hooks,
//!   logging, and [`Dns`] lookups (`dns`).
//! - Mail types: [`Address`] (`address`), [`Message`] and [`Headers`] (`message`), [`Reply`]
//!   (`reply`); [`normalize_domain`] (`domain`), the one spelling of a domain.
//! - [`Registration`] (`registration`): what [`#[plugin]`](plugin) submits through inventory,
//!   and each plugin's [`PluginConfig`].
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
mod message;
mod observe;
mod plugin;
mod registration;
mod reply;

pub use address::{Address, AddressError};
pub use context::{CallState, Clock, Context, Elapsed, Extensions, Session, Sleep, TimeoutExt};
pub use control::Control;
pub use dns::{Dns, DnsFailure};
pub use domain::{InvalidDomain, normalize_domain};
pub use event::{
    AuthVerdict, Authenticate, Close, Connect, Data, DeliveryResult, DeliveryState, Envelope,
    Event, Helo, HookFuture, MailFrom, MessageCopy, OutConnect, OutData, OutMailFrom, OutRcptTo,
    OutSent, Params, Pickup, PickupAction, RcptTo, Secret, Secure,
};
pub use hook::{HookId, HookSet};
pub use message::{FoldError, Header, Headers, Message};
pub use mq_plugin_api_macros::{hooks, plugin};
#[doc(hidden)]
pub use observe::Observable;
pub use observe::ObserverFuture;
pub use plugin::{Named, Plugin, PluginHooks};
pub use registration::{ConfigError, Factory, PluginConfig, Registration, SharedState};
pub use reply::Reply;
pub use smol::{Async, Task, Timer};

/// Not public API: what the attribute macros expand to.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use inventory;
}
