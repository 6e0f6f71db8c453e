//! Running a chain: the seed's rules, and the guarantees around each call.
//!
//! A call is polled once inline. Most hooks complete there, and then the call costs the boxed
//! future, one store for the watchdog and an add for the counters: no timer, no clock read, no
//! lock. Only a call that returns Pending reads the clock, arms its deadline timer and is timed
//! for the latency histogram.

use std::fmt;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use mq_plugin_api::{CallState, Context, Control, Event, HookFuture, HookId, Reply};

use crate::config::FailurePolicy;
use crate::engine::{Engine, Loaded};

/// How a step's chain ended.
#[must_use = "the step must act on its chain's outcome"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every plugin continued, or one completed: go on with the step.
    Proceed,
    /// A plugin set a reply: send it and refuse the step.
    Rejected {
        /// The plugin that rejected.
        plugin: &'static str,
        /// Its reply.
        reply: Reply,
    },
    /// A plugin call failed and its policy fails the step.
    Failed(Failure),
}

/// A plugin call that failed the step: it timed out, panicked or kept asking to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The plugin.
    pub plugin: &'static str,
    /// The hook.
    pub hook: HookId,
    /// What went wrong.
    pub kind: FailureKind,
    /// Whether the policy fails the step for good (`reject`) rather than for now.
    pub permanent: bool,
}

/// What went wrong with a plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// It did not resolve within its timeout.
    Timeout(Duration),
    /// It panicked, with this message.
    Panic(String),
    /// It returned Retry once more after the chain had restarted this many times.
    RetryBudget(u32),
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::Timeout(timeout) => write!(f, "timed out after {timeout:?}"),
            FailureKind::Panic(message) => write!(f, "panicked: {message}"),
            FailureKind::RetryBudget(restarts) => {
                write!(f, "asked to retry after {restarts} restarts")
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin {} at {} {}", self.plugin, self.hook, self.kind)
    }
}

impl Failure {
    /// The reply a step answers this failure with: `451 4.3.0`, or `554 5.3.0` under the
    /// `reject` policy. The text names no plugin: clients need not learn the policy's insides.
    pub fn reply(&self) -> Reply {
        if self.permanent {
            Reply::new(554, "5.3.0", "Error: message rejected by policy")
        } else {
            Reply::tempfail("Error: temporary local problem, try again later")
        }
    }
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Called {
    Done(Control),
    Failed(FailureKind),
}

/// Sees each call of a chain; the testkit's transcripts are made this way. The engine's own
/// runs use `()`, which compiles to nothing.
pub(crate) trait Observer<E> {
    fn before(&mut self, plugin: &'static str, event: &E);
    fn after(&mut self, plugin: &'static str, event: &E, called: &Called);
    /// The step's observer plugins begin, side by side.
    fn observers_begin(&mut self) {}
    /// One observer plugin ended, failed or not.
    fn observer_ended(&mut self, _plugin: &'static str, _failure: Option<&FailureKind>) {}
    /// Every observer plugin of the step has ended.
    fn observers_end(&mut self) {}
}

impl<E> Observer<E> for () {
    #[inline(always)]
    fn before(&mut self, _: &'static str, _: &E) {}
    #[inline(always)]
    fn after(&mut self, _: &'static str, _: &E, _: &Called) {}
}

impl Engine {
    /// Runs the chain of `E`'s hook over `event`: each enabled plugin that implements the hook,
    /// by order and then in name order, as the chain rules of [`Plugin`](mq_plugin_api::Plugin)
    /// say; then, side by side, the plugins that observe the hook, whose outcome is no part of
    /// the step's.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::{Engine, EngineConfig, Outcome, watchdog::Beat};
    /// use mq_plugin_api::{Address, Context, MailFrom};
    /// use std::rc::Rc;
    ///
    /// let engine = Engine::new(0, &EngineConfig::default(), Vec::new(), Beat::unwatched()).unwrap();
    /// let mut ctx = mq_plugin_api::Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
    /// let mut event = MailFrom::new("a@example.org".parse().unwrap());
    /// assert_eq!(smol::block_on(engine.run(&mut ctx, &mut event)), Outcome::Proceed);
    /// ```
    pub async fn run<E: Event>(&self, ctx: &mut Context, event: &mut E) -> Outcome {
        // The chain's future is awaited here directly, as deep as without observers; the
        // observers' future is boxed, and made only for a step that has them.
        let observed = self.has_observers(E::HOOK);
        let outcome = self.decide(ctx, event, &mut (), observed).await;
        if observed {
            Box::pin(self.observe(ctx, event, &mut ())).await;
            let _ = event.take_reply();
        }
        outcome
    }

    /// The chain, then, if `observers`, the hook's observer plugins (which see a rejected
    /// step's reply on the event). The observers' future is boxed, and only for a step that
    /// has them, so that the chain's future stays as small as without them.
    pub(crate) async fn run_observed<E: Event, O: Observer<E>>(
        &self,
        ctx: &mut Context,
        event: &mut E,
        observer: &mut O,
        observers: bool,
    ) -> Outcome {
        let observed = observers && self.has_observers(E::HOOK);
        let outcome = self.decide(ctx, event, observer, observed).await;
        if observed {
            Box::pin(self.observe(ctx, event, observer)).await;
            let _ = event.take_reply();
        }
        outcome
    }

    /// Runs the chain until it decides. When `observed`, a reply stays on the event for the
    /// observers.
    async fn decide<E: Event, O: Observer<E>>(
        &self,
        ctx: &mut Context,
        event: &mut E,
        observer: &mut O,
        observed: bool,
    ) -> Outcome {
        let chain = &self.chains[E::HOOK.index()];
        if chain.is_empty() {
            return Outcome::Proceed;
        }
        let call = Rc::clone(ctx.call_state());
        let mut restarts = 0;
        let mut position = 0;
        let outcome = loop {
            let Some(&index) = chain.get(position) else {
                break Outcome::Proceed;
            };
            let slot = &self.slots[usize::from(index)];
            observer.before(slot.name, event);
            let called = self.call(index, slot, &call, ctx, event).await;
            observer.after(slot.name, event, &called);
            let control = match called {
                Called::Done(control) => control,
                Called::Failed(kind) => {
                    let _ = event.take_reply();
                    tracing::warn!(
                        plugin = slot.name,
                        hook = E::HOOK.name(),
                        core = self.core,
                        "plugin call {kind}"
                    );
                    match slot.policy {
                        FailurePolicy::Skip => {
                            position += 1;
                            continue;
                        }
                        policy => break Outcome::Failed(failure(slot, E::HOOK, kind, policy)),
                    }
                }
            };
            // Read, not taken: most calls set no reply, and reading one moves nothing. A
            // rejected step's reply stays on the event for its observers.
            if let Some(reply) = event.reply() {
                let reply = reply.clone();
                if !observed {
                    let _ = event.take_reply();
                }
                self.counters(index, E::HOOK).reject();
                break Outcome::Rejected {
                    plugin: slot.name,
                    reply,
                };
            }
            match control {
                Control::Continue => position += 1,
                Control::Complete => break Outcome::Proceed,
                Control::Retry if restarts < self.retry_budget => {
                    restarts += 1;
                    position = 0;
                }
                Control::Retry => {
                    tracing::warn!(
                        plugin = slot.name,
                        hook = E::HOOK.name(),
                        core = self.core,
                        restarts,
                        "plugin keeps asking to retry; the step fails"
                    );
                    let kind = FailureKind::RetryBudget(restarts);
                    break Outcome::Failed(failure(slot, E::HOOK, kind, FailurePolicy::Tempfail));
                }
            }
        };
        self.beat.idle();
        outcome
    }

    /// One guarded call: polled once inline, and only if that returns Pending, waited for under
    /// its deadline.
    #[inline]
    async fn call<E: Event>(
        &self,
        index: u16,
        slot: &Loaded,
        call: &CallState,
        ctx: &mut Context,
        event: &mut E,
    ) -> Called {
        call.enter(slot.name, E::HOOK, slot.timeout);
        let mut future = E::dispatch(&*slot.plugin, ctx, event);
        let tag = self.next_tag(index, E::HOOK);
        let first = poll_fn(|cx| Poll::Ready(self.poll_once(&mut future, tag, cx))).await;
        let called = match first {
            Poll::Ready(called) => called,
            Poll::Pending => self.wait(future, index, E::HOOK, call).await,
        };
        let counters = self.counters(index, E::HOOK);
        match &called {
            Called::Done(control) => counters.control(*control),
            Called::Failed(FailureKind::Timeout(_)) => counters.timeout(),
            Called::Failed(_) => counters.panic(),
        }
        called
    }

    /// Polls the hook's future once with the watchdog told, catching a panic.
    #[inline]
    fn poll_once(
        &self,
        future: &mut HookFuture<'_>,
        tag: u64,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Called> {
        self.beat.enter(tag);
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(control)) => Poll::Ready(Called::Done(control)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                Poll::Ready(Called::Failed(FailureKind::Panic(panic_message(&*payload))))
            }
        }
    }

    /// The slow path: the call waits on the event loop, under its deadline.
    async fn wait(
        &self,
        mut future: HookFuture<'_>,
        index: u16,
        hook: HookId,
        call: &CallState,
    ) -> Called {
        self.beat.idle();
        // The plugin's configured timeout bounds the deadline whatever the call state says: the
        // state is reachable from the plugin's context, the slot is not.
        let timeout = self.slots[usize::from(index)].timeout;
        let start = call.instant();
        let deadline = call.deadline_from(start).min(start + timeout);
        let mut timer = call.deadline_timer(deadline.saturating_duration_since(start));
        let called = poll_fn(|cx| {
            if let Poll::Ready(called) = self.poll_once(&mut future, self.next_tag(index, hook), cx)
            {
                return Poll::Ready(called);
            }
            self.beat.idle();
            match Pin::new(&mut timer).poll(cx) {
                Poll::Ready(()) => Poll::Ready(Called::Failed(FailureKind::Timeout(timeout))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        drop(future);
        let waited = call.instant().saturating_duration_since(start);
        self.counters(index, hook).waited(waited);
        called
    }
}

fn failure(slot: &Loaded, hook: HookId, kind: FailureKind, policy: FailurePolicy) -> Failure {
    Failure {
        plugin: slot.name,
        hook,
        kind,
        permanent: policy == FailurePolicy::Reject,
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
