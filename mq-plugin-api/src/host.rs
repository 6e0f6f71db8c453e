//! The engine's side of a context: the one place session facts are written.

use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use smol::LocalExecutor;

use crate::HookId;
use crate::context::{Clock, Context, Session, TaskTracker};
use crate::dns::Dns;

/// The engine's handle on one [`Context`]: it owns the session facts the context reads, and the
/// calls that only whoever serves the session may make (setting facts, the resolver, ending a
/// message).
///
/// A hook is lent `&mut Context` and nothing else, so it can read the facts but not change
/// them: no method of `Context` leads back to its host. Anyone may make a `Host` of their own,
/// as tests do to call a hook directly, but its context is detached: its facts are not those of
/// any session the engine serves. The engine reads the facts from its own host, and
/// [`Host::context`] puts them back in place before every use, so even a context swapped in for
/// the one lent (`std::mem::swap`) cannot change what the engine decides.
///
/// # Examples
///
/// A test of a hook that reads the facts of a trusted client:
///
/// ```
/// use std::rc::Rc;
/// use mq_plugin_api::Host;
///
/// let mut host = Host::new(0, Rc::new(smol::LocalExecutor::new()));
/// host.session_mut().relay_network = true;
/// let ctx = host.context(); // what a hook is lent
/// assert!(ctx.session().is_trusted());
/// ```
///
/// A plugin, which holds only the context, cannot reach the setters:
///
/// ```compile_fail
/// # fn hook(ctx: &mut mq_plugin_api::Context) {
/// ctx.session_mut().relay_network = true;
/// # }
/// ```
pub struct Host {
    /// The facts as the engine set them; the context holds a shared copy.
    facts: Rc<Session>,
    ctx: Context,
}

impl Host {
    /// A host and its context for work on worker `core`, whose executor is `executor`, with
    /// empty session facts and no resolver.
    pub fn new(core: usize, executor: Rc<LocalExecutor<'static>>) -> Host {
        let facts = Rc::new(Session::default());
        let mut ctx = Context::new(core, executor);
        ctx.session = Some(Rc::clone(&facts));
        Host { facts, ctx }
    }

    /// The context, to lend to hooks, with the host's session facts in place.
    #[inline]
    pub fn context(&mut self) -> &mut Context {
        self.publish();
        &mut self.ctx
    }

    /// The context alone, with the facts as they are now; nothing changes them after.
    pub fn into_context(mut self) -> Context {
        self.publish();
        self.ctx
    }

    /// The session facts as the engine set them.
    pub fn session(&self) -> &Session {
        &self.facts
    }

    /// The session facts, to change them; hooks see the change from the next
    /// [`context`](Host::context) on.
    pub fn session_mut(&mut self) -> &mut Session {
        // The context lets go of its copy first, so the facts change in place, uncloned.
        self.ctx.session = None;
        Rc::make_mut(&mut self.facts)
    }

    /// Gives the context a resolver for [`Context::dns`].
    pub fn set_dns(&mut self, dns: Rc<dyn Dns>) {
        self.ctx.dns = Some(dns);
    }

    /// Not public API: replaces the system clock with a test's (the testkit's virtual time).
    #[doc(hidden)]
    pub fn set_clock(&mut self, clock: Rc<dyn Clock>) {
        self.ctx.set_clock(clock);
    }

    /// Forgets the message data ([`Context::message_data`]): the transaction ended (RSET, or
    /// the message was queued).
    pub fn end_message(&mut self) {
        self.ctx.message.clear();
    }

    /// Makes the tasks spawned through the context (`Context::spawn`) count in `tasks`, which
    /// shutdown waits for.
    pub fn set_tasks(&mut self, tasks: TaskTracker) {
        self.ctx.tasks = Some(tasks);
    }

    /// Readies the context for plugin `plugin`'s lifecycle call `stage` (`start` or `stop`)
    /// with `timeout` to run in.
    pub fn enter_lifecycle(
        &mut self,
        plugin: &'static str,
        stage: &'static str,
        timeout: Duration,
    ) {
        self.ctx
            .call_state()
            .enter(plugin, HookId::SmtpInConnect, timeout);
        self.ctx.stage = Some(stage);
    }

    /// Points the context at the host's facts, if it does not already.
    #[inline]
    fn publish(&mut self) {
        if !self
            .ctx
            .session
            .as_ref()
            .is_some_and(|seen| Rc::ptr_eq(seen, &self.facts))
        {
            self.ctx.session = Some(Rc::clone(&self.facts));
        }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("session", &self.facts)
            .field("context", &self.ctx)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host::new(0, Rc::new(LocalExecutor::new()))
    }

    #[test]
    fn hooks_see_the_facts_the_host_set() {
        let mut host = host();
        assert_eq!(host.context().session().user, None);
        host.session_mut().user = Some("jane".into());
        assert_eq!(host.context().session().user.as_deref(), Some("jane"));
    }

    #[test]
    fn a_context_swapped_in_for_the_lent_one_does_not_change_the_facts() {
        let mut engine = host();
        let mut forged = host();
        forged.session_mut().user = Some("postmaster".into());
        std::mem::swap(engine.context(), forged.context());
        assert_eq!(engine.session().user, None);
        assert_eq!(engine.context().session().user, None);
    }

    #[test]
    fn ending_a_message_forgets_its_data_but_not_the_connections() {
        let mut host = host();
        host.context().message_data().insert(1_u8);
        host.context().connection_data().insert(2_u8);
        host.end_message();
        assert_eq!(host.context().message_data().get::<u8>(), None);
        assert_eq!(host.context().connection_data().get::<u8>(), Some(&2));
    }
}
