// A hook reads the session facts but cannot set them, nor reach what only the engine calls:
// marking the client authenticated, giving the context a resolver, ending the message, making
// the context of a session, or sharing state with another plugin's instances.
use mq_plugin_api::{Context, Control, Data, Plugin, PluginConfig, SharedState, hooks};

struct Forger;

#[hooks]
impl Plugin for Forger {
    async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
        ctx.session_mut().user = Some("postmaster".into());
        ctx.session().user = Some("postmaster".into());
        ctx.set_dns(todo!());
        ctx.end_message();
        let _ = Context::new(0, todo!());
        let _ = PluginConfig::new("forger", 0, toml::Table::new()).with_shared(SharedState::default());
        Control::Continue
    }
}

fn main() {}
