//! The client side of a running server's admin port, for `mq queue`: one blocking HTTP/1.1
//! request per connection, read to the end (the server closes the connection).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use mq_core::admin::QueueRecord;

/// How long to wait for the admin port, connecting and answering.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A running server's admin port.
pub(crate) struct AdminClient {
    address: SocketAddr,
    /// Sent as `Authorization: Bearer`, when the config sets one.
    token: Option<String>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The admin token `config` sets (`[admin] token`, or the first line of `token_file`).
pub(crate) fn token(config: &mq_core::Config) -> anyhow::Result<Option<String>> {
    config.admin.token().map_err(|(path, error)| {
        anyhow::Error::new(error)
            .context(format!("cannot read [admin] token_file {}", path.display()))
    })
}

/// A response: status code and body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The body as text, for messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
}

impl AdminClient {
    pub(crate) fn new(address: SocketAddr, token: Option<String>) -> AdminClient {
        AdminClient { address, token }
    }

    /// `method path`, answered with any status.
    pub(crate) fn request(&self, method: &str, path: &str) -> anyhow::Result<Response> {
        let address = self.address;
        let unreachable = || {
            format!(
                "the queue is in use (by a running mq serve?) but its admin port {address} does not answer"
            )
        };
        let mut stream = TcpStream::connect_timeout(&address, TIMEOUT).with_context(unreachable)?;
        stream
            .set_read_timeout(Some(TIMEOUT))
            .with_context(unreachable)?;
        let authorization = self
            .token
            .as_ref()
            .map(|token| format!("Authorization: Bearer {token}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .with_context(unreachable)?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).with_context(unreachable)?;
        parse(&bytes).with_context(|| format!("admin port {address}: malformed response"))
    }

    /// `method path`, which must answer 200.
    pub(crate) fn ok(&self, method: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let response = self.request(method, path)?;
        self.body_of_200(response, path)
    }

    /// The body of a 200 answer to `path`; any other status is an error naming it.
    fn body_of_200(&self, response: Response, path: &str) -> anyhow::Result<Vec<u8>> {
        if response.status != 200 {
            bail!(
                "admin port {}: {} {path}: {}",
                self.address,
                response.status,
                response.text()
            );
        }
        Ok(response.body)
    }

    /// The queue records at `path`, or `None` if the server answers 404.
    pub(crate) fn records(&self, path: &str) -> anyhow::Result<Option<Vec<QueueRecord>>> {
        let response = self.request("GET", path)?;
        if response.status == 404 {
            return Ok(None);
        }
        let body = self.body_of_200(response, path)?;
        let text = String::from_utf8(body).context("admin port: queue records are not UTF-8")?;
        text.lines()
            .map(|line| serde_json::from_str(line).context("admin port: malformed queue record"))
            .collect::<anyhow::Result<_>>()
            .map(Some)
    }
}

impl AdminClient {
    /// The data directory the server behind this port owns, canonical, from `GET /info`.
    pub(crate) fn data_dir(&self) -> anyhow::Result<PathBuf> {
        let body = self.ok("GET", "/info")?;
        let info: serde_json::Value =
            serde_json::from_slice(&body).context("admin port: malformed /info")?;
        match info["data_dir"].as_str() {
            Some(dir) => Ok(PathBuf::from(dir)),
            None => bail!("admin port {}: /info names no data directory", self.address),
        }
    }
}

/// The status and body of a whole response.
fn parse(bytes: &[u8]) -> Option<Response> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some(Response {
        status,
        body: bytes[end + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_gives_status_and_body() {
        let response = parse(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno\n").unwrap();
        assert_eq!(
            response,
            Response {
                status: 404,
                body: b"no\n".to_vec()
            }
        );
        assert_eq!(response.text(), "no");
    }

    #[test]
    fn anything_else_is_malformed() {
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(parse(b"SMTP 220 hi\r\n\r\n"), None);
        assert_eq!(parse(b"HTTP/1.1 abc\r\n\r\n"), None);
    }
}
