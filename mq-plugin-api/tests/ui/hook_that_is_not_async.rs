// A hook is an `async fn`; a plain `fn` of a hook's name is refused by `#[hooks]`.
//
// Paths are spelled out because `#[hooks]` drops a block it refuses, which would leave
// imports unused and add warnings to the expected output.
struct Eager;

#[mq_plugin_api::hooks]
impl mq_plugin_api::Plugin for Eager {
    fn smtp_in_data(
        &self,
        _ctx: &mut mq_plugin_api::Context,
        _data: &mut mq_plugin_api::Data,
    ) -> mq_plugin_api::Control {
        mq_plugin_api::Control::Continue
    }
}

fn main() {}
