//! The per-core runtime: one worker thread per core with its own engine, jobs spawned on a given
//! core, counters summed over cores, start-up that fails cleanly, and a shutdown that waits for
//! chains in flight.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use mq_core::{Config, Outcome, Registry, Runtime};
use mq_plugin_api::{Context, Control, Data, HookId, Plugin, TimeoutExt, hooks, plugin};
use mq_plugin_fixture::DEFAULT_HEADER;
use mq_tests::{MESSAGE, config_enabling, data, header_values, result_of};

/// Set by [`Sleepy`] once its nap is over. Only the shutdown test enables `sleepy`.
static SLEPT: AtomicBool = AtomicBool::new(false);

/// Awaits 200 ms at `smtp_in_data`, then sets [`SLEPT`].
struct Sleepy;

#[plugin(name = "sleepy")]
impl Sleepy {
    fn new() -> Self {
        Sleepy
    }
}

#[hooks]
impl Plugin for Sleepy {
    async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
        ctx.sleep(Duration::from_millis(200)).await;
        SLEPT.store(true, Ordering::SeqCst);
        Control::Continue
    }
}

fn start(config: &Config, workers: usize) -> Runtime {
    let plan = Registry::linked()
        .expect("distinct names")
        .plan(config)
        .expect("the config fits the linked plugins");
    Runtime::start(&plan, workers).expect("the plugins start")
}

#[test]
fn each_worker_runs_the_jobs_spawned_on_its_core_on_its_own_thread() {
    let runtime = start(&config_enabling(&[], ""), 2);
    assert_eq!(runtime.workers(), 2);

    let on = |core: usize| {
        result_of(runtime.spawn_on(core, |worker| async move {
            let thread = std::thread::current().name().map(str::to_owned);
            (worker.core(), worker.context().core(), thread)
        }))
        .expect("the job ran")
    };
    assert_eq!(on(0), (0, 0, Some("mq-core-0".to_owned())));
    assert_eq!(on(1), (1, 1, Some("mq-core-1".to_owned())));
    // Cores are taken modulo the number of workers.
    assert_eq!(on(2), (0, 0, Some("mq-core-0".to_owned())));
    runtime.shutdown();
}

#[test]
fn each_core_has_its_own_plugin_instances_and_the_runtime_sums_their_counters() {
    let runtime = start(&config_enabling(&["fixture"], ""), 2);

    let runs = [(0, 3), (1, 2)];
    for (core, times) in runs {
        for _ in 0..times {
            let (outcome, stamped) = result_of(runtime.spawn_on(core, |worker| async move {
                let mut ctx = worker.context();
                let mut event = data(MESSAGE);
                let outcome = worker.engine().run(&mut ctx, &mut event).await;
                (outcome, header_values(&event, DEFAULT_HEADER))
            }))
            .expect("the job ran");
            assert_eq!(outcome, Outcome::Proceed);
            // The fixture's factory ran on each core: its instance there knows its core.
            assert_eq!(stamped, [format!("core {core}")]);
        }
    }

    for (core, times) in runs {
        let on_core =
            result_of(runtime.spawn_on(core, |worker| async move { worker.engine().metrics() }))
                .expect("the job ran");
        let fixture = on_core.get("fixture", HookId::SmtpInData).expect("enabled");
        assert_eq!(fixture.continues, times, "core {core}");
    }
    let total = runtime.metrics();
    let fixture = total.get("fixture", HookId::SmtpInData).expect("enabled");
    assert_eq!(fixture.continues, 5);
    let mail_from = total
        .get("fixture", HookId::SmtpInMailFrom)
        .expect("enabled");
    assert_eq!(mail_from.calls(), 0);
    runtime.shutdown();
}

#[test]
fn shutdown_waits_for_chains_in_flight() {
    let runtime = start(&config_enabling(&["sleepy"], ""), 1);

    let job = runtime.spawn_on(0, |worker| async move {
        let mut ctx = worker.context();
        let mut event = data(MESSAGE);
        worker.engine().run(&mut ctx, &mut event).await
    });
    runtime.shutdown();

    // The plugin's nap was over before shutdown returned, and the job's result arrived.
    assert!(SLEPT.load(Ordering::SeqCst), "shutdown returned mid-chain");
    assert_eq!(result_of(job), Some(Outcome::Proceed));
}

#[test]
fn running_jobs_learn_that_shutdown_has_begun() {
    let runtime = start(&config_enabling(&[], ""), 1);

    let job = runtime.spawn_on(0, |worker| async move {
        worker
            .stopping()
            .timeout(Duration::from_secs(30))
            .await
            .is_ok()
    });
    runtime.shutdown();
    assert_eq!(
        result_of(job),
        Some(true),
        "stopping() resolved during shutdown"
    );
}

/// Panics in its factory: a plugin that cannot start. Only the start-up test enables it.
struct PanicsAtStart;

#[plugin(name = "panics-at-start")]
impl PanicsAtStart {
    fn new() -> Self {
        panic!("panics-at-start refuses to start")
    }
}

#[hooks]
impl Plugin for PanicsAtStart {}

#[test]
fn a_plugin_whose_factory_panics_stops_start_up_with_an_error_instead_of_hanging_it() {
    let plan = Registry::linked()
        .expect("distinct names")
        .plan(&config_enabling(&["panics-at-start"], ""))
        .expect("the config fits the linked plugins");

    // Start on a thread of its own, so that a hang fails this test instead of the whole run.
    let (started, result) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            Runtime::start(&plan, 1).map(Runtime::shutdown)
        }));
        let _ = started.send(outcome.map_err(|_| "Runtime::start panicked"));
    });
    let outcome = result
        .recv_timeout(Duration::from_secs(30))
        .expect("Runtime::start returns: it must not wait forever for a worker that died");

    let error = outcome
        .expect("start-up fails with an error")
        .expect_err("a plugin that cannot be built stops start-up");
    assert!(error.to_string().contains("panics-at-start"), "{error}");
}
