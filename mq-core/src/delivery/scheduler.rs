//! The scheduler: takes due entries from the queue and spreads them over the worker cores, one
//! job per destination domain, fair between domains and within the throttles.
//!
//! Mail for the smarthost is one destination, whatever its recipients' domains: it shares the
//! smarthost's connections and throttle. Entries of one message and one domain go in one
//! transaction; a job sends up to
//! `messages_per_connection` messages for its domain over one connection. A domain whose
//! connections are all in use keeps its entries waiting here while other domains go on, so one
//! slow or dead domain never starves the others.
//!
//! The entries of one take are a round: a message with batches at several destinations in it
//! gets one notice for all of them ([`super::notices`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use smol::Timer;

use super::Delivery;
use super::attempt::{Batch, deliver};
use super::notices::{Ready, Round};
use crate::queue::{Entry, QueueId};
use crate::runtime::{Spawner, Worker};
use crate::smtp::client::Connection;

/// The most entries the scheduler holds taken but not yet handed to a job.
const MAX_WAITING: usize = 10_000;

/// How often the queue is looked at without a wake-up: deferred entries fall due, throttles
/// open.
const TICK: Duration = Duration::from_millis(250);

/// Entries waiting for a job, by destination domain.
#[derive(Default)]
struct Waiting {
    domains: BTreeMap<String, VecDeque<Batch>>,
    entries: usize,
}

impl Waiting {
    /// Files the entries of `round` by destination, the entries of one message and destination
    /// in one batch; a message with batches at several destinations has its notices held until
    /// they are all done.
    fn add(&mut self, round: Round, entries: Vec<Entry>, delivery: &Delivery) {
        self.entries += entries.len();
        let mut batches: BTreeMap<(String, QueueId), Vec<Entry>> = BTreeMap::new();
        for entry in entries {
            // An entry naming its own relay goes there, with others for the same relay.
            let domain = match &entry.relay {
                Some(relay) => format!("[{}]:{}", relay.host, relay.port),
                None => delivery.destination(entry.recipient.domain()),
            };
            batches
                .entry((domain, entry.queue_id))
                .or_default()
                .push(entry);
        }
        let mut per_message: BTreeMap<QueueId, usize> = BTreeMap::new();
        for (_, queue_id) in batches.keys() {
            *per_message.entry(*queue_id).or_default() += 1;
        }
        for (&queue_id, &count) in per_message.iter().filter(|(_, count)| **count > 1) {
            delivery.notices.expect(round, queue_id, count);
        }
        for ((domain, queue_id), entries) in batches {
            let shared = per_message
                .get(&queue_id)
                .is_some_and(|&count| count > 1)
                .then_some(round);
            self.domains.entry(domain).or_default().push_back(Batch {
                queue_id,
                entries,
                shared,
            });
        }
    }

    /// Up to `count` batches of `domain`.
    fn take(&mut self, domain: &str, count: usize) -> Vec<Batch> {
        let Some(queue) = self.domains.get_mut(domain) else {
            return Vec::new();
        };
        let batches: Vec<Batch> = queue.drain(..count.min(queue.len())).collect();
        if queue.is_empty() {
            self.domains.remove(domain);
        }
        self.entries -= batches.iter().map(|b| b.entries.len()).sum::<usize>();
        batches
    }
}

/// Runs the scheduler on `worker` until shutdown begins; jobs go to every core through
/// `spawner`.
pub(crate) async fn run(worker: Worker, spawner: Spawner, delivery: Arc<Delivery>) {
    let mut waiting = Waiting::default();
    let mut next_core = 0;
    let mut round: Round = 0;
    loop {
        if !wait(&worker, &delivery).await {
            break;
        }
        let free = delivery
            .config
            .concurrency
            .saturating_sub(delivery.in_flight.load(Ordering::Relaxed));
        if free > 0 && waiting.entries < MAX_WAITING {
            // As many as the free slots carry; 0 per connection is taken as 1, as in dispatch.
            let per_connection = delivery.config.messages_per_connection.max(1);
            let max = (free * per_connection).min(MAX_WAITING - waiting.entries);
            match delivery.queue.take_due(SystemTime::now(), max).await {
                Ok(entries) if !entries.is_empty() => {
                    round += 1;
                    waiting.add(round, entries, &delivery);
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "cannot take due entries from the queue"),
            }
        }
        dispatch(&mut waiting, &delivery, &spawner, &mut next_core);
        close(&worker, delivery.connections.expired(Instant::now(), false));
        let overdue = delivery
            .notices
            .overdue(Instant::now(), delivery.config.bounce_wait);
        send(&worker, &delivery, overdue).await;
    }
    close(&worker, delivery.connections.expired(Instant::now(), true));
    // The held notices go out now rather than after jobs that may take minutes; a job that
    // ends later sends its own. Entries still waiting here stay queued for the next start.
    send(&worker, &delivery, delivery.notices.all()).await;
    tracing::debug!(waiting = waiting.entries, "delivery scheduler stopped");
}

/// Sends notices that no job is left to send, each message's on a task of its own so that
/// the scheduler goes on; once shutdown began, here: shutdown waits only for the tasks that
/// were running when it began, this one among them.
async fn send(worker: &Worker, delivery: &Arc<Delivery>, ready: Vec<Ready>) {
    for ready in ready {
        if worker.is_stopping() {
            ready.send(delivery).await;
        } else {
            let delivery = Arc::clone(delivery);
            worker
                .spawn(async move { ready.send(&delivery).await })
                .detach();
        }
    }
}

/// Says QUIT on idle connections taken out of the cache, each in a task of its own on
/// `worker`.
fn close(worker: &Worker, connections: Vec<Connection>) {
    for connection in connections {
        worker.spawn(connection.quit()).detach();
    }
}

/// Waits for a wake-up (new mail, a finished job) or the next tick; false once shutdown began.
async fn wait(worker: &Worker, delivery: &Delivery) -> bool {
    let woken = async {
        let _ = smol::future::or(delivery.wake_rx.recv(), async {
            Timer::after(TICK).await;
            Ok(())
        })
        .await;
        true
    };
    smol::future::or(woken, async {
        worker.stopping().await;
        false
    })
    .await
}

/// Hands batches to jobs, one domain at a time in turn, while there are free slots and the
/// domain's throttle gives a connection.
fn dispatch(
    waiting: &mut Waiting,
    delivery: &Arc<Delivery>,
    spawner: &Spawner,
    next_core: &mut usize,
) {
    let mut progress = true;
    while progress {
        progress = false;
        let domains: Vec<String> = waiting.domains.keys().cloned().collect();
        for domain in domains {
            if delivery.in_flight.load(Ordering::Relaxed) >= delivery.config.concurrency {
                return;
            }
            let Ok(permit) = delivery.throttles.connect(&domain) else {
                continue;
            };
            let batches = waiting.take(&domain, delivery.config.messages_per_connection.max(1));
            delivery.in_flight.fetch_add(1, Ordering::Relaxed);
            let job_delivery = Arc::clone(delivery);
            spawner.spawn_on(*next_core, move |worker| async move {
                // A job's future is some 7 KB: boxed once rather than moved about.
                Box::pin(deliver(&worker, &job_delivery, &domain, batches)).await;
                drop(permit);
                job_delivery.in_flight.fetch_sub(1, Ordering::Relaxed);
                job_delivery.wake();
            });
            *next_core = next_core.wrapping_add(1);
            progress = true;
        }
    }
}
