//! [`Resolver`]: lookups by type, from the cache or from each nameserver in turn.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, RecordType};

use super::cache::Cache;
use super::transport::Exchange;
use super::wire::{self, Answer, MAX_CNAME_HOPS};
use super::{DnsConfig, DnsError, Mx};

/// A stub resolver: asks the configured recursive nameservers and caches their answers.
///
/// Clones share one cache; the intent is one resolver per worker core, created there, so its
/// cache lock is never contended. Lookups are plain futures on whatever executor polls them
/// (smol's reactor drives the sockets and timers): no thread, no runtime of its own.
///
/// Names are absolute (`example.org` is `example.org.`): no search list, as a mail server
/// wants.
///
/// # Examples
///
/// ```
/// use mq_core::dns::{DnsConfig, DnsError, Resolver, TestServer};
///
/// let server = TestServer::start();
/// server.add_a("mx.example.org", "192.0.2.25".parse().unwrap());
/// let mut config = DnsConfig::default();
/// config.nameservers = vec![server.address()];
/// let resolver = Resolver::new(&config)?;
///
/// smol::block_on(async {
///     let addresses = resolver.lookup_a("mx.example.org").await.unwrap();
///     assert_eq!(addresses, ["192.0.2.25".parse::<std::net::Ipv4Addr>().unwrap()]);
///     let missing = resolver.lookup_a("nowhere.example.org").await;
///     assert!(matches!(missing, Err(DnsError::NxDomain)));
/// });
/// # Ok::<(), DnsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    nameservers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
    cache: Mutex<Cache>,
    /// Query ids: a counter through a randomly keyed SipHash, so they do not repeat soon and
    /// cannot be guessed from the previous ones.
    id_keys: RandomState,
    id_counter: AtomicU64,
}

impl Resolver {
    /// A resolver for `config`'s nameservers (or those of `/etc/resolv.conf`).
    ///
    /// # Errors
    ///
    /// [`DnsError::Io`] when no nameservers are configured and `/etc/resolv.conf` exists but
    /// cannot be read.
    pub fn new(config: &DnsConfig) -> Result<Resolver, DnsError> {
        let inner = Inner {
            nameservers: config.effective_nameservers()?,
            timeout: config.timeout,
            attempts: config.attempts.max(1),
            cache: Mutex::new(Cache::new(config.cache_size, config.cache_bytes)),
            id_keys: RandomState::new(),
            id_counter: AtomicU64::new(0),
        };
        Ok(Resolver {
            inner: Arc::new(inner),
        })
    }

    /// The nameservers asked, in order.
    pub fn nameservers(&self) -> &[SocketAddr] {
        &self.inner.nameservers
    }

    /// The mail exchangers of `domain`, by preference, then by name for equal preferences.
    pub async fn lookup_mx(&self, domain: &str) -> Result<Vec<Mx>, DnsError> {
        let records = self.lookup(domain, RecordType::MX).await?;
        let mut mxs: Vec<Mx> = records
            .iter()
            .filter_map(|record| match record {
                RData::MX(mx) => Some(Mx {
                    preference: mx.preference,
                    exchange: host_name(&mx.exchange),
                }),
                _ => None,
            })
            .collect();
        mxs.sort();
        Ok(mxs)
    }

    /// The IPv4 addresses of `name`.
    pub async fn lookup_a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        let records = self.lookup(name, RecordType::A).await?;
        Ok(records
            .iter()
            .filter_map(|record| match record {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    /// The IPv6 addresses of `name`.
    pub async fn lookup_aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        let records = self.lookup(name, RecordType::AAAA).await?;
        Ok(records
            .iter()
            .filter_map(|record| match record {
                RData::AAAA(aaaa) => Some(aaaa.0),
                _ => None,
            })
            .collect())
    }

    /// The IPv4 then the IPv6 addresses of `name`, asked for at the same time.
    ///
    /// One family failing does not hide the other: the result is an error only when neither
    /// gave addresses, and then a temporary error wins over NXDOMAIN, which wins over NODATA.
    pub async fn lookup_ip(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let (v4, v6) = smol::future::zip(self.lookup_a(name), self.lookup_aaaa(name)).await;
        let mut addresses = Vec::new();
        let mut errors = Vec::new();
        match v4 {
            Ok(found) => addresses.extend(found.into_iter().map(IpAddr::V4)),
            Err(error) => errors.push(error),
        }
        match v6 {
            Ok(found) => addresses.extend(found.into_iter().map(IpAddr::V6)),
            Err(error) => errors.push(error),
        }
        if !addresses.is_empty() {
            return Ok(addresses);
        }
        Err(errors
            .into_iter()
            .min_by_key(|error| match error {
                _ if error.is_temporary() => 0,
                DnsError::NxDomain => 1,
                DnsError::NoRecords => 3,
                _ => 2,
            })
            .unwrap_or(DnsError::NoRecords))
    }

    /// The TXT records of `name`, each one's strings joined, invalid UTF-8 replaced.
    pub async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let records = self.lookup(name, RecordType::TXT).await?;
        Ok(records
            .iter()
            .filter_map(|record| match record {
                RData::TXT(txt) => Some(String::from_utf8_lossy(&txt.txt_data.concat()).into()),
                _ => None,
            })
            .collect())
    }

    /// The names of `ip` (PTR records under `in-addr.arpa` or `ip6.arpa`).
    pub async fn lookup_ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let mut name = Name::from(ip);
        name.set_fqdn(true);
        let records = self.lookup_name(name, RecordType::PTR).await?;
        Ok(records
            .iter()
            .filter_map(|record| match record {
                RData::PTR(ptr) => Some(host_name(&ptr.0)),
                _ => None,
            })
            .collect())
    }

    async fn lookup(&self, name: &str, rtype: RecordType) -> Result<Vec<RData>, DnsError> {
        let mut parsed =
            Name::from_utf8(name).map_err(|e| DnsError::InvalidName(format!("{name}: {e}")))?;
        parsed.set_fqdn(true);
        self.lookup_name(parsed, rtype).await
    }

    /// The records of `name`, following CNAMEs that the answers leave unresolved.
    async fn lookup_name(&self, mut name: Name, rtype: RecordType) -> Result<Vec<RData>, DnsError> {
        for _ in 0..=MAX_CNAME_HOPS {
            match self.answer(&name, rtype).await? {
                Answer::Records(records) => return Ok(records),
                Answer::Alias(target) => name = target,
                Answer::NxDomain => return Err(DnsError::NxDomain),
                Answer::NoData => return Err(DnsError::NoRecords),
            }
        }
        Err(DnsError::Malformed(format!(
            "cname chain to {name} is too long"
        )))
    }

    /// The answer for `name`/`rtype` from the cache, else from the nameservers (then cached).
    async fn answer(&self, name: &Name, rtype: RecordType) -> Result<Answer, DnsError> {
        let key = (name.clone(), rtype);
        if let Some(answer) = self.cache().get(&key, Instant::now()) {
            return Ok(answer);
        }
        let (answer, ttl) = self.ask(name, rtype).await?;
        self.cache()
            .insert(key, answer.clone(), ttl, Instant::now());
        Ok(answer)
    }

    /// Asks each nameserver in turn, `attempts` rounds, until one gives an answer (records,
    /// NXDOMAIN or NODATA); otherwise the last failure.
    async fn ask(&self, name: &Name, rtype: RecordType) -> Result<(Answer, u32), DnsError> {
        let mut last = DnsError::Timeout;
        for _ in 0..self.inner.attempts {
            for &server in &self.inner.nameservers {
                let exchange = Exchange {
                    server,
                    id: self.next_id(),
                    name,
                    rtype,
                    timeout: self.inner.timeout,
                };
                let result = exchange.run().await;
                match result.and_then(|response| wire::interpret(&response, name, rtype)) {
                    Ok(answer) => return Ok(answer),
                    Err(error) => {
                        tracing::debug!(%name, %rtype, %server, %error, "dns query failed");
                        last = error;
                    }
                }
            }
        }
        Err(last)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the cache inconsistent in a way that
        // matters: at worst an answer is missing or stale by one insert.
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> u16 {
        let count = self.inner.id_counter.fetch_add(1, Ordering::Relaxed);
        self.inner.id_keys.hash_one(count) as u16
    }
}

/// `name` in lower case without its trailing dot; the root stays `"."`.
fn host_name(name: &Name) -> String {
    if name.is_root() {
        return ".".to_owned();
    }
    let mut text = name.to_lowercase().to_ascii();
    if text.ends_with('.') {
        text.pop();
    }
    text
}
