// A registered plugin whose `impl Plugin` block lacks `#[hooks]`: the registration needs the
// hook set that `#[hooks]` writes.
use mq_plugin_api::{Plugin, plugin};

struct Unhooked;

#[plugin(name = "unhooked")]
impl Unhooked {
    fn new() -> Self {
        Unhooked
    }
}

impl Plugin for Unhooked {}

fn main() {}
