//! A plugin crate that exists to prove registration from a separate crate through inventory.
//!
//! It registers itself as `fixture` with `#[plugin]`, implements exactly two hooks
//! (`smtp_in_mail_from` and `smtp_in_data`) and reads one key of its own, `header`, from
//! `[plugins.fixture]`. The end-to-end tests link it with `use mq_plugin_fixture as _;` and check
//! that the engine finds it, with those hooks and that config, without being told about it.

use mq_plugin_api::{Context, Control, Data, MailFrom, Plugin, hooks, plugin};
use serde::Deserialize;

/// The header the fixture stamps when its section does not name one.
pub const DEFAULT_HEADER: &str = "X-Fixture";

/// The ESMTP parameter the fixture adds at `MAIL FROM`.
pub const MAIL_FROM_PARAM: &str = "X-FIXTURE";

/// `[plugins.fixture]`: the fixture's own keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureConfig {
    /// The header field the fixture prepends to every message at `smtp_in_data`.
    #[serde(default = "default_header")]
    pub header: String,
}

fn default_header() -> String {
    DEFAULT_HEADER.to_owned()
}

/// The fixture plugin: marks `MAIL FROM` with a parameter and each message with a header whose
/// value names the worker core.
#[derive(Debug)]
pub struct Fixture {
    header: String,
}

#[plugin(name = "fixture")]
impl Fixture {
    fn new(config: &FixtureConfig) -> Self {
        Fixture {
            header: config.header.clone(),
        }
    }
}

#[hooks]
impl Plugin for Fixture {
    async fn smtp_in_mail_from(&self, _ctx: &mut Context, event: &mut MailFrom) -> Control {
        event.params.push((MAIL_FROM_PARAM.to_owned(), None));
        Control::Continue
    }

    async fn smtp_in_data(&self, ctx: &mut Context, data: &mut Data) -> Control {
        data.message
            .headers_mut()
            .prepend(&self.header, format!("core {}", ctx.core()));
        Control::Continue
    }
}
