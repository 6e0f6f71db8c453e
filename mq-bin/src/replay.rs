//! `mq replay FILE`: a session recorded by `[smtp] record` run again through mq's session with
//! the plugins this build and configuration run, its transcript printed, and where mq's replies
//! now differ from the recorded ones.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use mq_core::{Config, Plan};

/// `mq replay`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// A file of the `[smtp] record` directory.
    file: PathBuf,
}

/// Replays the session and prints its transcript; an error if the replies differ.
pub(crate) fn run(config: &Config, plan: &Plan, args: &ReplayArgs) -> anyhow::Result<()> {
    let replay = mq_core::testkit::replay(&args.file)
        .with_context(|| format!("cannot replay {}", args.file.display()))?;
    let transcript = replay
        .plugins(|server| server.plan(plan).smtp(&config.smtp))
        .run();
    let mut text = transcript.to_string();
    let differences = transcript.differences();
    if differences.is_empty() {
        text.push_str("-- mq's replies are the recorded ones\n");
        return crate::print(&text);
    }
    text.push_str("-- mq's replies differ from the recorded ones:\n");
    for line in differences {
        text.push_str(line);
        text.push('\n');
    }
    crate::print(&text)?;
    bail!(
        "{} replies differ from the recording",
        differences.len() / 2
    )
}
