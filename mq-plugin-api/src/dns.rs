//! DNS for plugins: lookups on the worker's event loop, with the engine's resolver and cache.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DnsFailure {
    /// The name does not exist (NXDOMAIN).
    NotFound,
    /// The name exists but has no records of that type.
    NoRecords,
    /// No answer now: a timeout, a server failure, no resolver configured.
    Temporary(String),
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsFailure::NotFound => f.write_str("no such name"),
            DnsFailure::NoRecords => f.write_str("no records of that type"),
            DnsFailure::Temporary(reason) => write!(f, "temporary DNS failure: {reason}"),
        }
    }
}

impl std::error::Error for DnsFailure {}

/// The lookups [`Context::dns`](crate::Context::dns) offers. The engine implements it with its
/// stub resolver (answers cached by TTL, per worker core); a hook bounds its wait with
/// [`TimeoutExt::timeout`](crate::TimeoutExt::timeout) inside its own deadline.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mq_plugin_api::{hooks, Connect, Context, Control, Plugin, Reply, TimeoutExt};
///
/// struct Blocklist;
///
/// #[hooks]
/// impl Plugin for Blocklist {
///     async fn smtp_in_connect(&self, ctx: &mut Context, conn: &mut Connect) -> Control {
///         let budget = ctx.remaining().min(Duration::from_secs(2));
///         let name = format!("{}.zen.example", conn.client_ip());
///         if let Ok(Ok(listed)) = ctx.dns().lookup_a(&name).timeout(budget).await {
///             if !listed.is_empty() {
///                 return conn.reject(Reply::new(554, "5.7.1", "blocked"));
///             }
///         }
///         Control::Continue
///     }
/// }
/// ```
#[async_trait(?Send)]
pub trait Dns {
    /// IPv4 addresses of `name`.
    async fn lookup_a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsFailure>;
    /// IPv6 addresses of `name`.
    async fn lookup_aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsFailure>;
    /// MX records of `domain`: (preference, exchange), by preference.
    async fn lookup_mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsFailure>;
    /// TXT records of `name`, each joined into one string.
    async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, DnsFailure>;
    /// Names of `ip` (PTR).
    async fn lookup_ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsFailure>;
}

/// What a context without a resolver answers: every lookup fails temporarily.
#[derive(Debug)]
pub(crate) struct NoResolver;

#[async_trait(?Send)]
impl Dns for NoResolver {
    async fn lookup_a(&self, _: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
        Err(unconfigured())
    }
    async fn lookup_aaaa(&self, _: &str) -> Result<Vec<Ipv6Addr>, DnsFailure> {
        Err(unconfigured())
    }
    async fn lookup_mx(&self, _: &str) -> Result<Vec<(u16, String)>, DnsFailure> {
        Err(unconfigured())
    }
    async fn lookup_txt(&self, _: &str) -> Result<Vec<String>, DnsFailure> {
        Err(unconfigured())
    }
    async fn lookup_ptr(&self, _: IpAddr) -> Result<Vec<String>, DnsFailure> {
        Err(unconfigured())
    }
}

fn unconfigured() -> DnsFailure {
    DnsFailure::Temporary("no resolver configured".into())
}
