//! Where mail for a domain goes: RFC 5321 §5.1, with RFC 7505's null MX.

use std::fmt;
use std::net::IpAddr;

use futures::StreamExt as _;

use super::{DnsError, Mx, Resolver};

/// One host to try for a domain's mail, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    /// The host's name: an MX exchange, or the domain itself when it has no MX records.
    pub name: String,
    /// Its MX preference; 0 for the implicit MX.
    pub preference: u16,
    /// Its addresses, IPv4 first, never empty.
    pub addresses: Vec<IpAddr>,
}

/// Why mail for a domain cannot go anywhere, now or ever.
///
/// [`is_permanent`](RouteError::is_permanent) tells a bounce from a deferral.
///
/// # Examples
///
/// ```
/// use mq_core::dns::{DnsError, RouteError};
///
/// assert!(RouteError::NullMx.is_permanent());
/// assert!(!RouteError::Dns(DnsError::Timeout).is_permanent());
/// assert_eq!(RouteError::NullMx.to_string(), "domain accepts no mail (null mx)");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RouteError {
    /// The domain publishes a null MX: it accepts no mail (RFC 7505).
    NullMx,
    /// The domain does not exist.
    NoSuchDomain,
    /// No mail host of the domain has an address (or the domain, without MX records, has
    /// none itself).
    NoAddresses,
    /// DNS gave no answer, or a domain name is invalid; see [`DnsError::is_temporary`].
    Dns(DnsError),
}

impl RouteError {
    /// Whether trying again later is pointless: the answers were definitive.
    pub fn is_permanent(&self) -> bool {
        match self {
            RouteError::NullMx | RouteError::NoSuchDomain | RouteError::NoAddresses => true,
            RouteError::Dns(error) => !error.is_temporary(),
        }
    }
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NullMx => f.write_str("domain accepts no mail (null mx)"),
            RouteError::NoSuchDomain => f.write_str("domain does not exist"),
            RouteError::NoAddresses => f.write_str("no mail host of the domain has an address"),
            RouteError::Dns(error) => write!(f, "dns lookup failed: {error}"),
        }
    }
}

impl std::error::Error for RouteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RouteError::Dns(error) => Some(error),
            _ => None,
        }
    }
}

/// The hosts to try for mail to `domain`, in order, each with its addresses.
///
/// RFC 5321 §5.1: the MX records by preference (equal preferences by name, so the order is
/// the same every time); a domain without MX records is its own mail host (the implicit MX).
/// A null MX fails at once (RFC 7505). Hosts whose addresses cannot be found are skipped;
/// when none is left the error is temporary if any lookup failed for want of an answer, and
/// permanent if every one was answered with "no such name" or "no addresses".
///
/// # Examples
///
/// ```
/// use mq_core::dns::{DnsConfig, Resolver, RouteError, TestServer, resolve_mail_route};
///
/// let server = TestServer::start();
/// server.add_mx("example.net", 0, ".");
/// let mut config = DnsConfig::default();
/// config.nameservers = vec![server.address()];
/// let resolver = Resolver::new(&config)?;
/// let route = smol::block_on(resolve_mail_route(&resolver, "example.net"));
/// assert!(matches!(route, Err(RouteError::NullMx)));
/// # Ok::<(), mq_core::dns::DnsError>(())
/// ```
pub async fn resolve_mail_route(
    resolver: &Resolver,
    domain: &str,
) -> Result<Vec<MailHost>, RouteError> {
    resolve_mail_route_within(resolver, domain, usize::MAX).await
}

/// MX hosts whose addresses are looked up at the same time: a domain with thousands of MX
/// records gets them looked up a few at a time, never all at once.
pub const CONCURRENT_HOST_LOOKUPS: usize = 4;

/// [`resolve_mail_route`], looking up no more hosts than it takes to find `max_addresses`
/// addresses, and never more than `max_addresses` hosts: what one delivery attempt can use.
///
/// Hosts are looked up in order, [`CONCURRENT_HOST_LOOKUPS`] at a time, so a domain with
/// thousands of MX records costs a bounded number of queries and sockets. The hosts returned
/// may hold a few more addresses than `max_addresses` (the last host's, and those of lookups
/// already under way); the caller keeps the first ones.
///
/// # Errors
///
/// As [`resolve_mail_route`], over the hosts looked up.
///
/// # Examples
///
/// ```
/// use mq_core::dns::{DnsConfig, Resolver, TestServer, resolve_mail_route_within};
///
/// let server = TestServer::start();
/// for n in 1..=20 {
///     let host = format!("mx{n}.example.org");
///     server.add_mx("example.org", 10, &host).add_a(&host, [192, 0, 2, n].into());
/// }
/// let mut config = DnsConfig::default();
/// config.nameservers = vec![server.address()];
/// let resolver = Resolver::new(&config)?;
/// let hosts = smol::block_on(resolve_mail_route_within(&resolver, "example.org", 2)).unwrap();
/// assert_eq!(hosts.len(), 2);
/// assert!(server.udp_queries() <= 1 + 2 * 2, "the MX, then A and AAAA of two hosts");
/// # Ok::<(), mq_core::dns::DnsError>(())
/// ```
pub async fn resolve_mail_route_within(
    resolver: &Resolver,
    domain: &str,
    max_addresses: usize,
) -> Result<Vec<MailHost>, RouteError> {
    let exchanges = match resolver.lookup_mx(domain).await {
        Ok(mxs) => usable(mxs)?,
        Err(DnsError::NoRecords) => vec![Mx {
            preference: 0,
            exchange: domain.trim_end_matches('.').to_ascii_lowercase(),
        }],
        Err(DnsError::NxDomain) => return Err(RouteError::NoSuchDomain),
        Err(error) => return Err(RouteError::Dns(error)),
    };
    let mut lookups = futures::stream::iter(exchanges.into_iter().take(max_addresses))
        .map(|mx| async move {
            let result = resolver.lookup_ip(&mx.exchange).await;
            (mx, result)
        })
        .buffered(CONCURRENT_HOST_LOOKUPS);
    let mut hosts = Vec::new();
    let mut addresses = 0;
    let mut temporary = None;
    while let Some((mx, result)) = lookups.next().await {
        match result {
            Ok(found) => {
                addresses += found.len();
                hosts.push(MailHost {
                    name: mx.exchange,
                    preference: mx.preference,
                    addresses: found,
                });
            }
            Err(error) if error.is_temporary() => temporary = temporary.or(Some(error)),
            Err(error) => tracing::debug!(host = %mx.exchange, %error, "mail host skipped"),
        }
        if addresses >= max_addresses {
            break;
        }
    }
    match (hosts.is_empty(), temporary) {
        (false, _) => Ok(hosts),
        (true, Some(error)) => Err(RouteError::Dns(error)),
        (true, None) => Err(RouteError::NoAddresses),
    }
}

/// The exchanges worth trying: a set of only null MX records means no mail (RFC 7505 §3);
/// a null MX among real ones, a misconfiguration, is ignored.
fn usable(mxs: Vec<Mx>) -> Result<Vec<Mx>, RouteError> {
    if !mxs.is_empty() && mxs.iter().all(Mx::is_null) {
        return Err(RouteError::NullMx);
    }
    Ok(mxs.into_iter().filter(|mx| !mx.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(preference: u16, exchange: &str) -> Mx {
        Mx {
            preference,
            exchange: exchange.into(),
        }
    }

    #[test]
    fn only_null_mx_records_mean_no_mail() {
        assert!(matches!(usable(vec![mx(0, ".")]), Err(RouteError::NullMx)));
        assert_eq!(usable(vec![]).unwrap(), []);
        let mixed = usable(vec![mx(0, "."), mx(10, "mx.example.org")]).unwrap();
        assert_eq!(mixed, [mx(10, "mx.example.org")]);
    }
}
