//! The plugin's door to its worker's event loop.

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use smol::{LocalExecutor, Task, Timer};

use crate::HookId;
use crate::dns::Dns;

/// What a hook can reach besides its event: the worker's event loop (timers, spawning, sockets
/// through [`Async`](crate::Async)), the time left before its deadline, data it keeps for later
/// hooks of the same connection or message, and logging tagged with its name.
///
/// One `Context` lives as long as one SMTP connection (or one delivery attempt) and belongs to
/// the worker core that serves it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_api::{Context, Control, Data, Plugin, hooks};
///
/// #[derive(Default)]
/// struct Seen(u32);
///
/// struct Patient;
///
/// #[hooks]
/// impl Plugin for Patient {
///     async fn smtp_in_data(&self, ctx: &mut Context, _data: &mut Data) -> Control {
///         ctx.connection_data().get_or_default::<Seen>().0 += 1;   // per-connection state
///         let wait = ctx.remaining().min(Duration::from_millis(5)); // stay inside the deadline
///         ctx.sleep(wait).await;                                    // the worker serves others
///         ctx.info("waited");
///         Control::Continue
///     }
/// }
/// ```
pub struct Context {
    core: usize,
    call: Rc<CallState>,
    executor: Rc<LocalExecutor<'static>>,
    connection: Extensions,
    pub(crate) message: Extensions,
    pub(crate) dns: Option<Rc<dyn Dns>>,
    /// The session facts, as the engine's [`Host`](crate::Host) last published them; `None`
    /// while the host is changing them (they read as empty then, which no hook sees).
    pub(crate) session: Option<Rc<Session>>,
    /// Counts the tasks [`Context::spawn`] starts, so that shutdown can wait for them.
    pub(crate) tasks: Option<TaskTracker>,
    /// `start` or `stop` in a context made for a lifecycle call: what log lines name.
    pub(crate) stage: Option<&'static str>,
}

/// The tasks plugins spawned on one core. Not public API: the engine makes one per core, gives
/// it to the contexts it makes, and at shutdown [`close`](TaskTracker::close)s it and waits for
/// the receiver [`TaskTracker::new`] handed back to close, which it does once every task
/// spawned through a context has ended.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct TaskTracker(Rc<RefCell<Option<smol::channel::Sender<()>>>>);

impl TaskTracker {
    /// A tracker, and what closes once it is closed and its tasks have ended.
    pub fn new() -> (TaskTracker, smol::channel::Receiver<()>) {
        let (sender, receiver) = smol::channel::bounded(1);
        (TaskTracker(Rc::new(RefCell::new(Some(sender)))), receiver)
    }

    /// Stops counting new tasks: the receiver closes when the running ones end.
    pub fn close(&self) {
        self.0.borrow_mut().take();
    }

    /// What a task holds while it runs.
    fn guard(&self) -> Option<smol::channel::Sender<()>> {
        self.0.borrow().clone()
    }
}

/// What [`Context::session`] reads when the context has no facts.
static NO_SESSION: Session = Session {
    client: None,
    local: None,
    helo: None,
    tls: None,
    user: None,
    relay_network: false,
};

/// What the server knows of the SMTP session so far; all empty outside one (deliveries).
///
/// A hook reads it through [`Context::session`], which lends it shared: only the engine's
/// [`Host`](crate::Host) changes the facts of a session it serves.
///
/// # Examples
///
/// ```
/// let mut session = mq_plugin_api::Session::default();
/// assert!(!session.is_trusted());
/// session.user = Some("jane".into());
/// assert!(session.is_trusted());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The client's address and port.
    pub client: Option<std::net::SocketAddr>,
    /// The address the client connected to.
    pub local: Option<std::net::SocketAddr>,
    /// The name the client gave in EHLO or HELO (forgotten after STARTTLS until it says it
    /// again).
    pub helo: Option<String>,
    /// The TLS version, once STARTTLS completed.
    pub tls: Option<String>,
    /// The user the client authenticated as.
    pub user: Option<String>,
    /// Whether the client's address is in the relay networks.
    pub relay_network: bool,
}

impl Session {
    /// Whether the client may relay: authenticated, or in the relay networks. Submission
    /// plugins (signing, adding Message-ID) act for these clients only.
    pub fn is_trusted(&self) -> bool {
        self.user.is_some() || self.relay_network
    }
}

/// What the engine tells a plugin call about itself. Not public API: the engine writes it before
/// each call and reads the deadline back if the call has to wait.
#[doc(hidden)]
#[derive(Debug)]
pub struct CallState {
    plugin: Cell<&'static str>,
    hook: Cell<HookId>,
    timeout: Cell<Duration>,
    /// Set when the engine arms the deadline (the call returned Pending) or when the plugin first
    /// asks for it; never on the fast path, so a call that completes at once reads no clock.
    deadline: Cell<Option<Instant>>,
    /// A test's clock instead of the system's, when a testkit set one.
    clock: RefCell<Option<Rc<dyn Clock>>>,
}

/// Where a [`Context`] reads the time and gets its timers. Not public API: the system clock
/// serves unless a test harness sets one of its own (the testkit's virtual time).
#[doc(hidden)]
pub trait Clock: fmt::Debug {
    /// The wall-clock time now.
    fn now(&self) -> SystemTime;
    /// The monotonic time now.
    fn instant(&self) -> Instant;
    /// A timer that fires `duration` from now. `deadline` marks the engine's own call
    /// deadlines: a test clock moves to a plugin's timer, never to a deadline alone.
    fn sleep(&self, duration: Duration, deadline: bool) -> Pin<Box<dyn Future<Output = ()>>>;
}

impl CallState {
    /// Marks the start of a call.
    #[inline]
    pub fn enter(&self, plugin: &'static str, hook: HookId, timeout: Duration) {
        self.plugin.set(plugin);
        self.hook.set(hook);
        self.timeout.set(timeout);
        self.deadline.set(None);
    }

    /// How long the call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout.get()
    }

    /// The monotonic time now, on the test clock if there is one.
    pub fn instant(&self) -> Instant {
        match &*self.clock.borrow() {
            Some(clock) => clock.instant(),
            None => Instant::now(),
        }
    }

    /// A timer for the engine's deadline of this call, `duration` from now.
    pub fn deadline_timer(&self, duration: Duration) -> Sleep {
        match &*self.clock.borrow() {
            Some(clock) => Sleep(SleepInner::Test(clock.sleep(duration, true))),
            None => Sleep(SleepInner::System(Timer::after(duration))),
        }
    }

    /// The call's deadline, fixing it at `now + timeout` if nobody asked before.
    pub fn deadline_from(&self, now: Instant) -> Instant {
        if let Some(deadline) = self.deadline.get() {
            return deadline;
        }
        let deadline = now + self.timeout.get();
        self.deadline.set(Some(deadline));
        deadline
    }
}

impl Context {
    /// A context for work on worker `core`, whose executor is `executor`, with no session facts.
    /// Only [`Host::new`](crate::Host::new) calls this: a context always has a host.
    pub(crate) fn new(core: usize, executor: Rc<LocalExecutor<'static>>) -> Context {
        let call = CallState {
            plugin: Cell::new(""),
            hook: Cell::new(HookId::SmtpInConnect),
            timeout: Cell::new(Duration::from_secs(30)),
            deadline: Cell::new(None),
            clock: RefCell::new(None),
        };
        Context {
            core,
            call: Rc::new(call),
            executor,
            connection: Extensions::default(),
            message: Extensions::default(),
            dns: None,
            session: None,
            tasks: None,
            stage: None,
        }
    }

    /// What log lines name as the hook: the hook, or `start`/`stop`.
    fn stage(&self) -> &'static str {
        self.stage.unwrap_or_else(|| self.hook().name())
    }

    /// Not public API: a context for one observer of a step, on the same worker, resolver,
    /// clock and session facts, with a call state of its own so that observers that run side by
    /// side each have their own name, hook and deadline. It carries no connection or message
    /// data: an observer reads its event, nothing it could change.
    #[doc(hidden)]
    pub fn fork(&self) -> Context {
        let call = CallState {
            plugin: Cell::new(""),
            hook: Cell::new(self.call.hook.get()),
            timeout: Cell::new(self.call.timeout.get()),
            deadline: Cell::new(None),
            clock: RefCell::new(self.call.clock.borrow().clone()),
        };
        Context {
            core: self.core,
            call: Rc::new(call),
            executor: Rc::clone(&self.executor),
            connection: Extensions::default(),
            message: Extensions::default(),
            dns: self.dns.clone(),
            session: self.session.clone(),
            tasks: self.tasks.clone(),
            stage: None,
        }
    }

    /// Not public API: the engine's handle on the current call.
    #[doc(hidden)]
    pub fn call_state(&self) -> &Rc<CallState> {
        &self.call
    }

    /// Replaces the system clock with `clock`; [`Host::set_clock`](crate::Host::set_clock)
    /// calls this.
    pub(crate) fn set_clock(&mut self, clock: Rc<dyn Clock>) {
        *self.call.clock.borrow_mut() = Some(clock);
    }

    /// DNS lookups on this worker's event loop; without a resolver every lookup fails
    /// temporarily.
    pub fn dns(&self) -> &dyn Dns {
        match &self.dns {
            Some(dns) => dns.as_ref(),
            None => &crate::dns::NoResolver,
        }
    }

    /// What the server knows of the SMTP session so far. Read-only: the engine sets these
    /// facts as the session goes (a client's address, EHLO, STARTTLS, AUTH), and no hook can.
    ///
    /// ```compile_fail
    /// # fn hook(ctx: &mut mq_plugin_api::Context) {
    /// ctx.session_mut().user = Some("postmaster".into()); // not a plugin's to set
    /// # }
    /// ```
    pub fn session(&self) -> &Session {
        self.session.as_deref().unwrap_or(&NO_SESSION)
    }

    /// The worker core this context belongs to, from 0.
    pub fn core(&self) -> usize {
        self.core
    }

    /// The name of the plugin being called.
    pub fn plugin(&self) -> &'static str {
        self.call.plugin.get()
    }

    /// The hook being called.
    pub fn hook(&self) -> HookId {
        self.call.hook.get()
    }

    /// When the engine drops this call if it has not resolved.
    pub fn deadline(&self) -> Instant {
        self.call.deadline_from(self.call.instant())
    }

    /// The time left before this call's deadline: bound your own waits by it.
    pub fn remaining(&self) -> Duration {
        self.deadline()
            .saturating_duration_since(self.call.instant())
    }

    /// The time now. Use this, not `SystemTime::now()`, for anything a plugin times (a
    /// greylisting delay, a rate window): under mq-core's testkit it is the test's virtual
    /// clock, which the test moves (`Server::advance`) without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use std::time::SystemTime;
    ///
    /// let ctx = mq_plugin_api::Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
    /// assert!(ctx.now() <= SystemTime::now());
    /// ```
    pub fn now(&self) -> SystemTime {
        match &*self.call.clock.borrow() {
            Some(clock) => clock.now(),
            None => SystemTime::now(),
        }
    }

    /// A timer that fires after `duration`, on this worker's event loop (under the testkit, on
    /// the test's virtual clock: it fires without the test waiting).
    pub fn sleep(&self, duration: Duration) -> Sleep {
        match &*self.call.clock.borrow() {
            Some(clock) => Sleep(SleepInner::Test(clock.sleep(duration, false))),
            None => Sleep(SleepInner::System(Timer::after(duration))),
        }
    }

    /// Runs `future` on this worker core, beside the chain. The task is cancelled when the
    /// returned handle is dropped; call `detach` on it to let it run on its own.
    ///
    /// The engine tracks the task: at shutdown, after every plugin's [`stop`](crate::Plugin::stop),
    /// it waits (within `[engine] shutdown_timeout`) for the tasks plugins spawned to end before
    /// it drops the plugins. A task that runs forever (a loop on a queue) must therefore end
    /// when its plugin stops: close its queue in `stop`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let executor = Rc::new(smol::LocalExecutor::new());
    /// let ctx = mq_plugin_api::Host::new(0, Rc::clone(&executor)).into_context();
    /// let task = ctx.spawn(async { 6 * 7 });
    /// assert_eq!(smol::block_on(executor.run(task)), 42);
    /// ```
    pub fn spawn<T: 'static>(&self, future: impl Future<Output = T> + 'static) -> Task<T> {
        let guard = self.tasks.as_ref().and_then(TaskTracker::guard);
        self.executor.spawn(async move {
            let output = future.await;
            drop(guard);
            output
        })
    }

    /// Runs the blocking `work` (a file read, a CPU-heavy signature) on a thread pool made for
    /// blocking work, so the worker serves other sessions meanwhile; await the task for its
    /// result. Dropping the task before it finishes does not stop `work`, it only drops the
    /// result.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// let ctx = mq_plugin_api::Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
    /// let length = smol::block_on(ctx.unblock(|| std::fs::read("/nonexistent").map(|b| b.len())));
    /// assert!(length.is_err());
    /// ```
    pub fn unblock<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Task<T> {
        smol::unblock(work)
    }

    /// Data that lives as long as the connection, shared by all plugins: key it by a type of
    /// your own.
    pub fn connection_data(&mut self) -> &mut Extensions {
        &mut self.connection
    }

    /// Data that lives as long as the current message (transaction), shared by all plugins.
    pub fn message_data(&mut self) -> &mut Extensions {
        &mut self.message
    }

    /// Logs `message` at INFO, tagged with the plugin's name and hook.
    pub fn info(&self, message: impl fmt::Display) {
        tracing::info!(
            plugin = self.plugin(),
            hook = self.stage(),
            core = self.core,
            "{message}"
        );
    }

    /// Logs `message` at WARN, tagged with the plugin's name and hook.
    pub fn warn(&self, message: impl fmt::Display) {
        tracing::warn!(
            plugin = self.plugin(),
            hook = self.stage(),
            core = self.core,
            "{message}"
        );
    }

    /// Logs `message` at ERROR, tagged with the plugin's name and hook.
    pub fn error(&self, message: impl fmt::Display) {
        tracing::error!(
            plugin = self.plugin(),
            hook = self.stage(),
            core = self.core,
            "{message}"
        );
    }

    /// Logs `message` at DEBUG, tagged with the plugin's name and hook.
    pub fn debug(&self, message: impl fmt::Display) {
        tracing::debug!(
            plugin = self.plugin(),
            hook = self.stage(),
            core = self.core,
            "{message}"
        );
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("core", &self.core)
            .field("plugin", &self.plugin())
            .field("hook", &self.hook())
            .finish_non_exhaustive()
    }
}

/// Values keyed by their type: how plugins pass data between hooks.
///
/// # Examples
///
/// ```
/// let mut data = mq_plugin_api::Extensions::default();
/// struct Score(u32);
/// data.insert(Score(3));
/// data.get_mut::<Score>().unwrap().0 += 1;
/// assert_eq!(data.get::<Score>().map(|s| s.0), Some(4));
/// ```
#[derive(Default)]
pub struct Extensions {
    // An empty HashMap allocates nothing, so a context whose plugins keep nothing costs nothing.
    map: HashMap<TypeId, Box<dyn Any>>,
}

impl Extensions {
    /// Stores `value`, handing back the value of that type stored before.
    pub fn insert<T: 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|b| *b))
    }

    /// The stored value of type `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.map.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The stored value of type `T`, to change it.
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.map.get_mut(&TypeId::of::<T>())?.downcast_mut()
    }

    /// The stored value of type `T`, storing `T::default()` first if there is none.
    pub fn get_or_default<T: Default + 'static>(&mut self) -> &mut T {
        let value = self
            .map
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        match value.downcast_mut() {
            Some(value) => value,
            // Entries are keyed by their own type's TypeId, so this arm is never taken.
            None => unreachable!("an entry keyed by a type holds that type"),
        }
    }

    /// Takes the stored value of type `T` out.
    pub fn remove<T: 'static>(&mut self) -> Option<T> {
        let old = self.map.remove(&TypeId::of::<T>())?;
        old.downcast().ok().map(|b| *b)
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.map.len())
            .finish()
    }
}

/// The timer [`Context::sleep`] returns; it resolves once its time has passed.
#[must_use = "a timer does nothing unless awaited"]
pub struct Sleep(SleepInner);

enum SleepInner {
    System(Timer),
    Test(Pin<Box<dyn Future<Output = ()>>>),
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        match &mut self.get_mut().0 {
            SleepInner::System(timer) => Pin::new(timer).poll(cx).map(|_| ()),
            SleepInner::Test(sleep) => sleep.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = match self.0 {
            SleepInner::System(_) => "system",
            SleepInner::Test(_) => "test",
        };
        f.debug_struct("Sleep").field("clock", &clock).finish()
    }
}

/// Why a [`TimeoutExt::timeout`] future ended: the time ran out first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Bounds any future by a time, on the worker's event loop.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_api::{Elapsed, TimeoutExt};
///
/// let slow = smol::Timer::after(Duration::from_secs(60));
/// let result = smol::block_on(slow.timeout(Duration::from_millis(1)));
/// assert_eq!(result.map(|_| ()), Err(Elapsed));
/// ```
pub trait TimeoutExt: Future + Sized {
    /// Resolves to the future's output, or to [`Elapsed`] after `duration`.
    fn timeout(self, duration: Duration) -> impl Future<Output = Result<Self::Output, Elapsed>> {
        smol::future::or(async move { Ok(self.await) }, async move {
            Timer::after(duration).await;
            Err(Elapsed)
        })
    }
}

impl<F: Future> TimeoutExt for F {}
