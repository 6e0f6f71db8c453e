//! The `webhook` plugin through the testkit's `delivery_result` chain: it continues and leaves
//! the event as it was, whether or not the endpoint is up.

use mq_core::testkit;

use crate::support::{closed_address, event, url};

#[test]
fn the_chain_continues_and_the_event_is_unchanged_while_the_server_is_down() {
    let section = format!("url = \"{}\"\nqueue_size = 1", url(closed_address()));
    let mut result = event(1);
    let (transcript, _) = testkit::chain()
        .registered("webhook", &section)
        .run(&mut result);
    insta::assert_snapshot!(transcript);
    assert_eq!(format!("{result:?}"), format!("{:?}", event(1)));
}

#[test]
fn a_disabled_plugin_is_in_no_chain() {
    let section = format!("enabled = false\nurl = \"{}\"", url(closed_address()));
    let (transcript, _) = testkit::chain()
        .registered("webhook", &section)
        .run(&mut event(1));
    assert!(!transcript.to_string().contains("webhook"), "{transcript}");
}
