// `#[plugin]` needs the name chains are sorted by and config sections are keyed by.
use mq_plugin_api::{Plugin, hooks, plugin};

struct Nameless;

#[plugin]
impl Nameless {
    fn new() -> Self {
        Nameless
    }
}

#[hooks]
impl Plugin for Nameless {}

fn main() {}
