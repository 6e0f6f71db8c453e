//! The tie between an event type and its observer method, as [`Event`](crate::Event) ties it to
//! its hook method.

use crate::event::{
    Authenticate, Close, Connect, Data, DeliveryResult, Helo, MailFrom, MessageCopy, OutConnect,
    OutData, OutMailFrom, OutRcptTo, OutSent, Pickup, RcptTo, Secure,
};
use crate::{Context, Plugin};

/// The future an observer method returns, as the engine holds it.
pub type ObserverFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// Calls a plugin's observer of an event's hook. Not public API: every [`Event`](crate::Event)
/// implements it and the engine calls it.
#[doc(hidden)]
pub trait Observable {
    /// Calls the plugin's `observe_*` method for this event's hook.
    fn dispatch_observer<'a>(
        plugin: &'a dyn Plugin,
        ctx: &'a Context,
        event: &'a Self,
    ) -> ObserverFuture<'a>;
}

macro_rules! observable {
    ($($event:ident => $method:ident,)*) => {
        $(
            impl Observable for $event {
                #[inline]
                fn dispatch_observer<'a>(
                    plugin: &'a dyn Plugin,
                    ctx: &'a Context,
                    event: &'a Self,
                ) -> ObserverFuture<'a> {
                    plugin.$method(ctx, event)
                }
            }
        )*
    };
}

observable! {
    Connect => observe_smtp_in_connect,
    Helo => observe_smtp_in_helo,
    Secure => observe_smtp_in_secure,
    Authenticate => observe_smtp_in_authenticate,
    MailFrom => observe_smtp_in_mail_from,
    RcptTo => observe_smtp_in_rcpt_to,
    Data => observe_smtp_in_data,
    MessageCopy => observe_smtp_in_message,
    Close => observe_smtp_in_close,
    Pickup => observe_queue_pickup,
    OutConnect => observe_smtp_out_connect,
    OutMailFrom => observe_smtp_out_mail_from,
    OutRcptTo => observe_smtp_out_rcpt_to,
    OutData => observe_smtp_out_data,
    OutSent => observe_smtp_out_sent,
    DeliveryResult => observe_delivery_result,
}
