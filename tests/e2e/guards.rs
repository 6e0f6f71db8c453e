//! The engine's guards around each plugin call: the deadline, caught panics, the failure
//! policies, and the watchdog that sees a plugin block its worker.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mq_core::{FailureKind, FailurePolicy, Outcome, Registry, Runtime};
use mq_plugin_api::{Context, Control, Data, Helo, HookId, Plugin, hooks, plugin};
use mq_tests::{
    MESSAGE, Recorder, config_enabling, data, engine, entries, eventually, executor, guarded,
    loaded, new_log, result_of, run_chain, spawn_logged_chain,
};

/// How many other chains run on the worker while a stuck one waits for its deadline.
const OTHERS: usize = 20;

/// Never resolves at `smtp_in_data`.
struct Stuck;

#[hooks]
impl Plugin for Stuck {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        std::future::pending::<()>().await;
        Control::Continue
    }
}

/// Waits on the event loop at `smtp_in_helo` without a timer: yields to the executor a few
/// times, then continues.
struct Yielder;

#[hooks]
impl Plugin for Yielder {
    async fn smtp_in_helo(&self, _ctx: &mut Context, _event: &mut Helo) -> Control {
        for _ in 0..3 {
            smol::future::yield_now().await;
        }
        Control::Continue
    }
}

/// Panics at its first call, continues at the others.
struct PanicsOnce {
    calls: Cell<u32>,
}

#[hooks]
impl Plugin for PanicsOnce {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        let call = self.calls.get() + 1;
        self.calls.set(call);
        assert!(call > 1, "boom at call {call}");
        Control::Continue
    }
}

/// Panics after it has waited once on the event loop.
struct PanicsAfterWaiting;

#[hooks]
impl Plugin for PanicsAfterWaiting {
    async fn smtp_in_data(&self, _ctx: &mut Context, _data: &mut Data) -> Control {
        smol::future::yield_now().await;
        panic!("late boom");
    }
}

/// Set once the watchdog has reported [`Blocker`]: it then lets its worker go.
static BLOCKER_SEEN: AtomicBool = AtomicBool::new(false);

/// Blocks its worker thread inside `smtp_in_helo`, in one poll, until the test saw the watchdog
/// report it (a minute at most): what a plugin must never do. Only the watchdog test enables it.
struct Blocker;

#[plugin(name = "blocker")]
impl Blocker {
    fn new() -> Self {
        Blocker
    }
}

#[hooks]
impl Plugin for Blocker {
    async fn smtp_in_helo(&self, _ctx: &mut Context, _event: &mut Helo) -> Control {
        let start = Instant::now();
        while !BLOCKER_SEEN.load(Ordering::SeqCst) && start.elapsed() < Duration::from_mins(1) {
            std::thread::sleep(Duration::from_millis(5));
        }
        Control::Continue
    }
}

/// Awaits a 50 ms timer inside `smtp_in_helo`: waiting the right way.
struct Steady;

#[plugin(name = "steady")]
impl Steady {
    fn new() -> Self {
        Steady
    }
}

#[hooks]
impl Plugin for Steady {
    async fn smtp_in_helo(&self, ctx: &mut Context, _event: &mut Helo) -> Control {
        ctx.sleep(Duration::from_millis(50)).await;
        Control::Continue
    }
}

fn helo(i: usize) -> Helo {
    Helo::new(format!("client{i}.example.org"), true)
}

#[test]
fn a_plugin_that_never_resolves_fails_the_step_temporarily_while_the_worker_serves_other_chains() {
    // The other chains need microseconds of the worker; the stuck one gives up only after two
    // seconds, which a loaded machine does not steal from a runnable thread. Shorter, the order
    // checked below would depend on the scheduler.
    let timeout = Duration::from_secs(2);
    let engine = Rc::new(engine(vec![
        guarded("stuck", Stuck, timeout, FailurePolicy::Tempfail),
        loaded("yielder", Yielder),
    ]));
    let executor = executor();
    let log = new_log();

    // The stuck chain starts first; the others start after it, on the same executor.
    let stuck = spawn_logged_chain(&executor, &engine, data(MESSAGE), &log, "stuck".into());
    let others: Vec<_> = (0..OTHERS)
        .map(|i| spawn_logged_chain(&executor, &engine, helo(i), &log, format!("helo {i}")))
        .collect();
    let (stuck, others) = smol::block_on(executor.run(async {
        let mut outcomes = Vec::new();
        for other in others {
            outcomes.push(other.await.0);
        }
        (stuck.await.0, outcomes)
    }));

    let Outcome::Failed(failure) = stuck else {
        panic!("the stuck chain should fail, not {stuck:?}");
    };
    assert_eq!(failure.plugin, "stuck");
    assert_eq!(failure.hook, HookId::SmtpInData);
    assert_eq!(failure.kind, FailureKind::Timeout(timeout));
    assert!(!failure.permanent);
    assert_eq!(failure.reply().code(), 451);

    // Every other chain finished, and before the stuck one gave up.
    assert!(others.iter().all(|o| *o == Outcome::Proceed), "{others:?}");
    let log = entries(&log);
    assert_eq!(log.len(), OTHERS + 1);
    assert_eq!(log.last().map(String::as_str), Some("stuck"), "{log:?}");
    let metrics = engine.metrics();
    let stuck = metrics
        .get("stuck", HookId::SmtpInData)
        .expect("in the chain");
    assert_eq!((stuck.timeouts, stuck.calls()), (1, 1));
    let yielder = metrics
        .get("yielder", HookId::SmtpInHelo)
        .expect("in the chain");
    assert_eq!(yielder.continues, OTHERS as u64);
    assert_eq!(
        yielder.waited_calls(),
        OTHERS as u64,
        "each other chain waited"
    );
}

#[test]
fn a_timed_out_plugin_under_the_skip_policy_is_skipped_and_the_chain_goes_on() {
    let log = new_log();
    let engine = engine(vec![
        guarded(
            "a-stuck",
            Stuck,
            Duration::from_millis(50),
            FailurePolicy::Skip,
        ),
        loaded("b", Recorder::new("b", &log)),
    ]);

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["b"]);
    let metrics = engine.metrics();
    let stuck = metrics
        .get("a-stuck", HookId::SmtpInData)
        .expect("in the chain");
    assert_eq!(stuck.timeouts, 1);
}

#[test]
fn a_timed_out_plugin_under_the_reject_policy_fails_the_step_for_good() {
    let log = new_log();
    let timeout = Duration::from_millis(50);
    let engine = engine(vec![
        guarded("a-stuck", Stuck, timeout, FailurePolicy::Reject),
        loaded("b", Recorder::new("b", &log)),
    ]);

    let mut event = data(MESSAGE);
    let Outcome::Failed(failure) = run_chain(&engine, &mut event) else {
        panic!("the step should fail");
    };
    assert_eq!(failure.plugin, "a-stuck");
    assert_eq!(failure.kind, FailureKind::Timeout(timeout));
    assert!(failure.permanent);
    assert_eq!(failure.reply().code(), 554);
    assert_eq!(failure.reply().enhanced(), Some("5.3.0"));
    assert!(
        entries(&log).is_empty(),
        "b must not run after a rejecting failure"
    );
}

#[test]
fn a_panicking_plugin_fails_the_step_and_the_same_engine_serves_the_next_chain() {
    let log = new_log();
    let engine = engine(vec![
        loaded(
            "a-panics",
            PanicsOnce {
                calls: Cell::new(0),
            },
        ),
        loaded("b", Recorder::new("b", &log)),
    ]);

    let mut event = data(MESSAGE);
    let Outcome::Failed(failure) = run_chain(&engine, &mut event) else {
        panic!("the panicking call should fail the step");
    };
    assert_eq!(failure.plugin, "a-panics");
    let FailureKind::Panic(message) = &failure.kind else {
        panic!("a panic, not {:?}", failure.kind);
    };
    assert!(message.contains("boom at call 1"), "{message:?}");
    assert!(!failure.permanent);
    assert_eq!(failure.reply().code(), 451);
    assert!(entries(&log).is_empty());
    let panics = |engine: &mq_core::Engine| {
        engine
            .metrics()
            .get("a-panics", HookId::SmtpInData)
            .map(|m| m.panics)
    };
    assert_eq!(panics(&engine), Some(1));

    // The same engine, on the same thread, serves the next message normally.
    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["b"]);
    assert_eq!(panics(&engine), Some(1));
}

#[test]
fn a_panic_after_the_plugin_waited_is_caught_too() {
    let engine = engine(vec![loaded("late", PanicsAfterWaiting)]);

    let mut event = data(MESSAGE);
    let Outcome::Failed(failure) = run_chain(&engine, &mut event) else {
        panic!("the panicking call should fail the step");
    };
    assert_eq!(failure.kind, FailureKind::Panic("late boom".to_owned()));
    let metrics = engine.metrics();
    let late = metrics
        .get("late", HookId::SmtpInData)
        .expect("in the chain");
    assert_eq!((late.panics, late.waited_calls()), (1, 1));
}

#[test]
fn a_panicking_plugin_under_the_skip_policy_is_skipped_and_the_chain_goes_on() {
    let log = new_log();
    let engine = engine(vec![
        guarded(
            "a-panics",
            PanicsOnce {
                calls: Cell::new(0),
            },
            Duration::from_secs(30),
            FailurePolicy::Skip,
        ),
        loaded("b", Recorder::new("b", &log)),
    ]);

    let mut event = data(MESSAGE);
    assert_eq!(run_chain(&engine, &mut event), Outcome::Proceed);
    assert_eq!(entries(&log), ["b"]);
}

#[test]
fn a_plugin_that_blocks_its_worker_is_reported_by_the_watchdog_and_one_that_awaits_is_not() {
    // The blocker holds its worker until the watchdog reports it, however long that takes;
    // steady's polls take microseconds, so a second is far beyond what a loaded machine can
    // add to one of them by taking the worker off the CPU.
    let config = config_enabling(&["blocker", "steady"], "[engine]\nslow_poll = \"1s\"\n");
    let plan = Registry::linked()
        .expect("distinct names")
        .plan(&config)
        .expect("the config fits the linked plugins");
    let runtime = Runtime::start(&plan, 1).expect("the plugins start");

    let job = runtime.spawn_on(0, |worker| async move {
        let mut ctx = worker.context();
        let mut event = helo(0);
        worker.engine().run(&mut ctx, &mut event).await
    });
    // The watchdog thread reports on its own schedule, while the blocker holds the worker.
    let watchdog = runtime.watchdog().clone();
    let seen = eventually(Duration::from_mins(1), || {
        watchdog
            .slow_polls()
            .get(&("blocker", HookId::SmtpInHelo))
            .is_some_and(|slow| slow.count >= 1)
    });
    BLOCKER_SEEN.store(true, Ordering::SeqCst);
    assert!(seen, "watchdog saw: {:?}", watchdog.slow_polls());
    assert_eq!(result_of(job), Some(Outcome::Proceed));

    let slow = |plugin: &str| {
        runtime
            .metrics()
            .get(plugin, HookId::SmtpInHelo)
            .map(|m| m.slow_polls)
    };
    assert_eq!(slow("blocker"), Some(1));
    assert_eq!(slow("steady"), Some(0));
    let metrics = runtime.metrics();
    let steady = metrics.get("steady", HookId::SmtpInHelo).expect("enabled");
    assert_eq!(
        (steady.continues, steady.waited_calls()),
        (1, 1),
        "steady ran, and waited on the event loop"
    );
    runtime.shutdown();
}

/// Sets its own call's timeout to an hour through the call state its context reaches, then
/// never resolves.
struct Extender;

#[hooks]
impl Plugin for Extender {
    async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
        let hour = Duration::from_hours(1);
        ctx.call_state().enter("extender", HookId::SmtpInData, hour);
        std::future::pending::<()>().await;
        Control::Continue
    }
}

#[test]
fn a_plugin_that_lengthens_its_own_timeout_still_times_out_at_the_configured_one() {
    let timeout = Duration::from_millis(50);
    let engine = engine(vec![guarded(
        "extender",
        Extender,
        timeout,
        FailurePolicy::Tempfail,
    )]);
    let executor = executor();
    let mut ctx = mq_plugin_api::Host::new(0, Rc::clone(&executor)).into_context();
    let mut event = data(MESSAGE);
    // Bounded, so that a deadline the plugin did lengthen fails the test instead of hanging it.
    let outcome = smol::block_on(executor.run(smol::future::or(
        async { Some(engine.run(&mut ctx, &mut event).await) },
        async {
            smol::Timer::after(Duration::from_secs(20)).await;
            None
        },
    )));
    let Some(Outcome::Failed(failure)) = outcome else {
        panic!("the call should time out after {timeout:?}, not {outcome:?}");
    };
    assert_eq!(failure.kind, FailureKind::Timeout(timeout));
}
