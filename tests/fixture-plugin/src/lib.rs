//! A plugin crate that exists to prove registration from a separate crate through inventory.
//!
//! It registers itself as `fixture` with `#[plugin]`, implements exactly two hooks
//! (`smtp_in_mail_from` and `smtp_in_data`) and reads one key of its own, `header`, from
//! `[plugins.fixture]`. The end-to-end tests link it with `use mq_plugin_fixture as _;` and check
//! that the engine finds it, with those hooks and that config, without being told about it.
//!
//! It also holds [`Greylist`], the example plugin of the README's "Testing a plugin": a
//! greylisting plugin whose test lets time pass on the testkit's virtual clock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use mq_plugin_api::{Context, Control, Data, MailFrom, Plugin, RcptTo, Reply, hooks, plugin};
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

/// `[plugins.greylist]`: how long a new client/sender/recipient triplet must wait.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GreylistConfig {
    /// The wait before a retry is accepted (default 5 minutes, as postgrey's).
    #[serde(
        default = "default_delay",
        deserialize_with = "mq_plugin_api::duration::deserialize"
    )]
    pub delay: Duration,
}

fn default_delay() -> Duration {
    Duration::from_mins(5)
}

/// Greylisting: the first attempt of a client address, sender and recipient triplet is
/// tempfailed at `RCPT TO`; a retry of the same triplet once `delay` has passed is accepted, and
/// so is every later one. Real mail servers retry, most spam engines do not.
///
/// An example plugin, kept small: the triplets live in memory, per worker core, and are never
/// forgotten. Time comes from [`Context::now`], so the testkit's virtual clock drives it.
#[derive(Debug)]
pub struct Greylist {
    delay: Duration,
    /// When each triplet was first seen.
    seen: RefCell<HashMap<(IpAddr, String, String), SystemTime>>,
}

#[plugin(name = "greylist")]
impl Greylist {
    fn new(config: &GreylistConfig) -> Self {
        Greylist {
            delay: config.delay,
            seen: RefCell::default(),
        }
    }
}

#[hooks]
impl Plugin for Greylist {
    async fn smtp_in_rcpt_to(&self, ctx: &mut Context, rcpt: &mut RcptTo) -> Control {
        let Some(client) = ctx.session().client else {
            return Control::Continue;
        };
        let now = ctx.now();
        let Some(recipient) = rcpt.recipients.first() else {
            return Control::Continue;
        };
        let triplet = (
            client.ip(),
            rcpt.sender().to_string(),
            recipient.to_string(),
        );
        let first = *self.seen.borrow_mut().entry(triplet).or_insert(now);
        let waited = now.duration_since(first).unwrap_or_default();
        if waited < self.delay {
            let left = self.delay.saturating_sub(waited).as_secs();
            return rcpt.reject(Reply::new(
                450,
                "4.7.1",
                format!("Greylisted: try again in {left} seconds"),
            ));
        }
        Control::Continue
    }
}
