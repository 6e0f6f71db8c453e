// A plugin's order default is "first", "last" or an integer; anything else is refused where it
// is written.
use mq_plugin_api::{Plugin, hooks, plugin};

struct Signer;

#[plugin(name = "signer", order = "after-everyone")]
impl Signer {
    fn new() -> Self {
        Signer
    }
}

#[hooks]
impl Plugin for Signer {}

fn main() {}
