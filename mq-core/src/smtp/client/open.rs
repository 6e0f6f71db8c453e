//! Opening a session: the greeting, EHLO (HELO when refused), STARTTLS, AUTH PLAIN.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mq_plugin_api::Reply;

use super::error::{ClientError, Stage};
use super::extensions::Extensions;
use super::io::Io;
use super::{ClientConfig, Connection, State, TlsPolicy, tls};

impl Connection {
    /// Connects to `address`, reads the greeting, and introduces the client: EHLO (HELO when
    /// EHLO gets a 5xx), STARTTLS as [`ClientConfig::tls`] says (then EHLO again), and AUTH
    /// PLAIN when configured, offered, and the session is encrypted.
    ///
    /// `host` is the server's name, for TLS (SNI and verification) and logs. `tls` replaces
    /// the built-in rustls configuration: with `None`, [`TlsPolicy::Opportunistic`] and
    /// `Required { verify: false }` take any certificate, and `Required { verify: true }`
    /// verifies against the Mozilla roots.
    ///
    /// When the server refuses the session, the client says QUIT before giving up.
    ///
    /// # Errors
    ///
    /// [`ClientError::Connect`] or [`ClientError::Timeout`] (stage `Connect`) when the
    /// connection cannot be opened; [`ClientError::Greeting`] for a greeting other than `220`;
    /// [`ClientError::Rejected`] when EHLO and HELO, STARTTLS under `Required`, or AUTH are
    /// refused; [`ClientError::TlsRequired`] when STARTTLS is required but not offered;
    /// [`ClientError::Tls`] when the handshake fails; [`ClientError::InvalidParameter`] for an
    /// EHLO name that is empty or holds a space; and the I/O, timeout and protocol errors
    /// of each stage.
    ///
    /// # Examples
    ///
    /// ```
    /// # smol::block_on(async {
    /// use mq_core::smtp::client::{ClientConfig, ClientError, Connection, TlsPolicy};
    /// use mq_core::testkit::sink::{Script, Sink};
    ///
    /// let sink = Sink::start(Script::new());
    /// let config = ClientConfig { tls: TlsPolicy::Required { verify: true }, ..Default::default() };
    /// let refused = Connection::open(sink.address(), "localhost", &config, None).await;
    /// assert!(matches!(refused, Err(ClientError::TlsRequired)));
    /// # })
    /// ```
    pub async fn open(
        address: SocketAddr,
        host: &str,
        config: &ClientConfig,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Connection, ClientError> {
        let timeouts = config.timeouts;
        let name = &config.helo_name;
        if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ClientError::InvalidParameter(Stage::Ehlo, name.clone()));
        }
        let mut io = Io::connect(address, timeouts.connect).await?;
        let mut names = Vec::new();
        match introduce(&mut io, host, address, config, tls, &mut names).await {
            Ok(extensions) => Ok(Connection {
                io,
                host: host.to_owned(),
                peer: address,
                extensions,
                names,
                timeouts,
                state: State::Ready,
                transactions: 0,
                opened: std::time::Instant::now(),
            }),
            Err(error) => {
                tracing::debug!(host, %address, %error, "session not opened");
                if error.reply().is_some() || matches!(error, ClientError::TlsRequired) {
                    // The server is listening: tell it we are going (RFC 5321 §3.1).
                    let _ = command(&mut io, Stage::Quit, config, "QUIT").await;
                }
                io.close(timeouts.command).await;
                Err(error)
            }
        }
    }
}

/// Everything from the greeting to the session's final extensions; the names the server gave
/// go into `names`.
async fn introduce(
    io: &mut Io,
    host: &str,
    address: SocketAddr,
    config: &ClientConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    names: &mut Vec<String>,
) -> Result<Extensions, ClientError> {
    let timeouts = &config.timeouts;
    let greeting = io.read_reply(Stage::Greeting, timeouts.greeting).await?;
    if greeting.reply.code() != 220 {
        return Err(ClientError::Greeting(greeting.reply));
    }
    names.extend(first_word(greeting.lines.first()));
    let mut extensions = hello(io, config, names).await?;
    if starts_tls(config.tls, &extensions)? {
        let reply = command(io, Stage::StartTls, config, "STARTTLS").await?;
        if reply.code() == 220 {
            let tls = tls.unwrap_or_else(|| built_in(config.tls));
            let name = tls::server_name(host, address.ip());
            io.start_tls(tls, name, timeouts.command).await?;
            if let Some((protocol, cipher)) = io.tls_parameters() {
                let verified = matches!(config.tls, TlsPolicy::Required { verify: true });
                let relay = crate::logline::relay(host, address);
                tracing::info!(%relay, %protocol, %cipher, verified, "TLS established");
            }
            extensions = hello(io, config, names).await?;
        } else if matches!(config.tls, TlsPolicy::Required { .. }) {
            return Err(ClientError::Rejected(Stage::StartTls, reply));
        } else {
            tracing::debug!(host, %reply, "STARTTLS refused, going on in plaintext");
        }
    }
    if let Some((user, password)) = &config.auth {
        if io.is_tls() && extensions.auth.iter().any(|m| m == "PLAIN") {
            authenticate(io, config, user, password).await?;
        } else {
            tracing::debug!(
                host,
                "AUTH skipped: not offered, or the session is not encrypted"
            );
        }
    }
    Ok(extensions)
}

/// Sends `line` and reads the reply within the command timeout.
async fn command(
    io: &mut Io,
    stage: Stage,
    config: &ClientConfig,
    line: &str,
) -> Result<Reply, ClientError> {
    let timeout = config.timeouts.command;
    io.write(stage, timeout, format!("{line}\r\n").as_bytes())
        .await?;
    Ok(io.read_reply(stage, timeout).await?.reply)
}

/// EHLO, or HELO when the server refuses EHLO with a 5xx (it does not know it); the name the
/// server gives in its EHLO reply goes into `names`.
async fn hello(
    io: &mut Io,
    config: &ClientConfig,
    names: &mut Vec<String>,
) -> Result<Extensions, ClientError> {
    let timeout = config.timeouts.command;
    let ehlo = format!("EHLO {}\r\n", config.helo_name);
    io.write(Stage::Ehlo, timeout, ehlo.as_bytes()).await?;
    let parsed = io.read_reply(Stage::Ehlo, timeout).await?;
    match parsed.reply.code() {
        200..=299 => {
            names.extend(first_word(parsed.lines.first()));
            return Ok(Extensions::from_ehlo(&parsed.lines));
        }
        500..=599 => {}
        _ => return Err(ClientError::Rejected(Stage::Ehlo, parsed.reply)),
    }
    let reply = command(
        io,
        Stage::Ehlo,
        config,
        &format!("HELO {}", config.helo_name),
    )
    .await?;
    if reply.code() / 100 == 2 {
        Ok(Extensions::default())
    } else {
        Err(ClientError::Rejected(Stage::Ehlo, reply))
    }
}

/// The first word of a reply line, where greetings and EHLO replies put the server's name.
fn first_word(line: Option<&String>) -> Option<String> {
    line?.split_whitespace().next().map(str::to_owned)
}

/// Whether to say STARTTLS, by the policy and the offer.
fn starts_tls(policy: TlsPolicy, extensions: &Extensions) -> Result<bool, ClientError> {
    match policy {
        TlsPolicy::Disabled => Ok(false),
        TlsPolicy::Opportunistic => Ok(extensions.starttls),
        TlsPolicy::Required { .. } if extensions.starttls => Ok(true),
        TlsPolicy::Required { .. } => Err(ClientError::TlsRequired),
    }
}

/// The built-in rustls configuration for `policy`.
fn built_in(policy: TlsPolicy) -> Arc<rustls::ClientConfig> {
    match policy {
        TlsPolicy::Required { verify: true } => Arc::clone(&tls::VERIFIED),
        TlsPolicy::Disabled | TlsPolicy::Opportunistic | TlsPolicy::Required { verify: false } => {
            Arc::clone(&tls::UNVERIFIED)
        }
    }
}

/// AUTH PLAIN with the initial response (RFC 4954, RFC 4616).
async fn authenticate(
    io: &mut Io,
    config: &ClientConfig,
    user: &str,
    password: &str,
) -> Result<(), ClientError> {
    let response = BASE64.encode(format!("\0{user}\0{password}"));
    let reply = command(io, Stage::Auth, config, &format!("AUTH PLAIN {response}")).await?;
    if reply.code() == 235 {
        Ok(())
    } else {
        Err(ClientError::Rejected(Stage::Auth, reply))
    }
}
