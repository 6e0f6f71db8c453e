//! `mq inject`: sendmail-style submission. The message on stdin goes to the running server over
//! SMTP, so it passes through the same hooks as mail from the network; with SMTPUTF8 when its
//! envelope or header is not ASCII.
//!
//! A small blocking client: a CLI sends one message and exits, so an executor would buy
//! nothing.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use mq_core::Config;
use mq_plugin_api::Address;

use crate::header::{Message, Missing};
use crate::print;

/// How long to wait for the server to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a reply: the end of DATA runs every plugin's hooks, each with its own
/// deadline, and RFC 5321 §4.5.3.2.6 gives the server 10 minutes there.
const REPLY_TIMEOUT: Duration = Duration::from_mins(10);

/// `mq inject`'s arguments.
#[derive(Debug, Args)]
pub(crate) struct InjectArgs {
    /// The envelope sender; an empty string for the null sender (bounces).
    #[arg(long, value_name = "ADDR")]
    from: String,
    /// An envelope recipient; repeat the flag, or list several, for more.
    #[arg(long, value_name = "ADDR", required = true, num_args = 1..)]
    to: Vec<String>,
    /// The server to submit to, HOST:PORT (default: smtp.listen from the config).
    #[arg(long, value_name = "ADDR")]
    server: Option<String>,
}

/// Reads the message from stdin, submits it, and prints the queue id the server gave it.
pub(crate) fn run(config: &Config, args: &InjectArgs) -> anyhow::Result<()> {
    for address in std::iter::once(&args.from).chain(&args.to) {
        // An address with a line break would smuggle a command of its own into the dialogue.
        if address.contains(['\r', '\n', '<', '>']) {
            bail!("invalid address {address:?}");
        }
    }
    let mut message = Vec::new();
    io::stdin()
        .lock()
        .read_to_end(&mut message)
        .context("cannot read the message from stdin")?;
    // As for sendmail: a missing From, Date or Message-ID field is added.
    let mut parsed = Message::read(&message, true);
    let from = (!args.from.is_empty()).then_some(args.from.as_str());
    parsed.complete(&Missing {
        from: from.unwrap_or("MAILER-DAEMON"),
        full_name: None,
        now: crate::clock::unix_now(),
        hostname: &config.smtp.hostname,
    });
    let mut envelope = std::iter::once(&args.from).chain(&args.to);
    let smtputf8 = !parsed.header_is_ascii() || envelope.any(|a| utf8_address(a));
    let message = parsed.into_bytes();
    let server = args
        .server
        .clone()
        .unwrap_or_else(|| reachable(config.smtp.listen).to_string());
    let mut client = Client::connect(&server)?;
    let id = client.submit(&args.from, &args.to, &message, smtputf8)?;
    print(&format!("{id}\n"))
}

/// Whether an envelope address needs SMTPUTF8: its local part is not ASCII (a UTF-8 domain
/// has an ASCII form any server takes).
pub(crate) fn needs_smtputf8(address: &Address) -> bool {
    mq_core::smtp::needs_smtputf8(address)
}

/// [`needs_smtputf8`] for an address as given on the command line; one that does not parse
/// needs it when it is not ASCII (the server then judges it).
fn utf8_address(address: &str) -> bool {
    address
        .parse::<Address>()
        .map_or(!address.is_ascii(), |address| needs_smtputf8(&address))
}

/// Where to reach a server listening on `listen`: on a wildcard address, through loopback.
pub(crate) fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, listen.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, listen.port()))
        }
        _ => listen,
    }
}

/// A reply: its code and its lines' text, joined.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    code: u16,
    text: String,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// One SMTP connection.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    pub(crate) fn connect(server: &str) -> anyhow::Result<Client> {
        let cannot = || format!("cannot connect to {server}");
        let address = server
            .to_socket_addrs()
            .with_context(cannot)?
            .next()
            .with_context(cannot)?;
        let stream = match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => stream,
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                bail!("cannot connect to {server}: is mq serve running?")
            }
            Err(error) => return Err(error).with_context(cannot),
        };
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .with_context(cannot)?;
        let writer = stream.try_clone().with_context(cannot)?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// The whole dialogue, `MAIL` with the `SMTPUTF8` parameter when `smtputf8`; returns the
    /// queue id from the final 250.
    pub(crate) fn submit(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
        smtputf8: bool,
    ) -> anyhow::Result<String> {
        self.expect(2)?;
        self.command("EHLO localhost", 2)?;
        let parameter = if smtputf8 { " SMTPUTF8" } else { "" };
        self.command(&format!("MAIL FROM:<{from}>{parameter}"), 2)?;
        for recipient in to {
            self.command(&format!("RCPT TO:<{recipient}>"), 2)?;
        }
        self.command("DATA", 3)?;
        // The client's own dot-stuffing: CRLF line endings, leading dots doubled, the final dot.
        self.send(&mq_core::smtp::client::dot_stuff(message))?;
        let accepted = self.expect(2)?;
        // The message is queued; a failing QUIT changes nothing about that.
        let _ = self.command("QUIT", 2);
        Ok(queue_id(&accepted.text).unwrap_or(accepted.text))
    }

    /// Sends `line` and expects a reply of class `class` (2 or 3).
    fn command(&mut self, line: &str, class: u16) -> anyhow::Result<Reply> {
        self.send(format!("{line}\r\n").as_bytes())?;
        self.expect(class)
    }

    fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.writer
            .write_all(bytes)
            .context("cannot write to the server")
    }

    /// Reads a reply, an error unless its code is `class`xx.
    fn expect(&mut self, class: u16) -> anyhow::Result<Reply> {
        let reply = self.read_reply()?;
        if reply.code / 100 != class {
            let _ = self.send(b"QUIT\r\n");
            bail!("server said: {reply}");
        }
        Ok(reply)
    }

    /// Reads the lines of one reply, `250-…` up to `250 …`.
    fn read_reply(&mut self) -> anyhow::Result<Reply> {
        let mut texts = Vec::new();
        loop {
            let mut line = String::new();
            if self
                .reader
                .read_line(&mut line)
                .context("cannot read from the server")?
                == 0
            {
                bail!("the server closed the connection");
            }
            let (code, last, text) = parse_line(line.trim_end()).with_context(|| {
                format!("unexpected reply from the server: {}", line.trim_end())
            })?;
            texts.push(text.to_owned());
            if last {
                return Ok(Reply {
                    code,
                    text: texts.join(" "),
                });
            }
        }
    }
}

/// `250-text` → (250, false, "text"); `250 text` or `250` → (250, true, …).
fn parse_line(line: &str) -> Option<(u16, bool, &str)> {
    let code = line
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()?;
    match line.as_bytes().get(3) {
        None => Some((code, true, "")),
        Some(b' ') => Some((code, true, &line[4..])),
        Some(b'-') => Some((code, false, &line[4..])),
        Some(_) => None,
    }
}

/// The id in `2.0.0 Ok: queued as ID`.
fn queue_id(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("queued as ")?;
    rest.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_are_parsed() {
        assert_eq!(
            parse_line("250-mq.example"),
            Some((250, false, "mq.example"))
        );
        assert_eq!(parse_line("250 2.0.0 Ok"), Some((250, true, "2.0.0 Ok")));
        assert_eq!(parse_line("354"), Some((354, true, "")));
        assert_eq!(parse_line("25x ok"), None);
        assert_eq!(parse_line("250+ok"), None);
        assert_eq!(parse_line("ab"), None);
    }

    #[test]
    fn the_queue_id_comes_from_the_final_reply() {
        assert_eq!(
            queue_id("2.0.0 Ok: queued as 0006123456789ABC").as_deref(),
            Some("0006123456789ABC")
        );
        assert_eq!(queue_id("2.0.0 Ok"), None);
    }

    #[test]
    fn a_wildcard_listener_is_reached_through_loopback() {
        let any: SocketAddr = "0.0.0.0:2525".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:2525".parse().unwrap());
        let any6: SocketAddr = "[::]:25".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:25".parse().unwrap());
        let one: SocketAddr = "192.0.2.1:25".parse().unwrap();
        assert_eq!(reachable(one), one);
    }
}
