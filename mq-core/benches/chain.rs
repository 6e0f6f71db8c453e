//! Chain dispatch: what the engine adds to a plugin call, with every guard on.
//!
//! Each benchmark runs its chains in one loop inside one `block_on`, as a worker does, and
//! reports the time of one chain; divide by the plugin count for the cost of one plugin call.
//! `bare` calls the same plugins through `dyn Plugin` with no engine: the floor the engine's
//! guards are measured against, in the same run. `observers` runs a step that only observers
//! see (1 and 4 that complete at once): what an observer step costs.

use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mq_core::watchdog::Watchdog;
use mq_core::{Engine, EngineConfig, FailurePolicy, Loaded, Outcome};
use mq_plugin_api::{Address, Context, Control, MailFrom, Plugin, PluginHooks, hooks};
use smol::LocalExecutor;

/// Returns Continue at once.
struct Ready;

#[hooks]
impl Plugin for Ready {
    async fn smtp_in_mail_from(&self, _ctx: &mut Context, event: &mut MailFrom) -> Control {
        black_box(&event.sender);
        Control::Continue
    }
}

/// Waits for one wake-up of the executor before it continues, as a plugin awaiting I/O does.
struct Awaits;

#[hooks]
impl Plugin for Awaits {
    async fn smtp_in_mail_from(&self, _ctx: &mut Context, _event: &mut MailFrom) -> Control {
        smol::future::yield_now().await;
        Control::Continue
    }
}

/// Observes the step and is done at once.
struct Looks;

#[hooks]
impl Plugin for Looks {
    #[observe]
    async fn smtp_in_mail_from(&self, _ctx: &Context, event: &MailFrom) {
        black_box(&event.sender);
    }
}

const NAMES: [&str; 32] = [
    "p00", "p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09", "p10", "p11", "p12",
    "p13", "p14", "p15", "p16", "p17", "p18", "p19", "p20", "p21", "p22", "p23", "p24", "p25",
    "p26", "p27", "p28", "p29", "p30", "p31",
];

fn loaded(name: &'static str, plugin: Box<dyn Plugin>, hooks: mq_plugin_api::HookSet) -> Loaded {
    Loaded {
        name,
        hooks,
        observes: mq_plugin_api::HookSet::EMPTY,
        timeout: Duration::from_secs(30),
        policy: FailurePolicy::Tempfail,
        order: mq_plugin_api::Order::default(),
        plugin,
    }
}

/// An engine of `ready` plugins that continue at once and `waiting` ones that await, watched by
/// a running watchdog so that every guard is on.
fn engine(ready: usize, waiting: usize, watchdog: &Watchdog) -> Engine {
    let mut plugins: Vec<Loaded> = NAMES[..ready]
        .iter()
        .map(|&name| loaded(name, Box::new(Ready), <Ready as PluginHooks>::HOOKS))
        .collect();
    for &name in &NAMES[ready..ready + waiting] {
        plugins.push(loaded(
            name,
            Box::new(Awaits),
            <Awaits as PluginHooks>::HOOKS,
        ));
    }
    let names = plugins.iter().map(|p| p.name).collect();
    Engine::new(
        0,
        &EngineConfig::default(),
        plugins,
        watchdog.watch(0, names),
    )
    .expect("unique names")
}

/// An engine of `count` observers of the step that are done at once, and no chain.
fn observers(count: usize, watchdog: &Watchdog) -> Engine {
    let plugins: Vec<Loaded> = NAMES[..count]
        .iter()
        .map(|&name| Loaded {
            observes: <Looks as PluginHooks>::OBSERVES,
            ..loaded(name, Box::new(Looks), <Looks as PluginHooks>::HOOKS)
        })
        .collect();
    let names = plugins.iter().map(|p| p.name).collect();
    Engine::new(
        0,
        &EngineConfig::default(),
        plugins,
        watchdog.watch(0, names),
    )
    .expect("unique names")
}

/// Times `iters` chain runs in one loop on one executor.
fn time_chains(engine: &Engine, iters: u64) -> Duration {
    let executor = Rc::new(LocalExecutor::new());
    let mut ctx = mq_plugin_api::Host::new(0, Rc::clone(&executor)).into_context();
    let mut event = MailFrom::new("a@example.org".parse::<Address>().expect("an address"));
    smol::block_on(executor.run(async {
        let start = Instant::now();
        for _ in 0..iters {
            let outcome = engine.run(&mut ctx, &mut event).await;
            debug_assert_eq!(outcome, Outcome::Proceed);
            let _ = black_box(outcome);
        }
        start.elapsed()
    }))
}

/// Times `iters` rounds of calling each plugin through `dyn Plugin`, with no engine at all.
fn time_bare(plugins: &[Box<dyn Plugin>], iters: u64) -> Duration {
    let executor = Rc::new(LocalExecutor::new());
    let mut ctx = mq_plugin_api::Host::new(0, Rc::clone(&executor)).into_context();
    let mut event = MailFrom::new("a@example.org".parse::<Address>().expect("an address"));
    smol::block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            for plugin in plugins {
                let _ = black_box(plugin.smtp_in_mail_from(&mut ctx, &mut event).await);
            }
        }
        start.elapsed()
    })
}

fn dispatch(c: &mut Criterion) {
    let watchdog = Watchdog::start(Duration::from_millis(10));
    let mut group = c.benchmark_group("chain");
    for size in [1, 8, 32] {
        let engine = engine(size, 0, &watchdog);
        group.bench_with_input(BenchmarkId::new("continue", size), &engine, |b, engine| {
            b.iter_custom(|iters| time_chains(engine, iters));
        });
        let bare: Vec<Box<dyn Plugin>> = (0..size)
            .map(|_| Box::new(Ready) as Box<dyn Plugin>)
            .collect();
        group.bench_with_input(BenchmarkId::new("bare", size), &bare, |b, bare| {
            b.iter_custom(|iters| time_bare(bare, iters));
        });
    }
    let engine = engine(7, 1, &watchdog);
    group.bench_function("one-awaits/8", |b| {
        b.iter_custom(|iters| time_chains(&engine, iters));
    });
    for size in [1, 4] {
        let engine = observers(size, &watchdog);
        group.bench_with_input(BenchmarkId::new("observers", size), &engine, |b, engine| {
            b.iter_custom(|iters| time_chains(engine, iters));
        });
    }
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
