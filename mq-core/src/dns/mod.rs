//! DNS for the outbound mail path: a stub resolver on the worker's event loop.
//!
//! - `config`: [`DnsConfig`], the nameservers and limits, and `/etc/resolv.conf`.
//! - `wire`: queries and responses in the DNS wire format (hickory-proto), and what an answer
//!   means: records, NXDOMAIN or NODATA, and for how long.
//! - `transport`: one exchange with one nameserver: UDP, then TCP when the answer is truncated.
//! - `cache`: answers, negative ones included, until their TTL runs out, in bounded space.
//! - `resolver`: [`Resolver`], lookups by type, tried on each nameserver in turn.
//! - `route`: [`resolve_mail_route`], where mail for a domain goes (RFC 5321 §5.1, RFC 7505),
//!   and [`resolve_mail_route_within`], as much of it as one delivery attempt uses.
//! - `testserver` (feature `testkit`): `TestServer`, a DNS server on loopback for tests.
//!
//! Why a stub resolver of our own: hickory-resolver needs a Tokio runtime, and mq runs smol. A
//! stub resolver is small when it leaves recursion to the local recursive resolver (unbound or
//! similar), which is how mail servers are deployed; it only sends queries, waits, retries, and
//! caches. Each worker core owns its [`Resolver`] and its cache, so lookups never cross threads.
//!
//! # Examples
//!
//! ```
//! use mq_core::dns::{DnsConfig, Resolver, TestServer, resolve_mail_route};
//!
//! let server = TestServer::start();
//! server.add_mx("example.org", 10, "mx.example.org");
//! server.add_a("mx.example.org", "192.0.2.25".parse().unwrap());
//!
//! let mut config = DnsConfig::default();
//! config.nameservers = vec![server.address()];
//! let resolver = Resolver::new(&config)?;
//! let hosts = smol::block_on(resolve_mail_route(&resolver, "example.org")).unwrap();
//! assert_eq!(hosts[0].name, "mx.example.org");
//! assert_eq!(hosts[0].addresses, ["192.0.2.25".parse::<std::net::IpAddr>().unwrap()]);
//! # Ok::<(), mq_core::dns::DnsError>(())
//! ```

mod cache;
mod config;
mod plugin;
mod resolver;
mod route;
#[cfg(feature = "testkit")]
mod testserver;
mod transport;
pub(crate) mod wire;

use std::fmt;
use std::io;

pub use config::DnsConfig;
pub use resolver::Resolver;
pub use route::{
    CONCURRENT_HOST_LOOKUPS, MailHost, RouteError, resolve_mail_route, resolve_mail_route_within,
};
#[cfg(feature = "testkit")]
pub use testserver::TestServer;

/// One mail exchanger of a domain: an MX record.
///
/// # Examples
///
/// ```
/// use mq_core::dns::Mx;
///
/// let mx = Mx { preference: 10, exchange: "mx.example.org".into() };
/// assert!(!mx.is_null());
/// assert!(Mx { preference: 0, exchange: ".".into() }.is_null());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mx {
    /// Lower is tried first.
    pub preference: u16,
    /// The host's name, without the trailing dot; `"."` for the root (a null MX).
    pub exchange: String,
}

impl Mx {
    /// Whether this is RFC 7505's "no mail here" record: exchange `"."`.
    pub fn is_null(&self) -> bool {
        self.exchange == "."
    }
}

/// Why a lookup gave no records.
///
/// [`NxDomain`](DnsError::NxDomain) and [`NoRecords`](DnsError::NoRecords) are answers, and the
/// same question will get them again; the others are failures to get an answer, and are
/// [temporary](DnsError::is_temporary).
///
/// # Examples
///
/// ```
/// use mq_core::dns::DnsError;
///
/// assert_eq!(DnsError::NxDomain.to_string(), "name does not exist");
/// assert!(DnsError::Timeout.is_temporary());
/// assert!(!DnsError::NoRecords.is_temporary());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DnsError {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no records of the type asked for (NODATA).
    NoRecords,
    /// No nameserver answered in time.
    Timeout,
    /// A nameserver answered with this error code (SERVFAIL is 2, REFUSED 5).
    ServerFailure(u16),
    /// Sending or receiving failed.
    Io(io::Error),
    /// A response could not be decoded, or did not answer the question.
    Malformed(String),
    /// The name cannot be a DNS name (a label too long, an empty label).
    InvalidName(String),
}

impl DnsError {
    /// Whether asking again later may give another result: no answer came, as opposed to an
    /// answer that says there is nothing.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            DnsError::Timeout
                | DnsError::ServerFailure(_)
                | DnsError::Io(_)
                | DnsError::Malformed(_)
        )
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsError::NxDomain => f.write_str("name does not exist"),
            DnsError::NoRecords => f.write_str("no records of that type"),
            DnsError::Timeout => f.write_str("dns query timed out"),
            DnsError::ServerFailure(rcode) => write!(f, "dns server failure (rcode {rcode})"),
            DnsError::Io(error) => write!(f, "dns i/o error: {error}"),
            DnsError::Malformed(why) => write!(f, "malformed dns response: {why}"),
            DnsError::InvalidName(name) => write!(f, "invalid domain name {name:?}"),
        }
    }
}

impl std::error::Error for DnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DnsError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for DnsError {
    fn from(error: io::Error) -> DnsError {
        DnsError::Io(error)
    }
}
