//! Where mail for a domain goes: local Maildir, a relay, or the domain's MX hosts.

use std::net::{IpAddr, SocketAddr};

use super::config::{DeliveryConfig, Smarthost};
use crate::dns::{Resolver, RouteError, resolve_mail_route_within};

/// The route of a destination domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A local domain: a Maildir under the data directory.
    Local,
    /// A relay configured for the domain or for everything.
    Relay(Smarthost),
    /// The domain's MX hosts (RFC 5321 §5.1).
    Mx,
}

/// The route for `domain`: local domains first, then a route of its own, then the smarthost,
/// then MX.
pub fn route(config: &DeliveryConfig, local_domains: &[String], domain: &str) -> Route {
    if local_domains
        .iter()
        .any(|local| local.eq_ignore_ascii_case(domain))
    {
        return Route::Local;
    }
    if let Some(relay) = config.routes.get(&domain.to_ascii_lowercase()) {
        return Route::Relay(relay.clone());
    }
    match &config.smarthost {
        Some(relay) => Route::Relay(relay.clone()),
        None => Route::Mx,
    }
}

/// The relay an entry names (a MailerQ document's `smarthost`), as a configured one: STARTTLS
/// as for any relay (required, verified, when it has credentials).
pub fn named_relay(relay: &crate::queue::Relay) -> Smarthost {
    let host = if relay.host.contains(':') {
        format!("[{}]", relay.host)
    } else {
        relay.host.clone()
    };
    let mut smarthost = Smarthost::new(format!("{host}:{}", relay.port));
    smarthost.auth.clone_from(&relay.auth);
    smarthost
}

/// A server to try: its name (for TLS and logs), address, and MX preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name.
    pub host: String,
    /// Where to connect.
    pub address: SocketAddr,
    /// The host's MX preference; 0 for a relay and for a domain without MX records.
    pub preference: u16,
}

/// The servers to try for a remote route, in order: a relay's addresses, or the addresses of
/// the domain's MX hosts, no more than `config.mx_address_limit` of them.
///
/// # Errors
///
/// The domain has no usable mail host; [`RouteError::is_permanent`] tells whether to bounce.
pub async fn targets(
    route: &Route,
    domain: &str,
    resolver: &Resolver,
    config: &DeliveryConfig,
) -> Result<Vec<Target>, RouteError> {
    match route {
        Route::Local => Ok(Vec::new()),
        Route::Relay(relay) => {
            let (host, port) = relay.host_port().ok_or(RouteError::NoAddresses)?;
            let addresses = match host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => resolver
                    .lookup_ip(host)
                    .await
                    .map_err(|error| match error {
                        crate::dns::DnsError::NxDomain => RouteError::NoSuchDomain,
                        crate::dns::DnsError::NoRecords => RouteError::NoAddresses,
                        error => RouteError::Dns(error),
                    })?,
            };
            Ok(addresses
                .into_iter()
                .map(|ip| Target {
                    host: host.to_owned(),
                    address: SocketAddr::new(ip, port),
                    preference: 0,
                })
                .collect())
        }
        Route::Mx => {
            let limit = config.mx_address_limit;
            let hosts = resolve_mail_route_within(resolver, domain, limit).await?;
            let targets = hosts.into_iter().flat_map(|host| {
                let (name, preference) = (host.name, host.preference);
                host.addresses.into_iter().map(move |ip| Target {
                    host: name.clone(),
                    address: SocketAddr::new(ip, config.mx_port),
                    preference,
                })
            });
            Ok(targets.take(limit).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_domains_then_routes_then_the_smarthost_then_mx() {
        let mut config = DeliveryConfig::default();
        let local = vec!["localhost".to_owned(), "example.org".to_owned()];
        assert_eq!(route(&config, &local, "Example.ORG"), Route::Local);
        assert_eq!(route(&config, &local, "example.net"), Route::Mx);
        config.smarthost = Some(Smarthost::new("relay.example:25"));
        config
            .routes
            .insert("example.com".into(), Smarthost::new("special.example:2525"));
        assert_eq!(
            route(&config, &local, "EXAMPLE.com"),
            Route::Relay(Smarthost::new("special.example:2525"))
        );
        assert_eq!(
            route(&config, &local, "example.net"),
            Route::Relay(Smarthost::new("relay.example:25"))
        );
    }
}
