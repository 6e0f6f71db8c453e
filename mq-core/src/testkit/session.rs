//! A scripted SMTP dialogue through the plugins' hooks, answered as mq's server answers.

use std::net::SocketAddr;
use std::time::Duration;

use mq_plugin_api::{
    Address, AuthVerdict, Authenticate, Close, Connect, Context, Data, Envelope, Event, Helo,
    HookId, MailFrom, Message, MessageCopy, Named, Plugin, PluginHooks, RcptTo, Reply, Secret,
    Secure,
};

use super::Harness;
use super::transcript::{Queued, Transcript, refusal};
use crate::chain::Outcome;
use crate::config::FailurePolicy;
use crate::engine::Engine;
use crate::smtp::RecipientSet;

/// A scripted SMTP dialogue: add plugins, then commands, then [`run`](Session::run) it.
///
/// The dialogue goes through the hooks as a real session does (connect, EHLO, STARTTLS, AUTH,
/// MAIL, each RCPT, DATA, once per recipient, close) with the server's state rules (EHLO first,
/// MAIL before RCPT, ...), and answers with the replies mq's server gives. Nothing touches the
/// network or the queue: what would be queued is in [`Transcript::queued`].
#[derive(Debug)]
pub struct Session {
    harness: Harness,
    client: SocketAddr,
    relay_network: bool,
    local_domains: Vec<String>,
    steps: Vec<Step>,
}

#[derive(Debug)]
enum Step {
    Hello { name: String, extended: bool },
    StartTls,
    Auth { user: String, password: String },
    MailFrom(String),
    RcptTo(String),
    Data(Vec<u8>),
    Rset,
    Quit,
}

/// The server side's state while the script runs.
struct State<'a> {
    engine: &'a Engine,
    ctx: &'a mut Context,
    transcript: &'a mut Transcript,
    greeted: bool,
    secure: bool,
    open: bool,
    sender: Option<Address>,
    /// Each once, as the server keeps them.
    recipients: RecipientSet,
    queued: u32,
}

const HOSTNAME: &str = "mq.test";

impl Session {
    pub(crate) fn new(harness: Harness) -> Session {
        Session {
            harness,
            client: SocketAddr::from(([192, 0, 2, 1], 40_000)),
            relay_network: false,
            local_domains: vec!["localhost".to_owned()],
            steps: Vec::new(),
        }
    }

    /// Adds a plugin instance under its registered name.
    pub fn plugin<P: Plugin + PluginHooks + Named>(mut self, plugin: P) -> Session {
        self.harness = self.harness.plugin(plugin);
        self
    }

    /// Adds a plugin instance under `name`.
    pub fn plugin_named<P: Plugin + PluginHooks>(
        mut self,
        name: &'static str,
        plugin: P,
    ) -> Session {
        self.harness = self.harness.plugin_named(name, plugin);
        self
    }

    /// Adds the registered plugin `name` built from the TOML of its section; see
    /// [`Harness::registered`].
    pub fn registered(mut self, name: &str, config: &str) -> Session {
        self.harness = self.harness.registered(name, config);
        self
    }

    /// Gives the plugins a resolver for `Context::dns`; see [`Harness::dns`].
    pub fn dns(mut self, dns: std::rc::Rc<dyn mq_plugin_api::Dns>) -> Session {
        self.harness = self.harness.dns(dns);
        self
    }

    /// Sets the deadline of plugins added after this call.
    pub fn timeout(mut self, timeout: Duration) -> Session {
        self.harness = self.harness.timeout(timeout);
        self
    }

    /// Sets the failure policy of plugins added after this call.
    pub fn on_error(mut self, policy: FailurePolicy) -> Session {
        self.harness = self.harness.on_error(policy);
        self
    }

    /// The client's address (default `192.0.2.1:40000`).
    pub fn client(mut self, client: SocketAddr) -> Session {
        self.client = client;
        self
    }

    /// Puts the client in the relay networks (`Context::session().relay_network`), as a
    /// trusted submission client is.
    pub fn relay_network(mut self) -> Session {
        self.relay_network = true;
        self
    }

    /// Adds a domain whose recipients are local (default: `localhost`).
    pub fn local_domain(mut self, domain: &str) -> Session {
        self.local_domains.push(domain.to_owned());
        self
    }

    /// `EHLO name`.
    pub fn ehlo(self, name: &str) -> Session {
        self.step(Step::Hello {
            name: name.to_owned(),
            extended: true,
        })
    }

    /// `HELO name`.
    pub fn helo(self, name: &str) -> Session {
        self.step(Step::Hello {
            name: name.to_owned(),
            extended: false,
        })
    }

    /// `STARTTLS`, with a handshake that succeeds.
    pub fn starttls(self) -> Session {
        self.step(Step::StartTls)
    }

    /// `AUTH PLAIN` with these credentials. The testkit has no credentials table: the login
    /// succeeds only if a plugin at `smtp_in_authenticate` accepts it.
    pub fn auth(self, user: &str, password: &str) -> Session {
        self.step(Step::Auth {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// `MAIL FROM:<sender>`; `""` for the null sender.
    pub fn mail_from(self, sender: &str) -> Session {
        self.step(Step::MailFrom(sender.to_owned()))
    }

    /// `RCPT TO:<recipient>`.
    pub fn rcpt_to(self, recipient: &str) -> Session {
        self.step(Step::RcptTo(recipient.to_owned()))
    }

    /// `DATA` and the message.
    pub fn data(self, message: impl AsRef<[u8]>) -> Session {
        self.step(Step::Data(message.as_ref().to_vec()))
    }

    /// `RSET`.
    pub fn rset(self) -> Session {
        self.step(Step::Rset)
    }

    /// `QUIT`.
    pub fn quit(self) -> Session {
        self.step(Step::Quit)
    }

    fn step(mut self, step: Step) -> Session {
        self.steps.push(step);
        self
    }

    /// Runs the dialogue and returns its transcript.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    pub fn run(self) -> Transcript {
        let Session {
            harness,
            client,
            relay_network,
            local_domains,
            steps,
        } = self;
        let mut transcript = Transcript::default();
        harness.block_on(async |engine, ctx| {
            let mut state = State {
                engine,
                ctx,
                transcript: &mut transcript,
                greeted: false,
                secure: false,
                open: true,
                sender: None,
                recipients: RecipientSet::default(),
                queued: 0,
            };
            let facts = state.ctx.session_mut();
            facts.client = Some(client);
            facts.relay_network = relay_network;
            state.connect(client).await;
            for (index, step) in steps.iter().enumerate() {
                if !state.open {
                    state.transcript.note(format!(
                        "(connection closed; {} commands not sent)",
                        steps.len() - index
                    ));
                    break;
                }
                state.step(step, &local_domains).await;
            }
            state.close().await;
        });
        transcript
    }
}

impl State<'_> {
    async fn chain<E: Event>(&mut self, event: &mut E) -> Outcome {
        self.transcript.run(self.engine, self.ctx, event).await
    }

    fn has_chain(&self, hook: HookId) -> bool {
        self.engine.chain(hook).next().is_some()
    }

    async fn connect(&mut self, client: SocketAddr) {
        if !self.has_chain(HookId::SmtpInConnect) {
            return;
        }
        self.transcript.client(format!("(connects from {client})"));
        let local = SocketAddr::from(([192, 0, 2, 25], 25));
        let outcome = self.chain(&mut Connect::new(client, local)).await;
        match outcome {
            Outcome::Proceed => self.transcript.server(format!("220 {HOSTNAME} ESMTP mq")),
            Outcome::Rejected { reply, .. } => self.refuse_connection(&reply),
            Outcome::Failed(_) => self.refuse_connection(&Reply::new(
                421,
                "4.3.0",
                format!("{HOSTNAME} Error: try again later"),
            )),
        }
    }

    fn refuse_connection(&mut self, reply: &Reply) {
        self.transcript.server(reply);
        self.open = false;
    }

    async fn close(&mut self) {
        if self.has_chain(HookId::SmtpInClose) {
            self.transcript.note("(connection closed)");
            let _ = self.chain(&mut Close::new(self.queued)).await;
        }
    }

    async fn step(&mut self, step: &Step, local_domains: &[String]) {
        match step {
            Step::Hello { name, extended } => self.hello(name, *extended).await,
            Step::StartTls => self.starttls().await,
            Step::Auth { user, password } => self.auth(user, password).await,
            Step::MailFrom(sender) => self.mail_from(sender).await,
            Step::RcptTo(recipient) => self.rcpt_to(recipient, local_domains).await,
            Step::Data(bytes) => self.data(bytes).await,
            Step::Rset => {
                self.transcript.client("RSET");
                self.reset();
                self.transcript.server("250 2.0.0 Ok");
            }
            Step::Quit => {
                self.transcript.client("QUIT");
                self.transcript.server("221 2.0.0 Bye");
                self.open = false;
            }
        }
    }

    fn reset(&mut self) {
        self.sender = None;
        self.recipients.clear();
        self.ctx.end_message();
    }

    async fn hello(&mut self, name: &str, extended: bool) {
        self.transcript
            .client(format!("{} {name}", if extended { "EHLO" } else { "HELO" }));
        if !crate::smtp::is_valid_helo(name) {
            let verb = if extended { "EHLO" } else { "HELO" };
            return self
                .transcript
                .server(format!("501 5.5.2 Syntax: {verb} hostname"));
        }
        let outcome = self.chain(&mut Helo::new(name, extended)).await;
        if let Some(reply) = refusal(&outcome) {
            return self.transcript.server(reply);
        }
        self.reset();
        self.greeted = true;
        self.ctx.session_mut().helo = Some(name.to_owned());
        self.transcript.server(format!("250 {HOSTNAME}"));
    }

    async fn starttls(&mut self) {
        self.transcript.client("STARTTLS");
        if !self.greeted {
            return self
                .transcript
                .server("503 5.5.1 Error: send HELO/EHLO first");
        }
        self.transcript.server("220 2.0.0 Ready to start TLS");
        let _ = self
            .chain(&mut Secure::new("TLSv1.3", "TLS13_AES_128_GCM_SHA256"))
            .await;
        // RFC 3207: the client starts over with EHLO on the secured connection.
        self.reset();
        self.greeted = false;
        self.secure = true;
        let facts = self.ctx.session_mut();
        facts.tls = Some("TLSv1.3".to_owned());
        facts.helo = None;
        facts.user = None;
    }

    async fn auth(&mut self, user: &str, password: &str) {
        self.transcript.client("AUTH PLAIN (credentials)");
        if !self.greeted {
            return self
                .transcript
                .server("503 5.5.1 Error: send HELO/EHLO first");
        }
        if !self.secure {
            return self
                .transcript
                .server("530 5.7.0 Must issue a STARTTLS command first");
        }
        let mut event = Authenticate::new("PLAIN", user, Secret::new(password));
        let outcome = self.chain(&mut event).await;
        let reply = refusal(&outcome).unwrap_or_else(|| match event.verdict {
            AuthVerdict::Accept => Reply::new(235, "2.7.0", "Authentication successful"),
            _ => Reply::new(535, "5.7.8", "Error: authentication failed"),
        });
        if reply.code() == 235 {
            self.ctx.session_mut().user = Some(event.username);
        }
        self.transcript.server(reply);
    }

    async fn mail_from(&mut self, sender: &str) {
        self.transcript.client(format!("MAIL FROM:<{sender}>"));
        if !self.greeted {
            return self
                .transcript
                .server("503 5.5.1 Error: send HELO/EHLO first");
        }
        if self.sender.is_some() {
            return self
                .transcript
                .server("503 5.5.1 Error: nested MAIL command");
        }
        let Ok(address) = sender.parse::<Address>() else {
            return self
                .transcript
                .server("501 5.1.7 Bad sender address syntax");
        };
        let mut event = MailFrom::new(address);
        let outcome = self.chain(&mut event).await;
        if let Some(reply) = refusal(&outcome) {
            return self.transcript.server(reply);
        }
        self.sender = Some(event.sender);
        self.transcript.server("250 2.1.0 Ok");
    }

    async fn rcpt_to(&mut self, recipient: &str, local_domains: &[String]) {
        self.transcript.client(format!("RCPT TO:<{recipient}>"));
        let Some(sender) = self.sender.clone() else {
            return self.transcript.server("503 5.5.1 Error: need MAIL command");
        };
        let Ok(address) = recipient.parse::<Address>() else {
            return self
                .transcript
                .server("501 5.1.3 Bad recipient address syntax");
        };
        let local = local_domains.iter().any(|domain| address.domain_is(domain));
        let mut event = RcptTo::new(sender, address, local);
        let outcome = self.chain(&mut event).await;
        if let Some(reply) = refusal(&outcome) {
            return self.transcript.server(reply);
        }
        self.recipients
            .extend(std::mem::take(&mut event.recipients));
        self.transcript.server("250 2.1.5 Ok");
    }

    async fn data(&mut self, bytes: &[u8]) {
        self.transcript.client("DATA");
        let Some(sender) = self.sender.clone() else {
            return self.transcript.server("503 5.5.1 Error: need MAIL command");
        };
        if self.recipients.is_empty() {
            return self
                .transcript
                .server("554 5.5.1 Error: no valid recipients");
        }
        self.transcript
            .server("354 End data with <CR><LF>.<CR><LF>");
        self.transcript
            .client(format!("({} bytes of message)", bytes.len()));
        let envelope = Envelope {
            sender: sender.clone(),
            recipients: self.recipients.take(),
        };
        let mut event = Data::new(envelope.clone(), Message::parse(bytes));
        let outcome = self.chain(&mut event).await;
        let reply = match refusal(&outcome) {
            Some(reply) => reply,
            None => {
                self.queue(&sender, &envelope.recipients, &event.message)
                    .await
            }
        };
        self.transcript.server(reply);
        self.reset();
    }

    /// Runs `smtp_in_message` for each recipient and queues the copies it lets through.
    async fn queue(
        &mut self,
        sender: &Address,
        recipients: &[Address],
        message: &Message,
    ) -> Reply {
        let queue_id = format!("QUEUE{}", self.queued + 1);
        let mut refused = None;
        let mut accepted = 0;
        for recipient in recipients {
            let mut copy = MessageCopy::new(sender.clone(), recipient.clone(), message.clone());
            let outcome = self.chain(&mut copy).await;
            if let Some(reply) = refusal(&outcome) {
                self.transcript
                    .note(format!("(not queued for {recipient}: {reply})"));
                refused = Some(reply);
                continue;
            }
            accepted += 1;
            let (queue_id, sender) = (queue_id.clone(), sender.clone());
            self.transcript.queue(Queued {
                queue_id,
                sender,
                recipient: copy.recipient,
                message: copy.message,
            });
        }
        match refused {
            Some(reply) if accepted == 0 => reply,
            _ => {
                self.queued += 1;
                Reply::new(250, "2.0.0", format!("Ok: queued as {queue_id}"))
            }
        }
    }
}
