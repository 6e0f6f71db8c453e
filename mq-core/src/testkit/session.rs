//! A scripted SMTP client for mq's own session: the commands a test gives, sent one at a time.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use mq_plugin_api::{Named, Plugin, PluginHooks};

use super::duplex::ClientEnd;
use super::server::Connection;
use super::transcript::{Live, Transcript};
use super::{Harness, Server};
use crate::config::FailurePolicy;

/// A scripted SMTP dialogue: add plugins, then commands, then [`run`](Session::run) it.
///
/// The commands go to mq's own SMTP session, the one `mq serve` runs, over an in-memory
/// connection: its state rules, its replies, its hook chains (connect, EHLO, STARTTLS, AUTH,
/// MAIL, each RCPT, DATA, once per recipient, close). What it queued is in
/// [`Transcript::queued`]. The server is `mq.test`, its local domain `localhost` (add more with
/// [`local_domain`](Session::local_domain)); the client relays only from the relay networks
/// ([`relay_network`](Session::relay_network)) or once authenticated, as with `mq serve`.
///
/// A session from [`testkit::session()`](super::session) has plugins of its own; one from
/// [`Server::session`] runs against the server's.
#[derive(Debug)]
pub struct Session {
    target: Target,
    connection: Connection,
    steps: Vec<Step>,
}

#[derive(Debug)]
enum Target {
    /// Plugins still to be built, for this session alone.
    Own(Box<Harness>),
    Server(Server),
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
    Noop,
    Quit,
}

impl Session {
    pub(crate) fn new(harness: Harness) -> Session {
        Session::with(Target::Own(Box::new(harness)))
    }

    pub(crate) fn on(server: Server) -> Session {
        Session::with(Target::Server(server))
    }

    fn with(target: Target) -> Session {
        Session {
            target,
            connection: Connection {
                client: SocketAddr::from(([192, 0, 2, 1], 40_000)),
                local: SocketAddr::from(([192, 0, 2, 25], 25)),
                relay_network: false,
                local_domains: Vec::new(),
                starttls: true,
                recorded: false,
            },
            steps: Vec::new(),
        }
    }

    fn harness(&mut self, add: impl FnOnce(Harness) -> Harness) {
        let empty = Target::Own(Box::default());
        self.target = match std::mem::replace(&mut self.target, empty) {
            Target::Own(harness) => Target::Own(Box::new(add(*harness))),
            Target::Server(_) => {
                panic!("a server's sessions run its plugins: add plugins to testkit::server()")
            }
        };
    }

    /// Adds a plugin instance under its registered name; see [`Harness::plugin`].
    ///
    /// # Panics
    ///
    /// On a session of a [`Server`]: its plugins are the server's.
    ///
    /// # Examples
    ///
    /// ```standalone_crate
    /// use mq_plugin_api::{Context, Control, Helo, Plugin, hooks, plugin};
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct NoConfig {}
    ///
    /// struct Greeter;
    ///
    /// #[plugin(name = "greeter")]
    /// impl Greeter {
    ///     fn new(_config: &NoConfig) -> Self {
    ///         Greeter
    ///     }
    /// }
    ///
    /// #[hooks]
    /// impl Plugin for Greeter {
    ///     async fn smtp_in_helo(&self, _ctx: &mut Context, _helo: &mut Helo) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let transcript = mq_core::testkit::session().plugin(Greeter).helo("client.example").run();
    /// assert_eq!(transcript.lines()[1], "   smtp_in_helo  greeter → Continue");
    /// ```
    pub fn plugin<P: Plugin + PluginHooks + Named>(mut self, plugin: P) -> Session {
        self.harness(|harness| harness.plugin(plugin));
        self
    }

    /// Adds a plugin instance under `name`; see [`Harness::plugin_named`].
    ///
    /// # Panics
    ///
    /// On a session of a [`Server`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::{Context, Control, Helo, Plugin, hooks};
    ///
    /// struct Greeter;
    ///
    /// #[hooks]
    /// impl Plugin for Greeter {
    ///     async fn smtp_in_helo(&self, _ctx: &mut Context, _helo: &mut Helo) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let transcript = mq_core::testkit::session()
    ///     .plugin_named("greeter", Greeter)
    ///     .helo("client.example")
    ///     .run();
    /// assert_eq!(transcript.lines()[1], "   smtp_in_helo  greeter → Continue");
    /// ```
    pub fn plugin_named<P: Plugin + PluginHooks>(
        mut self,
        name: &'static str,
        plugin: P,
    ) -> Session {
        self.harness(|harness| harness.plugin_named(name, plugin));
        self
    }

    /// Adds the registered plugin `name` built from the TOML of its section, as `mq serve`
    /// builds it; see [`Harness::registered`].
    ///
    /// # Panics
    ///
    /// On a session of a [`Server`], or as [`Harness::registered`] does.
    ///
    /// # Examples
    ///
    /// ```standalone_crate
    /// use mq_plugin_api::{Context, Control, Helo, Plugin, hooks, plugin};
    ///
    /// #[derive(Debug, serde::Deserialize)]
    /// struct NoConfig {}
    ///
    /// struct Quiet;
    ///
    /// #[plugin(name = "quiet")]
    /// impl Quiet {
    ///     fn new(_config: &NoConfig) -> Self {
    ///         Quiet
    ///     }
    /// }
    ///
    /// #[hooks]
    /// impl Plugin for Quiet {
    ///     async fn smtp_in_helo(&self, _ctx: &mut Context, _helo: &mut Helo) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// // `enabled = false` in its engine settings leaves the plugin out, as in mq.toml.
    /// let transcript = mq_core::testkit::session()
    ///     .registered_with("quiet", "enabled = false", "")
    ///     .helo("client.example")
    ///     .run();
    /// assert_eq!(transcript.lines(), ["C: HELO client.example", "S: 250 mq.test"]);
    /// ```
    pub fn registered(mut self, name: &str, config: &str) -> Session {
        self.harness(|harness| harness.registered(name, config));
        self
    }

    /// Adds a registered plugin with its engine settings; see [`Harness::registered_with`].
    ///
    /// # Panics
    ///
    /// As [`Harness::registered_with`], and on a session of a [`Server`].
    pub fn registered_with(mut self, name: &str, settings: &str, config: &str) -> Session {
        self.harness(|harness| harness.registered_with(name, settings, config));
        self
    }

    /// Gives the plugins a resolver for `Context::dns`; see [`Harness::dns`].
    ///
    /// # Panics
    ///
    /// On a session of a [`Server`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::rc::Rc;
    /// use mq_core::dns::{DnsConfig, Resolver, TestServer};
    ///
    /// let zone = TestServer::start();
    /// let mut config = DnsConfig::default();
    /// config.nameservers = vec![zone.address()];
    /// let resolver = Rc::new(Resolver::new(&config).unwrap());
    /// let transcript = mq_core::testkit::session().dns(resolver).helo("c.example").run();
    /// assert_eq!(transcript.lines().len(), 2);
    /// ```
    pub fn dns(mut self, dns: std::rc::Rc<dyn mq_plugin_api::Dns>) -> Session {
        self.harness(|harness| harness.dns(dns));
        self
    }

    /// Sets the deadline of plugins added after this call.
    ///
    /// # Examples
    ///
    /// ```
    /// let session = mq_core::testkit::session().timeout(std::time::Duration::from_secs(1));
    /// # let _ = session;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Session {
        self.harness(|harness| harness.timeout(timeout));
        self
    }

    /// Sets the failure policy of plugins added after this call.
    ///
    /// # Examples
    ///
    /// ```
    /// let session = mq_core::testkit::session().on_error(mq_core::FailurePolicy::Reject);
    /// # let _ = session;
    /// ```
    pub fn on_error(mut self, policy: FailurePolicy) -> Session {
        self.harness(|harness| harness.on_error(policy));
        self
    }

    /// The client's address (default `192.0.2.1:40000`).
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_api::{Connect, Context, Control, Plugin, hooks};
    ///
    /// struct Seen;
    ///
    /// #[hooks]
    /// impl Plugin for Seen {
    ///     async fn smtp_in_connect(&self, _ctx: &mut Context, _connect: &mut Connect) -> Control {
    ///         Control::Continue
    ///     }
    /// }
    ///
    /// let transcript = mq_core::testkit::session()
    ///     .plugin_named("seen", Seen)
    ///     .client("[2001:db8::1]:40000".parse().unwrap())
    ///     .run();
    /// assert_eq!(transcript.lines()[0], "C: (connects from [2001:db8::1]:40000)");
    /// ```
    pub fn client(mut self, client: SocketAddr) -> Session {
        self.connection.client = client;
        self
    }

    /// Puts the client in the relay networks (`[smtp] relay_networks`, and so
    /// `Context::session().relay_network`), as a trusted submission client is: it may relay
    /// to any domain.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session()
    ///     .relay_network()
    ///     .ehlo("client.example")
    ///     .mail_from("a@example.org")
    ///     .rcpt_to("b@example.net")
    ///     .run();
    /// assert_eq!(transcript.lines().last().unwrap(), "S: 250 2.1.5 Ok");
    /// ```
    pub fn relay_network(mut self) -> Session {
        self.connection.relay_network = true;
        self
    }

    /// Adds a domain whose recipients are local (`localhost` always is), as `[smtp] domains`
    /// does.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session()
    ///     .local_domain("example.org")
    ///     .ehlo("client.example")
    ///     .mail_from("a@example.net")
    ///     .rcpt_to("jane@example.org")
    ///     .run();
    /// assert_eq!(transcript.lines().last().unwrap(), "S: 250 2.1.5 Ok");
    /// ```
    pub fn local_domain(mut self, domain: &str) -> Session {
        self.connection.local_domains.push(domain.to_owned());
        self
    }

    /// `EHLO name`. The transcript shows the first line of the multi-line reply.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().ehlo("client.example").run();
    /// assert_eq!(transcript.lines(), ["C: EHLO client.example", "S: 250 mq.test"]);
    /// ```
    pub fn ehlo(self, name: &str) -> Session {
        self.step(Step::Hello {
            name: name.to_owned(),
            extended: true,
        })
    }

    /// `HELO name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().helo("client.example").run();
    /// assert_eq!(transcript.lines(), ["C: HELO client.example", "S: 250 mq.test"]);
    /// ```
    pub fn helo(self, name: &str) -> Session {
        self.step(Step::Hello {
            name: name.to_owned(),
            extended: false,
        })
    }

    /// `STARTTLS`. The connection is in memory: the session's side of the handshake is left
    /// out, and the session goes on as under TLSv1.3.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().ehlo("c.example").starttls().run();
    /// assert_eq!(transcript.lines()[3], "S: 220 2.0.0 Ready to start TLS");
    /// ```
    pub fn starttls(self) -> Session {
        self.step(Step::StartTls)
    }

    /// `AUTH PLAIN` with these credentials (the transcript does not show them). The testkit's
    /// server has no users of its own: the login succeeds only if a plugin at
    /// `smtp_in_authenticate` accepts it. AUTH is offered after STARTTLS only.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session()
    ///     .ehlo("c.example")
    ///     .starttls()
    ///     .ehlo("c.example")
    ///     .auth("jane", "secret")
    ///     .run();
    /// assert_eq!(transcript.lines()[6], "C: AUTH PLAIN (credentials)");
    /// ```
    pub fn auth(self, user: &str, password: &str) -> Session {
        self.step(Step::Auth {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// `MAIL FROM:<sender>`; `""` for the null sender.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().helo("c.example").mail_from("").run();
    /// assert_eq!(transcript.lines()[2..], ["C: MAIL FROM:<>", "S: 250 2.1.0 Ok"]);
    /// ```
    pub fn mail_from(self, sender: &str) -> Session {
        self.step(Step::MailFrom(sender.to_owned()))
    }

    /// `RCPT TO:<recipient>`.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session()
    ///     .helo("c.example")
    ///     .mail_from("a@example.org")
    ///     .rcpt_to("b@example.net")
    ///     .run();
    /// // Not a local domain, and the client may not relay: refused.
    /// assert!(transcript.lines().last().unwrap().starts_with("S: 554 5.7.1 <b@example.net>"));
    /// ```
    pub fn rcpt_to(self, recipient: &str) -> Session {
        self.step(Step::RcptTo(recipient.to_owned()))
    }

    /// `DATA` and, after the 354 reply, the message (dot-stuffed, ended with `CRLF.CRLF`).
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session()
    ///     .helo("c.example")
    ///     .mail_from("a@example.org")
    ///     .rcpt_to("postmaster@localhost")
    ///     .data("Subject: hi\r\n\r\nbody\r\n")
    ///     .run();
    /// assert_eq!(transcript.lines().last().unwrap(), "S: 250 2.0.0 Ok: queued as QUEUE1");
    /// assert_eq!(transcript.queued()[0].recipient.as_str(), "postmaster@localhost");
    /// ```
    pub fn data(self, message: impl AsRef<[u8]>) -> Session {
        self.step(Step::Data(message.as_ref().to_vec()))
    }

    /// `RSET`.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().helo("c.example").rset().run();
    /// assert_eq!(transcript.lines()[3], "S: 250 2.0.0 Ok");
    /// ```
    pub fn rset(self) -> Session {
        self.step(Step::Rset)
    }

    /// `NOOP`.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().noop().run();
    /// assert_eq!(transcript.lines(), ["C: NOOP", "S: 250 2.0.0 Ok"]);
    /// ```
    pub fn noop(self) -> Session {
        self.step(Step::Noop)
    }

    /// `QUIT`; commands after it are not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().quit().noop().run();
    /// assert_eq!(
    ///     transcript.lines(),
    ///     ["C: QUIT", "S: 221 2.0.0 Bye", "   (connection closed; 1 commands not sent)"]
    /// );
    /// ```
    pub fn quit(self) -> Session {
        self.step(Step::Quit)
    }

    fn step(mut self, step: Step) -> Session {
        self.steps.push(step);
        self
    }

    /// Runs the dialogue and returns its transcript. Without a [`Server`], the plugins are
    /// built for this session alone.
    ///
    /// # Panics
    ///
    /// If two plugins share a name.
    ///
    /// # Examples
    ///
    /// ```
    /// let transcript = mq_core::testkit::session().helo("c.example").run();
    /// assert_eq!(transcript.to_string(), "C: HELO c.example\nS: 250 mq.test\n");
    /// ```
    pub fn run(self) -> Transcript {
        let server = match self.target {
            Target::Own(harness) => harness.start(),
            Target::Server(server) => server,
        };
        let steps = self.steps;
        server.run(&self.connection, move |client, live| {
            play(client, live, steps)
        })
    }
}

/// Plays the client: each step's command, then the session's replies up to the point where it
/// waits for the next input.
async fn play(client: ClientEnd, live: Live, steps: Vec<Step>) {
    let mut closed = client.answer().await.closed;
    for (index, step) in steps.iter().enumerate() {
        if closed {
            let left = steps.len() - index;
            live.note(format!("(connection closed; {left} commands not sent)"));
            return;
        }
        let (shown, sent) = command(step);
        live.client(shown);
        client.send(sent.as_bytes());
        let answer = client.answer().await;
        closed = answer.closed;
        if let Step::Data(message) = step
            && answer.bytes.starts_with(b"354")
            && !closed
        {
            live.client(format!("({} bytes of message)", message.len()));
            client.send(&stuffed(message));
            closed = client.answer().await.closed;
        }
    }
    if !closed {
        client.close();
        while !client.answer().await.closed {}
    }
}

/// The line a step shows in the transcript and the one it sends.
fn command(step: &Step) -> (String, String) {
    let same = |line: String| (line.clone(), format!("{line}\r\n"));
    match step {
        Step::Hello { name, extended } => {
            let verb = if *extended { "EHLO" } else { "HELO" };
            same(format!("{verb} {name}"))
        }
        Step::StartTls => same("STARTTLS".into()),
        Step::Auth { user, password } => {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
            (
                "AUTH PLAIN (credentials)".into(),
                format!("AUTH PLAIN {token}\r\n"),
            )
        }
        Step::MailFrom(sender) => same(format!("MAIL FROM:<{sender}>")),
        Step::RcptTo(recipient) => same(format!("RCPT TO:<{recipient}>")),
        Step::Data(_) => same("DATA".into()),
        Step::Rset => same("RSET".into()),
        Step::Noop => same("NOOP".into()),
        Step::Quit => same("QUIT".into()),
    }
}

/// `message` as sent after 354: lines that begin with a dot get another, and `CRLF.CRLF` ends
/// it (after a CRLF of its own if the message lacks one).
pub(crate) fn stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    let mut line_start = true;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}
