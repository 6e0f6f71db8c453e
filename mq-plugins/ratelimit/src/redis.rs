//! The Redis backend: the token bucket as one Lua script, run atomically by Redis for every mq
//! process that points at it, over one lazily made connection per worker core.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mq_plugin_api::{Context, TimeoutExt};

use crate::bucket::Limit;
use crate::link::{Link, LinkError};
use crate::resp::Value;
use crate::url::RedisUrl;

/// The token bucket, as `bucket.rs` computes it, on Redis's own clock (so that processes whose
/// clocks differ still agree). KEYS[1] is the bucket; ARGV is the capacity, the tokens gained
/// per millisecond and how long an empty bucket takes to fill, after which the key expires:
/// a full bucket is the same as none. Returns 1 if a token was taken, 0 if none was left.
const SCRIPT: &str = r"
local capacity = tonumber(ARGV[1])
local refill = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * refill)
  at = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return allowed
";

/// After Redis could not be reached, checks let steps through at once for this long before
/// trying again, so that a Redis that is down costs each message nothing.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a check could not ask Redis; the step goes on (fail open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RedisError {
    /// The connection failed or could not be made.
    Link(LinkError),
    /// Redis did not answer within the check's time.
    Timeout(Duration),
    /// Redis refused a command (`-ERR ...`) or answered something the script cannot return.
    Server(String),
    /// A recent failure: not retried before `RETRY_AFTER` has passed.
    Waiting,
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::Link(error) => error.fmt(f),
            RedisError::Timeout(after) => write!(f, "redis did not answer within {after:?}"),
            RedisError::Server(message) => write!(f, "redis refused the script: {message}"),
            RedisError::Waiting => f.write_str("redis failed recently; not asking before retry"),
        }
    }
}

impl From<LinkError> for RedisError {
    fn from(error: LinkError) -> RedisError {
        RedisError::Link(error)
    }
}

/// The backend on one worker core: its connection, made on first use and remade after a
/// failure, and the script's SHA once Redis has it.
#[derive(Debug)]
pub(crate) struct RedisStore {
    url: RedisUrl,
    prefix: String,
    timeout: Duration,
    link: RefCell<Option<Rc<Link>>>,
    /// Held while connecting, so that the sessions of one core wait for one connection instead
    /// of making one each.
    connecting: smol::lock::Mutex<()>,
    sha: RefCell<Option<Vec<u8>>>,
    retry_at: Cell<Option<Instant>>,
}

impl RedisStore {
    pub(crate) fn new(url: RedisUrl, prefix: &str, timeout: Duration) -> RedisStore {
        RedisStore {
            url,
            prefix: prefix.to_owned(),
            timeout,
            link: RefCell::new(None),
            connecting: smol::lock::Mutex::new(()),
            sha: RefCell::new(None),
            retry_at: Cell::new(None),
        }
    }

    /// Takes a token from the bucket of `value` under `limit`, within the call's deadline and
    /// `redis_timeout`: whether the step may go on, or why Redis could not say.
    pub(crate) async fn take(
        &self,
        ctx: &Context,
        limit: &Limit,
        value: &str,
    ) -> Result<bool, RedisError> {
        if self.retry_at.get().is_some_and(|at| Instant::now() < at) {
            return Err(RedisError::Waiting);
        }
        let budget = ctx.remaining().min(self.timeout);
        let result = match self.ask(ctx, limit, value).timeout(budget).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::Timeout(budget)),
        };
        if matches!(result, Err(RedisError::Link(_) | RedisError::Timeout(_))) {
            // Start over on a new connection, but not before RETRY_AFTER.
            self.link.replace(None);
            self.retry_at.set(Some(Instant::now() + RETRY_AFTER));
        }
        result
    }

    async fn ask(&self, ctx: &Context, limit: &Limit, value: &str) -> Result<bool, RedisError> {
        let link = self.link(ctx).await?;
        let key = format!("{}{}", self.prefix, limit.bucket(value));
        let capacity = limit.capacity().to_string();
        let refill = limit.refill_per_ms().to_string();
        let ttl = (limit.time_to_fill().as_millis() + 1).to_string();
        let args: [&[u8]; 5] = [
            b"1",
            key.as_bytes(),
            capacity.as_bytes(),
            refill.as_bytes(),
            ttl.as_bytes(),
        ];
        match self.eval(&link, &args).await? {
            Value::Int(1) => Ok(true),
            Value::Int(0) => Ok(false),
            Value::Error(message) => Err(RedisError::Server(message)),
            other => Err(RedisError::Server(format!("unexpected reply {other:?}"))),
        }
    }

    /// Runs the script by its SHA, loading it first if this connection's Redis lacks it (a new
    /// connection, or a Redis restarted or flushed since).
    async fn eval(&self, link: &Link, args: &[&[u8]]) -> Result<Value, RedisError> {
        let known = self.sha.borrow().clone();
        if let Some(sha) = known {
            let reply = link
                .call(&[&[b"EVALSHA".as_slice(), &sha], args].concat())
                .await?;
            if !matches!(&reply, Value::Error(message) if message.starts_with("NOSCRIPT")) {
                return Ok(reply);
            }
        }
        let sha = match link.call(&[b"SCRIPT", b"LOAD", SCRIPT.as_bytes()]).await? {
            Value::Bulk(sha) => sha,
            Value::Error(message) => return Err(RedisError::Server(message)),
            other => return Err(RedisError::Server(format!("unexpected reply {other:?}"))),
        };
        let reply = link
            .call(&[&[b"EVALSHA".as_slice(), &sha], args].concat())
            .await?;
        self.sha.replace(Some(sha));
        Ok(reply)
    }

    /// This core's open connection, made now if there is none.
    async fn link(&self, ctx: &Context) -> Result<Rc<Link>, RedisError> {
        if let Some(link) = self.open_link() {
            return Ok(link);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(link) = self.open_link() {
            return Ok(link);
        }
        if self.retry_at.get().is_some_and(|at| Instant::now() < at) {
            // The connection this call waited for failed.
            return Err(RedisError::Waiting);
        }
        let link = Rc::new(self.connect(ctx).await?);
        self.link.replace(Some(Rc::clone(&link)));
        Ok(link)
    }

    fn open_link(&self) -> Option<Rc<Link>> {
        self.link
            .borrow()
            .as_ref()
            .filter(|link| link.is_open())
            .cloned()
    }

    async fn connect(&self, ctx: &Context) -> Result<Link, RedisError> {
        let url = &self.url;
        let link = Link::connect(ctx, &url.host, url.port).await?;
        if let Some(password) = &url.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            auth.extend(url.user.as_deref().map(str::as_bytes));
            auth.push(password.as_bytes());
            expect_ok(link.call(&auth).await?)?;
        }
        if let Some(db) = url.db {
            expect_ok(link.call(&[b"SELECT", db.to_string().as_bytes()]).await?)?;
        }
        Ok(link)
    }
}

fn expect_ok(reply: Value) -> Result<(), RedisError> {
    match reply {
        Value::Simple(_) => Ok(()),
        Value::Error(message) => Err(RedisError::Server(message)),
        other => Err(RedisError::Server(format!("unexpected reply {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use smol::LocalExecutor;

    use super::*;
    use crate::config::{LimitConfig, LimitKey};
    use crate::resp;

    /// Reads one command from `stream` and gives its name.
    fn command(stream: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        loop {
            if let Some((resp::Value::Array(args), _)) = resp::parse(&buf).unwrap() {
                let resp::Value::Bulk(name) = &args[0] else {
                    panic!("{args:?}")
                };
                return String::from_utf8_lossy(name).into_owned();
            }
            let mut byte = [0];
            stream.read_exact(&mut byte).unwrap();
            buf.push(byte[0]);
        }
    }

    #[test]
    fn a_closed_connection_is_remade_and_the_script_loaded_again() {
        // A scripted Redis: the first connection loads the script, answers once and closes, as
        // a restart does; on the second the script is gone (NOSCRIPT) until loaded again.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let connections: [&[&str]; 2] = [
                &["$4\r\nabcd\r\n", ":1\r\n"],
                &[
                    "-NOSCRIPT No matching script\r\n",
                    "$4\r\nabcd\r\n",
                    ":0\r\n",
                ],
            ];
            let mut names = Vec::new();
            for replies in connections {
                let (mut stream, _) = listener.accept().unwrap();
                for reply in replies {
                    names.push(command(&mut stream));
                    stream.write_all(reply.as_bytes()).unwrap();
                }
            }
            names
        });
        let url = RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
        let store = RedisStore::new(url, "p:", Duration::from_secs(5));
        let limit = Limit::new(&LimitConfig {
            key: LimitKey::User,
            rate: 1,
            per: Duration::from_mins(1),
            burst: None,
        });
        let executor = Rc::new(LocalExecutor::new());
        let ctx = mq_plugin_api::Host::new(0, Rc::clone(&executor)).into_context();
        smol::block_on(executor.run(async {
            assert_eq!(store.take(&ctx, &limit, "jane").await, Ok(true));
            // The driver notices the close on its own (bounded wait, far above what it takes).
            let started = Instant::now();
            while store.open_link().is_some() && started.elapsed() < Duration::from_secs(10) {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
            assert!(store.open_link().is_none(), "the closed link is dropped");
            assert_eq!(store.take(&ctx, &limit, "jane").await, Ok(false));
        }));
        let names = server.join().unwrap();
        assert_eq!(names, ["SCRIPT", "EVALSHA", "EVALSHA", "SCRIPT", "EVALSHA"]);
    }
}
