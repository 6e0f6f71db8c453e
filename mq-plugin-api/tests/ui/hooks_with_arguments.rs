// `#[hooks]` takes no arguments; the block still expands, so its error is the only one.
use mq_plugin_api::{Context, Control, Data, Plugin, hooks};

struct Eager;

#[hooks(smtp_in_data)]
impl Plugin for Eager {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        Control::Continue
    }
}

fn main() {}
