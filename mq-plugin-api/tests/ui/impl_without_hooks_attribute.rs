// `async fn` hooks in an `impl Plugin` block without `#[hooks]`. rustc compares the block's
// methods with the trait's (async-trait's boxed futures: E0195) before it checks the block's
// bounds, so the lifetime mismatch comes first; the next error, from `Plugin: Hooked`, says to
// add `#[hooks]`.
use mq_plugin_api::{Context, Control, Data, Plugin};

struct Forgot;

impl Plugin for Forgot {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        Control::Continue
    }
}

fn main() {}
