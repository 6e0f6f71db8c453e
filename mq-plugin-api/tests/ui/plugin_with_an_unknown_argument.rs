// `#[plugin]` takes `name = "..."` and nothing else; the block is kept, so its error is the only
// one.
use mq_plugin_api::{Plugin, hooks, plugin};

struct Chatty;

#[plugin(name = "chatty", verbose = true)]
impl Chatty {
    fn new() -> Self {
        Chatty
    }
}

#[hooks]
impl Plugin for Chatty {}

fn main() {
    let _ = Chatty::new();
}
