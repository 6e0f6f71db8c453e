//! The connection to the broker: kept up by a supervisor thread that reconnects with back-off,
//! a channel in confirm mode for publishing, and a consumer on the outbox feeding delivery.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use lapin::message::Delivery as Message;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use smol::Timer;
use smol::channel::{Receiver, Sender};

use super::clock::{Clock, TICK};
use super::config::{DELAYS, RabbitConfig};
use crate::queue::QueueError;

/// The first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often a connection without a consumer is checked.
const CHECK: Duration = Duration::from_secs(1);

/// What the link has done since start: the metrics page and the logs show it.
#[derive(Debug, Default)]
pub struct RabbitStats {
    /// Whether the broker is connected now.
    pub connected: AtomicBool,
    /// Connections made (the first and every reconnection).
    pub connects: AtomicU64,
    /// Messages published.
    pub published: AtomicU64,
    /// Publishes the broker confirmed.
    pub confirmed: AtomicU64,
    /// Messages consumed from the outbox.
    pub consumed: AtomicU64,
    /// Consumed messages acknowledged.
    pub acked: AtomicU64,
    /// Consumed messages the broker had delivered before (to a node that did not ack them).
    pub redelivered: AtomicU64,
}

/// A live connection and its publishing channel.
struct Live {
    connection: Connection,
    publisher: Channel,
    /// Delay queues declared on this connection.
    declared: Mutex<HashSet<String>>,
}

/// The broker as the queue sees it.
pub(crate) struct Link {
    config: RabbitConfig,
    live: Mutex<Option<Arc<Live>>>,
    pub(crate) stats: Arc<RabbitStats>,
    stop: AtomicBool,
    /// Consumed messages whose replacement is published, waiting for its confirm to be acked.
    settling: AtomicUsize,
    /// Where [`Link::settle`] hands them to the link's thread.
    settles: (Sender<Settle>, Receiver<Settle>),
    /// The time limits of publishes and confirms.
    clock: Clock,
}

/// A consumed message to ack once `sent`, what replaces it, is confirmed.
pub(crate) struct Settle {
    message: Message,
    sent: Sent,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("url", &redact(&self.config.url))
            .field("outbox", &self.config.outbox)
            .finish_non_exhaustive()
    }
}

/// Publishes written to the broker, their confirms still to come.
pub(crate) struct Sent {
    confirms: Vec<(String, PublisherConfirm)>,
}

/// A message to publish.
pub(crate) struct Outgoing {
    pub(crate) queue: String,
    pub(crate) payload: Vec<u8>,
    /// When the message first arrived (AMQP `timestamp`, seconds).
    pub(crate) arrived: Option<u64>,
}

impl Link {
    /// A link that is not connected yet; [`Link::spawn`] connects it.
    pub(crate) fn new(config: RabbitConfig) -> Arc<Link> {
        Arc::new(Link {
            config,
            live: Mutex::new(None),
            stats: Arc::default(),
            stop: AtomicBool::new(false),
            settling: AtomicUsize::new(0),
            settles: smol::channel::unbounded(),
            clock: Clock::default(),
        })
    }

    /// Starts the link's thread: it connects, consumes the outbox into `deliveries` when given,
    /// reconnects after a loss, settles consumed messages ([`Link::settle`]) and keeps the time
    /// limits ([`Clock`]).
    pub(crate) fn spawn(
        self: &Arc<Link>,
        deliveries: Option<(Sender<Message>, Receiver<Message>)>,
    ) -> Result<(), QueueError> {
        let link = Arc::clone(self);
        std::thread::Builder::new()
            .name("mq-rabbitmq".into())
            .spawn(move || {
                smol::block_on(smol::future::or(
                    Arc::clone(&link).supervise(deliveries),
                    smol::future::or(link.settler(), link.tick()),
                ));
            })
            .map(drop)
            .map_err(|e| QueueError::io("start the RabbitMQ thread", e))
    }

    /// Stops reconnecting; the connection closes.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(live) = self.take_live() {
            smol::spawn(async move {
                let _ = live.connection.close(200, "mq stopping".into()).await;
            })
            .detach();
        }
    }

    fn take_live(&self) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn current(&self) -> Option<Arc<Live>> {
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the broker is connected now.
    pub(crate) fn is_up(&self) -> bool {
        self.stats.connected.load(Ordering::Relaxed)
    }

    async fn supervise(self: Arc<Link>, deliveries: Option<(Sender<Message>, Receiver<Message>)>) {
        let mut backoff = FIRST_BACKOFF;
        let mut was_down_logged = false;
        while !self.stop.load(Ordering::Relaxed) {
            match self.connect(deliveries.is_some()).await {
                Ok((live, consumer)) => {
                    backoff = FIRST_BACKOFF;
                    was_down_logged = false;
                    self.stats.connects.fetch_add(1, Ordering::Relaxed);
                    self.stats.connected.store(true, Ordering::Relaxed);
                    tracing::info!(url = %redact(&self.config.url), outbox = self.config.outbox, "connected to the message broker");
                    *self.live.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(Arc::clone(&live));
                    let why = self.pump(&live, consumer, deliveries.as_ref()).await;
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.take_live();
                    if let Some((_, receiver)) = &deliveries {
                        // Their channel is gone: the broker gives them to a consumer again.
                        while receiver.try_recv().is_ok() {}
                    }
                    if self.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tracing::warn!(
                        reason = why,
                        "lost the message broker; SMTP answers 451 and delivery pauses until it is back"
                    );
                }
                Err(error) => {
                    if was_down_logged {
                        tracing::debug!(%error, "cannot connect to the message broker");
                    } else {
                        tracing::warn!(url = %redact(&self.config.url), %error, "cannot connect to the message broker; retrying");
                        was_down_logged = true;
                    }
                }
            }
            Timer::after(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Forwards consumed messages until the connection is lost; returns why it ended.
    async fn pump(
        &self,
        live: &Live,
        mut consumer: Option<lapin::Consumer>,
        deliveries: Option<&(Sender<Message>, Receiver<Message>)>,
    ) -> String {
        // One timer for the whole connection, not one per message.
        let mut check = Timer::interval(CHECK);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return "stopping".into();
            }
            let next = smol::future::or(
                async {
                    match consumer.as_mut() {
                        Some(consumer) => Some(consumer.next().await),
                        None => std::future::pending().await,
                    }
                },
                async {
                    check.next().await;
                    None
                },
            )
            .await;
            match next {
                Some(Some(Ok(message))) => {
                    self.stats.consumed.fetch_add(1, Ordering::Relaxed);
                    if message.redelivered {
                        self.stats.redelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some((sender, _)) = deliveries
                        && sender.send(message).await.is_err()
                    {
                        return "stopping".into();
                    }
                }
                Some(Some(Err(error))) => return error.to_string(),
                Some(None) => return "the consumer was cancelled".into(),
                None => {
                    if !live.connection.status().connected() {
                        return "the connection closed".into();
                    }
                }
            }
        }
    }

    async fn connect(
        &self,
        consume: bool,
    ) -> Result<(Arc<Live>, Option<lapin::Consumer>), lapin::Error> {
        let connecting = Connection::connect(&self.config.url, ConnectionProperties::default());
        let connection = within(self.config.confirm_timeout, connecting, || {
            lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })
        .await?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        if self.config.declare {
            for name in self.config.queues() {
                declare(&publisher, name, FieldTable::default()).await?;
            }
        }
        let consumer = if consume {
            let channel = connection.create_channel().await?;
            channel
                .basic_qos(self.config.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    self.config.outbox.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Some(consumer)
        } else {
            None
        };
        let live = Arc::new(Live {
            connection,
            publisher,
            declared: Mutex::new(HashSet::new()),
        });
        Ok((live, consumer))
    }

    /// Publishes every message (persistent, mandatory) and returns once the broker confirmed
    /// them all.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`] if the broker is not connected, refuses or returns one of
    /// them (no such queue), or does not confirm within `confirm_timeout`.
    pub(crate) async fn publish(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        let confirm = async { self.confirmed(self.write(messages).await?).await };
        let limit = self.config.confirm_timeout;
        self.clock
            .within(limit, confirm, || {
                QueueError::Unavailable("the broker did not confirm in time".into())
            })
            .await
    }

    /// Publishes every message (persistent, mandatory) and returns once they are written to
    /// the connection (within `confirm_timeout`); [`Link::settle`] waits for the broker's
    /// confirms.
    ///
    /// # Errors
    ///
    /// [`QueueError::Unavailable`] if the broker is not connected, the channel is closed, or
    /// the broker does not take them in time.
    pub(crate) async fn send(&self, messages: Vec<Outgoing>) -> Result<Sent, QueueError> {
        let limit = self.config.confirm_timeout;
        self.clock
            .within(limit, self.write(messages), || {
                QueueError::Unavailable("the broker did not take the messages in time".into())
            })
            .await
    }

    /// [`Link::send`] without a time limit.
    async fn write(&self, messages: Vec<Outgoing>) -> Result<Sent, QueueError> {
        let live = self
            .current()
            .ok_or_else(|| QueueError::Unavailable("not connected".into()))?;
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let mut properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into());
            if let Some(arrived) = message.arrived {
                properties = properties.with_timestamp(arrived);
            }
            let options = BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            };
            let pending = live
                .publisher
                .basic_publish(
                    self.config.exchange.as_str().into(),
                    message.queue.as_str().into(),
                    options,
                    &message.payload,
                    properties,
                )
                .await
                .map_err(unavailable)?;
            self.stats.published.fetch_add(1, Ordering::Relaxed);
            confirms.push((message.queue, pending));
        }
        Ok(Sent { confirms })
    }

    /// Waits until the broker confirmed every publish of `sent`.
    async fn confirmed(&self, sent: Sent) -> Result<(), QueueError> {
        for (queue, pending) in sent.confirms {
            match pending.await.map_err(unavailable)? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {
                    self.stats.confirmed.fetch_add(1, Ordering::Relaxed);
                }
                Confirmation::Ack(Some(_)) => {
                    return Err(QueueError::Unavailable(format!(
                        "no queue {queue:?} took the message"
                    )));
                }
                Confirmation::Nack(_) => {
                    return Err(QueueError::Unavailable(format!(
                        "the broker refused a message for {queue:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Settles `message`, consumed from the outbox, once the broker confirmed `sent` (what
    /// replaces it: its result or its delayed copy): acked then, or put back for another
    /// consumer when the confirm failed or did not come within `confirm_timeout`.
    ///
    /// This runs in the background, so that delivery goes on with the next message meanwhile:
    /// the outbox keeps the message until then, and a node that dies first leaves it to
    /// another (at least once). `prefetch` bounds how many wait here.
    pub(crate) fn settle(&self, message: Message, sent: Sent) {
        self.settling.fetch_add(1, Ordering::Relaxed);
        // Unbounded, and the receiver lives as long as the link: this cannot fail.
        let _ = self.settles.0.try_send(Settle { message, sent });
    }

    /// Settles what [`Link::settle`] hands over, all on the link's thread: a confirm that
    /// covers many publishes (the broker confirms in batches) wakes it once for all of them.
    async fn settler(&self) {
        let mut pending = FuturesUnordered::new();
        loop {
            let next = smol::future::or(async { Some(self.settles.1.recv().await) }, async {
                if pending.is_empty() {
                    std::future::pending::<()>().await;
                }
                pending.next().await;
                None
            })
            .await;
            match next {
                Some(Ok(settle)) => pending.push(self.settle_one(settle)),
                Some(Err(_)) => return,
                None => {}
            }
        }
    }

    async fn settle_one(&self, settle: Settle) {
        let limit = self.config.confirm_timeout;
        let confirmed = self
            .clock
            .within(limit, self.confirmed(settle.sent), || {
                QueueError::Unavailable("the broker did not confirm in time".into())
            })
            .await;
        self.finish(&settle.message, confirmed).await;
        self.settling.fetch_sub(1, Ordering::Relaxed);
    }

    /// Keeps the time limits: every [`TICK`], the waits past theirs end.
    async fn tick(&self) {
        let mut ticks = Timer::interval(TICK);
        while ticks.next().await.is_some() {
            self.clock.fire(std::time::Instant::now());
        }
    }

    /// Acks `message` when what replaces it is `Ok`, or puts it back for another consumer.
    pub(crate) async fn finish(&self, message: &Message, replacement: Result<(), QueueError>) {
        match replacement {
            Ok(()) => match message.acker.ack(BasicAckOptions::default()).await {
                Ok(_) => {
                    self.stats.acked.fetch_add(1, Ordering::Relaxed);
                }
                // The channel is gone: the broker gives it to a consumer again (at least
                // once).
                Err(error) => tracing::warn!(%error, "cannot acknowledge a message to the broker"),
            },
            Err(error) => {
                tracing::warn!(%error, "cannot publish what replaces a consumed message; it goes back to the outbox");
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                };
                let _ = message.acker.nack(requeue).await;
            }
        }
    }

    /// Waits up to `limit` for the messages being settled in the background to be acked, so
    /// that a node stopping on purpose does not leave them to be delivered again.
    pub(crate) fn drain(&self, limit: Duration) {
        let start = std::time::Instant::now();
        while self.settling.load(Ordering::Relaxed) > 0 && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Declares (once per connection) the delay queue of `secs` seconds: durable, its messages
    /// expiring after `secs` back into the outbox.
    pub(crate) async fn delay_queue(&self, secs: u64) -> Result<String, QueueError> {
        let name = self.config.delay_queue(secs);
        let live = self
            .current()
            .ok_or_else(|| QueueError::Unavailable("not connected".into()))?;
        let known = live
            .declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&name);
        if !known {
            declare(&live.publisher, &name, delay_arguments(&self.config, secs))
                .await
                .map_err(unavailable)?;
            live.declared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.clone());
        }
        Ok(name)
    }
}

/// The arguments of a delay queue: its TTL, and the outbox as where expired messages go.
pub(crate) fn delay_arguments(config: &RabbitConfig, secs: u64) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(i64::try_from(secs * 1000).unwrap_or(i64::MAX)),
    );
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(LongString::from(config.exchange.as_str())),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(LongString::from(config.outbox.as_str())),
    );
    arguments
}

async fn declare(channel: &Channel, name: &str, arguments: FieldTable) -> lapin::Result<()> {
    channel
        .queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .map(drop)
}

#[expect(clippy::needless_pass_by_value, reason = "the shape `map_err` takes")]
fn unavailable(error: lapin::Error) -> QueueError {
    QueueError::Unavailable(error.to_string())
}

/// The URL without its password, for logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A broker's queues and their message counts, for `mq queue list` and `mq check-config`.
///
/// Each queue is looked at on a channel of its own: a queue that is missing closes its
/// channel. `declare` creates the queues that are missing, as `mq serve` would; otherwise a
/// missing one has the count `None`.
pub(crate) async fn counts(
    config: &RabbitConfig,
    names: &[String],
    declare_missing: bool,
) -> Result<Vec<(String, Option<u32>)>, QueueError> {
    let connecting = Connection::connect(&config.url, ConnectionProperties::default());
    let connection = within(Duration::from_secs(10), connecting, || {
        lapin::Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
    })
    .await
    .map_err(unavailable)?;
    let mut counts = Vec::new();
    for name in names {
        let channel = connection.create_channel().await.map_err(unavailable)?;
        let passive = QueueDeclareOptions {
            passive: true,
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let found = channel
            .queue_declare(name.as_str().into(), passive, FieldTable::default())
            .await;
        let count = match found {
            Ok(queue) => Some(queue.message_count()),
            Err(_) if declare_missing => {
                let channel = connection.create_channel().await.map_err(unavailable)?;
                let arguments = DELAYS
                    .iter()
                    .find(|&&secs| config.delay_queue(secs) == *name)
                    .map_or_else(FieldTable::default, |&secs| delay_arguments(config, secs));
                declare(&channel, name, arguments)
                    .await
                    .map_err(|e| QueueError::Unavailable(format!("declare {name}: {e}")))?;
                Some(0)
            }
            Err(_) => None,
        };
        counts.push((name.clone(), count));
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(counts)
}

/// `future`'s result, or `timed_out()` when `limit` passes first.
async fn within<T, E>(
    limit: Duration,
    future: impl Future<Output = Result<T, E>>,
    timed_out: impl FnOnce() -> E,
) -> Result<T, E> {
    smol::future::or(future, async {
        Timer::after(limit).await;
        Err(timed_out())
    })
    .await
}
