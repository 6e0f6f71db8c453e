// An empty `impl Plugin` block without `#[hooks]`: the one error says to add it.
use mq_plugin_api::Plugin;

struct Bare;

impl Plugin for Bare {}

fn main() {}
