//! The hook events: what each step lets a plugin read and change.
//!
//! Every hook method takes `&mut` its event. Fields a plugin may change are public; facts it may
//! only read have accessors. Events of steps that can be refused have `reject`, which sets the
//! [`Reply`] that ends the chain; the others cannot refuse their step.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::{Address, Context, Control, HookId, Message, Plugin, Reply};

/// The future a hook method returns, as the engine holds it.
pub type HookFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Control> + 'a>>;

/// ESMTP parameters of `MAIL FROM` or `RCPT TO`, such as `SIZE=1000` or `BODY=8BITMIME`, in the
/// order given. A keyword without `=` has no value.
pub type Params = Vec<(String, Option<String>)>;

mod sealed {
    pub trait Sealed {}
}

/// The tie between an event type and its hook: the engine runs the chain of
/// [`Event::HOOK`] for an event of this type.
///
/// Only this crate's events implement it.
pub trait Event: sealed::Sealed + crate::observe::Observable + Sized + 'static {
    /// The hook this event belongs to.
    const HOOK: HookId;

    /// Calls the plugin's method for this hook. Not public API: the engine calls it.
    #[doc(hidden)]
    fn dispatch<'a>(
        plugin: &'a dyn Plugin,
        ctx: &'a mut Context,
        event: &'a mut Self,
    ) -> HookFuture<'a>;

    /// The reply a plugin set, if any.
    fn reply(&self) -> Option<&Reply>;

    /// Takes the reply a plugin set. Not public API: the engine calls it.
    #[doc(hidden)]
    fn take_reply(&mut self) -> Option<Reply>;

    /// The event as lines of text, for transcripts and their diffs. Not public API.
    #[doc(hidden)]
    fn describe(&self, out: &mut Vec<String>);
}

macro_rules! event {
    ($event:ident, $hook:ident, $method:ident, reply, |$this:ident, $out:ident| $describe:block) => {
        event!(@impl $event, $hook, $method, |s| s.reply.as_ref(), |s| s.reply.take(), |$this, $out| $describe);

        impl $event {
            /// Rejects the step with `reply`: the chain ends here and the client gets the
            /// reply, whatever the hook then returns. The `Control` handed back is what the
            /// engine treats a reject as, [`Control::Complete`]: return it
            /// (`return event.reject(reply);`) so that the hook reads as what happens.
            #[must_use = "a reject ends the chain whatever the hook returns: `return event.reject(reply);`"]
            pub fn reject(&mut self, reply: Reply) -> Control {
                self.reply = Some(reply);
                Control::Complete
            }
        }
    };
    ($event:ident, $hook:ident, $method:ident, no_reply, |$this:ident, $out:ident| $describe:block) => {
        event!(@impl $event, $hook, $method, |_s| None, |_s| None, |$this, $out| $describe);
    };
    (@impl $event:ident, $hook:ident, $method:ident, $reply:expr, $take:expr, |$this:ident, $out:ident| $describe:block) => {
        impl sealed::Sealed for $event {}

        impl Event for $event {
            const HOOK: HookId = HookId::$hook;

            #[inline]
            fn dispatch<'a>(plugin: &'a dyn Plugin, ctx: &'a mut Context, event: &'a mut Self) -> HookFuture<'a> {
                plugin.$method(ctx, event)
            }

            #[inline]
            fn reply(&self) -> Option<&Reply> {
                let reply: fn(&Self) -> Option<&Reply> = $reply;
                reply(self)
            }

            #[inline]
            fn take_reply(&mut self) -> Option<Reply> {
                let take: fn(&mut Self) -> Option<Reply> = $take;
                take(self)
            }

            fn describe(&self, $out: &mut Vec<String>) {
                let $this = self;
                $describe
            }
        }
    };
}

fn describe_params(params: &Params, out: &mut Vec<String>) {
    for (key, value) in params {
        match value {
            Some(value) => out.push(format!("param {key}={value}")),
            None => out.push(format!("param {key}")),
        }
    }
}

fn describe_message(message: &Message, out: &mut Vec<String>) {
    for header in message.headers() {
        out.push(format!("{}: {}", header.name(), header.unfolded()));
    }
    let body = String::from_utf8_lossy(message.body());
    let lines: Vec<&str> = body.lines().collect();
    if lines.len() <= 20 {
        out.extend(lines.iter().map(|line| format!("| {line}")));
    } else {
        out.push(format!(
            "| ({} body lines, {} bytes)",
            lines.len(),
            message.body().len()
        ));
    }
}

/// `smtp_in_connect`: a client connected; a plugin may refuse the connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Connect {
    /// The client's address and port.
    pub client: SocketAddr,
    /// The address and port the client connected to.
    pub local: SocketAddr,
    reply: Option<Reply>,
}

impl Connect {
    /// The event for a client at `client` that connected to `local`.
    pub fn new(client: SocketAddr, local: SocketAddr) -> Connect {
        Connect {
            client,
            local,
            reply: None,
        }
    }

    /// The client's IP address.
    pub fn client_ip(&self) -> IpAddr {
        self.client.ip()
    }
}

event!(
    Connect,
    SmtpInConnect,
    smtp_in_connect,
    reply,
    |this, out| {
        out.push(format!("client {}", this.client));
    }
);

/// `smtp_in_helo`: the client said EHLO or HELO; a plugin may refuse it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Helo {
    /// The name the client gave.
    pub name: String,
    /// EHLO (true) or HELO (false).
    pub extended: bool,
    reply: Option<Reply>,
}

impl Helo {
    /// The event for `EHLO name` (`extended`) or `HELO name`.
    pub fn new(name: impl Into<String>, extended: bool) -> Helo {
        Helo {
            name: name.into(),
            extended,
            reply: None,
        }
    }
}

event!(Helo, SmtpInHelo, smtp_in_helo, reply, |this, out| {
    out.push(format!(
        "{} {}",
        if this.extended { "ehlo" } else { "helo" },
        this.name
    ));
});

/// `smtp_in_secure`: STARTTLS completed. Plugins observe; the step cannot be refused.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Secure {
    /// The TLS version, such as `TLSv1.3`.
    pub protocol: String,
    /// The cipher suite's name.
    pub cipher: String,
}

impl Secure {
    /// The event for a session now under `protocol` with `cipher`.
    pub fn new(protocol: impl Into<String>, cipher: impl Into<String>) -> Secure {
        Secure {
            protocol: protocol.into(),
            cipher: cipher.into(),
        }
    }
}

event!(
    Secure,
    SmtpInSecure,
    smtp_in_secure,
    no_reply,
    |this, out| {
        out.push(format!("tls {} {}", this.protocol, this.cipher));
    }
);

/// A password, which `Debug` does not print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What the `smtp_in_authenticate` chain decided about a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthVerdict {
    /// No plugin decided: the server's own credentials table decides.
    Undecided,
    /// A plugin accepted the login.
    Accept,
    /// A plugin refused the login.
    Deny,
}

/// `smtp_in_authenticate`: the client gave AUTH credentials; a plugin may accept or deny them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Authenticate {
    /// The SASL mechanism, such as `PLAIN`.
    pub mechanism: String,
    /// The user name given.
    pub username: String,
    /// The password given.
    pub password: Secret,
    /// The decision; plugins set it, the server acts on it.
    pub verdict: AuthVerdict,
    reply: Option<Reply>,
}

impl Authenticate {
    /// The event for a login as `username` with `password` through `mechanism`.
    pub fn new(
        mechanism: impl Into<String>,
        username: impl Into<String>,
        password: Secret,
    ) -> Authenticate {
        Authenticate {
            mechanism: mechanism.into(),
            username: username.into(),
            password,
            verdict: AuthVerdict::Undecided,
            reply: None,
        }
    }
}

event!(
    Authenticate,
    SmtpInAuthenticate,
    smtp_in_authenticate,
    reply,
    |this, out| {
        out.push(format!("auth {} {}", this.mechanism, this.username));
        out.push(format!("verdict {:?}", this.verdict));
    }
);

/// `smtp_in_mail_from`: `MAIL FROM`; a plugin may rewrite the sender or refuse it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MailFrom {
    /// The reverse path; the null path `<>` for bounces.
    pub sender: Address,
    /// ESMTP parameters.
    pub params: Params,
    reply: Option<Reply>,
}

impl MailFrom {
    /// The event for `MAIL FROM:<sender>` without parameters.
    pub fn new(sender: Address) -> MailFrom {
        MailFrom {
            sender,
            params: Params::new(),
            reply: None,
        }
    }
}

event!(
    MailFrom,
    SmtpInMailFrom,
    smtp_in_mail_from,
    reply,
    |this, out| {
        out.push(format!("sender {}", this.sender));
        describe_params(&this.params, out);
    }
);

/// `smtp_in_rcpt_to`: one `RCPT TO`; a plugin may rewrite or expand the recipient, mark it
/// local, or refuse it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RcptTo {
    sender: Address,
    /// What this RCPT adds to the envelope: the address given, unless a plugin rewrote it,
    /// expanded it into several (push more) or dropped it (clear the list).
    pub recipients: Vec<Address>,
    /// ESMTP parameters.
    pub params: Params,
    /// Whether mq delivers this recipient itself. The server sets it for local domains; a plugin
    /// that sets it makes the server accept the recipient as local, whatever the domain.
    pub local: bool,
    reply: Option<Reply>,
}

impl RcptTo {
    /// The event for `RCPT TO:<recipient>` in a transaction from `sender`.
    pub fn new(sender: Address, recipient: Address, local: bool) -> RcptTo {
        RcptTo {
            sender,
            recipients: vec![recipient],
            params: Params::new(),
            local,
            reply: None,
        }
    }

    /// The transaction's sender, as `MAIL FROM` left it.
    pub fn sender(&self) -> &Address {
        &self.sender
    }
}

event!(RcptTo, SmtpInRcptTo, smtp_in_rcpt_to, reply, |this, out| {
    for recipient in &this.recipients {
        out.push(format!("recipient {recipient}"));
    }
    if this.local {
        out.push("local".to_owned());
    }
    describe_params(&this.params, out);
});

/// The envelope of a transaction: sender and recipients.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// The reverse path.
    pub sender: Address,
    /// The forward paths, after the `smtp_in_rcpt_to` chain.
    pub recipients: Vec<Address>,
}

/// `smtp_in_data`: the whole message arrived and is not yet queued; a plugin may change its
/// headers and body, or refuse it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Data {
    envelope: Envelope,
    /// The message as received, with the `Received` field the server added.
    pub message: Message,
    reply: Option<Reply>,
}

impl Data {
    /// The event for `message` sent in `envelope`.
    pub fn new(envelope: Envelope, message: Message) -> Data {
        Data {
            envelope,
            message,
            reply: None,
        }
    }

    /// The transaction's envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The envelope and the message, once the chain is done with them.
    pub fn into_parts(self) -> (Envelope, Message) {
        (self.envelope, self.message)
    }
}

event!(Data, SmtpInData, smtp_in_data, reply, |this, out| {
    describe_message(&this.message, out);
});

/// `smtp_in_message`: once per recipient before it is queued; a plugin may change this
/// recipient's copy or refuse this recipient. Where the copy goes is delivery's choice, by its
/// domain (`[delivery.routes]`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MessageCopy {
    sender: Address,
    /// The recipient this copy is for.
    pub recipient: Address,
    /// This recipient's copy of the message.
    pub message: Message,
    reply: Option<Reply>,
}

impl MessageCopy {
    /// The event for `recipient`'s copy of `message` from `sender`.
    pub fn new(sender: Address, recipient: Address, message: Message) -> MessageCopy {
        MessageCopy {
            sender,
            recipient,
            message,
            reply: None,
        }
    }

    /// The envelope sender.
    pub fn sender(&self) -> &Address {
        &self.sender
    }
}

event!(
    MessageCopy,
    SmtpInMessage,
    smtp_in_message,
    reply,
    |this, out| {
        out.push(format!("recipient {}", this.recipient));
        describe_message(&this.message, out);
    }
);

/// `smtp_in_close`: the connection closed. Plugins observe.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Close {
    /// How many messages the session queued.
    pub messages: u32,
}

impl Close {
    /// The event for a session that queued `messages` messages.
    pub fn new(messages: u32) -> Close {
        Close { messages }
    }
}

event!(Close, SmtpInClose, smtp_in_close, no_reply, |this, out| {
    out.push(format!("messages {}", this.messages));
});

/// What becomes of a queue entry after `queue_pickup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PickupAction {
    /// Deliver it now.
    Deliver,
    /// Put it back, due again after this long.
    Delay(Duration),
    /// Remove it without delivering or bouncing.
    Drop,
}

/// `queue_pickup`: an entry was taken from the queue for delivery; a plugin may rewrite it,
/// delay it, drop it, or fail it with a reply (which bounces it).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Pickup {
    queue_id: String,
    attempt: u32,
    /// The envelope sender.
    pub sender: Address,
    /// The recipient of this entry.
    pub recipient: Address,
    /// What to do with the entry.
    pub action: PickupAction,
    reply: Option<Reply>,
}

impl Pickup {
    /// The event for entry `queue_id` on its `attempt`th delivery attempt (the first is 1).
    pub fn new(
        queue_id: impl Into<String>,
        attempt: u32,
        sender: Address,
        recipient: Address,
    ) -> Pickup {
        Pickup {
            queue_id: queue_id.into(),
            attempt,
            sender,
            recipient,
            action: PickupAction::Deliver,
            reply: None,
        }
    }

    /// The entry's queue id.
    pub fn queue_id(&self) -> &str {
        &self.queue_id
    }

    /// Which attempt this is; the first is 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

event!(Pickup, QueuePickup, queue_pickup, reply, |this, out| {
    out.push(format!("entry {} attempt {}", this.queue_id, this.attempt));
    out.push(format!("sender {}", this.sender));
    out.push(format!("recipient {}", this.recipient));
    out.push(format!("action {:?}", this.action));
});

/// `smtp_out_connect`: connected to a remote server; a plugin may observe or abort the attempt.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutConnect {
    /// The host name connected to (the MX or smarthost name).
    pub host: String,
    /// Its address.
    pub address: SocketAddr,
    reply: Option<Reply>,
}

impl OutConnect {
    /// The event for a connection to `host` at `address`.
    pub fn new(host: impl Into<String>, address: SocketAddr) -> OutConnect {
        OutConnect {
            host: host.into(),
            address,
            reply: None,
        }
    }
}

event!(
    OutConnect,
    SmtpOutConnect,
    smtp_out_connect,
    reply,
    |this, out| {
        out.push(format!("connect {} [{}]", this.host, this.address));
    }
);

/// `smtp_out_mail_from`: about to send `MAIL FROM`; a plugin may change what goes on the wire.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutMailFrom {
    /// The reverse path to send.
    pub sender: Address,
    /// ESMTP parameters to send.
    pub params: Params,
    reply: Option<Reply>,
}

impl OutMailFrom {
    /// The event for sending `MAIL FROM:<sender>`.
    pub fn new(sender: Address) -> OutMailFrom {
        OutMailFrom {
            sender,
            params: Params::new(),
            reply: None,
        }
    }
}

event!(
    OutMailFrom,
    SmtpOutMailFrom,
    smtp_out_mail_from,
    reply,
    |this, out| {
        out.push(format!("sender {}", this.sender));
        describe_params(&this.params, out);
    }
);

/// `smtp_out_rcpt_to`: about to send one `RCPT TO`; a plugin may change what goes on the wire.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutRcptTo {
    /// The forward path to send.
    pub recipient: Address,
    /// ESMTP parameters to send.
    pub params: Params,
    reply: Option<Reply>,
}

impl OutRcptTo {
    /// The event for sending `RCPT TO:<recipient>`.
    pub fn new(recipient: Address) -> OutRcptTo {
        OutRcptTo {
            recipient,
            params: Params::new(),
            reply: None,
        }
    }
}

event!(
    OutRcptTo,
    SmtpOutRcptTo,
    smtp_out_rcpt_to,
    reply,
    |this, out| {
        out.push(format!("recipient {}", this.recipient));
        describe_params(&this.params, out);
    }
);

/// `smtp_out_data`: about to send the message; a plugin may replace or sign the MIME for this
/// attempt only (the queued copy is not changed).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutData {
    /// The message to send.
    pub message: Message,
    reply: Option<Reply>,
}

impl OutData {
    /// The event for sending `message`.
    pub fn new(message: Message) -> OutData {
        OutData {
            message,
            reply: None,
        }
    }
}

event!(OutData, SmtpOutData, smtp_out_data, reply, |this, out| {
    describe_message(&this.message, out);
});

/// `smtp_out_sent`: the message went out and the final reply is not read yet. Plugins observe.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutSent {
    /// The host the message went to.
    pub host: String,
    /// How many bytes were sent.
    pub bytes: u64,
}

impl OutSent {
    /// The event for `bytes` sent to `host`.
    pub fn new(host: impl Into<String>, bytes: u64) -> OutSent {
        OutSent {
            host: host.into(),
            bytes,
        }
    }
}

event!(
    OutSent,
    SmtpOutSent,
    smtp_out_sent,
    no_reply,
    |this, out| {
        out.push(format!("sent {} bytes to {}", this.bytes, this.host));
    }
);

/// How a delivery attempt ended, and so what happens to the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Delivered: the entry is removed.
    Delivered,
    /// Deferred: the entry is tried again after this long.
    Deferred(Duration),
    /// Failed for good: the entry is removed and the sender gets a bounce.
    Failed,
}

/// `delivery_result`: an attempt ended; a plugin may change what happens next.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryResult {
    queue_id: String,
    attempt: u32,
    sender: Address,
    recipient: Address,
    remote_reply: Option<Reply>,
    /// What happens to the entry; a plugin may change the retry decision.
    pub state: DeliveryState,
}

impl DeliveryResult {
    /// The event for attempt `attempt` of entry `queue_id`.
    pub fn new(
        queue_id: impl Into<String>,
        attempt: u32,
        envelope: (Address, Address),
        remote_reply: Option<Reply>,
        state: DeliveryState,
    ) -> DeliveryResult {
        let (sender, recipient) = envelope;
        DeliveryResult {
            queue_id: queue_id.into(),
            attempt,
            sender,
            recipient,
            remote_reply,
            state,
        }
    }

    /// The entry's queue id.
    pub fn queue_id(&self) -> &str {
        &self.queue_id
    }

    /// Which attempt this was; the first is 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The envelope sender.
    pub fn sender(&self) -> &Address {
        &self.sender
    }

    /// The recipient.
    pub fn recipient(&self) -> &Address {
        &self.recipient
    }

    /// What the remote server answered, if it answered.
    pub fn remote_reply(&self) -> Option<&Reply> {
        self.remote_reply.as_ref()
    }
}

event!(
    DeliveryResult,
    DeliveryResult,
    delivery_result,
    no_reply,
    |this, out| {
        out.push(format!("entry {} attempt {}", this.queue_id, this.attempt));
        out.push(format!("recipient {}", this.recipient));
        if let Some(reply) = &this.remote_reply {
            out.push(format!("remote {reply}"));
        }
        out.push(format!("state {:?}", this.state));
    }
);
