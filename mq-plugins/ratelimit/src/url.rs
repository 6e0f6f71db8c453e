//! `redis_url`: where the Redis backend connects, and as whom.

use std::fmt;

/// A parsed `redis://[[user]:password@]host[:port][/db]`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: Option<u32>,
}

impl RedisUrl {
    pub(crate) fn parse(url: &str) -> Result<RedisUrl, String> {
        let Some(rest) = url.strip_prefix("redis://") else {
            return Err(format!(
                "{:?} is not redis://host:port/ (TLS and sockets are not supported)",
                redacted(url)
            ));
        };
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        let db = match db {
            "" => None,
            db => Some(
                db.parse()
                    .map_err(|_| format!("database {db:?} is not a number"))?,
            ),
        };
        let (userinfo, address) = match authority.rsplit_once('@') {
            Some((userinfo, address)) => (Some(userinfo), address),
            None => (None, authority),
        };
        let (user, password) = match userinfo.map(|u| u.split_once(':').unwrap_or(("", u))) {
            Some((user, password)) => (nonempty(user), nonempty(password)),
            None => (None, None),
        };
        let (host, port) = host_port(address)?;
        Ok(RedisUrl {
            host,
            port,
            user,
            password,
            db,
        })
    }
}

impl fmt::Debug for RedisUrl {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("db", &self.db)
            .finish()
    }
}

/// What is shown in place of a password.
const REDACTED: &str = "<redacted>";

/// `url` with the password of its user information, if any, replaced by `<redacted>`: fit for
/// logs and `Debug`.
pub(crate) fn redacted(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let Some(at) = url[start..authority_end].rfind('@').map(|i| start + i) else {
        return url.to_owned();
    };
    let user = match url[start..at].split_once(':') {
        Some((user, _)) => format!("{user}:"),
        None => String::new(),
    };
    format!("{}{user}{REDACTED}{}", &url[..start], &url[at..])
}

fn nonempty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults to 6379.
fn host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = match address.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            (host, after.strip_prefix(':'))
        }
        None => match address.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        },
    };
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    let port = match port {
        None => 6379,
        Some(port) => port
            .parse()
            .map_err(|_| format!("port {port:?} is not a number"))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows_in_debug_output_or_errors() {
        let url = RedisUrl::parse("redis://mq:hunter2@127.0.0.1:6379/0").unwrap();
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
        let error = RedisUrl::parse("rediss://mq:hunter2@127.0.0.1/").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
        assert_eq!(redacted("redis://:pw@h/"), "redis://:<redacted>@h/");
        assert_eq!(redacted("redis://pw@h/"), "redis://<redacted>@h/");
        assert_eq!(redacted("redis://h:1/"), "redis://h:1/");
    }

    fn url(text: &str) -> RedisUrl {
        RedisUrl::parse(text).unwrap()
    }

    #[test]
    fn urls_give_host_port_credentials_and_database() {
        let plain = url("redis://127.0.0.1:6379/");
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.db),
            ("127.0.0.1", 6379, None)
        );
        let full = url("redis://mq:secret@redis.example:6380/2");
        assert_eq!(
            (full.host.as_str(), full.port, full.db),
            ("redis.example", 6380, Some(2))
        );
        assert_eq!(
            (full.user.as_deref(), full.password.as_deref()),
            (Some("mq"), Some("secret"))
        );
        let password_only = url("redis://:secret@localhost");
        assert_eq!((password_only.user, password_only.port), (None, 6379));
        assert_eq!(password_only.password.as_deref(), Some("secret"));
        assert_eq!(url("redis://[::1]:7000").host, "::1");
    }

    #[test]
    fn other_schemes_and_bad_parts_are_refused() {
        for bad in [
            "rediss://h/",
            "unix:///tmp/r.sock",
            "redis://",
            "redis://h:x/",
            "redis://h/db",
            "redis://[::1",
        ] {
            assert!(RedisUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
