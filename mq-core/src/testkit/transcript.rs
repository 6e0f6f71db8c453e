//! Transcripts: what a dialogue or a chain did, as text for snapshots.

use std::fmt;

use mq_plugin_api::{Address, Context, Event, Message, Reply};

use super::diff::diff;
use crate::chain::{Called, Observer, Outcome};
use crate::engine::Engine;

/// What a test run did: the dialogue's lines, each plugin call with its control, its reply and
/// its changes to the event, and the messages that would have been queued.
///
/// `Display` prints the lines; snapshot it with `insta::assert_snapshot!`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    lines: Vec<String>,
    queued: Vec<Queued>,
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

    /// Runs `event`'s chain, recording each call.
    pub(crate) async fn run<E: Event>(
        &mut self,
        engine: &Engine,
        ctx: &mut Context,
        event: &mut E,
    ) -> Outcome {
        let mut recorder = Recorder {
            lines: &mut self.lines,
            before: Vec::new(),
        };
        engine.run_observed(ctx, event, &mut recorder).await
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

/// Writes one line per call, and the call's changes to the event below it.
struct Recorder<'a> {
    lines: &'a mut Vec<String>,
    before: Vec<String>,
}

impl<E: Event> Observer<E> for Recorder<'_> {
    fn before(&mut self, _plugin: &'static str, event: &E) {
        self.before.clear();
        event.describe(&mut self.before);
    }

    fn after(&mut self, plugin: &'static str, event: &E, called: &Called) {
        let result = match called {
            Called::Done(control) => control.to_string(),
            Called::Failed(kind) => format!("failed: {kind}"),
        };
        self.lines
            .push(format!("   {}  {plugin} → {result}", E::HOOK));
        let mut after = Vec::new();
        event.describe(&mut after);
        for change in diff(&self.before, &after) {
            self.lines.push(format!("     {change}"));
        }
        if let Some(reply) = event.reply() {
            self.lines.push(format!("     reply {reply}"));
        }
    }
}

/// The reply a refused step sends: the plugin's, or the failure policy's.
pub(crate) fn refusal(outcome: &Outcome) -> Option<Reply> {
    match outcome {
        Outcome::Proceed => None,
        Outcome::Rejected { reply, .. } => Some(reply.clone()),
        Outcome::Failed(failure) => Some(failure.reply()),
    }
}
