//! [`TestServer`]: a DNS server on loopback answering from a zone the test fills.

mod serve;
mod zone;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, TXT};
use hickory_proto::rr::{Name, RData};
use smol::{Async, LocalExecutor};

use serve::{State, serve_tcp, serve_udp};
use zone::{Node, name};

/// A DNS server on `127.0.0.1`, UDP and TCP on one port, on its own thread, for tests and
/// benchmarks.
///
/// Names are added with their records; any other name is NXDOMAIN, and a known name asked for
/// a type it lacks is NODATA, both with an SOA so that they may be cached. A name can also be
/// made to misbehave: truncated over UDP, answered late, or SERVFAIL. The server stops when
/// dropped.
///
/// Its methods panic on a name that is not a valid DNS name: a test bug.
///
/// # Examples
///
/// ```
/// use mq_core::dns::TestServer;
///
/// let server = TestServer::start();
/// server.add_mx("example.org", 10, "mx.example.org").add_a("mx.example.org", [192, 0, 2, 1].into());
/// assert_eq!(server.address().ip(), std::net::Ipv4Addr::LOCALHOST);
/// assert_eq!(server.udp_queries(), 0);
/// ```
#[derive(Debug)]
pub struct TestServer {
    address: SocketAddr,
    state: Arc<State>,
    /// Dropped to stop the server: its thread then returns and is joined.
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Binds UDP and TCP on one free port of `127.0.0.1` and starts serving an empty zone.
    ///
    /// # Panics
    ///
    /// When no port can be bound or the thread cannot start.
    pub fn start() -> TestServer {
        let (udp, tcp) = bind().expect("test dns server: bind 127.0.0.1");
        let address = udp.local_addr().expect("test dns server: local address");
        let udp = Arc::new(Async::new(udp).expect("test dns server: register udp"));
        let tcp = Async::new(tcp).expect("test dns server: register tcp");
        let state = Arc::new(State::default());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let served = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("dns-test-server".into())
            .spawn(move || {
                let executor = LocalExecutor::new();
                let serve = smol::future::or(
                    serve_udp(&executor, udp, Arc::clone(&served)),
                    serve_tcp(&executor, tcp, served),
                );
                let until_stopped = smol::future::or(async { stopped.recv().await.ok() }, async {
                    let _ = serve.await;
                    None
                });
                smol::block_on(executor.run(until_stopped));
            })
            .expect("test dns server: spawn thread");
        TestServer {
            address,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The address to query, for [`DnsConfig::nameservers`](super::DnsConfig::nameservers).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many queries came over UDP.
    pub fn udp_queries(&self) -> usize {
        self.state.udp_queries.load(Ordering::SeqCst)
    }

    /// How many queries came over TCP.
    pub fn tcp_queries(&self) -> usize {
        self.state.tcp_queries.load(Ordering::SeqCst)
    }

    /// Adds an MX record; `"."` as the exchange makes a null MX.
    pub fn add_mx(&self, domain: &str, preference: u16, exchange: &str) -> &Self {
        self.add(domain, RData::MX(MX::new(preference, name(exchange))))
    }

    /// Adds an A record.
    pub fn add_a(&self, name: &str, ip: Ipv4Addr) -> &Self {
        self.add(name, RData::A(A(ip)))
    }

    /// Adds an AAAA record.
    pub fn add_aaaa(&self, name: &str, ip: Ipv6Addr) -> &Self {
        self.add(name, RData::AAAA(AAAA(ip)))
    }

    /// Adds a TXT record, split into strings of 255 bytes.
    pub fn add_txt(&self, name: &str, text: &str) -> &Self {
        self.add(
            name,
            RData::TXT(TXT::from_bytes(text.as_bytes().chunks(255).collect())),
        )
    }

    /// Makes `name` an alias of `target`.
    pub fn add_cname(&self, name: &str, target: &str) -> &Self {
        self.add(name, RData::CNAME(CNAME(self::name(target))))
    }

    /// Adds a PTR record for `ip`, naming `host`.
    pub fn add_ptr(&self, ip: IpAddr, host: &str) -> &Self {
        let mut reverse = Name::from(ip);
        reverse.set_fqdn(true);
        self.node(reverse, |node| {
            node.records.push(RData::PTR(PTR(name(host))));
        })
    }

    /// Sets the TTL of `name`'s records and of NODATA answers about it.
    pub fn set_ttl(&self, name: &str, seconds: u32) -> &Self {
        self.node(self::name(name), |node| node.ttl = Some(seconds))
    }

    /// Answers queries for `name` over UDP with TC set and no records, so that clients retry
    /// over TCP.
    pub fn truncate_udp(&self, name: &str) -> &Self {
        self.node(self::name(name), |node| node.truncate_udp = true)
    }

    /// Answers queries for `name` only after `delay`.
    pub fn delay(&self, name: &str, delay: Duration) -> &Self {
        self.node(self::name(name), |node| node.delay = Some(delay))
    }

    /// Answers queries for `name` with SERVFAIL.
    pub fn fail(&self, name: &str) -> &Self {
        self.node(self::name(name), |node| node.fail = true)
    }

    fn add(&self, owner: &str, data: RData) -> &Self {
        self.node(name(owner), |node| node.records.push(data))
    }

    fn node(&self, owner: Name, change: impl FnOnce(&mut Node)) -> &Self {
        change(self.state.zone().entry(owner).or_default());
        self
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// UDP on a free port, then TCP on the same one; another port when TCP's is taken.
fn bind() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        match TcpListener::bind((Ipv4Addr::LOCALHOST, udp.local_addr()?.port())) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free port")))
}
