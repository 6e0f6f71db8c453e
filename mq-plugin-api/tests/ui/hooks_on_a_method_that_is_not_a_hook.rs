// A method in a `#[hooks]` block whose name is not a hook: the error lists the hooks. The
// method is kept out of the trait but still compiled, so its error is the only one.
use mq_plugin_api::{Context, Control, Data, Plugin, hooks};

struct Misnamed;

#[hooks]
impl Plugin for Misnamed {
    async fn on_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        Control::Continue
    }
}

fn main() {}
