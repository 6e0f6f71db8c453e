// `#[hooks]` goes on the `impl Plugin for T` block, not on the type's own `impl`.
use mq_plugin_api::hooks;

struct Lost;

#[hooks]
impl Lost {
    fn helper(&self) -> u32 {
        1
    }
}

fn main() {
    assert_eq!(Lost.helper(), 1);
}
