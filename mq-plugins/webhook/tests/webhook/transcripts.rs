//! The `webhook` plugin through the testkit's `delivery_result` step: it observes and leaves
//! the event as it was, whether or not the endpoint is up; and what its sender task then does,
//! from its log lines, while the server takes events and after it went down.

use std::rc::Rc;

use mq_core::testkit;
use smol::LocalExecutor;

use crate::support::{Server, closed_address, event, logged, run_until, url};

#[test]
fn the_chain_continues_and_the_event_is_unchanged_while_the_server_is_down() {
    let server = Server::start();
    let address = server.address();
    let section = format!(
        "url = \"{}\"\nretry = [\"10ms\"]\nmax_attempts = 3",
        url(address)
    );
    // The worker core's executor: the sender task lives on it after each chain run.
    let core = Rc::new(LocalExecutor::new());
    let mut lines = Vec::new();
    let mut up = event(1);
    let (transcript, _) = testkit::chain()
        .registered("webhook", &section)
        .run_on(&core, &mut up);
    lines.extend(transcript.lines().iter().cloned());
    assert_eq!(format!("{up:?}"), format!("{:?}", event(1)));
    // The chain run dropped the plugin: its sender task ends once its queue is empty.
    lines.extend(logged(|| {
        run_until(&core, "the sender task to finish", || core.is_empty());
    }));
    lines.push(format!("   server received {:?}", server.queue_ids()));
    drop(server);

    lines.push("   -- the server is down: its port refuses connections".to_owned());
    let mut down = event(2);
    let (transcript, _) = testkit::chain()
        .registered("webhook", &section)
        .run_on(&core, &mut down);
    lines.extend(transcript.lines().iter().cloned());
    assert_eq!(format!("{down:?}"), format!("{:?}", event(2)));
    lines.extend(logged(|| {
        run_until(&core, "the sender task to give up", || core.is_empty());
    }));
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn a_disabled_plugin_is_in_no_chain() {
    let section = format!("url = \"{}\"", url(closed_address()));
    let (transcript, _) = testkit::chain()
        .registered_with("webhook", "enabled = false", &section)
        .run(&mut event(1));
    assert!(!transcript.to_string().contains("webhook"), "{transcript}");
}
