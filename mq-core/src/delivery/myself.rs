//! Telling mq itself among the servers of a route, so that mail never loops back into mq.
//!
//! A server is mq itself when its address is one mq listens on, when it is on loopback or an
//! unspecified address and came from DNS (unless `[delivery] allow_loopback_mx`), or when its
//! greeting or EHLO reply names mq's own hostname. As Postfix does, an MX host that is mq
//! drops itself and every host of the same or a lower preference: what is left are the hosts
//! mq may pass the mail to. When nothing is left, the mail for that domain "loops back to
//! myself", a permanent failure (5.4.6).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::OnceLock;

use super::outcome::Verdict;
use super::route::{Route, Target};

/// What mq knows of itself: its name and the addresses its SMTP server listens on.
#[derive(Debug)]
pub(crate) struct Myself {
    hostname: String,
    allow_loopback_mx: bool,
    /// Set once the server is bound (its port may have been chosen by the system).
    listening: OnceLock<Vec<SocketAddr>>,
}

impl Myself {
    pub(crate) fn new(hostname: &str, allow_loopback_mx: bool) -> Myself {
        Myself {
            hostname: hostname.to_owned(),
            allow_loopback_mx,
            listening: OnceLock::new(),
        }
    }

    /// Records where mq's SMTP server listens; later calls change nothing.
    pub(crate) fn listening_on(&self, addresses: &[SocketAddr]) {
        let _ = self.listening.set(addresses.to_vec());
    }

    /// The targets of `route` that are not mq and are preferred to it, or the verdict when
    /// mq is (one of) the most preferred.
    pub(crate) fn exclude(
        &self,
        route: &Route,
        domain: &str,
        mut targets: Vec<Target>,
    ) -> Result<Vec<Target>, Verdict> {
        let from_dns = *route == Route::Mx;
        let Some(me) = targets.iter().find(|t| self.is_me(t.address, from_dns)) else {
            return Ok(targets);
        };
        tracing::warn!(domain, host = me.host, address = %me.address, "mail host is mq itself");
        let preference = me.preference;
        targets.retain(|target| target.preference < preference);
        if targets.is_empty() {
            return Err(loops_back(domain));
        }
        Ok(targets)
    }

    /// Whether a server introduced itself as mq: the first word of its greeting or of its
    /// EHLO reply is mq's hostname.
    pub(crate) fn named_in(&self, names: &[String]) -> bool {
        names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&self.hostname))
    }

    fn is_me(&self, address: SocketAddr, from_dns: bool) -> bool {
        let ip = address.ip().to_canonical();
        if from_dns && !self.allow_loopback_mx && (ip.is_loopback() || this_host(ip)) {
            return true;
        }
        let listening = self.listening.get().map_or(&[][..], Vec::as_slice);
        listening.iter().any(|own| {
            own.port() == address.port()
                && (own.ip().to_canonical() == ip || own.ip().is_unspecified() && is_local(ip))
        })
    }
}

/// The verdict for mail that would come back to mq: Postfix's words and status.
pub(crate) fn loops_back(domain: &str) -> Verdict {
    Verdict::failed(
        "5.4.6",
        format!("mail for {domain} loops back to myself"),
        None,
    )
}

/// `0.0.0.0/8` and `::`: "this host" (RFC 1122 §3.2.1.3), where a connection reaches this host.
fn this_host(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified(),
    }
}

/// Whether `ip` is an address of this host: the kernel lets a socket bind only to those.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || this_host(ip) || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `result` is the loop's failure for `domain`.
    fn loops(result: &Result<Vec<Target>, Verdict>, domain: &str) -> bool {
        matches!(result, Err(Verdict::Failed { status, reason, .. })
            if status == "5.4.6" && *reason == format!("mail for {domain} loops back to myself"))
    }

    fn target(address: &str, preference: u16) -> Target {
        Target {
            host: format!("mx{preference}.example"),
            address: address.parse().unwrap(),
            preference,
        }
    }

    #[test]
    fn an_mx_host_on_loopback_is_mq_unless_loopback_mx_is_allowed() {
        let myself = Myself::new("mq.example", false);
        for address in [
            "127.0.0.1:25",
            "[::]:25",
            "[::ffff:127.0.0.2]:25",
            "0.0.0.0:25",
        ] {
            let verdict = myself.exclude(&Route::Mx, "loop.example", vec![target(address, 10)]);
            assert!(loops(&verdict, "loop.example"), "{address}: {verdict:?}");
        }
        let relay = vec![target("127.0.0.1:25", 0)];
        let named = Route::Relay(super::super::Smarthost::new("127.0.0.1:25"));
        let verdict = myself.exclude(&named, "x.example", relay.clone());
        assert_eq!(verdict.ok(), Some(relay), "a route may name loopback");
        let allowed = Myself::new("mq.example", true);
        let mx = vec![target("127.0.0.1:25", 10)];
        assert_eq!(
            allowed.exclude(&Route::Mx, "x.example", mx.clone()).ok(),
            Some(mx)
        );
    }

    #[test]
    fn mq_drops_itself_and_every_host_not_preferred_to_it() {
        let myself = Myself::new("mq.example", true);
        myself.listening_on(&["0.0.0.0:25".parse().unwrap()]);
        let targets = vec![
            target("192.0.2.1:25", 5),
            target("127.0.0.1:25", 10),
            target("192.0.2.2:25", 10),
            target("192.0.2.3:25", 20),
        ];
        let left = myself.exclude(&Route::Mx, "backup.example", targets);
        assert_eq!(left.ok(), Some(vec![target("192.0.2.1:25", 5)]));
        let only_me = vec![target("127.0.0.1:25", 10), target("192.0.2.3:25", 20)];
        assert!(loops(
            &myself.exclude(&Route::Mx, "x.example", only_me),
            "x.example"
        ));
        let other_port = vec![target("127.0.0.1:2525", 10)];
        let left = myself.exclude(&Route::Mx, "x.example", other_port.clone());
        assert_eq!(left.ok(), Some(other_port), "another server on this host");
    }

    #[test]
    fn a_server_naming_mq_in_its_greeting_is_mq() {
        let myself = Myself::new("mq.example", true);
        assert!(myself.named_in(&["sink.example".into(), "MQ.example".into()]));
        assert!(!myself.named_in(&["sink.example".into()]));
    }
}
