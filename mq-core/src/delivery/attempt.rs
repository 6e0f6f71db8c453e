//! One delivery job: the batches of one destination domain, over one connection where they go
//! remote, each step running its hook chain.

use std::time::{Duration, Instant, SystemTime};

use mq_plugin_api::{
    Address, Context, Message, OutConnect, OutData, OutMailFrom, OutRcptTo, OutSent, Params,
    Pickup, PickupAction, Reply,
};

use super::Delivery;
use super::cache::Key;
use super::myself::loops_back;
use super::notices::{Ready, Round};
use super::outcome::{Leg, Notice, Verdict, settle};
use super::route::{Route, Target, route, targets};
use super::stats::Class;
use crate::chain::Outcome;
use crate::queue::{Body, Entry, Extensions, QueueId};
use crate::runtime::Worker;
use crate::smtp::client::{ClientError, Connection, Sent, Shape, Stage};
use crate::smtp::{RcptParams, Ret, xtext_encode};

/// The entries of one message for one domain: one transaction.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) queue_id: QueueId,
    pub(crate) entries: Vec<Entry>,
    /// The round whose other batches of the same message share this one's notices (see
    /// [`super::notices`]); `None` when it is the message's only batch of its round.
    pub(crate) shared: Option<Round>,
}

/// An entry on its way, with what the `queue_pickup` chain made of it.
struct Item {
    entry: Entry,
    sender: Address,
    recipient: Address,
}

/// Delivers `batches` for `domain` on this worker.
pub(crate) async fn deliver(
    worker: &Worker,
    delivery: &Delivery,
    domain: &str,
    batches: Vec<Batch>,
) {
    // A relay the entries name (they share it: the scheduler filed them by it) replaces the
    // configured route.
    let named = batches
        .first()
        .and_then(|batch| batch.entries.first())
        .and_then(|entry| entry.relay.clone());
    let route = match named {
        Some(relay) => Route::Relay(super::route::named_relay(&relay)),
        None => route(&delivery.config, &delivery.local_domains, domain),
    };
    let mut job = Job {
        worker,
        delivery,
        ctx: worker.context(),
        connection: None,
        key: None,
        reused: false,
        deadline: None,
        class: Class::of(&route),
        taken: SystemTime::now(),
        setup_from: None,
        setup: Duration::ZERO,
        sending: None,
        route: Some(route.clone()),
        notices: Vec::new(),
        next_hop_dsn: false,
        body: None,
        conn_use: None,
    };
    let mut targets = None;
    for batch in batches {
        let (queue_id, shared) = (batch.queue_id, batch.shared);
        if let Some((body, items)) = job.pickup(batch).await {
            job.attempt(&route, domain, &mut targets, &body, items)
                .await;
        }
        job.notify(queue_id, shared).await;
    }
    job.release(domain).await;
}

struct Job<'a> {
    worker: &'a Worker,
    delivery: &'a Delivery,
    ctx: Context,
    connection: Option<Connection>,
    /// What the connection in use matches in the connection cache.
    key: Option<Key>,
    /// The connection in use came from the cache: it may have died while it waited.
    reused: bool,
    /// When the search for a server under way (lookups, then connections) gives up.
    deadline: Option<Instant>,
    /// Where the job's entries go, for the metrics.
    class: Class,
    /// When the job took its entries from the queue.
    taken: SystemTime,
    /// When the lookups or the connection under way began.
    setup_from: Option<Instant>,
    /// How long setting up the connection in use took, until it first carries mail.
    setup: Duration,
    /// When the transaction under way began.
    sending: Option<Instant>,
    /// Where this job's mail goes.
    route: Option<Route>,
    /// What the batch under way has to tell its sender, handed in when the batch is done: one
    /// notice per message and round.
    notices: Vec<Notice>,
    /// The server of the transaction under way offers DSN: success reports are its to send.
    next_hop_dsn: bool,
    /// The message of the batch under way, quoted by a success report and by its notices.
    body: Option<Body>,
    /// The messages the connection in use has carried, this one included, while its
    /// transaction's entries are settled.
    conn_use: Option<usize>,
}

impl Job<'_> {
    /// Leaves the job's connection in the cache for the next job to its server, or closes it.
    ///
    /// No RSET goes first: a connection is ready only after its last transaction ended (the
    /// reply to the final dot read, or a refused one reset at once), so the server holds no
    /// transaction, and one that died idle is found at the next job's MAIL and replaced there
    /// (see [`Job::reconnect`]). That saves a round trip per job on both sides.
    async fn release(&mut self, domain: &str) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let cache = &self.delivery.connections;
        // Once shutdown began, the scheduler closes no more idle connections: keep none.
        let keep = !self.worker.is_stopping() && cache.wants(&connection);
        if let Some(key) = self.key.take().filter(|_| keep) {
            let per_key = self.delivery.throttles.connection_limit(domain);
            match cache.put(key, connection, per_key) {
                None => return,
                Some(full) => connection = full,
            }
        }
        connection.quit().await;
    }

    /// Delivers one batch's `items` of `body` on `route`; `targets` keeps the servers of a
    /// remote route, looked up for the job's first batch, for the others.
    async fn attempt(
        &mut self,
        route: &Route,
        domain: &str,
        targets: &mut Option<Result<Vec<Target>, Verdict>>,
        body: &Body,
        items: Vec<Item>,
    ) {
        if *route == Route::Local {
            return self.local(body, items).await;
        }
        let found = match targets.take() {
            Some(found) => found,
            None => self.resolve(route, domain).await,
        };
        match targets.insert(found) {
            Ok(found) => {
                let found = found.clone();
                self.remote(&found, domain, body, items).await;
            }
            Err(verdict) => {
                let verdict = verdict.clone();
                self.settle_all(items, &verdict).await;
            }
        }
    }

    /// Opens the message (see [`Body`]) and runs `queue_pickup` for each entry; entries a plugin delayed,
    /// dropped or failed are settled here.
    async fn pickup(&mut self, batch: Batch) -> Option<(Body, Vec<Item>)> {
        self.body = None;
        let body = match self.delivery.queue.open_body(&batch.queue_id).await {
            Ok(body) => body,
            Err(error) => {
                let verdict = unreadable(&error);
                for entry in batch.entries {
                    self.settle(entry, verdict.clone(), None).await;
                }
                return None;
            }
        };
        self.body = Some(body.clone());
        let mut items = Vec::new();
        for entry in batch.entries {
            let mut event = Pickup::new(
                entry.queue_id.to_string(),
                entry.attempts + 1,
                entry.sender.clone(),
                entry.recipient.clone(),
            );
            let verdict = match self.worker.engine().run(&mut self.ctx, &mut event).await {
                Outcome::Proceed => match event.action {
                    PickupAction::Deliver => {
                        items.push(Item {
                            entry,
                            sender: event.sender,
                            recipient: event.recipient,
                        });
                        continue;
                    }
                    PickupAction::Delay(delay) => Verdict::Postponed(delay),
                    _ => Verdict::Dropped,
                },
                Outcome::Rejected { reply, .. } => Verdict::from_reply(&reply, None),
                Outcome::Failed(failure) => Verdict::deferred(failure.to_string(), None),
            };
            self.settle(entry, verdict, None).await;
        }
        if items.is_empty() {
            return None;
        }
        Some((body, items))
    }

    /// Ends the attempt for one entry (see [`settle`]), keeping what its sender is to hear of
    /// for [`Job::notify`].
    async fn settle(&mut self, entry: Entry, verdict: Verdict, relay: Option<&str>) {
        let leg = Leg {
            relay,
            class: self.class,
            taken: self.taken,
            setup: self.setup,
            sending: self.sending,
            next_hop_dsn: self.next_hop_dsn,
            conn_use: self.conn_use,
        };
        let notice = settle(
            self.worker,
            &mut self.ctx,
            self.delivery,
            entry,
            self.body.as_ref(),
            verdict,
            &leg,
        )
        .await;
        self.notices.extend(notice);
    }

    async fn settle_all(&mut self, items: Vec<Item>, verdict: &Verdict) {
        for item in items {
            self.settle(item.entry, verdict.clone(), None).await;
        }
    }

    /// Ends the batch of message `queue_id`: its notices go to its sender, one per action, and
    /// its failed entries are removed then (see [`super::outcome::notify`]); or, when the
    /// message has batches at other destinations in the same round (`shared`), they wait for
    /// theirs (see [`super::notices`]).
    async fn notify(&mut self, queue_id: QueueId, shared: Option<Round>) {
        let notices = std::mem::take(&mut self.notices);
        let body = self.body.take();
        let ready = match shared {
            Some(round) => self.delivery.notices.finish(round, queue_id, body, notices),
            None => Ready::new(body, notices),
        };
        if let Some(ready) = ready {
            ready.send(self.delivery).await;
        }
    }

    /// Local delivery: each recipient's Maildir, written on a blocking thread.
    async fn local(&mut self, body: &Body, items: Vec<Item>) {
        let body = match body.load().await {
            Ok(body) => body,
            Err(error) => return self.settle_all(items, &unreadable(&error)).await,
        };
        for item in items {
            let (maildir, sender, recipient, message) = (
                self.delivery.maildir.clone(),
                item.sender.clone(),
                item.recipient.clone(),
                body.clone(),
            );
            let written =
                smol::unblock(move || maildir.deliver(&sender, &recipient, &message)).await;
            let verdict = match written {
                Ok(path) => Verdict::Delivered {
                    relay: "local".into(),
                    reply: Reply::new(
                        250,
                        "2.0.0",
                        format!("delivered to maildir {}", path.display()),
                    ),
                },
                Err(error) if error.is_permanent() => {
                    Verdict::failed("5.1.3", error.to_string(), None)
                }
                Err(error) => Verdict::deferred(error.to_string(), None),
            };
            self.settle(item.entry, verdict, Some("local")).await;
        }
    }

    /// The servers for a remote route, or the verdict for every entry when there are none,
    /// within the attempt's deadline.
    async fn resolve(&mut self, route: &Route, domain: &str) -> Result<Vec<Target>, Verdict> {
        self.setup_from.get_or_insert_with(Instant::now);
        let deadline = self.deadline();
        let lookups = async {
            let resolver = self.delivery.resolver();
            let found = targets(route, domain, &resolver, &self.delivery.config).await;
            route_verdict(found, domain)
        };
        let targets = within(deadline, lookups).await.unwrap_or_else(|| {
            let text = format!("mail hosts of {domain} not found in time");
            Err(Verdict::deferred(text, None))
        })?;
        self.delivery.myself.exclude(route, domain, targets)
    }

    /// When the search for a server under way gives up: `[delivery] attempt_timeout` after
    /// it began.
    fn deadline(&mut self) -> Instant {
        let timeout = self.delivery.config.attempt_timeout;
        *self
            .deadline
            .get_or_insert_with(|| Instant::now() + timeout)
    }

    /// Remote delivery of one batch, over the job's connection (opened on first use).
    async fn remote(&mut self, targets: &[Target], domain: &str, body: &Body, items: Vec<Item>) {
        // A connection from the cache may have carried mail before this job: its count holds.
        let most = self.delivery.config.messages_per_connection.max(1);
        if self
            .connection
            .as_ref()
            .is_none_or(|c| !c.is_ready() || c.transactions() >= most)
        {
            if let Some(stale) = self.connection.take() {
                stale.quit().await;
            }
            let began = *self.setup_from.get_or_insert_with(Instant::now);
            let deadline = self.deadline();
            let found = match self.cached(targets) {
                Some(found) => Some(Ok(found)),
                None => within(deadline, self.connect(targets, domain)).await,
            };
            self.deadline = None;
            self.setup_from = None;
            self.setup = began.elapsed();
            let timeout = self.delivery.config.attempt_timeout;
            match found.unwrap_or_else(|| Err(out_of_time(domain, timeout))) {
                Ok((connection, key, reused)) => {
                    if connection.is_tls() && !reused {
                        let tls = &self.delivery.stats().tls;
                        tls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    self.connection = Some(connection);
                    self.key = Some(key);
                    self.reused = reused;
                }
                Err(verdict) => return self.settle_all(items, &verdict).await,
            }
        }
        self.transaction(targets, domain, body, items).await;
        // The next transaction on this connection sets nothing up.
        self.setup = Duration::ZERO;
        self.sending = None;
    }

    /// The cache key of a connection to `target` on the job's route.
    fn key(&self, target: &Target, config: &crate::smtp::client::ClientConfig) -> Key {
        let trust = match &self.route {
            Some(Route::Relay(relay)) => relay.ca_file.clone(),
            _ => None,
        };
        Key::new(target.address, &target.host, config, trust)
    }

    /// An idle connection to one of the targets (in their order, no more than
    /// `mx_address_limit`) from the cache, marked reused.
    fn cached(&self, targets: &[Target]) -> Option<(Connection, Key, bool)> {
        let route = self.route.clone().unwrap_or(Route::Mx);
        let config = self.delivery.client_config(&route);
        let limit = self.delivery.config.mx_address_limit;
        targets.iter().take(limit).find_map(|target| {
            let key = self.key(target, &config);
            let connection = self.delivery.connections.take(&key)?;
            Some((connection, key, true))
        })
    }

    /// Tries each target in turn, no more than `mx_address_limit` addresses and
    /// `mx_session_limit` sessions; runs `smtp_out_connect` on the one that answers. A server
    /// that names mq as its own is mq: mail for `domain` loops, unless more preferred hosts
    /// were tried and may take it later. The connection comes with its cache key.
    async fn connect(
        &mut self,
        targets: &[Target],
        domain: &str,
    ) -> Result<(Connection, Key, bool), Verdict> {
        let route = self.route.clone().unwrap_or(Route::Mx);
        let config = self.delivery.client_config(&route);
        let limits = &self.delivery.config;
        let mut last = Verdict::deferred(format!("no mail host for {domain} answered"), None);
        let mut sessions = 0;
        for target in targets.iter().take(limits.mx_address_limit) {
            if sessions >= limits.mx_session_limit {
                break;
            }
            let trust = self.delivery.trust(&route);
            match Connection::open(target.address, &target.host, &config, trust).await {
                Ok(connection) if self.delivery.myself.named_in(connection.server_names()) => {
                    tracing::warn!(host = target.host, address = %target.address, "mail host greeted with mq's own hostname");
                    connection.quit().await;
                    let best = targets.first().map(|t| t.preference);
                    return Err(if best == Some(target.preference) {
                        loops_back(domain)
                    } else {
                        last
                    });
                }
                Ok(connection) => {
                    let mut event = OutConnect::new(target.host.clone(), target.address);
                    let outcome = self.worker.engine().run(&mut self.ctx, &mut event).await;
                    if let Some(verdict) = refused(outcome, &target.host) {
                        connection.quit().await;
                        return Err(verdict);
                    }
                    let key = self.key(target, &config);
                    return Ok((connection, key, false));
                }
                Err(error) => {
                    tracing::debug!(host = target.host, address = %target.address, %error, "connect failed");
                    if error.stage() != Stage::Connect {
                        sessions += 1;
                    }
                    last = client_verdict(&error, &relay_name(target));
                    if error.is_permanent() {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    /// MAIL, RCPTs and DATA for one batch, with the outbound hooks.
    async fn transaction(
        &mut self,
        targets: &[Target],
        domain: &str,
        body: &Body,
        items: Vec<Item>,
    ) {
        let engine = self.worker.engine();
        let connection = self.connection.as_ref().expect("connected");
        let relay = crate::logline::relay(connection.host(), connection.peer());
        let offered = connection.extensions();
        let (smtputf8, dsn) = (offered.smtputf8, offered.dsn);
        let extensions = items[0].entry.extensions.clone();
        let extensions = extensions.as_deref();
        // As Postfix does, a message sent with SMTPUTF8 whose envelope and header are ASCII
        // after all goes to a server without it, as plain mail.
        let utf8 = match extensions.filter(|e| e.smtputf8) {
            Some(_) => match body.load().await {
                Ok(whole) => has_utf8(&items, &whole),
                Err(error) => return self.settle_all(items, &unreadable(&error)).await,
            },
            None => false,
        };
        if utf8 && !smtputf8 {
            let text = format!("SMTPUTF8 is required, but was not offered by host {relay}");
            let verdict = Verdict::failed("5.6.7", text, Some(&relay));
            return self.settle_all(items, &verdict).await;
        }
        let mut mail = OutMailFrom::new(items[0].sender.clone());
        if let Some(extensions) = extensions {
            mail.params.extend(mail_params(extensions, smtputf8, dsn));
        }
        if let Some(verdict) = refused(engine.run(&mut self.ctx, &mut mail).await, &relay) {
            return self.settle_all(items, &verdict).await;
        }
        let mut sending = Vec::new();
        let mut recipients = Vec::new();
        for item in items {
            let mut rcpt = OutRcptTo::new(item.recipient.clone());
            if let Some(extensions) = extensions.filter(|_| dsn) {
                let given = extensions.recipient(item.entry.recipient_index);
                rcpt.params.extend(rcpt_params(&given));
            }
            if let Some(verdict) = refused(engine.run(&mut self.ctx, &mut rcpt).await, &relay) {
                self.settle(item.entry, verdict, None).await;
                continue;
            }
            recipients.push((rcpt.recipient, rcpt.params));
            sending.push(item);
        }
        if sending.is_empty() {
            return;
        }
        let replaced = match self.out_data(body, &relay).await {
            Ok(replaced) => replaced,
            Err(verdict) => return self.settle_all(sending, &verdict).await,
        };
        let message = match (&replaced, body.in_memory()) {
            (Some(replaced), _) => Outgoing::Whole(replaced),
            (None, Some(queued)) => Outgoing::Whole(queued),
            // Read through once for its shape; sent a piece at a time.
            (None, None) => match body.shape().await {
                Ok(shape) => Outgoing::Pieces(body, shape),
                Err(error) => return self.settle_all(sending, &unreadable(&error)).await,
            },
        };
        self.throttle(domain).await;
        self.sending = Some(Instant::now());
        let mut verdicts = self.exchange(&mail, &recipients, &message, &relay).await;
        if verdicts.is_none() {
            // The cached connection died while it waited: the message goes on a new one, in
            // the same attempt.
            // Boxed: the rare path should not grow every job's future.
            let verdict = Box::pin(self.reconnect(targets, domain)).await.err();
            verdicts = match verdict {
                None => {
                    let relay = self
                        .connection
                        .as_ref()
                        .map_or(relay.clone(), |c| crate::logline::relay(c.host(), c.peer()));
                    self.exchange(&mail, &recipients, &message, &relay).await
                }
                Some(verdict) => Some(sending.iter().map(|_| verdict.clone()).collect()),
            };
        }
        let verdicts = verdicts.unwrap_or_default();
        let relay = match &self.connection {
            Some(connection) => crate::logline::relay(connection.host(), connection.peer()),
            None => relay,
        };
        self.next_hop_dsn = dsn;
        self.conn_use = self.connection.as_ref().map(Connection::transactions);
        for (item, verdict) in sending.into_iter().zip(verdicts) {
            self.settle(item.entry, verdict, Some(&relay)).await;
        }
        self.next_hop_dsn = false;
        self.conn_use = None;
    }

    /// The message as `smtp_out_data` leaves it for this attempt, or `None` to send the queued
    /// copy; parsed only when a plugin is in that chain.
    async fn out_data(&mut self, body: &Body, relay: &str) -> Result<Option<Vec<u8>>, Verdict> {
        if !self
            .worker
            .engine()
            .has_chain(mq_plugin_api::HookId::SmtpOutData)
        {
            // No plugin can change it: the queued copy goes out as it is, uncopied.
            return Ok(None);
        }
        let whole = body.load().await.map_err(|error| unreadable(&error))?;
        let mut event = OutData::new(Message::parse(&whole));
        match refused(
            self.worker.engine().run(&mut self.ctx, &mut event).await,
            relay,
        ) {
            Some(verdict) => Err(verdict),
            None => Ok(Some(event.message.to_bytes())),
        }
    }

    /// Waits until the domain's message rate allows one more.
    async fn throttle(&self, domain: &str) {
        while let Err(wait) = self.delivery.throttles.message(domain, Instant::now()) {
            smol::Timer::after(wait).await;
        }
    }

    /// Drops the dead connection from the cache and opens a new one, within the attempt's
    /// deadline.
    async fn reconnect(&mut self, targets: &[Target], domain: &str) -> Result<(), Verdict> {
        if let Some(dead) = self.connection.take() {
            dead.quit().await;
        }
        self.reused = false;
        self.key = None;
        let began = Instant::now();
        self.setup_from = Some(began);
        let deadline = self.deadline();
        let found = within(deadline, self.connect(targets, domain)).await;
        self.deadline = None;
        self.setup_from = None;
        self.setup = began.elapsed();
        let timeout = self.delivery.config.attempt_timeout;
        let (connection, key, _) = found.unwrap_or_else(|| Err(out_of_time(domain, timeout)))?;
        if connection.is_tls() {
            let tls = &self.delivery.stats().tls;
            tls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.connection = Some(connection);
        self.key = Some(key);
        Ok(())
    }

    /// Sends the transaction and reads its verdict: one per recipient, in order. `None` when a
    /// connection taken from the cache turned out closed before the server took anything: the
    /// caller sends again on a new one.
    async fn exchange(
        &mut self,
        mail: &OutMailFrom,
        recipients: &[(Address, mq_plugin_api::Params)],
        message: &Outgoing<'_>,
        relay: &str,
    ) -> Option<Vec<Verdict>> {
        let reused = std::mem::take(&mut self.reused);
        let connection = self.connection.as_mut().expect("connected");
        let (sender, params) = (&mail.sender, &mail.params);
        let sent = match *message {
            Outgoing::Whole(whole) => connection.send(sender, params, recipients, whole).await,
            Outgoing::Pieces(body, shape) => {
                let sent = connection.send_pieces(sender, params, recipients, body, shape);
                sent.await
            }
        };
        let replies = match sent {
            Ok(Sent::Pending {
                recipients: replies,
                ..
            }) => {
                let mut event = OutSent::new(connection.host(), message.len());
                let _ = self.worker.engine().run(&mut self.ctx, &mut event).await;
                let connection = self.connection.as_mut().expect("connected");
                let last = connection.finish().await;
                return Some(
                    replies
                        .iter()
                        .map(|rcpt| match (positive(rcpt), &last) {
                            (false, _) => Verdict::from_reply(rcpt, Some(relay)),
                            (true, Ok(reply)) => Verdict::from_reply(reply, Some(relay)),
                            (true, Err(error)) => client_verdict(error, relay),
                        })
                        .collect(),
                );
            }
            Ok(Sent::NotSent {
                mail,
                recipients: replies,
                data,
            }) => (mail, replies, data),
            Err(error) if reused && went_away(&error) => {
                tracing::debug!(%relay, %error, "cached connection closed; connecting again");
                return None;
            }
            Err(error) => {
                return Some(
                    recipients
                        .iter()
                        .map(|_| client_verdict(&error, relay))
                        .collect(),
                );
            }
        };
        let (mail, rcpts, data) = replies;
        let verdicts = (0..recipients.len())
            .map(|i| match rcpts.get(i) {
                _ if !positive(&mail) => Verdict::from_reply(&mail, Some(relay)),
                Some(rcpt) if !positive(rcpt) => Verdict::from_reply(rcpt, Some(relay)),
                _ => match &data {
                    Some(data) => Verdict::from_reply(data, Some(relay)),
                    None => Verdict::deferred("transaction reset before DATA".into(), Some(relay)),
                },
            })
            .collect();
        Some(verdicts)
    }
}

/// The verdict on entries whose queued message cannot be read: tried again later.
fn unreadable(error: &crate::queue::QueueError) -> Verdict {
    Verdict::deferred(format!("cannot read the queued message: {error}"), None)
}

/// What goes out after DATA.
enum Outgoing<'a> {
    /// The queued message held in memory, or what `smtp_out_data` made of it.
    Whole(&'a [u8]),
    /// The queued message read a piece at a time as it is sent, of the shape scanned.
    Pieces(&'a Body, Shape),
}

impl Outgoing<'_> {
    fn len(&self) -> u64 {
        match self {
            Outgoing::Whole(whole) => whole.len() as u64,
            Outgoing::Pieces(body, _) => body.len(),
        }
    }
}

/// Whether the envelope or the header block of a message has UTF-8 in it.
fn has_utf8(items: &[Item], body: &[u8]) -> bool {
    let header = match memchr::memmem::find(body, b"\r\n\r\n") {
        Some(end) => &body[..end],
        None => body,
    };
    let envelope = items.iter().flat_map(|i| [&i.sender, &i.recipient]);
    !header.is_ascii() || envelope.map(Address::as_str).any(|a| !a.is_ascii())
}

/// The MAIL parameters a message's own take on to the next server: SMTPUTF8 when it offers
/// it, and RET and ENVID when it offers DSN.
fn mail_params(extensions: &Extensions, smtputf8: bool, dsn: bool) -> Params {
    let mut params = Params::new();
    if extensions.smtputf8 && smtputf8 {
        params.push(("SMTPUTF8".into(), None));
    }
    if dsn {
        if let Some(ret) = extensions.ret {
            let ret = if ret == Ret::Full { "FULL" } else { "HDRS" };
            params.push(("RET".into(), Some(ret.into())));
        }
        if let Some(envid) = &extensions.envid {
            params.push(("ENVID".into(), Some(xtext_encode(envid))));
        }
    }
    params
}

/// The RCPT parameters for a server that offers DSN: the recipient's NOTIFY and ORCPT.
fn rcpt_params(given: &RcptParams) -> Params {
    let mut params = Params::new();
    if let Some(notify) = given.notify {
        params.push(("NOTIFY".into(), Some(notify.to_param())));
    }
    if let Some(orcpt) = &given.orcpt {
        params.push(("ORCPT".into(), Some(orcpt.clone())));
    }
    params
}

/// The verdict on what the lookups found: the targets, or why there are none.
fn route_verdict(
    found: Result<Vec<Target>, crate::dns::RouteError>,
    domain: &str,
) -> Result<Vec<Target>, Verdict> {
    match found {
        Ok(targets) if !targets.is_empty() => Ok(targets),
        Ok(_) => Err(Verdict::deferred(
            format!("no mail host for {domain}"),
            None,
        )),
        // RFC 7505 §4.3: a domain that accepts no mail bounces with 5.1.10.
        Err(error @ crate::dns::RouteError::NullMx) => Err(Verdict::failed(
            "5.1.10",
            format!("{domain} takes no mail: {error}"),
            None,
        )),
        Err(error) if error.is_permanent() => Err(Verdict::failed(
            "5.4.4",
            format!("Host or domain name not found: {domain}: {error}"),
            None,
        )),
        Err(error) => Err(Verdict::deferred(
            format!("Host or domain name lookup failed: {domain}: {error}"),
            None,
        )),
    }
}

/// `future`'s output, or `None` when `deadline` comes first (the future is dropped).
///
/// Combinators, not an `async fn`: an `async fn` would hold `future` as its argument and again
/// inside the race, making every job's future some 10 KB larger to move about.
fn within<T>(
    deadline: Instant,
    future: impl Future<Output = T>,
) -> impl Future<Output = Option<T>> {
    use futures::FutureExt as _;
    let late = smol::Timer::at(deadline).map(|_| None);
    smol::future::or(future.map(Some), late)
}

/// The verdict when no server took the mail within `[delivery] attempt_timeout`.
fn out_of_time(domain: &str, timeout: Duration) -> Verdict {
    Verdict::deferred(
        format!("no mail host for {domain} answered within {timeout:?} (attempt_timeout)"),
        None,
    )
}

/// Whether `error` says the server was gone before it took the transaction's first command:
/// the connection was closed (or reset), or the server said `421` to MAIL.
fn went_away(error: &ClientError) -> bool {
    match error {
        ClientError::Io(Stage::Mail, _) => true,
        ClientError::Rejected(Stage::Mail, reply) => reply.code() == 421,
        _ => false,
    }
}

fn positive(reply: &Reply) -> bool {
    reply.code() / 100 == 2
}

fn relay_name(target: &Target) -> String {
    crate::logline::relay(&target.host, target.address)
}

/// What a refusing outbound hook means for the entries: its reply decides.
fn refused(outcome: Outcome, relay: &str) -> Option<Verdict> {
    match outcome {
        Outcome::Proceed => None,
        Outcome::Rejected { reply, .. } => Some(Verdict::from_reply(&reply, Some(relay))),
        Outcome::Failed(failure) => Some(Verdict::deferred(failure.to_string(), Some(relay))),
    }
}

/// A client error's verdict: the server's reply decides when there is one, else it is
/// temporary (connection refused, timeout, lost connection).
fn client_verdict(error: &ClientError, relay: &str) -> Verdict {
    match error.reply() {
        Some(reply) => Verdict::from_reply(reply, Some(relay)),
        None => Verdict::deferred(error.to_string(), Some(relay)),
    }
}
