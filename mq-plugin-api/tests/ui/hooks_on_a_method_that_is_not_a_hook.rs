// A method in a `#[hooks]` block whose name is not a hook: the error lists the hooks.
//
// Paths are spelled out because `#[hooks]` drops a block it refuses, which would leave
// imports unused and add warnings to the expected output.
struct Misnamed;

#[mq_plugin_api::hooks]
impl mq_plugin_api::Plugin for Misnamed {
    async fn on_data(
        &self,
        _ctx: &mut mq_plugin_api::Context,
        _data: &mut mq_plugin_api::Data,
    ) -> mq_plugin_api::Control {
        mq_plugin_api::Control::Continue
    }
}

fn main() {}
