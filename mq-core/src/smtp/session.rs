//! One SMTP session: the RFC 5321 state machine, each step running its hook chain.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mq_plugin_api::{
    Address, AuthVerdict, Authenticate, Close, Connect, Data, Envelope, Event, Helo, HookId, Host,
    MailFrom, Message, MessageCopy, Params, RcptTo, Reply, Secret, Secure,
};

use super::auth::{self, AuthError};
use super::auth_guard;
use super::codec::{Command, parse_command};
use super::conn::{Conn, ConnError, Line, SessionStream};
use super::counts::{self, Counts};
use super::data::DataError;
use super::esmtp::{self, MailParams, RcptParams};
use super::received::{self, Trace};
use super::recipient_set::RecipientSet;
use super::recipients;
use super::server::Shared;
use crate::chain::Outcome;
use crate::logline::{self, Client};
use crate::queue::{Extensions, NewMessage, Origin};
use crate::runtime::Worker;

/// Runs a session on an accepted connection until the client quits or is disconnected. The
/// stream is a TCP connection, or the testkit's in-memory one.
pub(crate) async fn run<S: SessionStream>(
    worker: Worker,
    stream: S,
    client: SocketAddr,
    local: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut conn = Conn::new(
        stream,
        shared.config.command_timeout,
        worker.deadlines().clone(),
    );
    let _slot = match shared.admit(client.ip()) {
        Ok(slot) => slot,
        Err(reply) => {
            // As Postfix's smtpd logs a client its connection limits turn away.
            tracing::info!("connect from {}", Client(client));
            tracing::warn!(reply = %reply, "connection limit exceeded by {}", Client(client));
            shared.stats.reply(reply.code());
            conn.reply(&reply);
            conn.close().await;
            tracing::info!(commands = 0, "disconnect from {}", Client(client));
            return;
        }
    };
    let mut host = worker.host();
    let facts = host.session_mut();
    facts.client = Some(client);
    facts.local = Some(local);
    facts.relay_network = shared.may_relay(client.ip());
    let aborting = worker.clone();
    let mut session = Session {
        worker,
        shared,
        host,
        conn: Some(conn),
        client,
        state: State::default(),
        counts: Counts::default(),
        last_reply: 0,
    };
    // Past the shutdown timeout, a session still open (a DATA transfer that will not end) is
    // closed where it is.
    let aborted = smol::future::or(
        async {
            session.serve(local).await;
            false
        },
        async {
            aborting.aborting().await;
            true
        },
    );
    if aborted.await {
        session.abort().await;
    }
}

/// What the session knows so far.
#[derive(Default)]
struct State {
    helo: Option<String>,
    extended: bool,
    tls: bool,
    user: Option<String>,
    sender: Option<Address>,
    /// MAIL's SMTPUTF8 and DSN parameters.
    mail: MailParams,
    /// RCPT's DSN parameters, for each recipient that was given any (an alias's expansion
    /// takes those of the RCPT that named it).
    rcpt_params: Vec<(Address, RcptParams)>,
    /// Each once: a repeated RCPT (or an alias met twice) is answered 250 and adds nothing.
    recipients: RecipientSet,
    /// RCPT commands accepted in this transaction: the recipient limit counts these, as
    /// Postfix does; what a plugin expands one into is the plugin's to bound.
    accepted_rcpts: usize,
    errors: u32,
    queued: u32,
}

struct Session<S: SessionStream> {
    worker: Worker,
    shared: Arc<Shared>,
    host: Host,
    /// Taken only to close it at the end.
    conn: Option<Conn<S>>,
    client: SocketAddr,
    state: State,
    /// The commands given so far, for the `disconnect` line.
    counts: Counts,
    /// The code of the last reply sent: whether the command being served succeeded.
    last_reply: u16,
}

/// Whether the session goes on after a command.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

impl<S: SessionStream> Session<S> {
    fn conn(&mut self) -> &mut Conn<S> {
        self.conn
            .as_mut()
            .expect("the connection is taken only at the end")
    }

    fn hostname(&self) -> &str {
        &self.shared.config.hostname
    }

    fn send(&mut self, reply: &Reply) {
        self.last_reply = reply.code();
        self.shared.stats.reply(reply.code());
        self.conn().reply(reply);
    }

    fn ok(&mut self, code: u16, enhanced: &str, text: &str) {
        self.send(&Reply::new(code, enhanced, text));
    }

    /// A client error: counted, and past the limit the session ends.
    fn error(&mut self, reply: &Reply) -> Flow {
        self.send(reply);
        self.state.errors += 1;
        if self.state.errors >= self.shared.config.max_errors {
            let text = format!("{} Error: too many errors", self.hostname());
            self.send(&Reply::new(421, "4.7.0", text));
            return Flow::Quit;
        }
        Flow::Continue
    }

    async fn chain<E: Event>(&mut self, event: &mut E) -> Outcome {
        let engine = self.worker.engine();
        #[cfg(feature = "testkit")]
        if let Some(transcript) = self.worker.transcript() {
            return transcript.run(&engine, self.host.context(), event).await;
        }
        engine.run(self.host.context(), event).await
    }

    /// The reply for a refused step: the plugin's, or the failure policy's. A plugin reply that
    /// is no refusal (not 4xx or 5xx) is answered as a local problem.
    fn refusal(outcome: Outcome) -> Option<Reply> {
        match outcome {
            Outcome::Proceed => None,
            Outcome::Rejected { reply, .. } if reply.code() >= 400 && reply.code() < 600 => {
                Some(reply)
            }
            Outcome::Rejected { plugin, reply } => {
                tracing::warn!(plugin, %reply, "plugin rejected with a reply that is not 4xx or 5xx");
                Some(Reply::tempfail(
                    "Error: temporary local problem, try again later",
                ))
            }
            Outcome::Failed(failure) => Some(failure.reply()),
        }
    }

    /// Closes the connection with 421, whatever the session was doing.
    async fn abort(&mut self) {
        // Taken already: the session was closing anyway.
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        let text = format!("{} Error: service shutting down", self.hostname());
        self.shared.stats.reply(421);
        conn.reply(&Reply::new(421, "4.3.2", text));
        tracing::info!(client = %Client(self.client), "closed at the shutdown timeout");
        conn.close().await;
        self.log_disconnect();
    }

    /// Postfix's `disconnect from host[ip]` line, with the count of each command given.
    fn log_disconnect(&self) {
        let count = |name| self.counts.get(name).map(tracing::field::display);
        tracing::info!(
            helo = count("helo"),
            ehlo = count("ehlo"),
            starttls = count("starttls"),
            auth = count("auth"),
            mail = count("mail"),
            rcpt = count("rcpt"),
            data = count("data"),
            rset = count("rset"),
            noop = count("noop"),
            vrfy = count("vrfy"),
            expn = count("expn"),
            help = count("help"),
            quit = count("quit"),
            unknown = count("unknown"),
            commands = %self.counts.commands(),
            "disconnect from {}",
            Client(self.client)
        );
    }

    async fn serve(&mut self, local: SocketAddr) {
        tracing::info!("connect from {}", Client(self.client));
        if self.connect(local).await {
            self.commands().await;
        }
        let messages = self.state.queued;
        // The last replies (QUIT's) go out before the close chain runs.
        if let Some(conn) = self.conn.as_mut() {
            let _ = conn.flush().await;
        }
        let _ = self.chain(&mut Close::new(messages)).await;
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
        self.log_disconnect();
    }

    /// The connect chain and the greeting; false if the connection is refused.
    async fn connect(&mut self, local: SocketAddr) -> bool {
        let outcome = self.chain(&mut Connect::new(self.client, local)).await;
        let greeting = match outcome {
            Outcome::Proceed => Reply::new(220, "", format!("{} ESMTP mq", self.hostname())),
            Outcome::Failed(_) => Reply::new(
                421,
                "4.3.0",
                format!("{} Error: try again later", self.hostname()),
            ),
            refused @ Outcome::Rejected { .. } => {
                Self::refusal(refused).unwrap_or_else(|| Reply::tempfail(""))
            }
        };
        let accepted = greeting.code() == 220;
        if !accepted {
            tracing::info!(client = %Client(self.client), reply = %greeting, "connection refused");
        }
        self.send(&greeting);
        accepted
    }

    async fn commands(&mut self) {
        let (max, timeout) = (
            self.shared.config.max_line_length,
            self.shared.config.command_timeout,
        );
        let worker = self.worker.clone();
        loop {
            // Shutdown ends a session that waits for a command; one in the middle of a command
            // (DATA above all) finishes it first.
            let read = smol::future::or(
                async { Some(self.conn().read_line(max, timeout).await) },
                async {
                    worker.stopping().await;
                    None
                },
            );
            // A command that arrives once shutdown began gets 421 and nothing else, even when
            // it was already there to read.
            let Some(read) = read.await.filter(|_| !worker.is_stopping()) else {
                let text = format!("{} Error: service shutting down", self.hostname());
                return self.send(&Reply::new(421, "4.3.2", text));
            };
            let line = match read {
                Ok(Line::Complete(line)) => line,
                Ok(Line::TooLong) => {
                    let flow = self.error(&Reply::new(500, "5.5.0", "Error: line too long"));
                    // A command like any other in the `disconnect` counts, a refused one.
                    self.counts.count("unknown", 500);
                    match flow {
                        Flow::Continue => continue,
                        Flow::Quit => return,
                    }
                }
                Err(ConnError::TimedOut) => {
                    let text = format!("{} Error: timeout exceeded", self.hostname());
                    return self.send(&Reply::new(421, "4.4.2", text));
                }
                Err(ConnError::Closed | ConnError::Io(_)) => return,
            };
            self.last_reply = 0;
            let (name, flow) = match parse_command(&line) {
                Ok(command) => (counts::name(&command), self.command(command).await),
                Err(reply) => (counts::name_of_line(&line), self.error(&reply)),
            };
            self.counts.count(name, self.last_reply);
            if flow == Flow::Quit {
                return;
            }
        }
    }

    async fn command(&mut self, command: Command) -> Flow {
        match command {
            Command::Hello { name, extended } => self.hello(name, extended).await,
            Command::StartTls => return self.starttls().await,
            Command::Auth { mechanism, initial } => return self.auth(&mechanism, initial).await,
            Command::MailFrom { sender, params } => return self.mail_from(sender, params).await,
            Command::RcptTo { recipient, params } => return self.rcpt_to(recipient, params).await,
            Command::Data => return self.data().await,
            Command::Rset => {
                self.reset();
                self.ok(250, "2.0.0", "Ok");
            }
            Command::Noop => self.ok(250, "2.0.0", "Ok"),
            Command::Help => self.ok(
                214,
                "2.0.0",
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH",
            ),
            Command::Vrfy => self.ok(
                252,
                "2.0.0",
                "Cannot VRFY user; send mail and delivery will be attempted",
            ),
            Command::Expn => {
                return self.error(&Reply::new(502, "5.5.1", "Error: command not implemented"));
            }
            Command::Quit => {
                self.ok(221, "2.0.0", "Bye");
                return Flow::Quit;
            }
        }
        Flow::Continue
    }

    /// Ends the mail transaction (RSET, a new EHLO, a queued message).
    fn reset(&mut self) {
        self.state.sender = None;
        self.state.mail = MailParams::default();
        self.state.rcpt_params.clear();
        self.state.recipients.clear();
        self.state.accepted_rcpts = 0;
        self.host.end_message();
    }

    async fn hello(&mut self, name: String, extended: bool) {
        let mut event = Helo::new(name, extended);
        if let Some(reply) = Self::refusal(self.chain(&mut event).await) {
            return self.send(&reply);
        }
        self.reset();
        self.state.extended = extended;
        let hostname = self.hostname().to_owned();
        self.host.session_mut().helo = Some(event.name.clone());
        self.state.helo = Some(event.name);
        if !extended {
            return self.ok(250, "", &hostname);
        }
        let mut lines = vec![
            hostname,
            "PIPELINING".into(),
            format!("SIZE {}", self.shared.config.max_message_size),
        ];
        lines.push("VRFY".into());
        if self.shared.tls.is_some() && !self.state.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.extend([
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "DSN".into(),
            "SMTPUTF8".into(),
        ]);
        self.shared.stats.reply(250);
        self.last_reply = 250;
        self.conn().reply_lines(250, &lines);
    }

    /// AUTH is offered over TLS only, and only when someone can decide logins.
    fn auth_offered(&self) -> bool {
        let decider = self.shared.credentials.is_some()
            || self.worker.engine().has_chain(HookId::SmtpInAuthenticate);
        self.state.tls && decider
    }

    async fn starttls(&mut self) -> Flow {
        let Some(acceptor) = self.shared.tls.clone() else {
            return self.error(&Reply::new(502, "5.5.1", "Error: command not implemented"));
        };
        if self.state.tls {
            return self.error(&Reply::new(554, "5.5.1", "Error: TLS already active"));
        }
        self.ok(220, "2.0.0", "Ready to start TLS");
        let timeout = self.shared.config.command_timeout;
        let conn = self.conn();
        if conn.flush().await.is_err() {
            return Flow::Quit;
        }
        conn.discard_input();
        let (protocol, cipher) = match conn.start_tls(&acceptor, timeout).await {
            Ok(negotiated) => negotiated,
            Err(error) => {
                tracing::info!(client = %Client(self.client), %error, "TLS handshake failed");
                return Flow::Quit;
            }
        };
        // RFC 3207 §4.2: forget everything learnt before the handshake.
        self.reset();
        self.state = State {
            tls: true,
            errors: self.state.errors,
            queued: self.state.queued,
            ..State::default()
        };
        let facts = self.host.session_mut();
        facts.tls = Some(protocol.clone());
        facts.helo = None;
        facts.user = None;
        tracing::info!(client = %Client(self.client), %protocol, %cipher, "TLS established");
        self.shared.stats.tls.fetch_add(1, Ordering::Relaxed);
        let _ = self.chain(&mut Secure::new(protocol, cipher)).await;
        Flow::Continue
    }

    async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Flow {
        if self.state.helo.is_none() {
            return self.error(&Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if !self.auth_offered() {
            let reply = if self.state.tls || self.shared.tls.is_none() {
                Reply::new(503, "5.5.1", "Error: authentication not enabled")
            } else {
                Reply::new(530, "5.7.0", "Must issue a STARTTLS command first")
            };
            return self.error(&reply);
        }
        if self.state.user.is_some() {
            return self.error(&Reply::new(503, "5.5.1", "Error: already authenticated"));
        }
        if self.state.sender.is_some() {
            return self.error(&Reply::new(
                503,
                "5.5.1",
                "Error: MAIL transaction in progress",
            ));
        }
        let ip = self.client.ip();
        if self.shared.auth_guard.locked_out(ip) {
            let stats = &self.shared.stats.auth;
            stats.locked_out.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client = %Client(self.client), "AUTH refused: too many failed logins");
            let reply = auth_guard::locked_out_reply(self.hostname(), ip);
            self.send(&reply);
            return Flow::Quit;
        }
        let credentials = match self.sasl(mechanism, initial).await {
            Ok(Some(credentials)) => credentials,
            Ok(None) => return Flow::Quit,
            Err(reply) => return self.error(&reply),
        };
        self.login(mechanism, credentials).await
    }

    /// Reads the credentials of a PLAIN or LOGIN exchange; `None` if the connection went away.
    async fn sasl(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
    ) -> Result<Option<(String, String)>, Reply> {
        let decode = |error: AuthError| error.reply();
        match mechanism {
            "PLAIN" => {
                let Some(response) = self.answer(initial, "").await? else {
                    return Ok(None);
                };
                auth::decode_plain(&response).map(Some).map_err(decode)
            }
            "LOGIN" => {
                let Some(user) = self.answer(initial, auth::LOGIN_USERNAME_PROMPT).await? else {
                    return Ok(None);
                };
                let user = auth::decode_base64_text(&user).map_err(decode)?;
                let Some(password) = self.answer(None, auth::LOGIN_PASSWORD_PROMPT).await? else {
                    return Ok(None);
                };
                Ok(Some((
                    user,
                    auth::decode_base64_text(&password).map_err(decode)?,
                )))
            }
            _ => Err(Reply::new(
                535,
                "5.7.8",
                "Error: authentication failed: Invalid authentication mechanism",
            )),
        }
    }

    /// The client's answer to a `334 prompt`, unless it gave one on the AUTH line.
    async fn answer(
        &mut self,
        given: Option<String>,
        prompt: &str,
    ) -> Result<Option<String>, Reply> {
        if let Some(given) = given {
            return Ok(Some(given));
        }
        self.send(&Reply::new(334, "", prompt));
        let timeout = self.shared.config.command_timeout;
        match self.conn().read_line(12_288, timeout).await {
            Ok(Line::Complete(line)) if line == b"*" => Err(AuthError::Cancelled.reply()),
            Ok(Line::Complete(line)) => Ok(Some(String::from_utf8_lossy(&line).into_owned())),
            Ok(Line::TooLong) => Err(Reply::new(
                500,
                "5.5.6",
                "Error: authentication exchange line too long",
            )),
            Err(ConnError::TimedOut) => {
                let text = format!("{} Error: timeout exceeded", self.hostname());
                self.send(&Reply::new(421, "4.4.2", text));
                Ok(None)
            }
            Err(ConnError::Closed | ConnError::Io(_)) => Ok(None),
        }
    }

    async fn login(&mut self, mechanism: &str, (user, password): (String, String)) -> Flow {
        let mut event = Authenticate::new(mechanism, user, Secret::new(password));
        if let Some(reply) = Self::refusal(self.chain(&mut event).await) {
            return self.error(&reply);
        }
        let accepted = match event.verdict {
            AuthVerdict::Accept => true,
            AuthVerdict::Undecided => match self.shared.credentials.clone() {
                // Argon2 and SHA-512-crypt are slow by design: check off the worker, so that
                // the other sessions on this core go on meanwhile, and a bounded number at once.
                Some(credentials) => {
                    let user = event.username.clone();
                    let password = event.password.expose().to_owned();
                    let stats = &self.shared.stats.auth;
                    let guard = &self.shared.auth_guard;
                    match guard.verify(credentials, user, password, stats).await {
                        Ok(matched) => matched,
                        Err(refusal) => return self.error(&refusal.reply()),
                    }
                }
                None => false,
            },
            _ => false,
        };
        if !accepted {
            tracing::info!(client = %Client(self.client), user = event.username, "authentication failed");
            self.shared.auth_guard.failed(self.client.ip());
            return self.error(&auth::failed_reply());
        }
        tracing::info!(client = %Client(self.client), user = event.username, "authenticated");
        self.host.session_mut().user = Some(event.username.clone());
        self.state.user = Some(event.username);
        self.ok(235, "2.7.0", "Authentication successful");
        Flow::Continue
    }

    async fn mail_from(&mut self, sender: Address, params: Params) -> Flow {
        if self.state.helo.is_none() {
            return self.error(&Reply::new(503, "5.5.1", "Error: send HELO/EHLO first"));
        }
        if self.state.sender.is_some() {
            return self.error(&Reply::new(503, "5.5.1", "Error: nested MAIL command"));
        }
        let mail = match self.check_mail_params(&params) {
            Ok(mail) => mail,
            Err(reply) => return self.error(&reply),
        };
        if !mail.smtputf8 && esmtp::needs_smtputf8(&sender) {
            return self.error(&esmtp::smtputf8_required());
        }
        let mut event = MailFrom::new(sender);
        event.params = params;
        if let Some(reply) = Self::refusal(self.chain(&mut event).await) {
            self.send(&reply);
            return Flow::Continue;
        }
        self.state.sender = Some(event.sender);
        self.state.mail = mail;
        self.ok(250, "2.1.0", "Ok");
        Flow::Continue
    }

    /// SIZE (RFC 1870), BODY (RFC 6152), AUTH (RFC 4954), SMTPUTF8 (RFC 6531), and RET and
    /// ENVID (RFC 3461) are known; others are refused.
    fn check_mail_params(&self, params: &Params) -> Result<MailParams, Reply> {
        let mut mail = MailParams::default();
        for (key, value) in params {
            if esmtp::mail_param(&mut mail, key, value.as_deref())? {
                continue;
            }
            match (key.as_str(), value.as_deref()) {
                ("SIZE", Some(size)) => {
                    let size: usize = size
                        .parse()
                        .map_err(|_| Reply::new(501, "5.5.4", "Bad message size syntax"))?;
                    if size > self.shared.config.max_message_size {
                        return Err(Reply::new(552, "5.3.4", "Message size exceeds fixed limit"));
                    }
                }
                ("BODY", Some(body))
                    if body.eq_ignore_ascii_case("7BIT")
                        || body.eq_ignore_ascii_case("8BITMIME") => {}
                ("AUTH", Some(_)) => {}
                _ => {
                    return Err(Reply::new(
                        555,
                        "5.5.4",
                        format!("Unsupported option: {key}"),
                    ));
                }
            }
        }
        Ok(mail)
    }

    /// RCPT, its steps in order and kept in one place (each may refuse): the recipient limit,
    /// a domain for a bare recipient and a mailbox name for a local one, the plugins, the relay
    /// check, and last the local recipient map, which a recipient the plugins expanded passes.
    async fn rcpt_to(&mut self, recipient: Address, params: Params) -> Flow {
        let Some(sender) = self.state.sender.clone() else {
            return self.error(&Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        let mut dsn = RcptParams::default();
        for (key, value) in &params {
            match esmtp::rcpt_param(&mut dsn, key, value.as_deref()) {
                Ok(true) => {}
                Ok(false) => {
                    let text = format!("Unsupported option: {key}");
                    return self.error(&Reply::new(555, "5.5.4", text));
                }
                Err(reply) => return self.error(&reply),
            }
        }
        if !self.state.mail.smtputf8 && esmtp::needs_smtputf8(&recipient) {
            return self.error(&esmtp::smtputf8_required());
        }
        if self.state.accepted_rcpts >= self.shared.config.max_recipients {
            self.send(&Reply::new(452, "4.5.3", "Error: too many recipients"));
            return Flow::Continue;
        }
        let (recipient, local) = match self.qualify(recipient) {
            Ok(qualified) => qualified,
            Err(reply) => return self.error(&reply),
        };
        let shown = recipient.to_string();
        let given = recipient.clone();
        let mut event = RcptTo::new(sender, recipient, local);
        if let Some(reply) = Self::refusal(self.chain(&mut event).await) {
            self.send(&reply);
            return Flow::Continue;
        }
        if !event.local && self.state.user.is_none() && !self.shared.may_relay(self.client.ip()) {
            tracing::info!(client = %Client(self.client), recipient = shown, "relay access denied");
            self.send(&Reply::new(
                554,
                "5.7.1",
                format!("<{shown}>: Relay access denied"),
            ));
            return Flow::Continue;
        }
        // A recipient the plugins rewrote or expanded (an alias) exists because they say so.
        if local && event.recipients.as_slice() == std::slice::from_ref(&given) {
            let Some(known) = self.shared.recipients.known(&given).await else {
                tracing::info!(client = %Client(self.client), recipient = shown, "user unknown in local recipient table");
                return self.error(&recipients::unknown(&given));
            };
            event.recipients = vec![known];
        }
        self.state.accepted_rcpts += 1;
        if dsn != RcptParams::default() {
            let named = event.recipients.iter().cloned();
            self.state
                .rcpt_params
                .extend(named.map(|recipient| (recipient, dsn.clone())));
        }
        self.state
            .recipients
            .extend(std::mem::take(&mut event.recipients));
        self.ok(250, "2.1.5", "Ok");
        Flow::Continue
    }

    /// The recipient as the RCPT chain gets it, with a domain, and whether that domain is
    /// local; refused if it is and the local part can be no mailbox.
    fn qualify(&self, recipient: Address) -> Result<(Address, bool), Reply> {
        let recipient = self.shared.recipients.qualify(recipient)?;
        let local = self.shared.config.is_local_domain(recipient.domain());
        if local {
            recipients::check_name(&recipient).inspect_err(|_| {
                tracing::info!(client = %Client(self.client), %recipient, "invalid local mailbox name");
            })?;
        }
        Ok((recipient, local))
    }

    async fn data(&mut self) -> Flow {
        let Some(sender) = self.state.sender.clone() else {
            return self.error(&Reply::new(503, "5.5.1", "Error: need MAIL command"));
        };
        if self.state.recipients.is_empty() {
            return self.error(&Reply::new(554, "5.5.1", "Error: no valid recipients"));
        }
        self.ok(354, "", "End data with <CR><LF>.<CR><LF>");
        let (limit, timeout) = (
            self.shared.config.max_message_size,
            self.shared.config.data_timeout,
        );
        let bytes = match self.conn().read_data(limit, timeout).await {
            Ok(bytes) => bytes,
            Err(DataError::TooBig) => {
                return self.refuse_data(&Reply::new(552, "5.3.4", "Error: message file too big"));
            }
            Err(DataError::BareLineEnding) => {
                return self.refuse_data(&Reply::new(
                    550,
                    "5.5.2",
                    "Error: bare <CR> or <LF> received",
                ));
            }
            Err(DataError::Nul) => {
                return self.refuse_data(&Reply::new(
                    550,
                    "5.6.0",
                    "Error: message contains NUL characters",
                ));
            }
            Err(DataError::Io(error)) if error.kind() == std::io::ErrorKind::TimedOut => {
                let text = format!("{} Error: timeout exceeded", self.hostname());
                self.send(&Reply::new(421, "4.4.2", text));
                return Flow::Quit;
            }
            Err(DataError::Io(error)) => {
                tracing::info!(client = %Client(self.client), %error, "lost connection after DATA");
                return Flow::Quit;
            }
        };
        let reply = self.accept(sender, bytes).await;
        self.send(&reply);
        self.reset();
        Flow::Continue
    }

    fn refuse_data(&mut self, reply: &Reply) -> Flow {
        tracing::info!(client = %Client(self.client), reply = %reply, "message refused");
        self.reset();
        self.error(reply)
    }

    /// Stamps the message, runs the data chain, and queues it.
    async fn accept(&mut self, sender: Address, bytes: Vec<u8>) -> Reply {
        let now = self.host.context().now();
        // The body stays in the buffer it was read into, up to the queue's write.
        let mut message = Message::from_vec(bytes);
        let hop_limit = self.shared.config.hopcount_limit;
        if let Some(reply) = received::too_many_hops(&message, hop_limit) {
            tracing::info!(client = %Client(self.client), %reply, "message refused");
            return reply;
        }
        let recipients = self.state.recipients.take();
        let only = (recipients.len() == 1).then(|| recipients[0].to_string());
        let helo = self.state.helo.clone().unwrap_or_default();
        let trace = Trace {
            helo: &helo,
            ip: self.client.ip(),
            hostname: &self.shared.config.hostname,
            extended: self.state.extended,
            tls: self.state.tls,
            authenticated: self.state.user.is_some(),
            utf8: self.state.mail.smtputf8,
            recipient: only.as_deref(),
        };
        received::stamp(&mut message, &trace, now);
        if self.state.user.is_some() {
            received::complete_submission(&mut message, &self.shared.config.hostname, now);
        }
        let mut event = Data::new(
            Envelope {
                sender: sender.clone(),
                recipients,
            },
            message,
        );
        if let Some(reply) = Self::refusal(self.chain(&mut event).await) {
            return reply;
        }
        let (envelope, message) = event.into_parts();
        // A data plugin may have added recipients: they too are kept once.
        let recipients = RecipientSet::unique(envelope.recipients);
        let groups = match self.copies(&sender, recipients, message).await {
            Ok(groups) => groups,
            Err(reply) => return reply,
        };
        self.enqueue(sender, groups, &helo).await
    }

    /// Runs `smtp_in_message` for each recipient; recipients whose copies came out the same
    /// share one stored message. Without plugins at that hook, all share the one message, which
    /// is not copied.
    async fn copies(
        &mut self,
        sender: &Address,
        recipients: Vec<Address>,
        mut message: Message,
    ) -> Result<Vec<(Vec<u8>, Vec<Address>)>, Reply> {
        if !self.worker.engine().has_chain(HookId::SmtpInMessage) {
            return Ok(vec![(message.into_bytes(), recipients)]);
        }
        let mut groups: Vec<(Vec<u8>, Vec<Address>)> = Vec::new();
        let mut refused = None;
        let mut recipients = recipients.into_iter().peekable();
        while let Some(recipient) = recipients.next() {
            // The last recipient takes the message itself, the others a copy each.
            let message = if recipients.peek().is_some() {
                message.clone()
            } else {
                std::mem::take(&mut message)
            };
            let mut copy = MessageCopy::new(sender.clone(), recipient, message);
            if let Some(reply) = Self::refusal(self.chain(&mut copy).await) {
                tracing::info!(client = %Client(self.client), recipient = %copy.recipient, %reply, "recipient refused at smtp_in_message");
                refused = Some(reply);
                continue;
            }
            let bytes = copy.message.into_bytes();
            match groups.iter_mut().find(|(body, _)| *body == bytes) {
                Some((_, group)) => group.push(copy.recipient),
                None => groups.push((bytes, vec![copy.recipient])),
            }
        }
        match refused {
            Some(reply) if groups.is_empty() => Err(reply),
            _ => Ok(groups),
        }
    }

    /// The transaction's SMTPUTF8 and DSN parameters for a message to `recipients`; `None`
    /// when it had none.
    fn extensions(&self, recipients: &[Address]) -> Option<Arc<Extensions>> {
        let params = &self.state.rcpt_params;
        let of = |recipient: &Address| {
            let given = params.iter().find(|(address, _)| address == recipient);
            given.map(|(_, dsn)| dsn.clone()).unwrap_or_default()
        };
        let extensions = Extensions {
            smtputf8: self.state.mail.smtputf8,
            ret: self.state.mail.ret,
            envid: self.state.mail.envid.clone(),
            recipients: if params.is_empty() {
                Vec::new()
            } else {
                recipients.iter().map(of).collect()
            },
        };
        (extensions != Extensions::default()).then(|| Arc::new(extensions))
    }

    async fn enqueue(
        &mut self,
        sender: Address,
        groups: Vec<(Vec<u8>, Vec<Address>)>,
        helo: &str,
    ) -> Reply {
        let client = format!("{helo}[{}]", self.client.ip());
        let mut first = None;
        for (body, recipients) in groups {
            let (size, count) = (body.len(), recipients.len());
            let message_id = logline::message_id(&body);
            let extensions = self.extensions(&recipients);
            let message = NewMessage {
                sender: sender.clone(),
                recipients,
                body,
                client: client.clone(),
                extensions,
            };
            let origin = Origin {
                remote: self.client,
                local: self.host.session().local.unwrap_or(self.client),
                secure: self.state.tls,
                user: self.state.user.clone(),
            };
            match self.shared.queue.enqueue_from(message, &origin).await {
                Ok(id) => {
                    tracing::info!(
                        queue_id = %id,
                        client = %Client(self.client),
                        %helo,
                        "message-id" = %message_id.as_deref().unwrap_or(""),
                        from = %logline::bracketed(&sender),
                        size,
                        nrcpt = count,
                        "message accepted"
                    );
                    self.shared.stats.messages.fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .stats
                        .bytes
                        .fetch_add(size as u64, Ordering::Relaxed);
                    first.get_or_insert(id);
                }
                Err(error) => {
                    tracing::error!(client = %Client(self.client), %error, "cannot queue a message");
                    return Reply::tempfail("Error: queue file write error");
                }
            }
        }
        self.state.queued += 1;
        match first {
            Some(id) => Reply::new(250, "2.0.0", format!("Ok: queued as {id}")),
            None => Reply::tempfail("Error: queue file write error"),
        }
    }
}
