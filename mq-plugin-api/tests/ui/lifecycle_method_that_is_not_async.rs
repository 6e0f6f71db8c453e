// `start` and `stop` are lifecycle methods, not hooks, but `async fn`s too; a plain `fn` is
// refused by `#[hooks]`.
//
// Paths are spelled out because `#[hooks]` drops a block it refuses, which would leave
// imports unused and add warnings to the expected output.
struct Eager;

#[mq_plugin_api::hooks]
impl mq_plugin_api::Plugin for Eager {
    fn start(&self, _ctx: &mut mq_plugin_api::Context) {}
}

fn main() {}
