// A hook must resolve to a `Control`: one that returns nothing does not compile.
use mq_plugin_api::{Context, Data, Plugin, hooks};

struct Forgetful;

#[hooks]
impl Plugin for Forgetful {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) {}
}

fn main() {}
