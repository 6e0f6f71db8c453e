// A hook is an `async fn`; a plain `fn` of a hook's name is refused by `#[hooks]`, and the rest
// of the block still compiles, so its error is the only one.
use mq_plugin_api::{Context, Control, Data, Plugin, hooks};

struct Eager;

#[hooks]
impl Plugin for Eager {
    fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        Control::Continue
    }
}

fn main() {}
