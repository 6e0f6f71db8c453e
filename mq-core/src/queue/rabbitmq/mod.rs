//! [`RabbitQueue`]: the [`Queue`] on a RabbitMQ broker, in MailerQ's JSON format, so that any
//! number of mq nodes (and MailerQ's own tools) share one outbox.
//!
//! - Accepted mail is published to the inbox (by default the outbox), one JSON document per
//!   recipient; `enqueue` returns once the broker confirmed every one, so a 250 keeps the same
//!   promise as with the embedded queue.
//! - Delivery consumes the outbox with a bounded prefetch. A document is acknowledged only
//!   after the broker confirmed what replaces it: its result (`results` and `success` or
//!   `failure`), or its delayed copy. A node that dies at any moment loses nothing; a message
//!   may be delivered twice, never zero times. Delivery does not wait for those confirms:
//!   `ack` and `defer` publish what replaces the message and return, and the link's thread
//!   acks the outbox message once the broker confirmed; `prefetch` bounds how many wait so.
//! - A deferred document is republished with `nextattempt` set to a durable delay queue
//!   (`<outbox>.delay.<seconds>`, `x-message-ttl`) that dead-letters it back to the outbox, and a
//!   copy goes to `retry`. Nothing waits in a node's memory: a document consumed before its
//!   `nextattempt` goes back to wait the rest.
//!
//! - `config`: [`RabbitConfig`]; `document`: the JSON; `link`: the connection, reconnecting
//!   with back-off, and the settling of consumed messages; `clock`: the time limits of
//!   publishes and confirms, on one timer; `json`: the MIME as a JSON string, fast.

mod clock;
mod config;
mod document;
mod json;
mod link;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::message::Delivery as Message;
use serde_json::{Map, Value};
use smol::channel::Receiver;

pub use config::RabbitConfig;
pub use link::RabbitStats;

use super::id::IdSource;
use super::{
    AckResult, AttemptReport, Entry, EntryState, NewMessage, Origin, Queue, QueueError,
    QueueHealth, QueueId, QueueMetric,
};
use config::delay_for;
use document::{Document, QueueChoice, Refusal, process_report};
use link::{Link, Outgoing, Sent};

/// A wait shorter than this is no wait: the document is delivered now.
const DUE_SLACK: Duration = Duration::from_millis(500);

/// The longest a stopping node waits for the acks of messages it delivered.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The queue on a RabbitMQ broker.
///
/// [`RabbitQueue::start`] returns at once; a thread connects to the broker and reconnects with
/// back-off whenever it is lost. Meanwhile [`Queue::enqueue`] fails (the SMTP server answers
/// 451) and delivery finds nothing due.
///
/// # Examples
///
/// ```no_run
/// use mq_core::queue::rabbitmq::{RabbitConfig, RabbitQueue};
///
/// let queue = RabbitQueue::start(RabbitConfig::default(), "mx.example.org", true)?;
/// assert!(queue.wait_connected(std::time::Duration::from_secs(5)));
/// # Ok::<(), mq_core::queue::QueueError>(())
/// ```
pub struct RabbitQueue {
    config: RabbitConfig,
    hostname: String,
    link: Arc<Link>,
    deliveries: Option<Receiver<Message>>,
    taken: Mutex<HashMap<QueueId, Taken>>,
    ids: IdSource,
}

/// A document handed to delivery, until it is acked or deferred.
struct Taken {
    message: Message,
    document: Document,
    arrived: SystemTime,
    mime: Arc<[u8]>,
    report: Option<AttemptReport>,
}

impl fmt::Debug for RabbitQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitQueue")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl RabbitQueue {
    /// Starts the queue on the broker of `config`; `hostname` goes into the documents of
    /// accepted mail. With `consume`, this node takes messages from the outbox for delivery;
    /// without, it only publishes.
    ///
    /// # Errors
    ///
    /// [`QueueError::Invalid`]-like problems of the settings as [`QueueError::Unavailable`],
    /// or the thread could not start.
    pub fn start(
        config: RabbitConfig,
        hostname: &str,
        consume: bool,
    ) -> Result<RabbitQueue, QueueError> {
        if let Some(problem) = config.problem() {
            return Err(QueueError::Unavailable(problem));
        }
        let link = Link::new(config.clone());
        let channel = consume.then(|| smol::channel::bounded(usize::from(config.prefetch)));
        let deliveries = channel.as_ref().map(|(_, receiver)| receiver.clone());
        link.spawn(channel)?;
        Ok(RabbitQueue {
            config,
            hostname: hostname.to_owned(),
            link,
            deliveries,
            taken: Mutex::new(HashMap::new()),
            ids: IdSource::default(),
        })
    }

    /// Waits up to `limit` for the broker to be connected; whether it is.
    pub fn wait_connected(&self, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        while !self.link.is_up() {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// What the connection has done since start.
    pub fn stats(&self) -> &RabbitStats {
        &self.link.stats
    }

    /// The settings.
    pub fn config(&self) -> &RabbitConfig {
        &self.config
    }

    fn taken(&self) -> std::sync::MutexGuard<'_, HashMap<QueueId, Taken>> {
        self.taken.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queue a result of `kind` goes to for `document`: its own `queues` first, then the
    /// configuration; `None` when not published.
    fn result_queue(&self, document: Option<&Document>, kind: &str) -> Option<String> {
        match document.map(|d| d.queue_choice(kind)) {
            Some(QueueChoice::Off) => return None,
            Some(QueueChoice::Named(name)) => return Some(name),
            _ => {}
        }
        let configured = match kind {
            "results" => &self.config.results,
            "success" => &self.config.success,
            "failure" => &self.config.failure,
            _ => &self.config.retry,
        };
        (!configured.is_empty()).then(|| configured.clone())
    }

    /// Publishes a final result to `results` and to `success` or `failure`; the confirms are
    /// still to come.
    async fn send_result(
        &self,
        document: Option<&Document>,
        fields: Map<String, Value>,
        delivered: bool,
        arrived: Option<u64>,
    ) -> Result<Sent, QueueError> {
        let payload = document::to_json(&fields, 0);
        let subset = if delivered { "success" } else { "failure" };
        let messages = ["results", subset]
            .into_iter()
            .filter_map(|kind| self.result_queue(document, kind))
            .map(|queue| Outgoing {
                queue,
                payload: payload.clone(),
                arrived,
            })
            .collect();
        self.link.send(messages).await
    }

    /// Settles `message`, consumed from the outbox, now that what replaces it (its result or
    /// delayed copy) is `sent`: acked once the broker confirmed that, in the background (see
    /// [`Link::settle`]). When it could not be sent, the message goes back to the outbox now.
    async fn replace(
        &self,
        message: Message,
        sent: Result<Sent, QueueError>,
    ) -> Result<(), QueueError> {
        match sent {
            Ok(sent) => {
                self.link.settle(message, sent);
                Ok(())
            }
            Err(error) => {
                let failed = error.duplicate();
                self.link.finish(&message, Err(error)).await;
                Err(failed)
            }
        }
    }

    /// Sends a document that cannot be delivered to `failure`, with why.
    async fn refuse(&self, message: Message, refusal: Refusal) {
        tracing::warn!(why = refusal.why, "refused a message from the outbox");
        let mut fields = refusal.fields;
        let report = process_report("invalid", refusal.why);
        document::add_result(&mut fields, &report);
        fields.remove("mime");
        let sent = self
            .send_result(None, fields, false, arrived_secs(&message))
            .await;
        // A failure is logged and the message back in the outbox: nothing more to do here.
        let _ = self.replace(message, sent).await;
    }

    /// Puts a document (`payload`) back to wait until `when`: into the delay queue that fits,
    /// the rest of its wait in later rounds. The confirms are still to come.
    async fn wait_until(
        &self,
        payload: Vec<u8>,
        when: SystemTime,
        arrived: Option<u64>,
        retry_copy: Option<Vec<u8>>,
    ) -> Result<Sent, QueueError> {
        let wait = when.duration_since(SystemTime::now()).unwrap_or_default();
        let delay = self.link.delay_queue(delay_for(wait)).await?;
        let mut messages = vec![Outgoing {
            queue: delay,
            payload,
            arrived,
        }];
        if let Some(copy) = retry_copy {
            messages.extend(self.result_queue(None, "retry").map(|queue| Outgoing {
                queue,
                payload: copy,
                arrived,
            }));
        }
        self.link.send(messages).await
    }

    /// The report of the attempt that just ended, or one made from what the engine said.
    fn report_of(taken: &mut Taken, fallback: impl FnOnce() -> AttemptReport) -> AttemptReport {
        taken.report.take().unwrap_or_else(fallback)
    }
}

#[async_trait::async_trait]
impl Queue for RabbitQueue {
    async fn enqueue(&self, message: NewMessage) -> Result<QueueId, QueueError> {
        self.enqueue_with(message, None).await
    }

    async fn enqueue_from(
        &self,
        message: NewMessage,
        origin: &Origin,
    ) -> Result<QueueId, QueueError> {
        self.enqueue_with(message, Some(origin)).await
    }

    async fn take_due(&self, now: SystemTime, max: usize) -> Result<Vec<Entry>, QueueError> {
        let Some(deliveries) = &self.deliveries else {
            return Ok(Vec::new());
        };
        let mut due = Vec::new();
        while due.len() < max {
            let Ok(message) = deliveries.try_recv() else {
                break;
            };
            let document = match Document::parse(&message.data) {
                Ok(document) => document,
                Err(refusal) => {
                    self.refuse(message, refusal).await;
                    continue;
                }
            };
            let arrived = arrived_secs(&message);
            if let Some(next) = document.next_attempt
                && next > now + DUE_SLACK
            {
                // Consumed early (a shorter delay queue, or published so): wait the rest.
                let waiting = self
                    .wait_until(message.data.clone(), next, arrived, None)
                    .await;
                // A failure is logged and the message back in the outbox.
                let _ = self.replace(message, waiting).await;
                continue;
            }
            let id = self.ids.next();
            let arrived_at = arrived.map_or(now, |secs| UNIX_EPOCH + Duration::from_secs(secs));
            let mime = Arc::clone(&document.mime);
            let entry = Entry {
                queue_id: id,
                recipient_index: 0,
                sender: document.sender.clone(),
                recipient: document.recipient.clone(),
                size: mime.len() as u64,
                arrived: arrived_at,
                attempts: document.attempts,
                next_attempt: document.next_attempt.unwrap_or(arrived_at),
                last_error: None,
                state: EntryState::InFlight,
                relay: document.relay.clone(),
                retry: document.retry_rules(),
                // MailerQ's format has no place for them: a document carries none.
                extensions: None,
            };
            self.taken().insert(
                id,
                Taken {
                    message,
                    document,
                    arrived: arrived_at,
                    mime,
                    report: None,
                },
            );
            due.push(entry);
        }
        Ok(due)
    }

    async fn body(&self, id: &QueueId) -> Result<Arc<[u8]>, QueueError> {
        self.taken()
            .get(id)
            .map(|taken| Arc::clone(&taken.mime))
            .ok_or(QueueError::NotFound(*id))
    }

    fn report_attempt(&self, entry: &Entry, report: AttemptReport) {
        if let Some(taken) = self.taken().get_mut(&entry.queue_id) {
            taken.report = Some(report);
        }
    }

    async fn ack(&self, entry: &Entry, result: AckResult) -> Result<(), QueueError> {
        let mut taken = self
            .taken()
            .remove(&entry.queue_id)
            .ok_or(QueueError::NotFound(entry.queue_id))?;
        let delivered = matches!(result, AckResult::Delivered);
        let report = RabbitQueue::report_of(&mut taken, || match &result {
            AckResult::Failed { reason } => process_report("error", reason.clone()),
            _ => AttemptReport {
                state: "message",
                ..process_report("accepted", "delivered".into())
            },
        });
        let fields = taken
            .document
            .for_result(taken.document.with_result(&report));
        let sent = self
            .send_result(
                Some(&taken.document),
                fields,
                delivered,
                Some(secs(taken.arrived)),
            )
            .await;
        self.replace(taken.message, sent).await
    }

    async fn defer(
        &self,
        entry: &Entry,
        until: SystemTime,
        error: String,
    ) -> Result<(), QueueError> {
        let mut taken = self
            .taken()
            .remove(&entry.queue_id)
            .ok_or(QueueError::NotFound(entry.queue_id))?;
        // `until` already follows the document's own `retries` (see `Entry::retry`).
        let report = RabbitQueue::report_of(&mut taken, || process_report("error", error));
        let arrived = Some(secs(taken.arrived));
        let mut fields = taken.document.with_result(&report);
        let mut next_attempt = Map::new();
        next_attempt.insert("time".into(), document::format_time(until).into());
        fields.insert("nextattempt".into(), Value::Object(next_attempt));
        let copy = document::to_json(&taken.document.for_result(fields.clone()), 0);
        let delayed = taken.document.with_mime(fields);
        let delayed = document::to_json(&delayed, taken.mime.len());
        let sent = self.wait_until(delayed, until, arrived, Some(copy)).await;
        self.replace(taken.message, sent).await
    }

    fn list(&self) -> Vec<Entry> {
        // The broker holds the messages; only those this node is delivering are known here.
        Vec::new()
    }

    fn count(&self) -> usize {
        self.taken().len()
    }

    async fn delete(&self, _id: &QueueId) -> Result<usize, QueueError> {
        Err(QueueError::Unsupported("deleting single messages"))
    }

    fn health(&self) -> QueueHealth {
        QueueHealth {
            writable: self.link.is_up(),
            ..QueueHealth::default()
        }
    }

    fn metrics(&self) -> Vec<QueueMetric> {
        let stats = &self.link.stats;
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        let metric = |name, kind, help, value| QueueMetric {
            name,
            kind,
            help,
            value,
        };
        vec![
            metric(
                "mq_broker_connected",
                "gauge",
                "1 while the RabbitMQ broker is connected, 0 while mq reconnects.",
                u64::from(self.link.is_up()),
            ),
            metric(
                "mq_broker_connects_total",
                "counter",
                "Connections made to the broker (the first and each reconnection).",
                load(&stats.connects),
            ),
            metric(
                "mq_broker_published_total",
                "counter",
                "Messages published to the broker.",
                load(&stats.published),
            ),
            metric(
                "mq_broker_confirmed_total",
                "counter",
                "Publishes the broker confirmed.",
                load(&stats.confirmed),
            ),
            metric(
                "mq_broker_consumed_total",
                "counter",
                "Messages consumed from the outbox.",
                load(&stats.consumed),
            ),
            metric(
                "mq_broker_acked_total",
                "counter",
                "Consumed messages acknowledged, once what replaces them was confirmed.",
                load(&stats.acked),
            ),
            metric(
                "mq_broker_redelivered_total",
                "counter",
                "Consumed messages the broker had handed out before (to a node that did not ack).",
                load(&stats.redelivered),
            ),
            metric(
                "mq_broker_in_flight",
                "gauge",
                "Messages this node is delivering now.",
                self.taken().len() as u64,
            ),
        ]
    }

    fn flush(&self) {
        // Deferred messages wait in the broker's delay queues; there is nothing to hurry here.
    }
}

impl RabbitQueue {
    async fn enqueue_with(
        &self,
        message: NewMessage,
        origin: Option<&Origin>,
    ) -> Result<QueueId, QueueError> {
        if message.recipients.is_empty() {
            return Err(QueueError::Invalid("no recipients"));
        }
        let id = self.ids.next();
        let now = SystemTime::now();
        let queue_id = id.to_string();
        let messages = message
            .recipients
            .iter()
            .map(|recipient| Outgoing {
                queue: self.config.inbox().to_owned(),
                payload: document::inbound(
                    &message.sender,
                    recipient,
                    &message.body,
                    &self.hostname,
                    origin,
                    &queue_id,
                    now,
                ),
                arrived: Some(secs(now)),
            })
            .collect();
        self.link.publish(messages).await?;
        Ok(id)
    }
}

impl Drop for RabbitQueue {
    fn drop(&mut self) {
        // Delivered messages whose results are on their way are acked first, rather than
        // delivered again by the next consumer.
        self.link
            .drain(self.config.confirm_timeout.min(DRAIN_LIMIT));
        self.link.stop();
    }
}

fn secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// When a consumed message first arrived, from its AMQP `timestamp`.
fn arrived_secs(message: &Message) -> Option<u64> {
    *message.properties.timestamp()
}

/// The message counts of every queue of `config` (delay queues included) on the broker, for
/// `mq queue list`; with `declare`, missing queues are created (as `mq serve` would) rather
/// than reported, for `mq check-config`.
///
/// # Errors
///
/// [`QueueError::Unavailable`] when the broker cannot be reached, or a queue cannot be
/// declared.
pub async fn queue_counts(
    config: &RabbitConfig,
    declare: bool,
) -> Result<Vec<(String, Option<u32>)>, QueueError> {
    let mut names: Vec<String> = config.queues().into_iter().map(str::to_owned).collect();
    names.extend(config.delay_queues());
    link::counts(config, &names, declare).await
}

/// Publishes one MailerQ JSON document to the outbox and waits for the broker's confirm (`mq
/// publish`).
///
/// # Errors
///
/// [`QueueError::Invalid`] if `payload` is not a JSON object; [`QueueError::Unavailable`] if
/// the broker cannot be reached or does not confirm.
pub async fn publish_to_outbox(config: &RabbitConfig, payload: &[u8]) -> Result<(), QueueError> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(_)) => {}
        _ => return Err(QueueError::Invalid("not a JSON object")),
    }
    let link = Link::new(config.clone());
    link.spawn(None)?;
    let start = std::time::Instant::now();
    while !link.is_up() {
        if start.elapsed() > Duration::from_secs(10) {
            link.stop();
            return Err(QueueError::Unavailable("cannot connect".into()));
        }
        smol::Timer::after(Duration::from_millis(20)).await;
    }
    let published = link
        .publish(vec![Outgoing {
            queue: config.outbox.clone(),
            payload: payload.to_vec(),
            arrived: Some(secs(SystemTime::now())),
        }])
        .await;
    link.stop();
    published
}
