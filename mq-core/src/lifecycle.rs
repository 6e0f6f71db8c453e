//! The plugins' `start` and `stop` calls on one core, and the wait for the tasks they spawned.
//!
//! # Why a second wait at shutdown
//!
//! - A plugin's own task (a queue's sender) often runs until its plugin closes the queue, and
//!   the events it sends come from chains: so the engine first waits for the chains, then calls
//!   `stop`, then waits for the plugin tasks, and only then drops the instances.
//! - A lifecycle call is plugin code like a hook: it runs under the plugin's timeout and a panic
//!   is caught. Neither stops mq: the failure is logged and the next plugin's call runs.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use mq_plugin_api::Host;
use smol::channel::Receiver;
use smol::future::FutureExt as _;

use crate::engine::Engine;

/// Calls every plugin's `start` on `host`'s core, in chain order.
pub(crate) async fn start(engine: &Engine, host: &mut Host) {
    for slot in &engine.slots {
        host.enter_lifecycle(slot.name, "start", slot.timeout);
        let call = slot.plugin.start(host.context());
        guarded(engine.core, slot.name, "start", slot.timeout, call).await;
    }
}

/// Calls every plugin's `stop` on `host`'s core, in chain order.
pub(crate) async fn stop(engine: &Engine, host: &mut Host) {
    for slot in &engine.slots {
        host.enter_lifecycle(slot.name, "stop", slot.timeout);
        let call = slot.plugin.stop(host.context());
        guarded(engine.core, slot.name, "stop", slot.timeout, call).await;
    }
}

/// Runs one lifecycle call, logging a timeout or a panic.
async fn guarded(
    core: usize,
    plugin: &'static str,
    stage: &'static str,
    timeout: Duration,
    call: impl Future<Output = ()>,
) {
    let call = async { Some(AssertUnwindSafe(call).catch_unwind().await) };
    let deadline = async {
        smol::Timer::after(timeout).await;
        None
    };
    match call.or(deadline).await {
        Some(Ok(())) => {}
        Some(Err(_)) => tracing::error!(core, plugin, stage, "the plugin's {stage} panicked"),
        None => tracing::error!(
            core,
            plugin,
            stage,
            ?timeout,
            "the plugin's {stage} timed out"
        ),
    }
}

/// Waits until `done` closes (every task the plugins spawned has ended) or `until` passes,
/// saying which; logs the tasks that are then dropped.
pub(crate) async fn drain_tasks(core: usize, done: &Receiver<()>, until: Instant) -> bool {
    let ended = async {
        // Closed, never sent on: the last task dropped its sender.
        let _ = done.recv().await;
        true
    };
    let late = async {
        smol::Timer::at(until).await;
        false
    };
    let drained = ended.or(late).await;
    if !drained {
        tracing::warn!(
            core,
            "plugin tasks still running after the shutdown timeout are dropped"
        );
    }
    drained
}
