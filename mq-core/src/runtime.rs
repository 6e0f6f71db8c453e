//! The per-core runtime: one thread per worker, each with its own smol executor and its own
//! plugin instances, sharing async-io's reactor.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use mq_plugin_api::{Context, Host, MetricRegistry, TaskTracker};
use smol::LocalExecutor;
use smol::channel::{self, Receiver, Sender};

use crate::deadline::Deadlines;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::registry::{Plan, RegistryError};
use crate::watchdog::Watchdog;

type Job = Box<dyn FnOnce(Worker) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The worker threads. Dropping it shuts down as [`Runtime::shutdown`] does.
///
/// # Examples
///
/// ```
/// use mq_core::{Config, Registry, Runtime};
///
/// let plan = Registry::linked().unwrap().plan(&Config::default()).unwrap();
/// let runtime = Runtime::start(&plan, 2).unwrap();
/// let core = runtime.spawn_on(1, |worker| async move { worker.core() }).wait();
/// assert_eq!(core, Some(1));
/// runtime.shutdown();
/// ```
pub struct Runtime {
    workers: Vec<WorkerThread>,
    watchdog: Watchdog,
    /// Held through a reload, whose two steps must not interleave with another's.
    reloading: Mutex<()>,
    /// The metrics plugins declare, on every core and across reloads.
    plugin_metrics: MetricRegistry,
}

struct WorkerThread {
    jobs: Sender<Job>,
    /// Closes when the thread's work is done, before it is joined.
    finished: Receiver<()>,
    thread: Option<thread::JoinHandle<()>>,
}

/// How long the sessions still open when the shutdown timeout passed get to send their 421
/// and close before their tasks are dropped.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Spawns jobs on the workers of a [`Runtime`]; cheap to clone and `Send`, so a job on one core
/// can hand work to another.
#[derive(Clone)]
pub struct Spawner {
    jobs: Arc<[Sender<Job>]>,
}

impl Spawner {
    /// How many workers there are.
    pub fn workers(&self) -> usize {
        self.jobs.len()
    }

    /// Runs `job` on worker `core` (modulo the worker count), as [`Runtime::spawn_on`] does.
    pub fn spawn_on<F, Fut, T>(&self, core: usize, job: F) -> JobHandle<T>
    where
        F: FnOnce(Worker) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (tx, result) = channel::bounded(1);
        let job: Job = Box::new(move |worker| {
            Box::pin(async move {
                let _ = tx.send(job(worker).await).await;
            })
        });
        // The channel is unbounded, so this never blocks; it fails only after shutdown closed
        // the channel, and the handle then yields None.
        let _ = self.jobs[core % self.jobs.len()].send_blocking(job);
        JobHandle { result }
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("workers", &self.jobs.len())
            .finish()
    }
}

/// A worker core's handle, given to the jobs that run on it: its engine, its executor and the
/// signal that shutdown has begun. It is `!Send`: it stays on its core.
#[derive(Clone)]
pub struct Worker {
    inner: Rc<WorkerInner>,
}

struct WorkerInner {
    core: usize,
    /// The plugin instances new chains run on. A chain holds its own `Rc`, so a reload that
    /// replaces this one lets the chains in progress finish on the instances they began with.
    engine: RefCell<Rc<Engine>>,
    /// A reload's engine, built and not yet in use: [`Runtime::reload`] builds one on every core
    /// before it puts any to use.
    staged: RefCell<Option<Engine>>,
    /// Engines a reload replaced that chains still run on; each goes to `retired` once the last
    /// of them has finished.
    draining: RefCell<Vec<Rc<Engine>>>,
    /// The counters of the engines reloads replaced, so that the metrics only ever grow.
    retired: RefCell<Metrics>,
    /// Watches the engines this core builds on reloads (none for the testkit's worker).
    watchdog: Option<Watchdog>,
    /// Where the plugins this core builds on reloads declare their metrics.
    plugin_metrics: MetricRegistry,
    /// Counts the tasks plugins spawn through their contexts; shutdown closes it after the
    /// plugins' `stop` and waits for them (none for the testkit's worker).
    plugin_tasks: Option<TaskTracker>,
    dns: Option<Rc<dyn mq_plugin_api::Dns>>,
    executor: Rc<LocalExecutor<'static>>,
    deadlines: Deadlines,
    /// Each tracked task holds a clone; shutdown drops this one and waits for the channel to
    /// close, which happens when the last task is done.
    in_flight: RefCell<Option<Sender<()>>>,
    /// Closed when shutdown begins.
    stopping: Receiver<()>,
    /// Closed when the shutdown timeout has passed: open sessions close at once.
    aborting: Receiver<()>,
    /// A test's clock for the contexts made here (the testkit's virtual time).
    clock: Option<Rc<dyn mq_plugin_api::Clock>>,
    /// Where the testkit's sessions write their transcripts.
    #[cfg(feature = "testkit")]
    transcript: Option<crate::testkit::Live>,
    /// The ends of `stopping` and `aborting` of a worker no runtime runs (the testkit's).
    _held: Vec<Sender<()>>,
}

/// The result of a job given to [`Runtime::spawn_on`].
#[derive(Debug)]
pub struct JobHandle<T> {
    result: Receiver<T>,
}

impl<T> JobHandle<T> {
    /// Waits for the job's result; `None` if the job was dropped unfinished.
    pub async fn result(self) -> Option<T> {
        self.result.recv().await.ok()
    }

    /// Blocks this thread until the job's result is there. Not for use on a worker thread.
    pub fn wait(self) -> Option<T> {
        smol::block_on(self.result())
    }
}

impl Runtime {
    /// Starts `workers` worker threads, each building its engine from `plan`, and a watchdog
    /// with the plan's slow-poll threshold.
    ///
    /// # Errors
    ///
    /// A plugin's factory refused its config on some core.
    ///
    /// # Panics
    ///
    /// If the operating system cannot start a thread.
    pub fn start(plan: &Plan, workers: usize) -> Result<Runtime, RegistryError> {
        let watchdog = Watchdog::start(plan.engine_config().slow_poll);
        let plugin_metrics = MetricRegistry::default();
        let (ready_tx, ready_rx) = channel::unbounded();
        let mut threads = Vec::new();
        for core in 0..workers.max(1) {
            let (jobs, job_rx) = channel::unbounded::<Job>();
            let (done, finished) = channel::bounded::<()>(1);
            let (plan, watchdog, ready) = (plan.clone(), watchdog.clone(), ready_tx.clone());
            let metrics = plugin_metrics.clone();
            let thread = thread::Builder::new()
                .name(format!("mq-core-{core}"))
                .spawn(move || {
                    let shared = Shared {
                        watchdog,
                        metrics,
                        ready,
                    };
                    run_worker(core, &plan, &shared, &job_rx);
                    drop(done);
                })
                .expect("a worker thread starts");
            threads.push(WorkerThread {
                jobs,
                finished,
                thread: Some(thread),
            });
        }
        let runtime = Runtime {
            workers: threads,
            watchdog,
            reloading: Mutex::new(()),
            plugin_metrics,
        };
        for _ in 0..runtime.workers.len() {
            // Each worker sends once; a worker that died without sending closes nothing while
            // the others hold senders, so count the answers rather than wait for a close.
            ready_rx
                .recv_blocking()
                .expect("a worker answers")
                .map_err(|e| *e)?;
        }
        Ok(runtime)
    }

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The watchdog, with the slow polls it has seen.
    pub fn watchdog(&self) -> &Watchdog {
        &self.watchdog
    }

    /// Runs `job` on worker `core` (modulo the worker count) as a task of its own; shutdown waits
    /// for it.
    pub fn spawn_on<F, Fut, T>(&self, core: usize, job: F) -> JobHandle<T>
    where
        F: FnOnce(Worker) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        self.spawner().spawn_on(core, job)
    }

    /// A handle that spawns jobs on the workers from anywhere, a worker included.
    pub fn spawner(&self) -> Spawner {
        Spawner {
            jobs: self.workers.iter().map(|w| w.jobs.clone()).collect(),
        }
    }

    /// Rebuilds every core's plugins from `plan`: all of them, or on an error none. A chain in
    /// progress finishes on the instances it began with; the next one runs on the new.
    ///
    /// Settings the workers were started with stay: their number, the slow-poll threshold and
    /// the resolver of `Context::dns`.
    ///
    /// # Errors
    ///
    /// A plugin's factory refused its config on some core (the running plugins stay), or the
    /// runtime is shutting down.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::{Config, Registry, Runtime};
    ///
    /// let registry = Registry::linked().unwrap();
    /// let runtime = Runtime::start(&registry.plan(&Config::default()).unwrap(), 2).unwrap();
    /// let mut config = Config::default();
    /// config.engine.retry_budget = 3;
    /// runtime.reload(&registry.plan(&config).unwrap()).unwrap();
    /// runtime.shutdown();
    /// ```
    pub fn reload(&self, plan: &Plan) -> Result<(), RegistryError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let staged: Vec<_> = (0..self.workers())
            .map(|core| {
                let plan = plan.clone();
                self.spawn_on(core, move |worker| async move { worker.stage(&plan) })
            })
            .collect();
        let mut failed = None;
        for handle in staged {
            let built = handle.wait().unwrap_or(Err(RegistryError::Stopping));
            if let Err(error) = built {
                failed.get_or_insert(error);
            }
        }
        let install = failed.is_none();
        let installed: Vec<_> = (0..self.workers())
            .map(|core| {
                self.spawn_on(core, move |worker| async move {
                    worker.install_staged(install).await;
                })
            })
            .collect();
        for handle in installed {
            if handle.wait().is_none() {
                failed.get_or_insert(RegistryError::Stopping);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Every core's counters summed, with the watchdog's slow polls.
    pub fn metrics(&self) -> Metrics {
        let mut total = Metrics::default();
        let handles: Vec<_> = (0..self.workers())
            .map(|core| self.spawn_on(core, |worker| async move { worker.metrics() }))
            .collect();
        for handle in handles {
            if let Some(metrics) = handle.wait() {
                total.merge(&metrics);
            }
        }
        for ((plugin, hook), slow) in self.watchdog.slow_polls() {
            total.add_slow_polls(plugin, hook, slow.count);
        }
        total.set_families(self.plugin_metrics.snapshot());
        total
    }

    /// Stops taking jobs, tells running tasks that shutdown began, waits for the tracked tasks
    /// (chains in flight) to finish, then drops the plugin instances and joins the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Begins shutdown as [`Runtime::shutdown`] does and waits until every worker is done,
    /// without joining the threads: what borrows the runtime (the admin port) keeps working
    /// meanwhile. Sessions still open after `[engine] shutdown_timeout` are closed with 421.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::{Config, Registry, Runtime};
    ///
    /// let plan = Registry::linked().unwrap().plan(&Config::default()).unwrap();
    /// let runtime = Runtime::start(&plan, 2).unwrap();
    /// runtime.drain();
    /// // Drained: no job runs any more.
    /// assert_eq!(runtime.spawn_on(0, |worker| async move { worker.core() }).wait(), None);
    /// runtime.shutdown();
    /// ```
    pub fn drain(&self) {
        for worker in &self.workers {
            worker.jobs.close();
        }
        for worker in &self.workers {
            // Closed, never sent on: the thread is done.
            let _ = worker.finished.recv_blocking();
        }
    }

    fn stop(&mut self) {
        for worker in &self.workers {
            worker.jobs.close();
        }
        for worker in &mut self.workers {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

type Ready = Sender<Result<(), Box<RegistryError>>>;

/// What every worker thread is handed besides the plan.
struct Shared {
    watchdog: Watchdog,
    metrics: MetricRegistry,
    /// Where the worker says whether its plugins are built and started.
    ready: Ready,
}

fn run_worker(core: usize, plan: &Plan, shared: &Shared, jobs: &Receiver<Job>) {
    let beat = shared.watchdog.watch(core, plan.names());
    let engine = match plan.build_engine_in(core, beat, &shared.metrics) {
        Ok(engine) => engine,
        Err(error) => {
            let _ = shared.ready.send_blocking(Err(Box::new(error)));
            return;
        }
    };
    let executor = Rc::new(LocalExecutor::new());
    let (in_flight, all_done) = channel::bounded::<()>(1);
    let (plugin_tasks, plugin_tasks_done) = TaskTracker::new();
    let (stop, stopping) = channel::bounded::<()>(1);
    let (abort, aborting) = channel::bounded::<()>(1);
    // One resolver per core, its cache included; lookups fail temporarily without one.
    let dns: Option<Rc<dyn mq_plugin_api::Dns>> = match crate::dns::Resolver::new(plan.dns_config())
    {
        Ok(resolver) => Some(Rc::new(resolver)),
        Err(error) => {
            tracing::error!(core, %error, "no resolver for plugins");
            None
        }
    };
    let worker = Worker {
        inner: Rc::new(WorkerInner {
            core,
            engine: RefCell::new(Rc::new(engine)),
            staged: RefCell::new(None),
            draining: RefCell::new(Vec::new()),
            retired: RefCell::new(Metrics::default()),
            watchdog: Some(shared.watchdog.clone()),
            plugin_metrics: shared.metrics.clone(),
            plugin_tasks: Some(plugin_tasks.clone()),
            dns,
            deadlines: Deadlines::new(&executor),
            executor: Rc::clone(&executor),
            in_flight: RefCell::new(Some(in_flight)),
            stopping,
            aborting,
            clock: None,
            #[cfg(feature = "testkit")]
            transcript: None,
            _held: Vec::new(),
        }),
    };
    smol::block_on(executor.run(async {
        crate::lifecycle::start(&worker.engine(), &mut worker.host()).await;
        let _ = shared.ready.send(Ok(())).await;
        while let Ok(job) = jobs.recv().await {
            worker.spawn(job(worker.clone())).detach();
        }
        drop(stop);
        let begun = Instant::now();
        worker.inner.in_flight.borrow_mut().take();
        // Closes once every tracked task has dropped its sender.
        let shutdown_timeout = plan.engine_config().shutdown_timeout;
        if within(shutdown_timeout, all_done.recv()).await.is_none() {
            tracing::warn!(
                core,
                ?shutdown_timeout,
                "shutdown_timeout passed: closing the sessions still open"
            );
            drop(abort);
            if within(ABORT_GRACE, all_done.recv()).await.is_none() {
                tracing::warn!(
                    core,
                    "tasks still running after the shutdown timeout are dropped"
                );
            }
        }
        worker.stop_plugins().await;
        plugin_tasks.close();
        // What is left of the shutdown timeout, or the grace sessions got if none is.
        let until =
            (begun + shutdown_timeout).max(Instant::now() + ABORT_GRACE.min(shutdown_timeout));
        crate::lifecycle::drain_tasks(core, &plugin_tasks_done, until).await;
    }));
    tracing::debug!(core, "worker stopped");
}

/// `future`'s output, or `None` once `timeout` has passed.
async fn within<T>(timeout: Duration, future: impl Future<Output = T>) -> Option<T> {
    smol::future::or(async { Some(future.await) }, async {
        smol::Timer::after(timeout).await;
        None
    })
    .await
}

impl Worker {
    /// The worker's core number, from 0.
    pub fn core(&self) -> usize {
        self.inner.core
    }

    /// The worker's engine, for one chain or a few that belong together: a reload puts a new
    /// engine in place for the chains that start after it, while this one stays whole for as
    /// long as it is held.
    pub fn engine(&self) -> Rc<Engine> {
        if !self.inner.draining.borrow().is_empty() {
            self.retire_drained();
        }
        Rc::clone(&self.inner.engine.borrow())
    }

    /// This core's counters: its engine's, and those of the engines reloads replaced.
    pub fn metrics(&self) -> Metrics {
        let mut metrics = self.engine().metrics();
        metrics.merge(&self.inner.retired.borrow());
        for engine in self.inner.draining.borrow().iter() {
            metrics.merge(&engine.metrics());
        }
        metrics
    }

    /// Stops and drops the replaced engines no chain runs on any more, keeping their counters.
    fn retire_drained(&self) {
        let mut retired = self.inner.retired.borrow_mut();
        let mut done = Vec::new();
        self.inner.draining.borrow_mut().retain(|engine| {
            let running = Rc::strong_count(engine) > 1;
            if !running {
                retired.merge(&engine.metrics());
                done.push(Rc::clone(engine));
            }
            running
        });
        for engine in done {
            let mut host = self.host();
            self.spawn(async move { crate::lifecycle::stop(&engine, &mut host).await })
                .detach();
        }
    }

    /// Calls `stop` on the plugins of this core's engine and of the engines reloads replaced.
    async fn stop_plugins(&self) {
        let mut engines = vec![Rc::clone(&self.inner.engine.borrow())];
        engines.extend(self.inner.draining.borrow_mut().drain(..));
        for engine in engines {
            crate::lifecycle::stop(&engine, &mut self.host()).await;
        }
    }

    /// Builds this core's engine from `plan` and keeps it aside for [`Worker::install_staged`].
    fn stage(&self, plan: &Plan) -> Result<(), RegistryError> {
        let beat = match &self.inner.watchdog {
            Some(watchdog) => watchdog.watch(self.inner.core, plan.names()),
            None => crate::watchdog::Beat::unwatched(),
        };
        let engine = plan.build_engine_in(self.inner.core, beat, &self.inner.plugin_metrics)?;
        *self.inner.staged.borrow_mut() = Some(engine);
        Ok(())
    }

    /// Puts the staged engine in place if `install`, once its plugins have started, else drops
    /// it. The replaced engine drains: the chains running on it finish there.
    async fn install_staged(&self, install: bool) {
        let Some(engine) = self.inner.staged.borrow_mut().take() else {
            return;
        };
        if install {
            crate::lifecycle::start(&engine, &mut self.host()).await;
            let old = self.inner.engine.replace(Rc::new(engine));
            self.inner.draining.borrow_mut().push(old);
            self.retire_drained();
        }
    }

    /// This core's coarse deadlines, for the long timeouts of its connections.
    pub(crate) fn deadlines(&self) -> &Deadlines {
        &self.inner.deadlines
    }

    /// A fresh host on this core, for one connection: the context its hooks are lent and the
    /// session facts only the server sets.
    pub fn host(&self) -> Host {
        let mut host = Host::new(self.inner.core, Rc::clone(&self.inner.executor));
        if let Some(dns) = &self.inner.dns {
            host.set_dns(Rc::clone(dns));
        }
        if let Some(clock) = &self.inner.clock {
            host.set_clock(Rc::clone(clock));
        }
        if let Some(tasks) = &self.inner.plugin_tasks {
            host.set_tasks(tasks.clone());
        }
        host
    }

    /// A fresh context on this core with no session facts, for one delivery attempt.
    pub fn context(&self) -> Context {
        self.host().into_context()
    }

    /// A worker that no runtime runs, for the testkit: core 0, on `executor`, with `engine`,
    /// the test's clock, and the transcript its sessions write. It never stops.
    #[cfg(feature = "testkit")]
    pub(crate) fn standalone(
        engine: Rc<Engine>,
        executor: &Rc<LocalExecutor<'static>>,
        dns: Option<Rc<dyn mq_plugin_api::Dns>>,
        clock: Rc<dyn mq_plugin_api::Clock>,
        transcript: crate::testkit::Live,
    ) -> Worker {
        let (stop, stopping) = channel::bounded::<()>(1);
        let (abort, aborting) = channel::bounded::<()>(1);
        Worker {
            inner: Rc::new(WorkerInner {
                core: 0,
                engine: RefCell::new(engine),
                staged: RefCell::new(None),
                draining: RefCell::new(Vec::new()),
                retired: RefCell::new(Metrics::default()),
                watchdog: None,
                plugin_metrics: MetricRegistry::default(),
                plugin_tasks: None,
                dns,
                deadlines: Deadlines::new(executor),
                executor: Rc::clone(executor),
                in_flight: RefCell::new(None),
                stopping,
                aborting,
                clock: Some(clock),
                transcript: Some(transcript),
                _held: vec![stop, abort],
            }),
        }
    }

    /// Where this worker's sessions write their transcripts (the testkit's workers only).
    #[cfg(feature = "testkit")]
    pub(crate) fn transcript(&self) -> Option<&crate::testkit::Live> {
        self.inner.transcript.as_ref()
    }

    /// Runs `future` on this core as a tracked task: shutdown waits for it.
    pub fn spawn<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> smol::Task<T> {
        let guard = self.inner.in_flight.borrow().clone();
        self.inner.executor.spawn(async move {
            let output = future.await;
            drop(guard);
            output
        })
    }

    /// Resolves when shutdown begins: long-running tasks (listeners) stop taking new work then.
    pub async fn stopping(&self) {
        let _ = self.inner.stopping.recv().await;
    }

    /// Whether shutdown has begun: a command that arrives now is answered with 421.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.is_closed()
    }

    /// Resolves when the shutdown timeout has passed: what still runs then closes at once.
    pub async fn aborting(&self) {
        let _ = self.inner.aborting.recv().await;
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("core", &self.inner.core)
            .finish_non_exhaustive()
    }
}
