//! An observer of `delivery_result` of this binary, registered through inventory: it waits on
//! a gate the test holds shut. Deliveries go on without it, and shutdown waits for it.

use std::sync::atomic::{AtomicUsize, Ordering};

use mq_core::testkit::sink::{Script, Sink};
use mq_plugin_api::{Context, DeliveryResult, Plugin, hooks, plugin};
use smol::lock::RwLock;

use crate::support::{Harness, message};

/// The plugin's name, to enable it.
const NAME: &str = "test-held-observer";

/// Shut while the test holds its write lock: each observer call waits for a read lock.
static GATE: RwLock<()> = RwLock::new(());

/// Observer calls that got through the gate.
static OBSERVED: AtomicUsize = AtomicUsize::new(0);

/// Observes `delivery_result` by waiting until the test opens [`GATE`].
struct HeldObserver;

#[plugin(name = "test-held-observer")]
impl HeldObserver {
    fn new() -> Self {
        HeldObserver
    }
}

#[hooks]
impl Plugin for HeldObserver {
    #[observe]
    async fn delivery_result(&self, _ctx: &Context, _event: &DeliveryResult) {
        let _open = GATE.read().await;
        OBSERVED.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_delivery_result_observer_that_waits_delays_no_delivery_and_shutdown_waits_for_it() {
    let shut = GATE.write_blocking();
    let sink = Sink::start(Script::new());
    let harness = Harness::started(|o| {
        o.smarthost(sink.address());
        o.plugins = vec![NAME];
    });
    for n in 0..20 {
        let recipient = format!("rcpt{n}@remote.test");
        harness.send("alice@local.test", &[&recipient], &message("observed"));
    }
    // Were the observers in the deliveries' way, no delivery could end while the gate is shut.
    harness.wait_for("all 20 delivered", || {
        sink.messages().len() == 20 && harness.entries().is_empty()
    });
    assert_eq!(
        OBSERVED.load(Ordering::SeqCst),
        0,
        "every observer still waits"
    );

    drop(shut);
    // Shutting down waits for the observers' tasks, as for every tracked task.
    drop(harness);
    assert_eq!(OBSERVED.load(Ordering::SeqCst), 20);
}
