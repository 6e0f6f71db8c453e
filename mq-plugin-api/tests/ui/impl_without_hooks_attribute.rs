// `async fn` hooks in an `impl Plugin` block without `#[hooks]`: the trait's methods return
// boxed futures (async-trait), so the plain `async fn` does not match them.
use mq_plugin_api::{Context, Control, Data, Plugin};

struct Forgot;

impl Plugin for Forgot {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        Control::Continue
    }
}

fn main() {}
