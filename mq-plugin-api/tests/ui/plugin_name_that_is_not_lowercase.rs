// A plugin name is a config section key: lowercase letters, digits, `-` and `_` only.
use mq_plugin_api::{Plugin, hooks, plugin};

struct Shouty;

#[plugin(name = "Shouty Plugin")]
impl Shouty {
    fn new() -> Self {
        Shouty
    }
}

#[hooks]
impl Plugin for Shouty {}

fn main() {}
