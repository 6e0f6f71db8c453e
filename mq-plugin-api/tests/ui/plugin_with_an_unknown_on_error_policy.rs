// A plugin's on_error default is one of the engine's policies: tempfail, reject or skip.
use mq_plugin_api::{Plugin, hooks, plugin};

struct Signer;

#[plugin(name = "signer", on_error = "ignore")]
impl Signer {
    fn new() -> Self {
        Signer
    }
}

#[hooks]
impl Plugin for Signer {}

fn main() {}
