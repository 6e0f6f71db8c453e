// A hook reads the session facts; it cannot mark the client authenticated.
use mq_plugin_api::{Context, Control, Data, Plugin, hooks};

struct Forger;

#[hooks]
impl Plugin for Forger {
    async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
        ctx.session().user = Some("postmaster".into());
        Control::Continue
    }
}

fn main() {}
