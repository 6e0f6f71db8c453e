//! The commands on the RabbitMQ queue backend: `mq queue list` (message counts per queue),
//! `mq publish` (a MailerQ JSON document from stdin to the outbox), and what `mq check-config`
//! checks of the broker.

use std::fmt::Write as _;
use std::io::Read as _;

use anyhow::{Context as _, anyhow, bail};
use mq_core::Config;
use mq_core::queue::QueueBackend;
use mq_core::queue::rabbitmq::{self, RabbitConfig};

/// Whether `config` keeps its queue on a broker.
pub(crate) fn in_use(config: &Config) -> bool {
    config.queue.backend == QueueBackend::Rabbitmq
}

/// `[queue.rabbitmq]`, once it is known to be usable.
fn settings(config: &Config) -> anyhow::Result<&RabbitConfig> {
    let rabbit = &config.queue.rabbitmq;
    if let Some(problem) = rabbit.problem() {
        bail!("{problem}");
    }
    Ok(rabbit)
}

/// `mq queue list` on the broker: each mq queue and its message count.
pub(crate) fn list(config: &Config) -> anyhow::Result<()> {
    let rabbit = settings(config)?;
    let counts = smol::block_on(rabbitmq::queue_counts(rabbit, false))
        .context("cannot read the queues from the message broker")?;
    let mut text = String::new();
    for (name, count) in counts {
        // A delay queue is declared when first needed: until then it has no count.
        let count = count.map_or_else(|| "-".to_owned(), |count| count.to_string());
        let _ = writeln!(text, "{name}\t{count}");
    }
    crate::print(&text)
}

/// What the other `mq queue` commands say on this backend.
pub(crate) fn unsupported(what: &str) -> anyhow::Error {
    anyhow!(
        "mq queue {what}: the RabbitMQ queue backend keeps messages on the broker, one JSON document per recipient; \
         it has no per-message access (use the broker's tools, or mq queue list for counts)"
    )
}

/// `mq check-config` on this backend: connects, and checks that every queue exists or can be
/// declared.
pub(crate) fn check(config: &Config) -> anyhow::Result<()> {
    if !in_use(config) {
        return Ok(());
    }
    let rabbit = settings(config)?;
    let names: Vec<String> = rabbit.queues().into_iter().map(str::to_owned).collect();
    let counts = smol::block_on(rabbitmq::queue_counts(rabbit, rabbit.declare))
        .context("[queue.rabbitmq]: cannot reach the message broker")?;
    let missing: Vec<&str> = counts
        .iter()
        .filter(|(name, count)| count.is_none() && names.contains(name))
        .map(|(name, _)| name.as_str())
        .collect();
    if !missing.is_empty() {
        bail!(
            "[queue.rabbitmq]: the broker has no queue {} and declare = false",
            missing.join(", ")
        );
    }
    Ok(())
}

/// `mq publish`: one MailerQ JSON document from stdin onto the outbox, confirmed.
pub(crate) fn publish(config: &Config) -> anyhow::Result<()> {
    let rabbit = settings(config)?;
    let mut payload = Vec::new();
    std::io::stdin()
        .read_to_end(&mut payload)
        .context("cannot read stdin")?;
    smol::block_on(rabbitmq::publish_to_outbox(rabbit, &payload))
        .with_context(|| format!("cannot publish to {}", rabbit.outbox))?;
    Ok(())
}
