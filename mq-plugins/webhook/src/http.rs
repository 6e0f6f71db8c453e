//! A minimal HTTP/1.1 client for one endpoint: one POST per connection (`Connection: close`),
//! read up to the status line, on the worker's event loop.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::io;
use std::time::Duration;

use mq_plugin_api::TimeoutExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;

/// The longest status line read before the answer is called malformed.
const MAX_STATUS_LINE: usize = 1024;

/// Where events go: the parts of an `http://` URL a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The name or address to connect to, without IPv6 brackets.
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority as written.
    authority: String,
    /// The request target: path and query, at least `/`.
    target: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/path][?query]`; a fragment is dropped.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, &'static str> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// is supported")?;
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err("user info is not supported; use headers");
        }
        let (host, port) = split_authority(authority)?;
        if host.is_empty() || target.contains(|c: char| c.is_control() || c == ' ') {
            return Err("no host, or a space or control character");
        }
        let target = match target {
            "" => "/".to_owned(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
        };
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
            target,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`, into the host to connect to and the port.
fn split_authority(authority: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or("an unclosed [")?;
            (host, after)
        }
        None => match authority.find(':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, ""),
        },
    };
    let port = match port.strip_prefix(':') {
        None if port.is_empty() => 80,
        Some(digits) => digits.parse().map_err(|_| "a bad port")?,
        None => return Err("a bad port"),
    };
    if port == 0 || host.contains(|c: char| c.is_control() || c == ' ') {
        return Err("a bad host or port");
    }
    Ok((host, port))
}

/// Why one POST did not get a status line.
#[derive(Debug)]
pub(crate) enum PostError {
    /// Connecting, writing or reading failed.
    Io(io::Error),
    /// No status line within the request timeout.
    Timeout,
    /// The answer did not start with `HTTP/1.x NNN`.
    Malformed,
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Io(error) => write!(f, "{error}"),
            PostError::Timeout => f.write_str("no answer within the request timeout"),
            PostError::Malformed => f.write_str("the answer is not HTTP/1.x"),
        }
    }
}

/// POSTs bodies to one endpoint, each request on a fresh connection.
#[derive(Debug)]
pub(crate) struct Client {
    endpoint: Endpoint,
    /// The request up to the `Content-Length` value, written once at start-up.
    head: String,
    timeout: Duration,
}

impl Client {
    /// A client for `endpoint` sending `headers` besides its own, each POST bounded by
    /// `timeout`.
    pub(crate) fn new(
        endpoint: Endpoint,
        headers: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Client {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: mq-webhook\r\n",
            endpoint.target, endpoint.authority
        );
        if !headers
            .keys()
            .any(|name| name.eq_ignore_ascii_case("content-type"))
        {
            head.push_str("Content-Type: application/json\r\n");
        }
        for (name, value) in headers {
            // Writing into a String cannot fail.
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("Connection: close\r\nContent-Length: ");
        Client {
            endpoint,
            head,
            timeout,
        }
    }

    /// POSTs `body` and returns the answer's status code.
    pub(crate) async fn post(&self, body: &[u8]) -> Result<u16, PostError> {
        match self.exchange(body).timeout(self.timeout).await {
            Ok(Ok(status)) => status.ok_or(PostError::Malformed),
            Ok(Err(error)) => Err(PostError::Io(error)),
            Err(_) => Err(PostError::Timeout),
        }
    }

    async fn exchange(&self, body: &[u8]) -> io::Result<Option<u16>> {
        let address = (self.endpoint.host.as_str(), self.endpoint.port);
        let mut stream = TcpStream::connect(address).await?;
        let mut request = Vec::with_capacity(self.head.len() + 8 + body.len());
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        stream.write_all(&request).await?;
        stream.flush().await?;
        Ok(status_code(&read_status_line(&mut stream).await?))
    }
}

/// Reads until the first line ends (or the peer closes, or the line is too long); the rest of
/// the answer is not needed and goes with the connection.
async fn read_status_line(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut buffer = [0; 256];
    while !line.contains(&b'\n') && line.len() < MAX_STATUS_LINE {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        line.extend_from_slice(&buffer[..read]);
    }
    Ok(line)
}

/// The code of a status line `HTTP/1.x NNN reason`.
fn status_code(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    let separated = rest.get(1) == Some(&b' ');
    let digits = code.iter().all(u8::is_ascii_digit);
    (separated && digits).then(|| std::str::from_utf8(code).ok()?.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, u16, String, String) {
        let e = Endpoint::parse(url).unwrap();
        (e.host, e.port, e.authority, e.target)
    }

    #[test]
    fn urls_split_into_host_port_authority_and_target() {
        let owned = |h: &str, p, a: &str, t: &str| (h.to_owned(), p, a.to_owned(), t.to_owned());
        assert_eq!(
            parts("http://127.0.0.1:8080/mq-events"),
            owned("127.0.0.1", 8080, "127.0.0.1:8080", "/mq-events")
        );
        assert_eq!(
            parts("http://hooks.example"),
            owned("hooks.example", 80, "hooks.example", "/")
        );
        assert_eq!(parts("http://h?a=1#x"), owned("h", 80, "h", "/?a=1"));
        assert_eq!(
            parts("http://[::1]:9/p?q"),
            owned("::1", 9, "[::1]:9", "/p?q")
        );
    }

    #[test]
    fn unusable_urls_are_refused() {
        for url in [
            "https://h/",
            "ftp://h/",
            "http:///p",
            "http://h:0/",
            "http://h:x/",
            "http://h:70000/",
            "http://u:p@h/",
            "http://[::1/",
            "http://h/a b",
            "http://h/a\r\nX: y",
        ] {
            assert!(Endpoint::parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn the_head_carries_the_configured_headers_and_a_default_content_type() {
        let endpoint = Endpoint::parse("http://h:81/e").unwrap();
        let headers = BTreeMap::from([("Authorization".to_owned(), "Bearer x".to_owned())]);
        let client = Client::new(endpoint.clone(), &headers, Duration::from_secs(1));
        assert_eq!(
            client.head,
            "POST /e HTTP/1.1\r\nHost: h:81\r\nUser-Agent: mq-webhook\r\n\
             Content-Type: application/json\r\nAuthorization: Bearer x\r\n\
             Connection: close\r\nContent-Length: "
        );
        let typed = BTreeMap::from([("content-type".to_owned(), "a/b".to_owned())]);
        let client = Client::new(endpoint, &typed, Duration::from_secs(1));
        assert!(!client.head.contains("application/json"), "{}", client.head);
    }

    #[test]
    fn status_lines_give_their_code() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(status_code(b"HTTP/2 200\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 2x0 OK\r\n"), None);
        assert_eq!(status_code(b""), None);
    }
}
