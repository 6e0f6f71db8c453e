//! A plugin's life on real worker cores: `start` once per core before its chains, the tasks it
//! spawns tracked and waited for at shutdown after `stop`, a reload that starts the new
//! instances and stops the old, `Context::unblock` off the worker, and its declared metrics
//! summed over cores and reloads.

use std::cell::RefCell;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mq_core::{Config, Outcome, Registry, Runtime};
use mq_plugin_api::metrics::Value;
use mq_plugin_api::{
    Address, Context, Control, Counter, MailFrom, Plugin, PluginConfig, Timer, hooks, plugin,
};
use smol::channel::{Receiver, Sender};

/// What the instances did, in order: `"<what> <core> <generation>"`.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(line: String) {
    LOG.lock().expect("not poisoned").push(line);
}

fn logged() -> Vec<String> {
    LOG.lock().expect("not poisoned").clone()
}

#[derive(serde::Deserialize)]
struct ProbeConfig {
    /// Told apart across a reload.
    generation: u32,
    /// Whether its task ignores `stop` and runs on forever.
    #[serde(default)]
    forever: bool,
}

/// Spawns a task in `start` that ends (after a short wait) once `stop` closes its channel.
struct Probe {
    generation: u32,
    forever: bool,
    calls: Counter,
    closing: RefCell<Option<Sender<()>>>,
    closed: Receiver<()>,
}

#[plugin(name = "probe")]
impl Probe {
    fn new(options: &ProbeConfig, config: &PluginConfig) -> Self {
        let (closing, closed) = smol::channel::bounded(1);
        Probe {
            generation: options.generation,
            forever: options.forever,
            calls: config.counter("calls", "MAIL FROMs seen.", &["generation"]),
            closing: RefCell::new(Some(closing)),
            closed,
        }
    }
}

#[hooks]
impl Plugin for Probe {
    async fn start(&self, ctx: &mut Context) {
        let (core, generation) = (ctx.core(), self.generation);
        let thread = ctx
            .unblock(|| std::thread::current().name().map(str::to_owned))
            .await;
        log(format!("start {core} {generation} unblocked on {thread:?}"));
        let closed = self.closed.clone();
        let forever = self.forever;
        ctx.spawn(async move {
            let _ = closed.recv().await;
            if forever {
                std::future::pending::<()>().await;
            }
            // Shutdown waits for this: the line is there once `shutdown` returns.
            Timer::after(Duration::from_millis(50)).await;
            log(format!("task ended {core} {generation}"));
        })
        .detach();
    }

    async fn stop(&self, ctx: &mut Context) {
        log(format!("stop {} {}", ctx.core(), self.generation));
        self.closing.borrow_mut().take();
    }

    async fn smtp_in_mail_from(&self, ctx: &mut Context, _event: &mut MailFrom) -> Control {
        log(format!("hook {} {}", ctx.core(), self.generation));
        self.calls.inc(&[&self.generation.to_string()]);
        Control::Continue
    }
}

fn config(section: &str, engine: &str) -> Config {
    Config::from_toml(&format!("[engine]\n{engine}\n[plugins.probe]\n{section}")).expect("config")
}

fn mail_from(runtime: &Runtime, core: usize) {
    let outcome = runtime
        .spawn_on(core, |worker| async move {
            let sender: Address = "a@example.org".parse().expect("address");
            let mut ctx = worker.context();
            worker
                .engine()
                .run(&mut ctx, &mut MailFrom::new(sender))
                .await
        })
        .wait();
    assert_eq!(outcome, Some(Outcome::Proceed));
}

fn calls(runtime: &Runtime, generation: &str) -> u64 {
    let metrics = runtime.metrics();
    let family = metrics
        .families()
        .iter()
        .find(|f| f.plugin == "probe" && f.name == "calls")
        .expect("the declared counter");
    family
        .series
        .iter()
        .find(|s| s.labels == [generation])
        .map_or(0, |s| match s.value {
            Value::Counter(count) => count,
            _ => panic!("a counter"),
        })
}

#[test]
fn a_plugin_starts_per_core_stops_at_shutdown_and_its_tasks_end_before_shutdown_returns() {
    let registry = Registry::linked().expect("registry");
    let plan = registry.plan(&config("generation = 1", "")).expect("plan");
    let runtime = Runtime::start(&plan, 2).expect("runtime");
    // Started before `start` returned, on both cores, each `unblock` on a thread of its own.
    let started: Vec<String> = logged();
    assert_eq!(started.len(), 2, "{started:?}");
    for line in &started {
        assert!(line.starts_with("start "), "{line}");
        assert!(
            !line.contains("mq-core-"),
            "unblock ran on a worker: {line}"
        );
    }
    mail_from(&runtime, 0);
    mail_from(&runtime, 1);
    assert_eq!(calls(&runtime, "1"), 2);

    // A reload starts the new instances before their first chain and stops the old ones once
    // drained; the counter carries over.
    let plan = registry.plan(&config("generation = 2", "")).expect("plan");
    runtime.reload(&plan).expect("reload");
    mail_from(&runtime, 0);
    mail_from(&runtime, 1);
    assert_eq!((calls(&runtime, "1"), calls(&runtime, "2")), (2, 2));
    runtime.shutdown();

    let lines = logged();
    let order = |text: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(text))
            .unwrap_or_else(|| panic!("{text:?} not in {lines:?}"))
    };
    for core in 0..2 {
        for generation in [1, 2] {
            let start = order(&format!("start {core} {generation}"));
            let hook = order(&format!("hook {core} {generation}"));
            let stop = order(&format!("stop {core} {generation}"));
            let ended = order(&format!("task ended {core} {generation}"));
            assert!(start < hook && hook < stop && stop < ended, "{lines:?}");
        }
    }
    let starts = lines.iter().filter(|l| l.starts_with("start ")).count();
    let stops = lines.iter().filter(|l| l.starts_with("stop ")).count();
    assert_eq!((starts, stops), (4, 4), "{lines:?}");

    // A task that never ends holds shutdown no longer than the shutdown timeout (and its grace).
    let plan = registry
        .plan(&config(
            "generation = 3\nforever = true",
            "shutdown_timeout = \"200ms\"",
        ))
        .expect("plan");
    let runtime = Runtime::start(&plan, 1).expect("runtime");
    let begun = Instant::now();
    runtime.shutdown();
    assert!(
        begun.elapsed() < Duration::from_secs(20),
        "{:?}",
        begun.elapsed()
    );
    assert!(logged().iter().any(|l| l == "stop 0 3"), "{:?}", logged());
}
