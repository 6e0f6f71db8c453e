// What only the engine calls is on its `Host`, which a hook never holds: a hook's context has no
// setter for the session facts, no resolver to swap, no message to end, and cannot be made by
// hand; a plugin's config cannot be pointed at another plugin's shared state.
use std::rc::Rc;

use mq_plugin_api::{Context, Control, Data, Dns, Plugin, PluginConfig, SharedState, hooks};

struct Forger;

fn forge(ctx: &mut Context, dns: Rc<dyn Dns>, config: PluginConfig) {
    ctx.session_mut().user = Some("postmaster".into());
    ctx.set_dns(dns);
    ctx.end_message();
    let _ = Context::new(0, Default::default());
    let _ = config.with_shared(SharedState::default());
}

#[hooks]
impl Plugin for Forger {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        Control::Continue
    }
}

fn main() {
    let _ = forge;
}
