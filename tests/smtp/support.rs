//! What every SMTP test needs: a server on a loopback port with a queue of its own, a raw client
//! that reads whole replies over TCP or TLS, the TLS and AUTH settings, and python3.
//!
//! The client panics with the server's words on anything unexpected; the `try_` methods are for
//! the crash test, whose clients see the server die under them.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Entry, Queue, QueueId};
use mq_core::smtp::{Server, SmtpConfig, TlsFiles};
use mq_core::{Config, Registry, Runtime};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use tempfile::TempDir;

/// How long a client waits for a reply: far longer than any reply takes (an Argon2 check in a
/// debug build is the slowest, well under a second).
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The user every TLS server knows, and the password that is theirs.
pub(crate) const USER: &str = "alice";
/// [`USER`]'s password.
pub(crate) const PASSWORD: &str = "correct horse";

/// The name in the test certificate; the server's hostname is `localhost` too.
const CERT_NAME: &str = "localhost";

/// A server on `127.0.0.1:<free port>` with its own queue in a temporary directory. Dropping it
/// shuts the runtime down, which waits for open sessions: drop clients first (declare them
/// after the server).
pub(crate) struct TestServer {
    pub(crate) queue: Arc<EmbeddedQueue>,
    pub(crate) addr: SocketAddr,
    /// The certificate STARTTLS presents, PEM, when TLS is configured.
    pub(crate) cert: Option<String>,
    runtime: Option<Runtime>,
    server: Server,
    /// Outlives the runtime, which holds the queue.
    dir: TempDir,
}

impl TestServer {
    /// A server on `workers` cores with the default settings, changed by `configure`.
    pub(crate) fn start(workers: usize, configure: impl FnOnce(&mut SmtpConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = SmtpConfig::default();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        configure(&mut config);
        let cert = config.tls.as_ref().map(|files| {
            std::fs::read_to_string(&files.cert).expect("the certificate configure wrote")
        });
        let queue = open_queue(&dir.path().join("queue"));
        let runtime = start_runtime(workers);
        let server = Server::start(&runtime, config, queue.clone()).expect("the server starts");
        TestServer {
            queue,
            addr: server.local_addr(),
            cert,
            runtime: Some(runtime),
            server,
            dir,
        }
    }

    /// A one-core server that offers STARTTLS and, over TLS, AUTH for [`USER`].
    pub(crate) fn with_tls(configure: impl FnOnce(&mut SmtpConfig)) -> TestServer {
        let files = tempfile::tempdir().expect("a temporary directory");
        let tls = write_tls_files(files.path());
        let server = TestServer::start(1, |config| {
            config.tls = Some(tls);
            config.auth.users = BTreeMap::from([(USER.to_owned(), password_hash().to_owned())]);
            configure(config);
        });
        // The server read its certificate and key at start.
        drop(files);
        server
    }

    /// Every queued entry.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.queue.list()
    }

    /// The stored message of `id`, as text.
    pub(crate) fn body(&self, id: QueueId) -> String {
        body_of(&*self.queue, id)
    }

    /// The certificate, for a client to trust.
    pub(crate) fn cert(&self) -> &str {
        self.cert.as_deref().expect("a server started with TLS")
    }

    /// A client connected to this server that has read the greeting.
    pub(crate) fn client(&self) -> Client {
        Client::greeted(self.addr)
    }

    /// The server's counters.
    pub(crate) fn stats(&self) -> &mq_core::smtp::Stats {
        self.server.stats()
    }

    /// Where the server keeps its files.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server, for a test that reloads its settings.
    pub(crate) fn server(&self) -> &Server {
        &self.server
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown();
        }
    }
}

/// The durable queue in `dir`.
pub(crate) fn open_queue(dir: &Path) -> Arc<EmbeddedQueue> {
    Arc::new(EmbeddedQueue::open(dir, EmbeddedOptions::default()).expect("the queue opens"))
}

/// A runtime of `workers` cores running every plugin linked into this binary.
pub(crate) fn start_runtime(workers: usize) -> Runtime {
    let plan = Registry::linked()
        .expect("the linked plugins have distinct names")
        .plan(&Config::default())
        .expect("a plan with every linked plugin");
    Runtime::start(&plan, workers).expect("the runtime starts")
}

/// The stored message of `id` in `queue`, as text.
pub(crate) fn body_of(queue: &dyn Queue, id: QueueId) -> String {
    let body = smol::block_on(queue.body(&id)).expect("a queued message has a body");
    String::from_utf8(body.to_vec()).expect("the tests send UTF-8 messages")
}

/// Writes a fresh self-signed certificate for `localhost` and its key into `dir`.
pub(crate) fn write_tls_files(dir: &Path) -> TlsFiles {
    let (cert, key) = mq_core::smtp::tls::self_signed(CERT_NAME);
    let files = TlsFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, cert).expect("write the certificate");
    std::fs::write(&files.key, key).expect("write the key");
    files
}

/// [`PASSWORD`]'s Argon2 hash, made once: hashing is slow in a debug build.
pub(crate) fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| mq_core::smtp::auth::hash_argon2(PASSWORD))
}

/// The base64 answer of AUTH PLAIN for `user` and `password`.
pub(crate) fn plain(user: &str, password: &str) -> String {
    BASE64.encode(format!("\0{user}\0{password}"))
}

/// `text` in base64, as AUTH LOGIN wants each answer.
pub(crate) fn b64(text: &str) -> String {
    BASE64.encode(text)
}

/// The queue id in a `250 2.0.0 Ok: queued as <id>` reply.
pub(crate) fn queued_id(reply: &str) -> QueueId {
    let id = reply
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not a queued reply: {reply:?}"));
    id.parse()
        .unwrap_or_else(|_| panic!("not a queue id: {id:?}"))
}

/// Runs `script` with `python3 -c`, `args` as `sys.argv[1..]`, and returns the lines it printed.
///
/// # Panics
///
/// python3 is missing (it is part of the test machine) or the script failed.
pub(crate) fn python(script: &str, args: &[&str]) -> Vec<String> {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("python3 is part of the test machine and must be on PATH; running it failed: {error}")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the python3 client failed ({}):\n--- stdout\n{stdout}--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

/// The connection under a [`Client`]: plaintext, or TLS after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// A raw SMTP client: writes exactly the bytes it is given, reads whole (multi-line) replies.
pub(crate) struct Client {
    /// `None` only while STARTTLS swaps the stream.
    stream: Option<Stream>,
    /// Bytes read but not yet returned as lines.
    input: Vec<u8>,
}

impl Client {
    /// Connects, waiting at most [`REPLY_TIMEOUT`] for each read.
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr, REPLY_TIMEOUT).expect("connect to the server")
    }

    /// Connects, waiting at most `timeout` for each read.
    pub(crate) fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let tcp = TcpStream::connect(addr)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_nodelay(true)?;
        Ok(Client {
            stream: Some(Stream::Plain(tcp)),
            input: Vec::new(),
        })
    }

    /// Connects from `source` (another loopback address, such as 127.0.0.2) and reads the
    /// `220` greeting: a client the server tells apart from 127.0.0.1 by its address.
    pub(crate) fn greeted_from(source: std::net::IpAddr, addr: SocketAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("a socket");
        socket
            .bind(&SocketAddr::new(source, 0).into())
            .expect("a loopback source address");
        socket.connect(&addr.into()).expect("connect to the server");
        let tcp = TcpStream::from(socket);
        tcp.set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("a timeout");
        let mut client = Client {
            stream: Some(Stream::Plain(tcp)),
            input: Vec::new(),
        };
        assert_eq!(client.reply(), "220 localhost ESMTP mq");
        client
    }

    /// Connects and reads the `220` greeting.
    pub(crate) fn greeted(addr: SocketAddr) -> Client {
        let mut client = Client::connect(addr);
        let greeting = client.reply();
        assert_eq!(greeting, "220 localhost ESMTP mq");
        client
    }

    fn stream(&mut self) -> &mut Stream {
        self.stream.as_mut().expect("a stream outside STARTTLS")
    }

    /// Writes `bytes` as they are, in one write.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.try_write(bytes).expect("write to the server");
    }

    /// Writes `bytes` as they are, in one write.
    pub(crate) fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// The next line without its CRLF; `None` once the server closed the connection.
    fn try_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(newline) = self.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.input.drain(..=newline).collect();
                let line = String::from_utf8(line)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let Some(line) = line.strip_suffix("\r\n") else {
                    let error = format!("a reply line without CRLF: {line:?}");
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                };
                return Ok(Some(line.to_owned()));
            }
            let mut chunk = [0; 4096];
            match self.stream().read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(read) => self.input.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Err(error) => return Err(error),
            }
        }
    }

    /// The next reply, its lines joined by `\n`; `None` if the server closed first.
    pub(crate) fn try_reply(&mut self) -> io::Result<Option<String>> {
        let mut lines = Vec::new();
        loop {
            let Some(line) = self.try_line()? else {
                if lines.is_empty() {
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            };
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                return Ok(Some(lines.join("\n")));
            }
        }
    }

    /// The next reply, its lines joined by `\n`.
    pub(crate) fn reply(&mut self) -> String {
        match self.try_reply() {
            Ok(Some(reply)) => reply,
            Ok(None) => panic!("the server closed the connection instead of replying"),
            Err(error) => panic!("no reply from the server: {error}"),
        }
    }

    /// Sends `line` and its CRLF, and returns the reply.
    pub(crate) fn send(&mut self, line: &str) -> String {
        self.write(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Whether the server has sent anything not read yet, without waiting for it.
    pub(crate) fn has_unread_input(&mut self) -> bool {
        if !self.input.is_empty() {
            return true;
        }
        let tcp = match self.stream() {
            Stream::Plain(tcp) => &*tcp,
            Stream::Tls(tls) => &tls.sock,
        };
        tcp.set_nonblocking(true).expect("non-blocking");
        let peeked = tcp.peek(&mut [0]);
        tcp.set_nonblocking(false).expect("blocking");
        match peeked {
            Ok(_) => true,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => false,
            Err(error) => panic!("peek: {error}"),
        }
    }

    /// Whether the server has closed the connection: the next read finds its end, with nothing
    /// before it.
    pub(crate) fn is_closed(&mut self) -> bool {
        match self.try_line() {
            Ok(None) => true,
            Ok(Some(line)) => panic!("the server sent {line:?} instead of closing"),
            Err(error) => panic!("the connection neither closed nor spoke: {error}"),
        }
    }

    /// `EHLO client.example`, checking it is accepted; returns the whole reply.
    pub(crate) fn ehlo(&mut self) -> String {
        let reply = self.send("EHLO client.example");
        assert!(reply.starts_with("250-localhost\n"), "{reply}");
        reply
    }

    /// STARTTLS, then the handshake, trusting exactly `cert_pem`.
    pub(crate) fn starttls(&mut self, cert_pem: &str) {
        assert_eq!(self.send("STARTTLS"), "220 2.0.0 Ready to start TLS");
        self.upgrade(cert_pem);
    }

    /// The TLS handshake on the connection as it is, trusting exactly `cert_pem`.
    pub(crate) fn upgrade(&mut self, cert_pem: &str) {
        assert!(
            self.input.is_empty(),
            "the server sent more before TLS: {:?}",
            String::from_utf8_lossy(&self.input)
        );
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            panic!("TLS is already on");
        };
        let config = mq_core::smtp::tls::client_config_trusting(cert_pem);
        let name = ServerName::try_from(CERT_NAME).expect("a DNS name");
        let conn = ClientConnection::new(config, name).expect("a TLS client");
        let mut tls = StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .expect("the TLS handshake succeeds");
        }
        self.stream = Some(Stream::Tls(Box::new(tls)));
    }

    /// AUTH PLAIN with the answer on the command line; returns the reply.
    pub(crate) fn auth_plain(&mut self, user: &str, password: &str) -> String {
        self.send(&format!("AUTH PLAIN {}", plain(user, password)))
    }

    /// A whole transaction (MAIL, one RCPT, DATA, the message), checking each step is
    /// accepted; returns the reply to the message.
    pub(crate) fn message(&mut self, sender: &str, recipient: &str, message: &str) -> String {
        let mail = self.send(&format!("MAIL FROM:<{sender}>"));
        assert_eq!(mail, "250 2.1.0 Ok");
        let rcpt = self.send(&format!("RCPT TO:<{recipient}>"));
        assert_eq!(rcpt, "250 2.1.5 Ok");
        self.data(message)
    }

    /// DATA and the message (dot-stuffed by the caller, without the final dot); returns the
    /// reply to the message.
    pub(crate) fn data(&mut self, message: &str) -> String {
        assert_eq!(self.send("DATA"), "354 End data with <CR><LF>.<CR><LF>");
        self.write(format!("{message}.\r\n").as_bytes());
        self.reply()
    }
}
