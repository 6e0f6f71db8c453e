//! Shared helpers for mq's end-to-end tests (`tests/e2e`).
//!
//! - Building a one-core [`Engine`] straight from `(name, plugin)` pairs, without inventory:
//!   [`loaded`], [`guarded`], [`engine`], [`engine_with`].
//! - Running chains on a single-threaded executor: [`run_chain`] for one, [`spawn_chain`] for
//!   many side by side on one [`LocalExecutor`].
//! - Plugins most tests need: [`Recorder`], which logs its calls into a shared [`Log`], and
//!   [`Sleeper`], which awaits a timer and counts how many of its calls are in flight.
//! - Configs for the linked registry, where every `#[plugin]` of the test binary is compiled in:
//!   [`config_enabling`] turns off all but the plugins a test is about.
//! - Waiting on other threads without hanging: [`result_of`] for a runtime job, [`eventually`]
//!   for something the watchdog records.
//! - Killing a server mid-work: [`child::ChildTest`] runs one test of the test binary as a
//!   child process that serves until the parent sends SIGKILL.

pub mod child;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mq_core::watchdog::Beat;
use mq_core::{Config, Engine, EngineConfig, FailurePolicy, JobHandle, Loaded, Outcome, Registry};
use mq_plugin_api::{
    Context, Control, Data, Envelope, Event, MailFrom, Message, Plugin, PluginHooks, Reply,
    TimeoutExt, hooks,
};
use smol::{LocalExecutor, Task};

/// Calls, in the order they happened, shared between a test and its plugins.
pub type Log = Rc<RefCell<Vec<String>>>;

/// A fresh, empty log.
pub fn new_log() -> Log {
    Rc::default()
}

/// What the log holds now.
pub fn entries(log: &Log) -> Vec<String> {
    log.borrow().clone()
}

/// The per-call timeout of plugins loaded with [`loaded`]: the engine's default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// `plugin` as the engine loads it under `name`, with the hooks its `#[hooks]` block defines,
/// the default timeout and the default policy (tempfail).
pub fn loaded<P: PluginHooks>(name: &'static str, plugin: P) -> Loaded {
    guarded(name, plugin, DEFAULT_TIMEOUT, FailurePolicy::Tempfail)
}

/// `plugin` loaded under `name` with its own per-call `timeout` and failure `policy`.
pub fn guarded<P: PluginHooks>(
    name: &'static str,
    plugin: P,
    timeout: Duration,
    policy: FailurePolicy,
) -> Loaded {
    Loaded {
        name,
        hooks: P::HOOKS,
        observes: P::OBSERVES,
        timeout,
        policy,
        order: mq_plugin_api::Order::default(),
        plugin: Box::new(plugin),
    }
}

/// A core-0 engine over `plugins` with the default engine config and no watchdog.
///
/// # Panics
///
/// Two plugins share a name.
pub fn engine(plugins: Vec<Loaded>) -> Engine {
    engine_with(&EngineConfig::default(), plugins)
}

/// A core-0 engine over `plugins` under `config`, with no watchdog.
///
/// # Panics
///
/// Two plugins share a name.
pub fn engine_with(config: &EngineConfig, plugins: Vec<Loaded>) -> Engine {
    Engine::new(0, config, plugins, Beat::unwatched())
        .expect("the test's plugins have distinct names")
}

/// A fresh single-threaded executor, as one worker core has.
pub fn executor() -> Rc<LocalExecutor<'static>> {
    Rc::new(LocalExecutor::new())
}

/// Runs the chain of `E`'s hook over `event` on a fresh executor with a fresh context, blocking
/// this thread until it ends.
pub fn run_chain<E: Event>(engine: &Engine, event: &mut E) -> Outcome {
    let executor = executor();
    let mut ctx = mq_plugin_api::Host::new(engine.core(), Rc::clone(&executor)).into_context();
    smol::block_on(executor.run(engine.run(&mut ctx, event)))
}

/// Spawns the chain of `E`'s hook over `event` on `executor`, with a context of its own; the
/// task resolves to the outcome and the event as the chain left it.
pub fn spawn_chain<E: Event>(
    executor: &Rc<LocalExecutor<'static>>,
    engine: &Rc<Engine>,
    mut event: E,
) -> Task<(Outcome, E)> {
    let engine = Rc::clone(engine);
    let mut ctx = mq_plugin_api::Host::new(engine.core(), Rc::clone(executor)).into_context();
    executor.spawn(async move {
        let outcome = engine.run(&mut ctx, &mut event).await;
        (outcome, event)
    })
}

/// As [`spawn_chain`], and pushes `label` into `log` as soon as the chain has ended: the log
/// then shows the order in which chains on one executor finished.
pub fn spawn_logged_chain<E: Event>(
    executor: &Rc<LocalExecutor<'static>>,
    engine: &Rc<Engine>,
    mut event: E,
    log: &Log,
    label: String,
) -> Task<(Outcome, E)> {
    let engine = Rc::clone(engine);
    let log = Rc::clone(log);
    let mut ctx = mq_plugin_api::Host::new(engine.core(), Rc::clone(executor)).into_context();
    executor.spawn(async move {
        let outcome = engine.run(&mut ctx, &mut event).await;
        log.borrow_mut().push(label);
        (outcome, event)
    })
}

/// The `smtp_in_data` event for the message `raw`, with an empty envelope.
pub fn data(raw: &str) -> Data {
    Data::new(Envelope::default(), Message::parse(raw.as_bytes()))
}

/// A small message to run through `smtp_in_data` chains.
pub const MESSAGE: &str = "Subject: hello\r\n\r\nbody\r\n";

/// The `smtp_in_mail_from` event for `sender`.
///
/// # Panics
///
/// `sender` is not an address.
pub fn mail_from(sender: &str) -> MailFrom {
    MailFrom::new(sender.parse().expect("the test's sender is an address"))
}

/// The values of every header field called `name`, in order.
pub fn header_values(data: &Data, name: &str) -> Vec<String> {
    data.message
        .headers()
        .iter()
        .filter(|header| header.is(name))
        .map(|header| header.unfolded().trim().to_owned())
        .collect()
}

/// A config for the linked registry in which only the plugins named in `enabled` run: every
/// other compiled-in plugin gets `[engine.plugins.NAME] enabled = false`. `toml` is the rest of the config (an
/// `[engine]` table, the enabled plugins' own sections), and may be empty.
///
/// # Panics
///
/// `toml` is not a valid config, or two linked plugins share a name.
pub fn config_enabling(enabled: &[&str], toml: &str) -> Config {
    let mut config = Config::from_toml(toml).expect("the test's config is valid");
    let registry = Registry::linked().expect("the linked plugins have distinct names");
    for name in registry.names() {
        if !enabled.contains(&name) {
            config
                .engine
                .plugins
                .entry(name.to_owned())
                .or_default()
                .enabled = Some(false);
        }
    }
    config
}

/// Polls `condition` every 10 ms until it holds or `cap` has passed; whether it held. For
/// things another thread records (the watchdog); the cap is a ceiling, never the expectation.
pub fn eventually(cap: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > cap {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long [`result_of`] waits for a job at most.
pub const JOB_CAP: Duration = Duration::from_mins(1);

/// Blocks until a runtime job reports: its result, or `None` if the runtime dropped it
/// unfinished. A ceiling of [`JOB_CAP`] turns an engine that loses track of a job into a
/// failed test rather than a hung one.
///
/// # Panics
///
/// The job did not report within [`JOB_CAP`].
pub fn result_of<T>(job: JobHandle<T>) -> Option<T> {
    smol::block_on(job.result().timeout(JOB_CAP))
        .expect("the job reports, or is dropped, within a minute")
}

/// A plugin at `smtp_in_data` that logs its name at each call and returns a fixed [`Control`],
/// optionally adding a header field or setting a reply first.
#[derive(Debug)]
pub struct Recorder {
    name: &'static str,
    log: Log,
    control: Control,
    header: Option<(&'static str, &'static str)>,
    reply: Option<Reply>,
}

impl Recorder {
    /// A recorder that logs `name` into `log` and returns `Continue`.
    pub fn new(name: &'static str, log: &Log) -> Recorder {
        Recorder {
            name,
            log: Rc::clone(log),
            control: Control::Continue,
            header: None,
            reply: None,
        }
    }

    /// Returns `control` instead of `Continue`.
    pub fn returning(mut self, control: Control) -> Recorder {
        self.control = control;
        self
    }

    /// Appends the header field `name: value` to the message at each call.
    pub fn adding(mut self, name: &'static str, value: &'static str) -> Recorder {
        self.header = Some((name, value));
        self
    }

    /// Rejects the message with `reply` at each call.
    pub fn rejecting(mut self, reply: Reply) -> Recorder {
        self.reply = Some(reply);
        self
    }
}

#[hooks]
impl Plugin for Recorder {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        self.log.borrow_mut().push(self.name.to_owned());
        if let Some((name, value)) = self.header {
            data.message.headers_mut().append(name, value);
        }
        if let Some(reply) = &self.reply {
            // Ignored on purpose: the test's own Control is returned, and the reject still wins.
            let _complete = data.reject(reply.clone());
        }
        self.control
    }
}

/// How many calls of a [`Sleeper`] are in flight, and the most there have been at once.
#[derive(Debug, Default)]
pub struct InFlight {
    now: Cell<usize>,
    max: Cell<usize>,
}

impl InFlight {
    /// The most calls that were in flight at once.
    pub fn max(&self) -> usize {
        self.max.get()
    }

    /// How many calls are in flight now.
    pub fn now(&self) -> usize {
        self.now.get()
    }

    fn enter(&self) {
        let now = self.now.get() + 1;
        self.now.set(now);
        self.max.set(self.max.get().max(now));
    }

    fn leave(&self) {
        self.now.set(self.now.get() - 1);
    }
}

/// A plugin at `smtp_in_data` that awaits a timer on its worker's event loop, then continues,
/// counting its calls in flight.
#[derive(Debug)]
pub struct Sleeper {
    nap: Duration,
    in_flight: Rc<InFlight>,
}

impl Sleeper {
    /// A sleeper that awaits `nap` at each call and counts into `in_flight`.
    pub fn new(nap: Duration, in_flight: &Rc<InFlight>) -> Sleeper {
        Sleeper {
            nap,
            in_flight: Rc::clone(in_flight),
        }
    }
}

#[hooks]
impl Plugin for Sleeper {
    async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
        self.in_flight.enter();
        ctx.sleep(self.nap).await;
        self.in_flight.leave();
        Control::Continue
    }
}
