//! One Redis connection per worker core, shared by every session on that core.
//!
//! Callers hand a command to the connection's driver task and wait for its reply; the driver
//! writes the commands in the order they came, and Redis answers in that order, so the replies
//! are matched to the waiting callers first-in, first-out (a multiplexed connection, as
//! redis-rs's). A caller that gives up (its deadline) only drops its receiver: the stream is
//! never left half-written, and the late reply is read and thrown away.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::rc::Rc;

use mq_plugin_api::{Context, Task};
use smol::channel::{self, Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

use crate::resp::{self, Value};

/// Why a command got no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// Connecting failed.
    Connect(String),
    /// The connection failed or was closed; the reason when known.
    Lost(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Connect(reason) => write!(f, "cannot connect to redis: {reason}"),
            LinkError::Lost(reason) => write!(f, "redis connection lost: {reason}"),
        }
    }
}

/// A command on its way to the driver, and where its reply goes.
struct Request {
    bytes: Vec<u8>,
    reply: Sender<Value>,
}

/// A connection: the way to its driver task, which ends (and closes the socket) when the link
/// is dropped or the connection fails.
pub(crate) struct Link {
    requests: Sender<Request>,
    /// Why the driver stopped, for the callers that find it stopped.
    failure: Rc<RefCell<Option<String>>>,
    _driver: Task<()>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Connects to `host:port` and starts the driver on this core's executor.
    pub(crate) async fn connect(ctx: &Context, host: &str, port: u16) -> Result<Link, LinkError> {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| LinkError::Connect(e.to_string()))?;
        // Commands are small and each waits on its reply: send them at once.
        stream
            .set_nodelay(true)
            .map_err(|e| LinkError::Connect(e.to_string()))?;
        let (requests, incoming) = channel::unbounded();
        let failure = Rc::new(RefCell::new(None));
        let driver = ctx.spawn(drive(stream, incoming, Rc::clone(&failure)));
        Ok(Link {
            requests,
            failure,
            _driver: driver,
        })
    }

    /// Whether the driver still runs: a closed link is replaced, not retried.
    pub(crate) fn is_open(&self) -> bool {
        !self.requests.is_closed()
    }

    /// Sends the command `args` and waits for its reply.
    pub(crate) async fn call(&self, args: &[&[u8]]) -> Result<Value, LinkError> {
        let mut bytes = Vec::new();
        resp::encode(args, &mut bytes);
        let (reply, answer) = channel::bounded(1);
        if self.requests.try_send(Request { bytes, reply }).is_err() {
            return Err(self.lost());
        }
        answer.recv().await.map_err(|_| self.lost())
    }

    fn lost(&self) -> LinkError {
        let reason = self.failure.borrow().clone();
        LinkError::Lost(reason.unwrap_or_else(|| "closed".to_owned()))
    }
}

/// The driver: writes requests as they come and hands each reply to the oldest waiting caller,
/// until the link is dropped or the connection fails.
async fn drive(
    stream: TcpStream,
    requests: Receiver<Request>,
    failure: Rc<RefCell<Option<String>>>,
) {
    let waiting = RefCell::new(VecDeque::new());
    let writer = write(stream.clone(), &requests, &waiting);
    let reader = read(stream, &waiting);
    if let Err(error) = smol::future::or(writer, reader).await {
        failure.replace(Some(error.to_string()));
    }
    // Dropping `requests` here closes the link; dropping `waiting` wakes every caller with an
    // error.
}

async fn write(
    mut stream: TcpStream,
    requests: &Receiver<Request>,
    waiting: &RefCell<VecDeque<Sender<Value>>>,
) -> io::Result<()> {
    let mut out = Vec::new();
    while let Ok(request) = requests.recv().await {
        out.clear();
        let mut queue = |request: Request| {
            out.extend_from_slice(&request.bytes);
            waiting.borrow_mut().push_back(request.reply);
        };
        queue(request);
        // Whatever else queued up meanwhile goes in the same write.
        while let Ok(request) = requests.try_recv() {
            queue(request);
        }
        stream.write_all(&out).await?;
    }
    Ok(())
}

async fn read(mut stream: TcpStream, waiting: &RefCell<VecDeque<Sender<Value>>>) -> io::Result<()> {
    let (mut buf, mut chunk) = (Vec::new(), [0; 4096]);
    loop {
        while let Some((value, used)) = resp::parse(&buf).map_err(io::Error::other)? {
            buf.drain(..used);
            let Some(caller) = waiting.borrow_mut().pop_front() else {
                return Err(io::Error::other("redis sent a reply nobody asked for"));
            };
            // The caller may have given up; its reply is dropped.
            let _ = caller.try_send(value);
        }
        match stream.read(&mut chunk).await? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed by redis",
                ));
            }
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
