//! Observers: plugins that look at a step once its chain has decided, side by side.
//!
//! A plugin marks a hook method `#[observe]` when it only looks (a webhook, an audit log, an
//! archive copy). The engine then leaves it out of the hook's chain and, once the chain has
//! decided, polls every observer of the step together, each with a context of its own (its own
//! name, hook and deadline) and the event by shared reference. An observer that times out or
//! panics is logged and counted; nothing it does reaches the step's outcome.
//!
//! # Why side by side, and why `delivery_result` observers run on a task
//!
//! - Observers cannot change the event, so their order cannot matter: four that each wait
//!   100 ms cost the step about 100 ms, not 400 ms.
//! - A step that only observers see still waits for them (the session's reply follows), so a
//!   plugin's deadline bounds what it can add. After a delivery attempt nobody waits: the worker
//!   hands the observers a copy of the event on a task of their own, tracked so that shutdown
//!   waits for it, and moves on to the next delivery.
//! - A call that completes at its first poll costs what a chain call does: one boxed future, no
//!   timer, no clock read. Only a call that waits arms its deadline.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use mq_plugin_api::{Context, Event, HookId, ObserverFuture, Sleep};

use crate::chain::{FailureKind, Observer, Outcome, panic_message};
use crate::engine::Engine;
use crate::metrics::{HookCounters, HookMetrics};

/// One plugin observing one hook, with its counters on this core.
#[derive(Debug)]
pub(crate) struct Observing {
    /// Its index among the engine's plugins.
    pub(crate) plugin: u16,
    counters: HookCounters,
}

impl Observing {
    pub(crate) fn new(plugin: u16) -> Observing {
        Observing {
            plugin,
            counters: HookCounters::default(),
        }
    }
}

/// One observer call in flight.
struct Call<'a> {
    observing: &'a Observing,
    /// `None` once it ended.
    future: Option<ObserverFuture<'a>>,
    ctx: &'a Context,
    /// Armed at its first Pending, with the time it began to wait.
    timer: Option<(Sleep, std::time::Instant)>,
}

impl Engine {
    /// Whether any plugin observes `hook`.
    #[inline]
    pub fn has_observers(&self, hook: HookId) -> bool {
        !self.observers[hook.index()].is_empty()
    }

    /// The plugins that observe `hook`, by name.
    pub fn observers(&self, hook: HookId) -> impl Iterator<Item = &'static str> + '_ {
        self.observers[hook.index()]
            .iter()
            .map(|o| self.slots[usize::from(o.plugin)].name)
    }

    /// Runs `E`'s chain over `event` as [`run`](Engine::run) does, without its observers: the
    /// caller hands them the event with [`observe_later`](Engine::observe_later).
    pub async fn run_chain<E: Event>(&self, ctx: &mut Context, event: &mut E) -> Outcome {
        self.run_observed(ctx, event, &mut (), false).await
    }

    /// The observers of `E`'s hook over a copy of `event`, as a future that borrows nothing:
    /// spawn it, and the step goes on without waiting for them. `None` when nothing observes
    /// the hook (and then nothing is copied).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use mq_core::{Engine, EngineConfig, watchdog::Beat};
    /// use mq_plugin_api::{DeliveryResult, DeliveryState, Host};
    ///
    /// let engine = Rc::new(Engine::new(0, &EngineConfig::default(), Vec::new(), Beat::unwatched())?);
    /// let ctx = Host::new(0, Rc::new(smol::LocalExecutor::new())).into_context();
    /// let envelope = ("a@example.org".parse()?, "b@example.net".parse()?);
    /// let event = DeliveryResult::new("Q1", 1, envelope, None, DeliveryState::Delivered);
    /// assert!(engine.observe_later(&ctx, &event).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observe_later<E: Event + Clone>(
        self: &Rc<Self>,
        ctx: &Context,
        event: &E,
    ) -> Option<impl Future<Output = ()> + 'static> {
        if !self.has_observers(E::HOOK) {
            return None;
        }
        let engine = Rc::clone(self);
        let ctx = ctx.fork();
        let event = event.clone();
        Some(async move { engine.observe(&ctx, &event, &mut ()).await })
    }

    /// Runs the observers of `E`'s hook over `event` side by side until each has ended or
    /// reached its deadline.
    pub(crate) async fn observe<E: Event, O: Observer<E>>(
        &self,
        ctx: &Context,
        event: &E,
        recorder: &mut O,
    ) {
        let observing = &self.observers[E::HOOK.index()];
        let contexts: Vec<Context> = observing
            .iter()
            .map(|o| {
                let slot = &self.slots[usize::from(o.plugin)];
                let forked = ctx.fork();
                forked.call_state().enter(slot.name, E::HOOK, slot.timeout);
                forked
            })
            .collect();
        let mut calls: Vec<Call<'_>> = observing
            .iter()
            .zip(&contexts)
            .map(|(observing, ctx)| {
                let plugin = &*self.slots[usize::from(observing.plugin)].plugin;
                Call {
                    observing,
                    future: Some(E::dispatch_observer(plugin, ctx, event)),
                    ctx,
                    timer: None,
                }
            })
            .collect();
        recorder.observers_begin();
        poll_fn(|cx| {
            let mut pending = false;
            for call in calls.iter_mut().filter(|call| call.future.is_some()) {
                match self.poll_observer::<E>(call, cx) {
                    Poll::Pending => pending = true,
                    Poll::Ready(failure) => {
                        let name = self.slots[usize::from(call.observing.plugin)].name;
                        recorder.observer_ended(name, failure.as_ref());
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        recorder.observers_end();
    }

    /// Polls one observer that still runs: `Ready` with its failure, if any, when it ends.
    fn poll_observer<E: Event>(
        &self,
        call: &mut Call<'_>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<FailureKind>> {
        let Some(future) = &mut call.future else {
            return Poll::Pending;
        };
        let plugin = call.observing.plugin;
        self.beat.enter(self.next_tag(plugin, E::HOOK));
        let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
        self.beat.idle();
        let failure = match polled {
            Ok(Poll::Ready(())) => None,
            Err(payload) => Some(FailureKind::Panic(panic_message(&*payload))),
            Ok(Poll::Pending) => {
                let state = call.ctx.call_state();
                // Bounded by the slot's timeout, which the observer cannot reach.
                let timeout = self.slots[usize::from(plugin)].timeout;
                let (timer, _) = call.timer.get_or_insert_with(|| {
                    let start = state.instant();
                    let deadline = state.deadline_from(start).min(start + timeout);
                    (
                        state.deadline_timer(deadline.saturating_duration_since(start)),
                        start,
                    )
                });
                match Pin::new(timer).poll(cx) {
                    Poll::Ready(()) => Some(FailureKind::Timeout(timeout)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        };
        call.future = None;
        self.settle::<E>(call, failure.as_ref());
        Poll::Ready(failure)
    }

    /// Counts and logs how an observer call ended.
    fn settle<E: Event>(&self, call: &mut Call<'_>, failure: Option<&FailureKind>) {
        let counters = &call.observing.counters;
        match failure {
            None => counters.control(mq_plugin_api::Control::Continue),
            Some(FailureKind::Timeout(_)) => counters.timeout(),
            Some(_) => counters.panic(),
        }
        if let Some((_, start)) = call.timer.take() {
            let waited = call
                .ctx
                .call_state()
                .instant()
                .saturating_duration_since(start);
            counters.waited(waited);
        }
        if let Some(kind) = failure {
            tracing::warn!(
                plugin = self.slots[usize::from(call.observing.plugin)].name,
                hook = E::HOOK.name(),
                core = self.core,
                "observer {kind}; the step goes on"
            );
        }
    }

    /// This core's counters of every observer, added to `entries`.
    pub(crate) fn observer_metrics(&self, entries: &mut Vec<HookMetrics>) {
        for hook in HookId::ALL {
            for observing in &self.observers[hook.index()] {
                let name = self.slots[usize::from(observing.plugin)].name;
                let mut metrics = observing.counters.snapshot(name, hook);
                metrics.observer = true;
                entries.push(metrics);
            }
        }
    }
}
