//! A scripted SMTP server on loopback, for testing clients: it answers as its [`Script`] says
//! (Postfix's replies otherwise) and records what it received.
//!
//! The sink runs on its own thread with its own executor, so a test drives the client with
//! `smol::block_on` and asserts on [`Sink::messages`] and [`Sink::commands`] after. Dropping the
//! sink stops it and closes its connections.
//!
//! The sink reads message data with its own plain unstuffer, not with mq's server-side
//! reader, so a client test checks mq's dot-stuffing against an independent reading.
//!
//! # Examples
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use mq_core::testkit::sink::{Script, Sink};
//!
//! let sink = Sink::start(Script::new().greeting("220 sink.test ESMTP hello"));
//! let tcp = std::net::TcpStream::connect(sink.address()).unwrap();
//! let mut lines = BufReader::new(tcp.try_clone().unwrap()).lines();
//! assert_eq!(lines.next().unwrap().unwrap(), "220 sink.test ESMTP hello");
//! (&tcp).write_all(b"QUIT\r\n").unwrap();
//! assert_eq!(lines.next().unwrap().unwrap(), "221 2.0.0 Bye");
//! assert_eq!(sink.commands(), ["QUIT"]);
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use futures::future::Either;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures_rustls::server::TlsStream;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use smol::{Async, LocalExecutor};

/// How the sink answers. Replies are given as they go on the wire, without the final CRLF
/// (`"550 5.1.1 no such user"`; `"250-a\r\n250 b"` for a multi-line one).
#[derive(Debug, Clone)]
pub struct Script {
    greeting: String,
    ehlo: Vec<String>,
    no_ehlo: bool,
    mail: Option<String>,
    rcpt: Vec<(String, String)>,
    data: Option<String>,
    data_end: Option<String>,
    tempfail: (usize, String),
    disconnect_mid_data: bool,
    silent: bool,
    tls: Option<Arc<ServerConfig>>,
}

impl Default for Script {
    fn default() -> Script {
        let ehlo = [
            "PIPELINING",
            "SIZE 10240000",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
        ];
        Script {
            greeting: "220 sink.test ESMTP".to_owned(),
            ehlo: ehlo.map(str::to_owned).to_vec(),
            no_ehlo: false,
            mail: None,
            rcpt: Vec::new(),
            data: None,
            data_end: None,
            tempfail: (0, String::new()),
            disconnect_mid_data: false,
            silent: false,
            tls: None,
        }
    }
}

impl Script {
    /// Postfix's behaviour: EHLO offers PIPELINING, SIZE 10240000, ENHANCEDSTATUSCODES and
    /// 8BITMIME, and every well-ordered command is accepted.
    pub fn new() -> Script {
        Script::default()
    }

    /// The greeting; `"554 5.7.1 go away"` refuses the session.
    pub fn greeting(mut self, reply: &str) -> Script {
        reply.clone_into(&mut self.greeting);
        self
    }

    /// The extensions EHLO offers (STARTTLS is added by [`starttls`](Script::starttls); an
    /// `AUTH` keyword makes AUTH accept anyone).
    pub fn ehlo(mut self, keywords: &[&str]) -> Script {
        self.ehlo = keywords.iter().map(|&k| k.to_owned()).collect();
        self
    }

    /// EHLO gets `502`; HELO works.
    pub fn no_ehlo(mut self) -> Script {
        self.no_ehlo = true;
        self
    }

    /// The reply to every MAIL FROM.
    pub fn on_mail(mut self, reply: &str) -> Script {
        self.mail = Some(reply.to_owned());
        self
    }

    /// The reply to RCPT TO for `recipient` (compared without regard to case).
    pub fn on_rcpt(mut self, recipient: &str, reply: &str) -> Script {
        self.rcpt.push((recipient.to_owned(), reply.to_owned()));
        self
    }

    /// The reply to DATA once a recipient is accepted; anything but 3xx refuses it.
    pub fn on_data(mut self, reply: &str) -> Script {
        self.data = Some(reply.to_owned());
        self
    }

    /// The reply to the final dot (after [`tempfail_first`](Script::tempfail_first)'s).
    pub fn on_data_end(mut self, reply: &str) -> Script {
        self.data_end = Some(reply.to_owned());
        self
    }

    /// The first `n` messages (over all connections) get `reply` at the end of data.
    pub fn tempfail_first(mut self, n: usize, reply: &str) -> Script {
        self.tempfail = (n, reply.to_owned());
        self
    }

    /// Closes the connection after the first read of message data.
    pub fn disconnect_mid_data(mut self) -> Script {
        self.disconnect_mid_data = true;
        self
    }

    /// Accepts connections and never says a word.
    pub fn silent(mut self) -> Script {
        self.silent = true;
        self
    }

    /// Offers STARTTLS with this certificate chain and key (PEM), for example those of
    /// [`self_signed`](crate::smtp::tls::self_signed).
    ///
    /// # Panics
    ///
    /// If the PEM holds no certificate or no key, or rustls refuses them.
    pub fn starttls(mut self, cert_pem: &str, key_pem: &str) -> Script {
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the certificate is PEM");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("the key is PEM");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("rustls takes the certificate and key");
        self.tls = Some(Arc::new(config));
        self
    }
}

/// A message the sink accepted (2xx at the end of data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The reverse path, without brackets.
    pub mail_from: String,
    /// The accepted recipients, without brackets.
    pub rcpt_to: Vec<String>,
    /// The message, dot-unstuffed, with its CRLF line endings.
    pub data: Vec<u8>,
    /// Whether it came over TLS.
    pub tls: bool,
}

/// What the sink saw, shared between its thread and the test.
#[derive(Debug, Default)]
struct Record {
    messages: Vec<Received>,
    connections: usize,
    commands: Vec<String>,
    reads: Vec<Vec<String>>,
    /// Messages that reached the end of data, accepted or not.
    transactions: usize,
}

/// A running scripted server on `127.0.0.1`; see the [module docs](self).
#[derive(Debug)]
pub struct Sink {
    address: SocketAddr,
    record: Arc<Mutex<Record>>,
    stop: smol::channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    /// Starts a sink on a free loopback port.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    pub fn start(script: Script) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a free loopback port");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let record = Arc::new(Mutex::new(Record::default()));
        let (stop, stopped) = smol::channel::bounded(1);
        let shared = Arc::clone(&record);
        let thread = std::thread::spawn(move || {
            let listener = Async::new(listener).expect("the listener goes non-blocking");
            let executor = LocalExecutor::new();
            let script = Rc::new(script);
            let accept = async {
                while let Ok((tcp, _)) = listener.accept().await {
                    shared
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .connections += 1;
                    let session = serve(Rc::clone(&script), Arc::clone(&shared), tcp);
                    executor.spawn(session).detach();
                }
            };
            let stopped = async {
                let _ = stopped.recv().await;
            };
            smol::block_on(executor.run(smol::future::or(accept, stopped)));
        });
        Sink {
            address,
            record,
            stop,
            thread: Some(thread),
        }
    }

    /// Where the sink listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn record<T>(&self, read: impl FnOnce(&Record) -> T) -> T {
        read(&self.record.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The messages accepted so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.record(|r| r.messages.clone())
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.record(|r| r.connections)
    }

    /// Every command line received, in order, without CRLF (message data excluded).
    pub fn commands(&self) -> Vec<String> {
        self.record(|r| r.commands.clone())
    }

    /// The command lines grouped by the read that completed them: a pipelining client's MAIL,
    /// RCPTs and DATA come in one group.
    pub fn reads(&self) -> Vec<Vec<String>> {
        self.record(|r| r.reads.clone())
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

type Stream = Either<Async<TcpStream>, Box<TlsStream<Async<TcpStream>>>>;

/// One connection: its stream, buffers and transaction.
struct Peer {
    stream: Option<Stream>,
    input: Vec<u8>,
    output: Vec<u8>,
    sender: Option<String>,
    recipients: Vec<String>,
    record: Arc<Mutex<Record>>,
    /// The lines completed since the last read.
    read: Vec<String>,
}

/// Serves one connection until the client quits or goes; errors just end it.
async fn serve(script: Rc<Script>, record: Arc<Mutex<Record>>, tcp: Async<TcpStream>) {
    if script.silent {
        let _held = tcp;
        return smol::future::pending().await;
    }
    let mut peer = Peer {
        stream: Some(Either::Left(tcp)),
        input: Vec::new(),
        output: Vec::new(),
        sender: None,
        recipients: Vec::new(),
        record,
        read: Vec::new(),
    };
    peer.reply(&script.greeting);
    let _ = peer.commands(&script).await;
}

impl Peer {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reply(&mut self, reply: &str) {
        self.output.extend_from_slice(reply.as_bytes());
        self.output.extend_from_slice(b"\r\n");
    }

    fn stream(&mut self) -> io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }

    /// Sends the queued replies, records the lines of the last read, and reads more.
    async fn fill(&mut self) -> io::Result<()> {
        let output = std::mem::take(&mut self.output);
        self.stream()?.write_all(&output).await?;
        self.stream()?.flush().await?;
        let read = std::mem::take(&mut self.read);
        if !read.is_empty() {
            self.record().reads.push(read);
        }
        let filled = self.input.len();
        self.input.resize(filled + 16 * 1024, 0);
        let read = match self.stream.as_mut() {
            Some(stream) => stream.read(&mut self.input[filled..]).await,
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        self.input
            .truncate(filled + read.as_ref().map_or(0, |&n| n));
        if read? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// The next command line, recorded.
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(newline) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=newline).collect();
                let line = String::from_utf8_lossy(&line).trim_end().to_owned();
                self.record().commands.push(line.clone());
                self.read.push(line.clone());
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn commands(&mut self, script: &Script) -> io::Result<()> {
        loop {
            let line = self.line().await?;
            let (verb, rest) = line.split_once(' ').unwrap_or((&line, ""));
            match verb.to_ascii_uppercase().as_str() {
                "EHLO" if script.no_ehlo => self.reply("502 5.5.2 Error: command not recognized"),
                "EHLO" => self.ehlo(script),
                "HELO" => self.reply("250 sink.test"),
                "STARTTLS" => self.starttls(script).await?,
                "AUTH" if script.ehlo.iter().any(|k| k.starts_with("AUTH")) => {
                    self.reply("235 2.7.0 Authentication successful");
                }
                "MAIL" => self.mail(script, rest),
                "RCPT" => self.rcpt(script, rest),
                "DATA" => self.data(script).await?,
                "RSET" => {
                    self.reset();
                    self.reply("250 2.0.0 Ok");
                }
                "NOOP" => self.reply("250 2.0.0 Ok"),
                "QUIT" => {
                    self.reply("221 2.0.0 Bye");
                    let output = std::mem::take(&mut self.output);
                    return self.stream()?.write_all(&output).await;
                }
                _ => self.reply("502 5.5.2 Error: command not recognized"),
            }
        }
    }

    fn reset(&mut self) {
        self.sender = None;
        self.recipients.clear();
    }

    fn ehlo(&mut self, script: &Script) {
        self.reset();
        let mut lines = vec!["sink.test".to_owned()];
        lines.extend(script.ehlo.iter().cloned());
        if script.tls.is_some() && matches!(self.stream, Some(Either::Left(_))) {
            lines.push("STARTTLS".to_owned());
        }
        let last = lines.len() - 1;
        for (index, line) in lines.into_iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            self.reply(&format!("250{separator}{line}"));
        }
    }

    async fn starttls(&mut self, script: &Script) -> io::Result<()> {
        let (Some(config), Some(Either::Left(_))) = (&script.tls, &self.stream) else {
            self.reply("502 5.5.1 Error: command not implemented");
            return Ok(());
        };
        let acceptor = futures_rustls::TlsAcceptor::from(Arc::clone(config));
        self.reply("220 2.0.0 Ready to start TLS");
        let output = std::mem::take(&mut self.output);
        self.stream()?.write_all(&output).await?;
        let Some(Either::Left(tcp)) = self.stream.take() else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        self.input.clear();
        self.reset();
        self.stream = Some(Either::Right(Box::new(acceptor.accept(tcp).await?)));
        Ok(())
    }

    fn mail(&mut self, script: &Script, rest: &str) {
        let reply = match &script.mail {
            _ if self.sender.is_some() => "503 5.5.1 Error: nested MAIL command",
            Some(reply) => reply.as_str(),
            None => "250 2.1.0 Ok",
        };
        if reply.starts_with('2') {
            self.sender = Some(path(rest));
        }
        self.reply(reply);
    }

    fn rcpt(&mut self, script: &Script, rest: &str) {
        let recipient = path(rest);
        let scripted = script
            .rcpt
            .iter()
            .find(|(r, _)| r.eq_ignore_ascii_case(&recipient));
        let reply = match scripted {
            _ if self.sender.is_none() => "503 5.5.1 sink: RCPT before MAIL",
            Some((_, reply)) => reply.as_str(),
            None => "250 2.1.5 Ok",
        };
        if reply.starts_with('2') {
            self.recipients.push(recipient);
        }
        self.reply(reply);
    }

    async fn data(&mut self, script: &Script) -> io::Result<()> {
        let reply = match &script.data {
            _ if self.sender.is_none() => "503 5.5.1 sink: DATA before MAIL",
            _ if self.recipients.is_empty() => "554 5.5.1 Error: no valid recipients",
            Some(reply) => reply.as_str(),
            None => "354 End data with <CR><LF>.<CR><LF>",
        };
        self.reply(reply);
        if !reply.starts_with('3') {
            return Ok(());
        }
        let mut searched = 0;
        let end = loop {
            if let Some(end) = end_of_data(&self.input, searched) {
                break end;
            }
            // The end may straddle two reads: its first four bytes may be in this one.
            searched = self.input.len().saturating_sub(4);
            self.fill().await?;
            if script.disconnect_mid_data {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
        };
        let wire: Vec<u8> = self.input.drain(..end).collect();
        let reply = self.verdict(script, unstuff(&wire));
        self.reset();
        self.reply(&reply);
        Ok(())
    }

    /// The reply at the end of data; an accepted message is recorded.
    fn verdict(&self, script: &Script, message: Result<Vec<u8>, &str>) -> String {
        let mut record = self.record();
        record.transactions += 1;
        let data = match message {
            Ok(data) => data,
            Err(refusal) => return refusal.to_owned(),
        };
        let reply = match &script.data_end {
            _ if record.transactions <= script.tempfail.0 => script.tempfail.1.clone(),
            Some(reply) => reply.clone(),
            None => format!("250 2.0.0 Ok: queued as SINK{}", record.transactions),
        };
        if reply.starts_with('2') {
            record.messages.push(Received {
                mail_from: self.sender.clone().unwrap_or_default(),
                rcpt_to: self.recipients.clone(),
                data,
                tls: matches!(self.stream, Some(Either::Right(_))),
            });
        }
        reply
    }
}

/// Where the message data at the start of `input` ends: just past the `.` CRLF line that
/// follows a CRLF (or starts the data), looked for from `from` on; `None` while it has not come.
fn end_of_data(input: &[u8], from: usize) -> Option<usize> {
    if input.starts_with(b".\r\n") {
        return Some(3);
    }
    let from = from.min(input.len());
    input[from..]
        .windows(5)
        .position(|window| window == b"\r\n.\r\n")
        .map(|at| from + at + 5)
}

/// The message in `wire`, the bytes a client sent after `354` up to and including the final
/// `.` line: line by line, the final CRLF kept and one leading `.` dropped (RFC 5321 §4.5.2);
/// or Postfix's reply refusing it, when a line holds a bare CR or LF or a NUL.
///
/// Written apart from mq's own reader of DATA (`smtp::DataReader`, a state machine fed in
/// chunks) on purpose, as the plain reading of the RFC: the sink checks mq's client, and a
/// mistake shared by mq's stuffing and mq's unstuffing would cancel out if the sink read the
/// data with mq's code.
fn unstuff(wire: &[u8]) -> Result<Vec<u8>, &'static str> {
    const BARE: &str = "550 5.5.2 Error: bare <CR> or <LF> received";
    const NUL: &str = "550 5.6.0 Error: message contains NUL characters";
    let mut rest = wire.strip_suffix(b".\r\n").unwrap_or(wire);
    let mut message = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        // Every line before the final `.` ends in CRLF: that is how the end was found.
        let end = rest.windows(2).position(|w| w == b"\r\n").ok_or(BARE)?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return Err(BARE);
        }
        if line.contains(&0) {
            return Err(NUL);
        }
        message.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        message.extend_from_slice(b"\r\n");
    }
    Ok(message)
}

/// The path in `FROM:<path> params` or `TO:<path> params`, without brackets.
fn path(rest: &str) -> String {
    let start = rest.find('<').map_or(0, |i| i + 1);
    let end = rest[start..].find('>').map_or(rest.len(), |i| start + i);
    rest[start..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message a client's DATA bytes carry, as the sink reads them.
    fn read(wire: &[u8]) -> Result<Vec<u8>, &'static str> {
        let end = end_of_data(wire, 0).expect("the data ends");
        assert_eq!(end, wire.len(), "nothing follows the final dot");
        unstuff(&wire[..end])
    }

    #[test]
    fn one_leading_dot_is_dropped_from_each_line() {
        let wire = b"..leading\r\n...two\r\n..\r\na.b\r\nlast\r\n.\r\n";
        let message = b".leading\r\n..two\r\n.\r\na.b\r\nlast\r\n";
        assert_eq!(read(wire).unwrap(), message);
    }

    #[test]
    fn an_empty_message_and_an_empty_line() {
        assert_eq!(read(b".\r\n").unwrap(), b"");
        assert_eq!(read(b"\r\n.\r\n").unwrap(), b"\r\n");
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data() {
        let wire = b"a\n.\nb\r\n.\r\nMAIL FROM:<x>\r\n";
        assert_eq!(end_of_data(wire, 0), Some(10));
        assert_eq!(end_of_data(b"a\r\n.\r", 0), None);
        assert_eq!(end_of_data(b"a\r\n..\r\n", 0), None);
        // Found from where the last search stopped, across reads.
        assert_eq!(end_of_data(b"0123456789a\r\n.\r\n", 10), Some(16));
    }

    #[test]
    fn a_bare_line_ending_or_a_nul_is_refused() {
        assert!(read(b"a\n.\nb\r\n.\r\n").unwrap_err().contains("bare"));
        assert!(read(b"a\rb\r\n.\r\n").unwrap_err().contains("bare"));
        assert!(read(b"a\0b\r\n.\r\n").unwrap_err().contains("NUL"));
    }
}
