//! How an attempt ends for one entry: the `delivery_result` chain, the queue's ack or defer, a
//! bounce for a final failure, and one log line as Postfix's smtp(8) writes it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mq_plugin_api::{Address, Context, DeliveryResult, DeliveryState, Reply};

use super::Delivery;
use super::dsn::{self, Action, Bounce, FailedRecipient};
use super::stats::{AttemptResult, Class};
use crate::logline;
use crate::queue::{AckResult, AttemptReport, Body, Entry, Extensions, NewMessage};
use crate::runtime::Worker;
use crate::smtp::{Notify, Ret};

/// How an attempt went for one entry, before `delivery_result` has its say.
#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    /// The server (or the Maildir) took it.
    Delivered { relay: String, reply: Reply },
    /// Try again later.
    Deferred {
        reason: String,
        reply: Option<Reply>,
        relay: Option<String>,
    },
    /// Give up and bounce.
    Failed {
        status: String,
        reason: String,
        reply: Option<Reply>,
        relay: Option<String>,
    },
    /// A `queue_pickup` plugin delayed it.
    Postponed(Duration),
    /// A `queue_pickup` plugin dropped it: removed, not bounced.
    Dropped,
}

impl Verdict {
    pub(crate) fn deferred(reason: String, relay: Option<&str>) -> Verdict {
        Verdict::Deferred {
            reason,
            reply: None,
            relay: relay.map(str::to_owned),
        }
    }

    pub(crate) fn failed(status: &str, reason: String, relay: Option<&str>) -> Verdict {
        Verdict::Failed {
            status: status.to_owned(),
            reason,
            reply: None,
            relay: relay.map(str::to_owned),
        }
    }

    /// A server's reply decides: 2xx delivered, 5xx failed, anything else deferred.
    pub(crate) fn from_reply(reply: &Reply, relay: Option<&str>) -> Verdict {
        let relay = relay.map(str::to_owned);
        let reason = format!("host {} said: {reply}", relay.as_deref().unwrap_or("mq"));
        match reply.code() / 100 {
            2 => Verdict::Delivered {
                relay: relay.unwrap_or_else(|| "none".into()),
                reply: reply.clone(),
            },
            5 => {
                let status = reply.enhanced().unwrap_or("5.0.0").to_owned();
                Verdict::Failed {
                    status,
                    reason,
                    reply: Some(reply.clone()),
                    relay,
                }
            }
            _ => Verdict::Deferred {
                reason,
                reply: Some(reply.clone()),
                relay,
            },
        }
    }

    fn reply(&self) -> Option<&Reply> {
        match self {
            Verdict::Delivered { reply, .. } => Some(reply),
            Verdict::Deferred { reply, .. } | Verdict::Failed { reply, .. } => reply.as_ref(),
            Verdict::Postponed(_) | Verdict::Dropped => None,
        }
    }

    fn reason(&self) -> String {
        match self {
            Verdict::Delivered { reply, .. } => reply.to_string(),
            Verdict::Deferred { reason, .. } | Verdict::Failed { reason, .. } => reason.clone(),
            Verdict::Postponed(delay) => format!("delayed by a plugin for {delay:?}"),
            Verdict::Dropped => "dropped by a plugin".into(),
        }
    }
}

/// Where an attempt went and how long its steps took, for its log line and the metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Leg<'a> {
    /// The server that answered, `host[ip]:port`, if one did.
    pub(crate) relay: Option<&'a str>,
    /// Where the entry was going.
    pub(crate) class: Class,
    /// When the job took the entry from the queue.
    pub(crate) taken: SystemTime,
    /// Connection setup (lookups, connect, greeting, EHLO, STARTTLS): zero for a connection
    /// that carried mail before, or none.
    pub(crate) setup: Duration,
    /// When the transaction began (MAIL FROM), if it did.
    pub(crate) sending: Option<Instant>,
    /// The server offered DSN (and was passed NOTIFY): reports past it are its to send.
    pub(crate) next_hop_dsn: bool,
    /// The messages the connection has carried, this one included.
    pub(crate) conn_use: Option<usize>,
}

/// What an attempt leaves for the sender to hear of. The notices of one message's entries
/// taken in one round, at every destination, go out in one DSN ([`notify`], held by
/// [`super::notices`] until the message's jobs are done), as Postfix's bounce(8) does; a
/// failed entry stays in the queue until then, so that the notice is queued before the entry
/// is removed.
#[derive(Debug)]
pub(crate) struct Notice {
    /// The entry: removed after the notice is queued when it failed, left deferred when it is
    /// only delayed.
    entry: Entry,
    action: Action,
    /// The enhanced status code reported.
    status: String,
    /// The host that gave the diagnostic, as Remote-MTA names it.
    remote: Option<String>,
    /// `type; text`.
    diagnostic: String,
    /// Why the entry failed, as the queue records it.
    reason: String,
    /// When it was tried.
    at: SystemTime,
}

#[cfg(test)]
impl Notice {
    /// A failure notice for `entry`, as a `550 5.1.1` at RCPT leaves.
    pub(crate) fn refused(entry: Entry) -> Notice {
        let reply = Reply::new(550, "5.1.1", "no such user");
        let verdict = Verdict::from_reply(&reply, Some("mx.example[192.0.2.1]:25"));
        let reason = verdict.reason();
        notice(
            entry,
            &verdict,
            Action::Failed,
            "5.1.1".into(),
            reason,
            SystemTime::now(),
        )
    }

    /// The entry it reports on.
    pub(crate) fn entry(&self) -> &Entry {
        &self.entry
    }
}

/// Ends the attempt for `entry`: runs `delivery_result`, then acks or defers it; a final
/// failure, and a deferral past `delay_warning_time`, come back as a [`Notice`] to be sent
/// with the others of the same message (a failed entry is removed only then).
pub(crate) async fn settle(
    worker: &Worker,
    ctx: &mut Context,
    delivery: &Delivery,
    entry: Entry,
    body: Option<&Body>,
    verdict: Verdict,
    leg: &Leg<'_>,
) -> Option<Notice> {
    let now = SystemTime::now();
    let latency = now.duration_since(entry.arrived).unwrap_or_default();
    if matches!(verdict, Verdict::Dropped) {
        log(&entry, leg, &verdict, "dropped", now);
        let reason = verdict.reason();
        ack(delivery, &entry, AckResult::Failed { reason }).await;
        return None;
    }
    let attempt = entry.attempts + 1;
    let proposed = match &verdict {
        Verdict::Delivered { .. } => DeliveryState::Delivered,
        Verdict::Postponed(delay) => DeliveryState::Deferred(*delay),
        Verdict::Deferred { .. } => {
            let configured = delivery
                .config
                .retry
                .next_attempt(entry.arrived, attempt, now);
            let next = match &entry.retry {
                // The entry's own rules first (a MailerQ document's).
                Some(rules) => rules.next_attempt(attempt, now, configured),
                None => configured,
            };
            match next {
                Some(next) => DeliveryState::Deferred(next.duration_since(now).unwrap_or_default()),
                None => DeliveryState::Failed,
            }
        }
        Verdict::Failed { .. } | Verdict::Dropped => DeliveryState::Failed,
    };
    let envelope = (entry.sender.clone(), entry.recipient.clone());
    let mut event = DeliveryResult::new(
        entry.queue_id.to_string(),
        attempt,
        envelope,
        verdict.reply().cloned(),
        proposed,
    );
    let engine = worker.engine();
    let _ = engine.run_chain(ctx, &mut event).await;
    // Observers get a copy on a task of their own, which shutdown waits for: the next delivery
    // does not wait for them.
    if let Some(observing) = engine.observe_later(ctx, &event) {
        worker.spawn(observing).detach();
    }
    delivery
        .queue
        .report_attempt(&entry, report(&verdict, leg.relay, now));
    match event.state {
        DeliveryState::Delivered => {
            log(&entry, leg, &verdict, "sent", now);
            let stats = &delivery.stats;
            stats.record(leg.class, AttemptResult::Delivered, latency);
            if requested(&entry).is_some_and(|n| n.success) && !leg.next_hop_dsn {
                // As with a bounce, the report first: a crash repeats it rather than loses it.
                report_success(delivery, &entry, body, &verdict, leg, now).await;
            }
            ack(delivery, &entry, AckResult::Delivered).await;
            None
        }
        DeliveryState::Deferred(delay) => {
            log(&entry, leg, &verdict, "deferred", now);
            let stats = &delivery.stats;
            stats.record(leg.class, AttemptResult::Deferred, latency);
            let until = match warning_time(delivery, &entry) {
                // Tried again when the warning is due, so that the attempt then sends it.
                Some(at) if now < at => (now + delay).min(at),
                _ => now + delay,
            };
            let warning = delay_warning(delivery, &entry, &verdict, now);
            if let Err(error) = delivery.queue.defer(&entry, until, verdict.reason()).await {
                tracing::error!(queue_id = %entry.queue_id, %error, "cannot defer the entry");
            }
            warning.map(|(status, reason)| {
                notice(entry, &verdict, Action::Delayed, status, reason, now)
            })
        }
        _ => {
            let expired = matches!(
                verdict,
                Verdict::Deferred { .. } | Verdict::Postponed(_) | Verdict::Delivered { .. }
            );
            let reason = if expired {
                format!("delivery time expired: {}", verdict.reason())
            } else {
                verdict.reason()
            };
            log(&entry, leg, &verdict, "bounced", now);
            let stats = &delivery.stats;
            stats.record(leg.class, AttemptResult::Bounced, latency);
            let status = match &verdict {
                Verdict::Failed { status, .. } if !expired => status.clone(),
                _ => "4.4.7".to_owned(),
            };
            Some(notice(entry, &verdict, Action::Failed, status, reason, now))
        }
    }
}

/// When the sender of `entry` is to be warned that it is delayed: `delay_warning_time` after
/// its arrival; `None` when warnings are off or the sender is `<>`.
fn warning_time(delivery: &Delivery, entry: &Entry) -> Option<SystemTime> {
    let after = delivery.config.delay_warning_time;
    (!after.is_zero() && !entry.sender.is_null()).then(|| entry.arrived + after)
}

/// The status and reason of the delay notice for an entry deferred `now`, when this is the
/// attempt that sends it: the first one at or past its [`warning_time`].
///
/// The queue's due time records whether it was sent, so that a restart sends it no second
/// time: a deferral before the warning time schedules the next attempt no later than it, so
/// an attempt that was due at or before the warning time and runs at or past it is the first
/// one past it; the attempts after it were due after it.
fn delay_warning(
    delivery: &Delivery,
    entry: &Entry,
    verdict: &Verdict,
    now: SystemTime,
) -> Option<(String, String)> {
    let at = warning_time(delivery, entry)?;
    if now < at || entry.next_attempt > at {
        return None;
    }
    let status = match verdict.reply().and_then(Reply::enhanced) {
        Some(status) if status.starts_with('4') => status.to_owned(),
        _ => "4.0.0".to_owned(),
    };
    Some((status, verdict.reason()))
}

/// The notice of `entry` for `verdict`.
fn notice(
    entry: Entry,
    verdict: &Verdict,
    action: Action,
    status: String,
    reason: String,
    at: SystemTime,
) -> Notice {
    let remote = match verdict {
        // The relay is `host[ip]:port`, as logged; Remote-MTA names the host (RFC 3464 §2.3.5).
        Verdict::Failed { relay, .. } | Verdict::Deferred { relay, .. } => {
            relay.as_deref().map(|relay| {
                relay
                    .split_once('[')
                    .map_or(relay, |(host, _)| host)
                    .to_owned()
            })
        }
        _ => None,
    };
    let diagnostic = verdict.reply().map_or_else(
        || format!("x-mq; {reason}"),
        |reply| format!("smtp; {reply}"),
    );
    Notice {
        entry,
        action,
        status,
        remote,
        diagnostic,
        reason,
        at,
    }
}

/// Sends the sender of each message one notice for all its recipients that failed in
/// `notices` and one for those delayed, each naming them in the sender's order, then removes
/// the failed entries. `body` is the queued message they share (its header block is quoted).
///
/// The failure notice is queued first: a crash between the two then repeats the notice rather
/// than losing it.
pub(crate) async fn notify(delivery: &Delivery, body: &[u8], notices: Vec<Notice>) {
    let mut messages: Vec<Vec<Notice>> = Vec::new();
    for notice in notices {
        let id = notice.entry.queue_id;
        match messages.iter_mut().find(|m| m[0].entry.queue_id == id) {
            Some(message) => message.push(notice),
            None => messages.push(vec![notice]),
        }
    }
    for mut message in messages {
        message.sort_by_key(|notice| notice.entry.recipient_index);
        let (failed, delayed): (Vec<Notice>, Vec<Notice>) = message
            .into_iter()
            .partition(|notice| notice.action == Action::Failed);
        // A recipient's NOTIFY decides which reports it gets; without one, failures and delays.
        let delayed: Vec<Notice> = delayed
            .into_iter()
            .filter(|notice| requested(&notice.entry).is_none_or(|n| n.delay))
            .collect();
        let (reported, unreported): (Vec<Notice>, Vec<Notice>) = failed
            .into_iter()
            .partition(|notice| requested(&notice.entry).is_none_or(|n| n.failure));
        send(delivery, body, &delayed).await;
        let bounced = send(delivery, body, &reported).await;
        for notice in unreported {
            let reason = notice.reason;
            ack(delivery, &notice.entry, AckResult::Failed { reason }).await;
        }
        for notice in reported {
            if bounced {
                let reason = notice.reason;
                ack(delivery, &notice.entry, AckResult::Failed { reason }).await;
            } else {
                keep_unbounced(delivery, &notice.entry).await;
            }
        }
    }
}
/// The attempt as a queue that publishes results records it (MailerQ's `results` entry).
fn report(verdict: &Verdict, relay: Option<&str>, now: SystemTime) -> AttemptReport {
    let relay = match verdict {
        Verdict::Delivered { relay, .. } => Some(relay.as_str()),
        Verdict::Deferred { relay, .. } | Verdict::Failed { relay, .. } => relay.as_deref(),
        Verdict::Postponed(_) | Verdict::Dropped => relay,
    };
    // `host[ip]:port` or `host[ip:port]`, as logged.
    let (mta, to) = match relay.and_then(|relay| relay.split_once('[')) {
        Some((host, rest)) => {
            let address = rest.split(']').next().unwrap_or(rest);
            let ip = address
                .parse::<std::net::SocketAddr>()
                .map_or_else(|_| address.to_owned(), |a| a.ip().to_string());
            (Some(host.to_owned()), Some(ip))
        }
        None => (relay.map(str::to_owned), None),
    };
    let reply = verdict.reply();
    let (state, result) = match (verdict, reply) {
        (Verdict::Delivered { .. }, _) => ("message", "accepted"),
        (Verdict::Postponed(_) | Verdict::Dropped, _) => ("process", "error"),
        (_, Some(_)) => ("message", "error"),
        (_, None) if to.is_none() && mta.is_none() => ("dns", "error"),
        (_, None) => {
            let reason = verdict.reason();
            if reason.contains("timed out") || reason.contains("within") {
                ("connect", "timeout")
            } else {
                ("connect", "lost")
            }
        }
    };
    AttemptReport {
        state,
        result,
        time: now,
        code: reply.map(Reply::code),
        status: reply.and_then(Reply::enhanced).map(str::to_owned),
        description: reply.map_or_else(|| verdict.reason(), |r| r.text().to_owned()),
        mta,
        to,
    }
}

async fn ack(delivery: &Delivery, entry: &Entry, result: AckResult) {
    if let Err(error) = delivery.queue.ack(entry, result).await {
        tracing::error!(queue_id = %entry.queue_id, %error, "cannot remove the entry");
    }
}

/// A failed entry whose bounce the queue did not take stays queued, due again after the retry
/// schedule's next delay: that attempt fails it again and bounces it then. Removing it would lose
/// both the message and the sender's only word of it.
async fn keep_unbounced(delivery: &Delivery, entry: &Entry) {
    let until = SystemTime::now() + delivery.config.retry.delay_after(entry.attempts + 1);
    let error = "failed, but its bounce could not be queued: kept to bounce later".to_owned();
    tracing::warn!(queue_id = %entry.queue_id, recipient = %entry.recipient, "{error}");
    if let Err(error) = delivery.queue.defer(entry, until, error).await {
        tracing::error!(queue_id = %entry.queue_id, %error, "cannot defer the entry");
    }
}

/// Queues one notice for `notices`, entries of one message with one action, to its sender;
/// none for a bounce (null sender) or when there is nothing to report. False only when a
/// notice was due and the queue refused it.
async fn send(delivery: &Delivery, body: &[u8], notices: &[Notice]) -> bool {
    let Some(first) = notices.first() else {
        return true;
    };
    let entry = &first.entry;
    let queue_id = entry.queue_id.to_string();
    // Each recipient's ORCPT, borrowed by its report block.
    let orcpts: Vec<Option<String>> = notices.iter().map(|notice| orcpt(&notice.entry)).collect();
    let failures = notices
        .iter()
        .zip(&orcpts)
        .map(|(notice, orcpt)| FailedRecipient {
            recipient: &notice.entry.recipient,
            status: notice.status.clone(),
            action: notice.action,
            remote_mta: notice.remote.as_deref(),
            diagnostic: Some(notice.diagnostic.clone()),
            last_attempt: notice.at,
            original_recipient: orcpt.as_deref(),
        })
        .collect();
    let report = Bounce {
        reporting_mta: &delivery.hostname,
        queue_id: &queue_id,
        sender: &entry.sender,
        arrival: entry.arrived,
        failures,
        original: body,
        envid: entry.extensions.as_ref().and_then(|e| e.envid.as_deref()),
        return_full: return_full(entry),
        smtputf8: entry.extensions.as_ref().is_some_and(|e| e.smtputf8),
    };
    let Some(notice) = report_message(&report, SystemTime::now(), "mq[bounce]") else {
        return true;
    };
    let what = match first.action {
        Action::Delayed => "sender delay notification",
        _ => "sender non-delivery notification",
    };
    match delivery.queue.enqueue(notice).await {
        Ok(id) => {
            if first.action == Action::Failed {
                let bounces = &delivery.stats.bounces;
                bounces.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tracing::info!(queue_id = %entry.queue_id, bounce = %id, recipients = notices.len(), "{what}");
            true
        }
        Err(error) => {
            tracing::error!(queue_id = %entry.queue_id, %error, "cannot queue the {what}");
            false
        }
    }
}

/// The recipient's `NOTIFY`, when the sender gave one.
fn requested(entry: &Entry) -> Option<Notify> {
    entry
        .extensions
        .as_ref()?
        .recipient(entry.recipient_index)
        .notify
}

/// The recipient's `ORCPT`, when the sender gave one.
fn orcpt(entry: &Entry) -> Option<String> {
    entry
        .extensions
        .as_ref()?
        .recipient(entry.recipient_index)
        .orcpt
}

/// Whether the sender asked for the whole message in reports (`RET=FULL`).
fn return_full(entry: &Entry) -> bool {
    entry.extensions.as_ref().and_then(|e| e.ret) == Some(Ret::Full)
}

/// Queues the success report a `NOTIFY=SUCCESS` recipient asked for (RFC 3461 §5.2.2):
/// `delivered` at the mailbox, `relayed` to a server that does not offer DSN.
async fn report_success(
    delivery: &Delivery,
    entry: &Entry,
    body: Option<&Body>,
    verdict: &Verdict,
    leg: &Leg<'_>,
    now: SystemTime,
) {
    let body = quoted(body).await;
    let local = leg.relay == Some("local");
    let remote = match verdict {
        Verdict::Delivered { relay, .. } if !local => Some(
            relay
                .split_once('[')
                .map_or(relay.as_str(), |(host, _)| host),
        ),
        _ => None,
    };
    let orcpt = orcpt(entry);
    let queue_id = entry.queue_id.to_string();
    let report = Bounce {
        reporting_mta: &delivery.hostname,
        queue_id: &queue_id,
        sender: &entry.sender,
        arrival: entry.arrived,
        failures: vec![FailedRecipient {
            recipient: &entry.recipient,
            status: "2.0.0".into(),
            action: if local {
                Action::Delivered
            } else {
                Action::Relayed
            },
            remote_mta: remote,
            diagnostic: verdict.reply().map(|reply| format!("smtp; {reply}")),
            last_attempt: now,
            original_recipient: orcpt.as_deref(),
        }],
        original: &body,
        envid: entry.extensions.as_ref().and_then(|e| e.envid.as_deref()),
        return_full: return_full(entry),
        smtputf8: entry.extensions.as_ref().is_some_and(|e| e.smtputf8),
    };
    let Some(notice) = report_message(&report, now, "mq[report]") else {
        return;
    };
    match delivery.queue.enqueue(notice).await {
        Ok(id) => {
            tracing::info!(queue_id = %entry.queue_id, report = %id, "sender delivery status notification");
        }
        Err(error) => {
            tracing::error!(queue_id = %entry.queue_id, %error, "cannot queue the success report");
        }
    }
}

/// The queued message a report quotes, read whole; none when it cannot be read (the report
/// goes without it).
pub(crate) async fn quoted(body: Option<&Body>) -> Arc<[u8]> {
    let Some(body) = body else {
        return Arc::default();
    };
    body.load().await.unwrap_or_else(|error| {
        tracing::warn!(%error, "cannot read the queued message for its report");
        Arc::default()
    })
}

/// The delivery status notification `report` as a message from `<>` to its sender, queued
/// as from `client`; none when there is no one to send it to (a bounce's own failure).
fn report_message(report: &Bounce<'_>, now: SystemTime, client: &str) -> Option<NewMessage> {
    let seed = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let (to, message) = dsn::build(report, now, seed)?;
    // An internationalized report goes only where SMTPUTF8 is offered, as its original did.
    let extensions = report.is_global().then(|| {
        Arc::new(Extensions {
            smtputf8: true,
            ..Extensions::default()
        })
    });
    Some(NewMessage {
        sender: Address::null(),
        recipients: vec![to],
        body: message,
        client: client.into(),
        extensions,
    })
}

/// One line per attempt, the fields of Postfix's smtp(8) line: `to=<rcpt>`,
/// `relay=host[ip]:port` (also when the connection failed; `none` when no server was reached,
/// `local` for a Maildir), `conn_use=N` when the connection carried mail before (the Nth
/// message on it), `delay=` from arrival, `delays=a/b/c/d`, `dsn=`, `status=`.
///
/// `delays` splits `delay`: a, in the queue until this attempt took the entry; b, in mq
/// before connecting or sending (hooks, waiting for the connection); c, connection setup
/// (lookups, TCP, greeting, EHLO, STARTTLS; 0 on a connection that carried mail before); d,
/// the transaction.
fn log(entry: &Entry, leg: &Leg<'_>, verdict: &Verdict, status: &str, now: SystemTime) {
    let delay = now.duration_since(entry.arrived).unwrap_or_default();
    let queued = leg
        .taken
        .duration_since(entry.arrived)
        .unwrap_or_default()
        .min(delay);
    let sending = leg.sending.map_or(Duration::ZERO, |at| at.elapsed());
    let before = delay
        .saturating_sub(queued)
        .saturating_sub(leg.setup)
        .saturating_sub(sending);
    let delays = [queued, before, leg.setup, sending]
        .map(logline::seconds)
        .join("/");
    let dsn = match verdict.reply().and_then(Reply::enhanced) {
        Some(code) => code.to_owned(),
        None => match status {
            "sent" => "2.0.0".to_owned(),
            "bounced" => "5.0.0".to_owned(),
            _ => "4.0.0".to_owned(),
        },
    };
    let relay = match verdict {
        Verdict::Delivered { relay, .. } => Some(relay.as_str()),
        Verdict::Deferred { relay, .. } | Verdict::Failed { relay, .. } => {
            relay.as_deref().or(leg.relay)
        }
        Verdict::Postponed(_) | Verdict::Dropped => leg.relay,
    };
    tracing::info!(
        queue_id = %entry.queue_id,
        to = %logline::bracketed(&entry.recipient),
        relay = %relay.unwrap_or("none"),
        // As Postfix, only for a connection that carried mail before.
        conn_use = leg.conn_use.filter(|&uses| uses > 1),
        delay = %logline::seconds(delay),
        %delays,
        %dsn,
        %status,
        detail = verdict.reason(),
        "delivery attempt"
    );
}
