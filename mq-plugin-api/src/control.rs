//! What a hook hands back to the engine.

/// How the chain goes on after a plugin's hook resolved.
///
/// These are MailerQ's `MQ_continue`, `MQ_complete` and `MQ_retry`, made a return value so that a
/// hook cannot forget to give control back: the future resolves to a `Control`, or the engine's
/// deadline drops it.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::Control;
///
/// let next = Control::Continue;
/// assert_eq!(next.to_string(), "Continue");
/// ```
#[must_use = "a hook hands control back by returning its Control"]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// Call the next plugin in the chain; after the last one, go on with the step.
    Continue,
    /// Skip the rest of the chain and go on with the step.
    Complete,
    /// Restart the chain from its first plugin. Earlier plugins run again and see the event as
    /// it is now; the engine stops a chain that restarts more often than its retry budget.
    Retry,
}

impl Control {
    /// The variant's name, as logs and transcripts print it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(mq_plugin_api::Control::Retry.as_str(), "Retry");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Control::Continue => "Continue",
            Control::Complete => "Complete",
            Control::Retry => "Retry",
        }
    }
}

impl std::fmt::Display for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
