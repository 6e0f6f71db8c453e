//! [`Paced`]: an SMTP server of this binary for what the scripted sink does not show: how many
//! connections are open at once, and replies that come late, so that deliveries are in flight
//! when a test looks (or kills); replies it holds until an event rather than for a time, so
//! that what a test sees in flight does not depend on how fast a loaded machine runs it. It can
//! also listen on another loopback address and greet with
//! a refusal, standing for a preferred MX that is down.
//!
//! It runs a thread per connection with blocking sockets: simple, and enough for a few dozen
//! connections. It does not offer PIPELINING, so the client sends one command at a time.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a blocked read or a late reply waits before looking at the stop flag.
const STEP: Duration = Duration::from_millis(10);

/// How a [`Paced`] server answers.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    greeting: String,
    data_end_delay: Duration,
    answer_first: Option<usize>,
    until_open: usize,
    idle_close: Option<Duration>,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            greeting: "220 paced.test ESMTP".to_owned(),
            data_end_delay: Duration::ZERO,
            answer_first: None,
            until_open: 0,
            idle_close: None,
        }
    }
}

impl Pace {
    /// The greeting; `421 ...` refuses every session.
    pub(crate) fn greeting(mut self, reply: &str) -> Pace {
        reply.clone_into(&mut self.greeting);
        self
    }

    /// How long the reply to each message's final dot takes.
    pub(crate) fn data_end_delay(mut self, delay: Duration) -> Pace {
        self.data_end_delay = delay;
        self
    }

    /// Answers the first `count` messages (over all sessions), and holds the reply to every
    /// later one until the server stops: those stay in flight.
    pub(crate) fn answer_first(mut self, count: usize) -> Pace {
        self.answer_first = Some(count);
        self
    }

    /// Closes a session that sent nothing for `idle` (`421`, then the connection), as servers
    /// do to idle clients.
    pub(crate) fn idle_close(mut self, idle: Duration) -> Pace {
        self.idle_close = Some(idle);
        self
    }

    /// Holds each reply to a final dot until `sessions` sessions have been open at once (or the
    /// server stops): a client that opens no more than one at a time never gets an answer.
    pub(crate) fn answer_once_open(mut self, sessions: usize) -> Pace {
        self.until_open = sessions;
        self
    }
}

/// What the server saw, shared with its threads.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    /// Sessions open now: from accept until QUIT (or the connection's end).
    open: AtomicUsize,
    /// The most sessions ever open at once.
    max_open: AtomicUsize,
    connections: AtomicUsize,
    /// Each message as it arrived (dot-unstuffed), before its reply.
    received: Mutex<Vec<String>>,
    /// Messages that came to their final dot, answered or held.
    dots: AtomicUsize,
    /// Each message whose 250 was sent.
    accepted: Mutex<Vec<String>>,
    /// RSET commands received.
    resets: AtomicUsize,
}

/// A running paced server; stops when dropped.
#[derive(Debug)]
pub(crate) struct Paced {
    address: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Paced {
    /// A server on a free port of `127.0.0.1`.
    pub(crate) fn start(pace: Pace) -> Paced {
        Paced::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), pace)
    }

    /// A server on `address` (a loopback address; port 0 for a free one).
    pub(crate) fn start_on(address: SocketAddr, pace: Pace) -> Paced {
        let listener = TcpListener::bind(address).expect("a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let address = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared::default());
        let accepting = Arc::clone(&shared);
        let thread = thread::spawn(move || accept(&listener, &pace, &accepting));
        Paced {
            address,
            shared,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    /// The IP it listens on.
    pub(crate) fn ip(&self) -> IpAddr {
        self.address.ip()
    }

    /// Connections accepted so far.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Sessions open now.
    pub(crate) fn open(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// The most sessions that were open at once.
    pub(crate) fn max_open(&self) -> usize {
        self.shared.max_open.load(Ordering::SeqCst)
    }

    /// Every message received so far, accepted or still waiting for its reply.
    pub(crate) fn received(&self) -> Vec<String> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// RSET commands received so far, on every connection.
    pub(crate) fn resets(&self) -> usize {
        self.shared.resets.load(Ordering::SeqCst)
    }

    /// How many messages had their 250 sent.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted_messages().len()
    }

    /// Each message whose 250 was sent, in order.
    pub(crate) fn accepted_messages(&self) -> Vec<String> {
        self.shared
            .accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Paced {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept(listener: &TcpListener, pace: &Pace, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((tcp, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let open = shared.open.fetch_add(1, Ordering::SeqCst) + 1;
                shared.max_open.fetch_max(open, Ordering::SeqCst);
                let (pace, shared) = (pace.clone(), Arc::clone(shared));
                thread::spawn(move || {
                    let mut session = Session {
                        shared: &shared,
                        open: true,
                        idle_close: pace.idle_close,
                    };
                    let _ = session.serve(tcp, &pace);
                });
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => thread::sleep(STEP),
            Err(_) => return,
        }
    }
}

/// One connection, counted open until it quits or ends.
struct Session<'a> {
    shared: &'a Shared,
    open: bool,
    /// How long the session waits for a command before it closes.
    idle_close: Option<Duration>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

impl Session<'_> {
    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            self.shared.open.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn serve(&mut self, tcp: TcpStream, pace: &Pace) -> io::Result<()> {
        tcp.set_nonblocking(false)?;
        tcp.set_read_timeout(Some(STEP))?;
        let mut writer = tcp.try_clone()?;
        let mut reader = BufReader::new(tcp);
        reply(&mut writer, &pace.greeting)?;
        let greeted = pace.greeting.starts_with("220");
        loop {
            let line = match self.line(&mut reader) {
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    self.close();
                    return reply(&mut writer, "421 4.4.2 paced.test Error: timeout exceeded");
                }
                line => line?,
            };
            let verb = line
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match verb.as_str() {
                "QUIT" => {
                    // Counted closed before the client can see the reply and open another.
                    self.close();
                    return reply(&mut writer, "221 2.0.0 Bye");
                }
                _ if !greeted => reply(&mut writer, "503 5.5.1 Error: refused at greeting")?,
                "EHLO" | "HELO" => reply(&mut writer, "250-paced.test\r\n250 8BITMIME")?,
                "MAIL" => reply(&mut writer, "250 2.1.0 Ok")?,
                "RCPT" => reply(&mut writer, "250 2.1.5 Ok")?,
                "RSET" => {
                    self.shared.resets.fetch_add(1, Ordering::SeqCst);
                    reply(&mut writer, "250 2.0.0 Ok")?;
                }
                "NOOP" => reply(&mut writer, "250 2.0.0 Ok")?,
                "DATA" => {
                    reply(&mut writer, "354 End data with <CR><LF>.<CR><LF>")?;
                    self.data(&mut reader, &mut writer, pace)?;
                }
                _ => reply(&mut writer, "502 5.5.2 Error: command not recognized")?,
            }
        }
    }

    /// The message up to its final dot, recorded, then its reply after the pace's delay and
    /// once nothing holds it.
    fn data(
        &self,
        reader: &mut BufReader<TcpStream>,
        writer: &mut TcpStream,
        pace: &Pace,
    ) -> io::Result<()> {
        let mut message = String::new();
        loop {
            let line = self.line(reader)?;
            if line == "." {
                break;
            }
            message.push_str(line.strip_prefix('.').unwrap_or(&line));
            message.push_str("\r\n");
        }
        self.shared
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message.clone());
        let dot = self.shared.dots.fetch_add(1, Ordering::SeqCst);
        let held = pace.answer_first.is_some_and(|count| dot >= count);
        let until = Instant::now() + pace.data_end_delay;
        while held
            || Instant::now() < until
            || self.shared.max_open.load(Ordering::SeqCst) < pace.until_open
        {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            thread::sleep(STEP);
        }
        reply(writer, "250 2.0.0 Ok: queued")?;
        self.shared
            .accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
        Ok(())
    }

    /// The next line without its CRLF; an error once the client went or the server stops, and
    /// `TimedOut` when the session's idle time passed before a line began.
    fn line(&self, reader: &mut BufReader<TcpStream>) -> io::Result<String> {
        let mut line = Vec::new();
        let began = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if line.is_empty() && self.idle_close.is_some_and(|idle| began.elapsed() >= idle) {
                return Err(io::ErrorKind::TimedOut.into());
            }
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) if line.ends_with(b"\n") => break,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        let text = String::from_utf8_lossy(&line);
        Ok(text.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn reply(writer: &mut TcpStream, reply: &str) -> io::Result<()> {
    writer.write_all(format!("{reply}\r\n").as_bytes())
}
