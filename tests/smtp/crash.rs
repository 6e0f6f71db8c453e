//! kill -9 under load: the server runs in a child process (this test binary, re-executed to run
//! only this test, which in the child serves instead: [`serve_until_killed_in`]), eight clients
//! send messages over
//! persistent connections, and the child is killed once 1,200 of them were acknowledged. After
//! a restart every acknowledged message is queued exactly once, and every recovered message is
//! intact.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use mq_core::queue::{Queue, QueueId};
use mq_core::smtp::{Server, SmtpConfig};
use mq_tests::child::{ChildTest, serve_until_killed};

use crate::support::{Client, body_of, open_queue, queued_id, start_runtime};

/// Set in the child's environment to the queue directory: it tells the re-executed test that
/// it is the child.
const QUEUE_DIR: &str = "MQ_SMTP_CRASH_QUEUE_DIR";
/// What the child prints, followed by its address, once it listens.
const LISTENING: &str = "LISTENING ";
const CLIENTS: usize = 8;
/// Acknowledged messages before the kill.
const TARGET: usize = 1_200;
/// Far more than sending [`TARGET`] messages takes (about a second).
const PATIENCE: Duration = Duration::from_mins(2);

/// The test this file holds, by its path in the test binary: the child runs it too.
const TEST: &str =
    "crash::a_server_killed_under_load_keeps_every_acknowledged_message_exactly_once";

/// The child: a server on two cores over the queue in `dir`, until it is killed or its parent
/// goes away (its stdin closes).
fn serve_until_killed_in(dir: &Path) -> ! {
    let queue = open_queue(dir);
    let runtime = start_runtime(2);
    let mut config = SmtpConfig::default();
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = Server::start(&runtime, config, queue).expect("the server starts");
    serve_until_killed(&format!("{LISTENING}{}", server.local_addr()));
}

/// Starts the child over the queue in `dir` and returns it with its address.
fn start_child(dir: &Path) -> (ChildTest, SocketAddr) {
    let (child, address) =
        ChildTest::start(TEST, &[(QUEUE_DIR, dir.as_os_str())], LISTENING, PATIENCE);
    (child, address.parse().expect("a socket address"))
}

/// The message a client sends under `tag`: a known pattern, its length varying with `n`.
fn message(tag: &str, n: usize) -> String {
    let mut text = format!("Subject: {tag}\r\nMessage-ID: <{tag}@crash.example>\r\n\r\n");
    for line in 0..=(n * 7 % 60) {
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{tag} line {line}: the quick brown fox jumps over the lazy dog\r\n"
        );
    }
    text
}

/// The tag and number in the Subject of a stored message, and whether the message is intact:
/// the server's Received field, then exactly what the client sent under that tag.
fn check_stored(body: &str) -> (String, bool) {
    let subject = body
        .lines()
        .find_map(|line| line.strip_prefix("Subject: "))
        .unwrap_or_else(|| panic!("a Subject in {body:?}"));
    let n: usize = subject
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a numbered tag: {subject}"));
    let intact = body.starts_with("Received: ")
        && body.ends_with(&message(subject, n))
        && body.matches("\r\nSubject: ").count() == 1;
    (subject.to_owned(), intact)
}

/// What the clients share: every (queue id, tag) acknowledged with 250, and failures seen before
/// the kill.
#[derive(Default)]
struct Tally {
    acknowledged: Mutex<Vec<(QueueId, String)>>,
    early_failures: Mutex<Vec<String>>,
    killing: AtomicBool,
}

impl Tally {
    fn acknowledged(&self) -> usize {
        lock(&self.acknowledged).len()
    }

    fn early_failures(&self) -> Vec<String> {
        lock(&self.early_failures).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One client: messages over one connection until the server dies under it. A failure before
/// the kill is recorded; after it, it is what the test expects.
fn send_until_killed(addr: SocketAddr, client: usize, tally: &Tally) {
    let Err(failure) = session(addr, client, tally);
    if !tally.killing.load(Ordering::SeqCst) {
        lock(&tally.early_failures).push(format!("client {client}: {failure}"));
    }
}

/// Sends messages, MAIL, RCPT and DATA pipelined in one write, until something fails.
fn session(
    addr: SocketAddr,
    client: usize,
    tally: &Tally,
) -> Result<std::convert::Infallible, String> {
    let mut conn = Client::try_connect(addr, PATIENCE).map_err(|e| format!("connect: {e}"))?;
    expect(&mut conn, "greeting", "220 ")?;
    conn.try_write(b"EHLO crash.example\r\n")
        .map_err(|e| e.to_string())?;
    expect(&mut conn, "EHLO", "250-localhost")?;
    for n in 0.. {
        let tag = format!("crash-{client}-{n}");
        let commands = format!(
            "MAIL FROM:<client{client}@example.org>\r\nRCPT TO:<crash@localhost>\r\nDATA\r\n"
        );
        conn.try_write(commands.as_bytes())
            .map_err(|e| format!("{tag}: {e}"))?;
        expect(&mut conn, "MAIL", "250 2.1.0 ")?;
        expect(&mut conn, "RCPT", "250 2.1.5 ")?;
        expect(&mut conn, "DATA", "354 ")?;
        let data = format!("{}.\r\n", message(&tag, n));
        conn.try_write(data.as_bytes())
            .map_err(|e| format!("{tag}: {e}"))?;
        let reply = expect(&mut conn, "the message", "250 2.0.0 Ok: queued as ")?;
        lock(&tally.acknowledged).push((queued_id(&reply), tag));
    }
    unreachable!("the loop ends only by an error")
}

/// The next reply, if it starts with `expected`.
fn expect(conn: &mut Client, what: &str, expected: &str) -> Result<String, String> {
    match conn.try_reply() {
        Ok(Some(reply)) if reply.starts_with(expected) => Ok(reply),
        Ok(Some(reply)) => Err(format!("{what} got {reply:?}")),
        Ok(None) => Err(format!("closed before the reply to {what}")),
        Err(error) => Err(format!("{what}: {error}")),
    }
}

#[test]
fn a_server_killed_under_load_keeps_every_acknowledged_message_exactly_once() {
    if let Some(dir) = std::env::var_os(QUEUE_DIR) {
        serve_until_killed_in(Path::new(&dir));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let queue_dir = dir.path().join("queue");
    let (mut child, addr) = start_child(&queue_dir);
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let tally = Arc::clone(&tally);
            thread::spawn(move || send_until_killed(addr, client, &tally))
        })
        .collect();
    let start = Instant::now();
    while tally.acknowledged() < TARGET {
        let early = tally.early_failures();
        assert!(
            early.is_empty(),
            "clients failed before the kill: {early:#?}"
        );
        let sent = tally.acknowledged();
        assert!(
            start.elapsed() < PATIENCE,
            "only {sent} of {TARGET} acknowledged"
        );
        thread::sleep(Duration::from_millis(5));
    }
    tally.killing.store(true, Ordering::SeqCst);
    child.kill();
    for client in clients {
        client.join().expect("a client ends when its server dies");
    }
    let early = tally.early_failures();
    assert!(
        early.is_empty(),
        "clients failed before the kill: {early:#?}"
    );
    let acknowledged = std::mem::take(&mut *lock(&tally.acknowledged));
    assert!(acknowledged.len() >= TARGET);

    let queue = open_queue(&queue_dir);
    let entries = queue.list();
    let mut stored: HashMap<QueueId, (usize, String)> = HashMap::new();
    for entry in &entries {
        assert_eq!(entry.recipient.as_str(), "crash@localhost");
        let (tag, intact) = check_stored(&body_of(&*queue, entry.queue_id));
        assert!(intact, "{tag} ({}) is stored intact", entry.queue_id);
        stored.entry(entry.queue_id).or_insert((0, tag)).0 += 1;
    }
    for (id, tag) in &acknowledged {
        let Some((count, stored_tag)) = stored.get(id) else {
            panic!("{tag} was acknowledged as {id} and is lost");
        };
        assert_eq!(*count, 1, "{tag} ({id}) is queued exactly once");
        assert_eq!(
            stored_tag, tag,
            "{id} holds the message acknowledged under it"
        );
    }
    let mut tags: Vec<&str> = stored.values().map(|(_, tag)| tag.as_str()).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!(
        tags.len(),
        stored.len(),
        "no message is queued under two ids"
    );
}
