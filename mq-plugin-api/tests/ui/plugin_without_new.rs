// `#[plugin]` goes on the block that holds `fn new`, the factory the engine calls on each core.
use mq_plugin_api::{Plugin, hooks, plugin};

struct Unbuilt;

#[plugin(name = "unbuilt")]
impl Unbuilt {
    fn build() -> Self {
        Unbuilt
    }
}

#[hooks]
impl Plugin for Unbuilt {}

fn main() {
    let _ = Unbuilt::build();
}
