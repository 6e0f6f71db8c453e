//! Who may use the admin port: the `Host` a request names, the `Origin` a browser adds, and the
//! bearer token.
//!
//! # Why each check
//!
//! - `Host`: a web page can make a browser on the server's host send requests to loopback
//!   under a name the page's author controls (DNS rebinding); such a request names that name,
//!   never a loopback name or the port's own address, so it is answered `421 Misdirected
//!   Request`.
//! - `Origin`: a browser sends it with every cross-site POST and script request; no page is
//!   served by the admin port, so any `Origin` that is not the port itself is `403`.
//! - The token: with `[admin] token` (or `token_file`), every request carries `Authorization:
//!   Bearer <token>`, compared in constant time, or gets `401`. `GET /metrics` stays open
//!   without it while the port is bound to loopback, so that a local Prometheus scrapes as
//!   before; bound elsewhere, metrics need the token too.

use std::net::SocketAddr;

use super::http::{Request, Response};

/// The checks of one admin port.
#[derive(Clone)]
pub(crate) struct Guard {
    /// The address the port is bound to: its IP is a name a request may use.
    local: SocketAddr,
    token: Option<String>,
}

impl std::fmt::Debug for Guard {
    /// Says whether a token is set, never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("local", &self.local)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Guard {
    pub(crate) fn new(local: SocketAddr, token: Option<String>) -> Guard {
        Guard { local, token }
    }

    /// `None` if `request` may go on, or the response that refuses it.
    pub(crate) fn check(&self, request: &Request) -> Option<Response> {
        let Some(host) = request.host.as_deref() else {
            return Some(Response::text(400, "a Host header is required\n"));
        };
        if !self.is_own_name(host) {
            return Some(Response::text(421, "misdirected request: unknown Host\n"));
        }
        if let Some(origin) = request.origin.as_deref()
            && !origin
                .strip_prefix("http://")
                .is_some_and(|host| self.is_own_name(host))
        {
            return Some(Response::text(403, "forbidden: foreign Origin\n"));
        }
        if self.needs_token(request) && !self.token_matches(request.authorization.as_deref()) {
            return Some(Response::text(
                401,
                "unauthorized: a bearer token is required\n",
            ));
        }
        None
    }

    /// Whether `request` must carry the token: always when one is set, except `GET /metrics`
    /// on a loopback port.
    fn needs_token(&self, request: &Request) -> bool {
        let metrics = request.method == "GET" && request.route() == "/metrics";
        self.token.is_some() && !(metrics && self.local.ip().is_loopback())
    }

    fn token_matches(&self, authorization: Option<&str>) -> bool {
        let (Some(token), Some(given)) = (&self.token, authorization) else {
            return false;
        };
        let given = given.strip_prefix("Bearer ").unwrap_or_default().trim();
        constant_time_eq(given.as_bytes(), token.as_bytes())
    }

    /// Whether `host` (`name[:port]`, `[v6][:port]`) names this port: a loopback name, or the
    /// address it is bound to.
    fn is_own_name(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let name = name.to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip == self.local.ip())
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        Request {
            method: method.into(),
            path: path.into(),
            host: header("Host"),
            origin: header("Origin"),
            authorization: header("Authorization"),
        }
    }

    fn status(guard: &Guard, request: &Request) -> u16 {
        guard.check(request).map_or(200, |r| r.status)
    }

    #[test]
    fn loopback_names_and_the_bound_address_are_hosts_and_others_are_misdirected() {
        let guard = Guard::new("192.0.2.7:9025".parse().unwrap(), Some("t".into()));
        let auth = ("Authorization", "Bearer t");
        for host in [
            "localhost",
            "localhost:9025",
            "127.0.0.1:9025",
            "[::1]:9025",
            "192.0.2.7:9025",
            "LOCALHOST",
        ] {
            assert_eq!(
                status(&guard, &request("GET", "/queue", &[("Host", host), auth])),
                200
            );
        }
        for host in [
            "evil.example",
            "evil.example:9025",
            "192.0.2.8",
            "[2001:db8::1]",
        ] {
            assert_eq!(
                status(&guard, &request("GET", "/queue", &[("Host", host), auth])),
                421
            );
        }
        assert_eq!(status(&guard, &request("GET", "/queue", &[auth])), 400);
    }

    #[test]
    fn a_foreign_origin_is_forbidden_and_the_token_is_required() {
        let guard = Guard::new("127.0.0.1:9025".parse().unwrap(), Some("s3cret".into()));
        let host = ("Host", "localhost");
        let good = ("Authorization", "Bearer s3cret");
        let post =
            |headers: &[(&str, &str)]| status(&guard, &request("POST", "/queue/flush", headers));
        assert_eq!(post(&[host, good]), 200);
        assert_eq!(
            post(&[host, good, ("Origin", "http://localhost:9025")]),
            200
        );
        assert_eq!(post(&[host, good, ("Origin", "https://evil.example")]), 403);
        assert_eq!(post(&[host, good, ("Origin", "null")]), 403);
        assert_eq!(post(&[host]), 401);
        assert_eq!(post(&[host, ("Authorization", "Bearer s3creT")]), 401);
        assert_eq!(post(&[host, ("Authorization", "Basic s3cret")]), 401);
        let metrics = request("GET", "/metrics?x", &[host]);
        assert_eq!(
            status(&guard, &metrics),
            200,
            "metrics stay open on loopback"
        );
        let exposed = Guard::new("192.0.2.7:9025".parse().unwrap(), Some("s3cret".into()));
        assert_eq!(
            status(&exposed, &metrics),
            401,
            "but not on another address"
        );
        let open = Guard::new("127.0.0.1:9025".parse().unwrap(), None);
        assert_eq!(
            status(&open, &request("POST", "/queue/flush", &[host])),
            200
        );
    }
}
