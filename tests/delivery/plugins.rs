//! An outbound plugin of this test binary, registered through inventory: it signs mail for
//! [`SIGNED`] at `smtp_out_data`. The signature is on the wire only: the queued copy stays as it
//! was, and a retry is signed once, not twice.

use mq_core::queue::EntryState;
use mq_core::testkit::sink::{Script, Sink};
use mq_plugin_api::{Context, Control, OutData, OutRcptTo, Plugin, hooks, plugin};

use crate::support::{Harness, message};

/// The domain whose mail [`SignOut`] signs.
const SIGNED: &str = "signed.test";

/// The plugin's name, to enable it.
const NAME: &str = "test-sign-out";

/// Adds `X-Signed: yes` at `smtp_out_data` to messages for [`SIGNED`], as a DKIM signer would
/// add its field: it notes the recipient's domain at `smtp_out_rcpt_to`.
struct SignOut;

/// Set in the message's data when a recipient is in [`SIGNED`].
struct ToSign;

#[plugin(name = "test-sign-out")]
impl SignOut {
    fn new() -> Self {
        SignOut
    }
}

#[hooks]
impl Plugin for SignOut {
    async fn smtp_out_rcpt_to(&self, ctx: &mut Context, event: &mut OutRcptTo) -> Control {
        if event.recipient.domain_is(SIGNED) {
            ctx.message_data().insert(ToSign);
        }
        Control::Continue
    }

    async fn smtp_out_data(&self, ctx: &mut Context, event: &mut OutData) -> Control {
        if ctx.message_data().remove::<ToSign>().is_some() {
            event.message.headers_mut().prepend("X-Signed", "yes");
        }
        Control::Continue
    }
}

#[test]
fn a_plugin_signs_the_outgoing_copy_at_smtp_out_data_and_the_queued_copy_stays_unsigned() {
    let sink = Sink::start(Script::new().tempfail_first(1, "451 4.7.1 Try again later"));
    let harness = Harness::started(|o| {
        o.smarthost(sink.address());
        o.plugins = vec![NAME];
    });
    let signed = message("signed");
    let id = harness.send("alice@local.test", &["bob@signed.test"], &signed);

    // The first attempt is refused after the data: the queued copy is still there to read.
    harness.wait_for(
        "a deferral",
        || matches!(harness.entries_of(id).as_slice(), [e] if e.state == EntryState::Deferred),
    );
    assert_eq!(
        harness.body(id).as_deref(),
        Some(signed.as_str()),
        "the queued copy is unchanged"
    );
    harness.wait_for("the retry", || harness.entries().is_empty());
    let plain = message("plain");
    harness.send("alice@local.test", &["carol@plain.test"], &plain);
    harness.wait_for("the plain message", || harness.entries().is_empty());

    let received: Vec<(String, String)> = sink
        .messages()
        .iter()
        .map(|m| {
            (
                m.rcpt_to.join(","),
                String::from_utf8_lossy(&m.data).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        received,
        [
            (
                "bob@signed.test".to_owned(),
                format!("X-Signed: yes\r\n{signed}")
            ),
            ("carol@plain.test".to_owned(), plain),
        ],
        "signed once on the retry, and only for its domain"
    );
}
