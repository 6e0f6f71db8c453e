//! `redis_url`: where the Redis backend connects, and as whom.

/// A parsed `redis://[[user]:password@]host[:port][/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
                "{url:?} is not redis://host:port/ (TLS and sockets are not supported)"
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
