//! The resolver as plugins see it: [`mq_plugin_api::Dns`] through `Context::dns`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;
use mq_plugin_api::{Dns, DnsFailure};

use super::{DnsError, Resolver};

fn failure(error: DnsError) -> DnsFailure {
    match error {
        DnsError::NxDomain => DnsFailure::NotFound,
        DnsError::NoRecords => DnsFailure::NoRecords,
        other => DnsFailure::Temporary(other.to_string()),
    }
}

#[async_trait(?Send)]
impl Dns for Resolver {
    async fn lookup_a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsFailure> {
        Resolver::lookup_a(self, name).await.map_err(failure)
    }

    async fn lookup_aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsFailure> {
        Resolver::lookup_aaaa(self, name).await.map_err(failure)
    }

    async fn lookup_mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsFailure> {
        let records = Resolver::lookup_mx(self, domain).await.map_err(failure)?;
        Ok(records
            .into_iter()
            .map(|mx| (mx.preference, mx.exchange))
            .collect())
    }

    async fn lookup_txt(&self, name: &str) -> Result<Vec<String>, DnsFailure> {
        Resolver::lookup_txt(self, name).await.map_err(failure)
    }

    async fn lookup_ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsFailure> {
        Resolver::lookup_ptr(self, ip).await.map_err(failure)
    }
}
