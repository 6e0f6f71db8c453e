//! Eight plugins, `noop-1` to `noop-8`, that implement every hook and return `Continue` at
//! once. They exist for the load benchmark (`bench/inbound.sh`): a build with the `noop`
//! feature runs eight plugins at every step, and the difference in throughput against a build
//! without is what the plugin chains cost. Not for production builds.

use mq_plugin_api::{
    Authenticate, Close, Connect, Context, Control, Data, DeliveryResult, Helo, MailFrom,
    MessageCopy, OutConnect, OutData, OutMailFrom, OutRcptTo, OutSent, Pickup, Plugin, RcptTo,
    Secure, hooks, plugin,
};

macro_rules! noop {
    ($($ty:ident = $name:literal),* $(,)?) => {$(
        #[doc = concat!("`", $name, "`: every hook, doing nothing.")]
        #[derive(Debug)]
        pub struct $ty;

        #[plugin(name = $name)]
        impl $ty {
            fn new() -> Self {
                $ty
            }
        }

        #[hooks]
        impl Plugin for $ty {
            async fn smtp_in_connect(&self, _: &mut Context, _: &mut Connect) -> Control { Control::Continue }
            async fn smtp_in_helo(&self, _: &mut Context, _: &mut Helo) -> Control { Control::Continue }
            async fn smtp_in_secure(&self, _: &mut Context, _: &mut Secure) -> Control { Control::Continue }
            async fn smtp_in_authenticate(&self, _: &mut Context, _: &mut Authenticate) -> Control { Control::Continue }
            async fn smtp_in_mail_from(&self, _: &mut Context, _: &mut MailFrom) -> Control { Control::Continue }
            async fn smtp_in_rcpt_to(&self, _: &mut Context, _: &mut RcptTo) -> Control { Control::Continue }
            async fn smtp_in_data(&self, _: &mut Context, _: &mut Data) -> Control { Control::Continue }
            async fn smtp_in_message(&self, _: &mut Context, _: &mut MessageCopy) -> Control { Control::Continue }
            async fn smtp_in_close(&self, _: &mut Context, _: &mut Close) -> Control { Control::Continue }
            async fn queue_pickup(&self, _: &mut Context, _: &mut Pickup) -> Control { Control::Continue }
            async fn smtp_out_connect(&self, _: &mut Context, _: &mut OutConnect) -> Control { Control::Continue }
            async fn smtp_out_mail_from(&self, _: &mut Context, _: &mut OutMailFrom) -> Control { Control::Continue }
            async fn smtp_out_rcpt_to(&self, _: &mut Context, _: &mut OutRcptTo) -> Control { Control::Continue }
            async fn smtp_out_data(&self, _: &mut Context, _: &mut OutData) -> Control { Control::Continue }
            async fn smtp_out_sent(&self, _: &mut Context, _: &mut OutSent) -> Control { Control::Continue }
            async fn delivery_result(&self, _: &mut Context, _: &mut DeliveryResult) -> Control { Control::Continue }
        }
    )*};
}

noop! {
    Noop1 = "noop-1",
    Noop2 = "noop-2",
    Noop3 = "noop-3",
    Noop4 = "noop-4",
    Noop5 = "noop-5",
    Noop6 = "noop-6",
    Noop7 = "noop-7",
    Noop8 = "noop-8",
}
