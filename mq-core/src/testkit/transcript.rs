//! Transcripts: what a dialogue or a chain did, as text for snapshots.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use mq_plugin_api::{Address, Context, Event, HookId, Message};

use super::clock::VirtualClock;
use super::diff::diff;
use crate::chain::{Called, FailureKind, Observer, Outcome};
use crate::engine::Engine;
use crate::queue::QueueId;

/// What a test run did: the dialogue's lines, each plugin call with its control, its reply and
/// its changes to the event, and the messages that would have been queued.
///
/// `Display` prints the lines; snapshot it with `insta::assert_snapshot!`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    lines: Vec<String>,
    queued: Vec<Queued>,
    differences: Vec<String>,
}

/// One recipient's copy of a message that the session would have queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Queued {
    /// The queue id the session answered with.
    pub queue_id: String,
    /// The envelope sender.
    pub sender: Address,
    /// The recipient.
    pub recipient: Address,
    /// The recipient's copy, as the plugins left it.
    pub message: Message,
}

impl Transcript {
    /// Every line.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The messages queued, one per recipient.
    pub fn queued(&self) -> &[Queued] {
        &self.queued
    }

    /// Where a replayed session's replies differ from the recorded ones, one line each
    /// (`recorded: ...` and `now: ...`); empty when they agree, and for sessions that were
    /// not replayed.
    pub fn differences(&self) -> &[String] {
        &self.differences
    }

    pub(crate) fn differ(&mut self, line: String) {
        self.differences.push(line);
    }

    pub(crate) fn client(&mut self, line: impl fmt::Display) {
        self.lines.push(format!("C: {line}"));
    }

    pub(crate) fn server(&mut self, line: impl fmt::Display) {
        self.lines.push(format!("S: {line}"));
    }

    pub(crate) fn note(&mut self, line: impl fmt::Display) {
        self.lines.push(format!("   {line}"));
    }

    pub(crate) fn queue(&mut self, queued: Queued) {
        self.queued.push(queued);
    }

    pub(crate) fn outcome(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Proceed => self.lines.push("=> proceed".to_owned()),
            Outcome::Rejected { plugin, reply } => {
                self.lines.push(format!("=> rejected by {plugin}: {reply}"));
            }
            Outcome::Failed(failure) => self
                .lines
                .push(format!("=> failed: {failure}; answers {}", failure.reply())),
        }
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// The transcript being written while a session or a chain runs, shared by the scripted client
/// (its commands), the session's end of the connection (the replies) and the chain observer
/// (the plugin calls), so that the lines come in the order things happened.
#[derive(Clone)]
pub(crate) struct Live(Rc<RefCell<LiveState>>);

struct LiveState {
    transcript: Transcript,
    clock: VirtualClock,
    /// The reply being written, up to its last line.
    partial: Vec<u8>,
    /// The first line of a multi-line reply being written.
    first: Option<String>,
    /// The replies written in this session so far, each as its transcript line.
    replies: Vec<String>,
    /// Whether the greeting is left out (no plugin runs at connect, and it is 220).
    hide_greeting: bool,
    close_noted: bool,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    pub(crate) fn new(clock: VirtualClock) -> Live {
        Live(Rc::new(RefCell::new(LiveState {
            transcript: Transcript::default(),
            clock,
            partial: Vec::new(),
            first: None,
            replies: Vec::new(),
            hide_greeting: false,
            close_noted: false,
        })))
    }

    /// Starts a new transcript for a session.
    pub(crate) fn begin(&self, hide_greeting: bool) {
        let mut state = self.0.borrow_mut();
        state.transcript = Transcript::default();
        state.partial.clear();
        state.first = None;
        state.replies.clear();
        state.hide_greeting = hide_greeting;
        state.close_noted = false;
    }

    /// The transcript written since [`begin`](Live::begin).
    pub(crate) fn take(&self) -> Transcript {
        std::mem::take(&mut self.0.borrow_mut().transcript)
    }

    pub(crate) fn client(&self, line: impl fmt::Display) {
        self.0.borrow_mut().transcript.client(line);
    }

    pub(crate) fn note(&self, line: impl fmt::Display) {
        self.0.borrow_mut().transcript.note(line);
    }

    /// What the session wrote: each whole reply becomes a line, a multi-line one (EHLO's) its
    /// first line.
    pub(crate) fn server_wrote(&self, bytes: &[u8]) {
        let mut state = self.0.borrow_mut();
        state.partial.extend_from_slice(bytes);
        while let Some(end) = state.partial.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = state.partial.drain(..end + 2).take(end).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.as_bytes().get(3) == Some(&b'-') {
                if state.first.is_none() {
                    state.first = Some(format!("{} {}", &line[..3], &line[4..]));
                }
                continue;
            }
            let reply = relabel(state.first.take().unwrap_or(line));
            let greeting = state.replies.is_empty();
            state.replies.push(reply.clone());
            if greeting && state.hide_greeting && reply.starts_with("220") {
                continue;
            }
            state.transcript.server(reply);
        }
    }

    /// Runs `event`'s chain, recording each call.
    pub(crate) async fn run<E: Event>(
        &self,
        engine: &Engine,
        ctx: &mut Context,
        event: &mut E,
    ) -> Outcome {
        let mut recorder = Recorder {
            live: self.clone(),
            before: Vec::new(),
            began: Duration::ZERO,
        };
        engine.run_observed(ctx, event, &mut recorder, true).await
    }
}

/// `Ok: queued as 0000000000000001` as `Ok: queued as QUEUE1`: the testkit's queue ids, named
/// so that snapshots read well.
fn relabel(reply: String) -> String {
    let Some(at) = reply.find("queued as ") else {
        return reply;
    };
    let start = at + "queued as ".len();
    let id = reply
        .get(start..start + 16)
        .and_then(|id| id.parse::<QueueId>().ok());
    match id {
        Some(id) => format!(
            "{}{}{}",
            &reply[..start],
            super::queue::label(id),
            &reply[start + 16..]
        ),
        None => reply,
    }
}

/// Writes one line per call, and the call's changes to the event below it.
struct Recorder {
    live: Live,
    before: Vec<String>,
    began: Duration,
}

impl<E: Event> Observer<E> for Recorder {
    fn before(&mut self, _plugin: &'static str, event: &E) {
        let mut state = self.live.0.borrow_mut();
        if E::HOOK == HookId::SmtpInClose && !state.close_noted {
            state.close_noted = true;
            state.transcript.note("(connection closed)");
        }
        state.clock.call_begins();
        self.began = state.clock.elapsed();
        self.before.clear();
        event.describe(&mut self.before);
    }

    fn after(&mut self, plugin: &'static str, event: &E, called: &Called) {
        let mut state = self.live.0.borrow_mut();
        state.clock.call_ends();
        let waited = state.clock.elapsed().saturating_sub(self.began);
        let mut result = match called {
            Called::Done(control) => control.to_string(),
            Called::Failed(kind) => format!("failed: {kind}"),
        };
        if !waited.is_zero() {
            result = format!("{result} (waited {waited:?})");
        }
        let lines = &mut state.transcript.lines;
        lines.push(format!("   {}  {plugin} → {result}", E::HOOK));
        let mut after = Vec::new();
        event.describe(&mut after);
        for change in diff(&self.before, &after) {
            lines.push(format!("     {change}"));
        }
        if let Some(reply) = event.reply() {
            lines.push(format!("     reply {reply}"));
        }
    }

    fn observers_begin(&mut self) {
        let state = self.live.0.borrow_mut();
        state.clock.call_begins();
        self.began = state.clock.elapsed();
    }

    fn observer_ended(&mut self, plugin: &'static str, failure: Option<&FailureKind>) {
        let mut state = self.live.0.borrow_mut();
        let waited = state.clock.elapsed().saturating_sub(self.began);
        let mut result = match failure {
            None => "observed".to_owned(),
            Some(kind) => format!("failed: {kind}"),
        };
        if !waited.is_zero() {
            result = format!("{result} (waited {waited:?})");
        }
        let line = format!("   {}  {plugin} (observer) → {result}", E::HOOK);
        state.transcript.lines.push(line);
    }

    fn observers_end(&mut self) {
        self.live.0.borrow().clock.call_ends();
    }
}
