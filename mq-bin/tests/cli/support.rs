//! Running the real `mq` binary: one-shot commands, and `mq serve` as a child process on
//! loopback ports with its data in a temporary directory, killed if a test leaves it running.

use std::io::{BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server gets to start, to stop, or a command to finish: generous, since other
/// builds share this machine (a loaded one can take seconds to start a debug binary), but
/// bounded, so that a hang fails instead of stalling. Only a failing test waits it out.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The `mq` binary with `args`, logging at its default level.
pub(crate) fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mq"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    command
}

/// Runs the real `mq` binary with `args` and no stdin.
pub(crate) fn mq(args: &[&str]) -> Output {
    bounded(&mut command(args), None)
}

/// Runs `command` to its end with `input` on stdin (or none), killing it if it takes longer
/// than [`PATIENCE`]. A thread of its own waits, so that output of any size is read.
pub(crate) fn bounded(command: &mut Command, input: Option<&[u8]>) -> Output {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mq starts");
    let pid = child.id().to_string();
    let input = input.map(<[u8]>::to_vec);
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A command that stops reading early has its say in its exit status.
            let _ = stdin.write_all(&input);
        }
        let _ = done.send(child.wait_with_output());
    });
    if let Ok(output) = finished.recv_timeout(PATIENCE) {
        return output.expect("mq's output");
    }
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
    panic!("mq did not finish within {PATIENCE:?}");
}

/// Writes `text` to a file of its own under cargo's scratch directory for tests.
pub(crate) fn config_file(name: &str, text: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).expect("the scratch directory is writable");
    path
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Adds `text` at the end of the config file at `path`.
pub(crate) fn append(path: &Path, text: &str) {
    let mut content = std::fs::read_to_string(path).expect("the config");
    content.push_str(text);
    std::fs::write(path, content).expect("the config is written");
}

/// Asserts that `output` is a failure with one line `mq: …` on stderr, and returns that line.
pub(crate) fn one_error_line(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let text = stderr(output);
    assert!(text.starts_with("mq: "), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    text
}

/// Asserts that `output` succeeded, and returns its stdout.
pub(crate) fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        stderr(output)
    );
    stdout(output)
}

/// A loopback port nothing listens on right now, that no connection can take before a server
/// binds it (see [`mq_core::testkit::unused_port`]).
pub(crate) fn free_port() -> SocketAddr {
    mq_core::testkit::unused_port()
}

/// A data directory and a config file for one server: SMTP on a port the server picks, the
/// admin port on a free one, the queue in a temporary directory.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
    pub(crate) admin: SocketAddr,
    pub(crate) config: PathBuf,
}

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch::with_admin("")
    }

    /// A scratch whose `[admin]` table has `lines` too (each ending in a newline).
    pub(crate) fn with_admin(lines: &str) -> Scratch {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let admin = free_port();
        let data = dir.path().join("data");
        let mut text = format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n\n[queue]\ndata_dir = '{}'\nfsync = false\n\n\
             [admin]\nlisten = \"{admin}\"\n{lines}\n\
             # These tests look at the queue; delivery would empty it (and ask DNS).\n\
             [delivery]\nenabled = false\n",
            // A literal string: no escapes to get wrong in a temporary path.
            data.display()
        );
        if cfg!(feature = "headers") {
            // Proof that mail went through the hooks: the headers plugin stamps it.
            text.push_str("\n[[plugins.headers.add]]\nname = \"X-Test\"\nvalue = \"stamped\"\n");
        }
        let config = dir.path().join("mq.toml");
        std::fs::write(&config, text).expect("the config is written");
        Scratch { dir, admin, config }
    }

    /// Replaces the first `from` in the config file with `to`; panics when `from` is not there,
    /// so that an edit never silently does nothing.
    pub(crate) fn edit_config(&self, from: &str, to: &str) {
        let config = std::fs::read_to_string(&self.config).expect("the config is readable");
        assert!(
            config.contains(from),
            "{from:?} is not in the config:\n{config}"
        );
        std::fs::write(&self.config, config.replacen(from, to, 1)).expect("the config is written");
    }

    /// Has the server listen for SMTP on a free port written in the config, where `mq sendmail`
    /// looks for it, instead of one the server picks and logs.
    pub(crate) fn smtp_on_free_port(&self) {
        let listen = format!("listen = \"{}\"", free_port());
        self.edit_config("listen = \"127.0.0.1:0\"", &listen);
    }

    /// The temporary directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `mq --config <this config> args…`.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = command(&["--config", self.config.to_str().expect("a UTF-8 path")]);
        command.args(args);
        command
    }

    /// Runs `mq --config <this config> args…` with no stdin.
    pub(crate) fn mq(&self, args: &[&str]) -> Output {
        bounded(&mut self.command(args), None)
    }

    /// Runs `mq --config <this config> args…` with `input` on stdin.
    pub(crate) fn mq_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        bounded(&mut self.command(args), Some(input))
    }

    /// Starts `mq serve` and waits until its SMTP and admin ports accept connections.
    pub(crate) fn serve(&self) -> Server {
        Server::start(&mut self.command(&["serve"]), self.path(), self.admin)
    }
}

/// A child process, killed if it is still running when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A running `mq serve`.
pub(crate) struct Server {
    child: Guard,
    log: PathBuf,
    smtp: Option<SocketAddr>,
}

impl Server {
    /// Starts `command` (an `mq serve`), logging to a file in `dir`, and waits until it has
    /// logged its SMTP address and its admin port at `admin` accepts.
    pub(crate) fn start(command: &mut Command, dir: &Path, admin: SocketAddr) -> Server {
        let log = dir.join("serve.log");
        let log_file = std::fs::File::create(&log).expect("a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        let child = child.spawn().expect("mq serve starts");
        let mut server = Server {
            child: Guard(child),
            log,
            smtp: None,
        };
        server.smtp = Some(server.wait_for_address());
        server.poll("the admin port to accept", |_| {
            TcpStream::connect(admin).ok()
        });
        server
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// The SMTP address the server reported.
    pub(crate) fn smtp(&self) -> SocketAddr {
        self.smtp.expect("the server is started")
    }

    /// What the server logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The SMTP address from the `mq serving address=…` line (`"address":"…"` in JSON
    /// lines): the server binds port 0.
    fn wait_for_address(&mut self) -> SocketAddr {
        self.poll("the server to log its address", |server| {
            let log = server.log();
            let line = log.lines().find(|line| line.contains("mq serving"))?;
            let address = match line.split_once("address=") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_once("\"address\":\"")?.1.split('"').next()?,
            };
            address.parse().ok()
        })
    }

    /// Polls `ready` until it gives a value, at most [`PATIENCE`]; fails at once if the
    /// server exits.
    fn poll<T>(&mut self, what: &str, mut ready: impl FnMut(&Server) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(value) = ready(self) {
                return value;
            }
            if let Some(status) = self
                .child
                .0
                .try_wait()
                .expect("the server can be waited for")
            {
                panic!(
                    "mq serve exited ({status}) while waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits, at most [`PATIENCE`], for the server to exit.
    pub(crate) fn terminate(self) -> Stopped {
        self.signal_term();
        self.wait_exit()
    }

    /// Sends SIGTERM.
    pub(crate) fn signal_term(&self) {
        let pid = self.child.0.id().to_string();
        let kill = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(kill.success(), "kill -TERM {pid}");
    }

    /// Waits, at most [`PATIENCE`], until the server has logged `text`.
    pub(crate) fn wait_for_log(&mut self, text: &str) {
        self.poll(text, |server| server.log().contains(text).then_some(()));
    }

    /// Sends `signal` (a name `kill` knows, e.g. `HUP`).
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.0.id().to_string();
        let kill = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill runs");
        assert!(kill.success(), "kill -{signal} {pid}");
    }

    /// Waits, at most [`PATIENCE`], until the server has logged lines holding `text` `times`
    /// times.
    pub(crate) fn wait_for_logged_times(&mut self, text: &str, times: usize) {
        let what = format!("{text} logged {times} times");
        self.poll(&what, |server| {
            (server.log().matches(text).count() >= times).then_some(())
        });
    }

    /// Waits, at most [`PATIENCE`], for the server to exit.
    pub(crate) fn wait_exit(mut self) -> Stopped {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self
                .child
                .0
                .try_wait()
                .expect("the server can be waited for")
            {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "mq serve did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.0.stdout.take() {
            out.read_to_string(&mut stdout)
                .expect("the server's stdout");
        }
        Stopped {
            status,
            stdout,
            log: self.log(),
        }
    }
}

/// How a server ended.
pub(crate) struct Stopped {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) log: String,
}

impl Stopped {
    /// Fails the test, with the exit status and the log, unless the server exited with 0.
    pub(crate) fn assert_success(&self) {
        assert!(self.status.success(), "{:?}\n{}", self.status, self.log);
    }
}

/// One SMTP dialogue over a plain socket: the reply to each of `lines`, in order, after the
/// greeting. `lines` ending in DATA's message must end with `.`.
pub(crate) fn smtp(address: SocketAddr, lines: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(address).expect("the server accepts");
    stream.set_read_timeout(Some(PATIENCE)).expect("a timeout");
    let mut writer = stream.try_clone().expect("a second handle");
    let mut reader = BufReader::new(stream);
    let mut replies = vec![read_reply(&mut reader)];
    for line in lines {
        writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("the server reads");
        // Lines of message data get no reply; the end of data, and commands, do.
        let in_data = replies.last().is_some_and(|r| r.starts_with("354"));
        if !in_data || *line == "." {
            replies.push(read_reply(&mut reader));
        }
    }
    replies
}

/// The lines of one reply, joined with newlines.
fn read_reply(reader: &mut impl std::io::BufRead) -> String {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a reply");
        let line = line.trim_end().to_owned();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last {
            return lines.join("\n");
        }
    }
}

/// `GET path` on the admin port: the status code and the body.
pub(crate) fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("the admin port accepts");
    stream.set_read_timeout(Some(PATIENCE)).expect("a timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("a request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_owned())
}

/// The rows of `mq queue list` without the header and the summary, each as its fields.
pub(crate) fn listed(text: &str) -> Vec<Vec<String>> {
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("QUEUE ID")),
        "{text}"
    );
    assert!(lines.last().is_some_and(|l| l.starts_with("-- ")), "{text}");
    lines.pop();
    lines.remove(0);
    lines
        .iter()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}
