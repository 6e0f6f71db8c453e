//! The memory backend across worker cores: instances built from configs that share one
//! `SharedState` share their buckets, as the engine's cores do.

use std::sync::{Arc, Barrier};

use mq_plugin_api::SharedState;

use crate::support::{Core, limit, passed, registered};

#[test]
fn instances_built_by_the_registration_share_buckets_across_cores() {
    let (shared, section) = (SharedState::default(), limit("sender_domain", 2, "1m"));
    let (core0, core1) = (
        registered(&section, 0, &shared),
        registered(&section, 1, &shared),
    );
    let core = Core::new();
    assert_eq!(core.mail_from(core0.as_ref(), "a@example.org"), None);
    assert_eq!(core.mail_from(core0.as_ref(), "a@example.org"), None);
    let reply = core
        .mail_from(core1.as_ref(), "a@example.org")
        .expect("refused on core 1");
    assert_eq!(
        reply.to_string(),
        "451 4.7.1 Error: too many messages from example.org; try again later"
    );

    // Another process (its own SharedState) has its own buckets.
    let elsewhere = registered(&section, 0, &SharedState::default());
    assert_eq!(core.mail_from(elsewhere.as_ref(), "a@example.org"), None);
}

#[test]
fn cores_racing_on_their_own_threads_let_through_exactly_the_limit() {
    let (shared, section) = (SharedState::default(), limit("recipient_domain", 50, "1h"));
    let start = Arc::new(Barrier::new(2));
    let cores: Vec<_> = (0..2)
        .map(|n| {
            let (shared, section, start) = (shared.clone(), section.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                let (core, plugin) = (Core::new(), registered(&section, n, &shared));
                start.wait();
                let replies: Vec<_> = (0..100)
                    .map(|_| core.rcpt_to(plugin.as_ref(), "b@example.net"))
                    .collect();
                passed(&replies)
                    .into_iter()
                    .filter(|&passed| passed)
                    .count()
            })
        })
        .collect();
    let allowed: usize = cores.into_iter().map(|core| core.join().unwrap()).sum();
    assert_eq!(allowed, 50);
}
