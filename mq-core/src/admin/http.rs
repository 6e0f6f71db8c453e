//! Just enough HTTP/1.1 for the admin port: one request head in (httparse), one response out,
//! then the connection closes. No keep-alive, no request bodies, no chunking: scrapers and
//! `mq queue` ask one thing per connection.

use futures::{AsyncRead, AsyncReadExt as _};

/// The largest request head accepted; the admin routes are short.
const MAX_HEAD: usize = 8 * 1024;
/// Header fields accepted in one request.
const MAX_HEADERS: usize = 32;

/// A request's method and path, all the admin routes look at, and the headers the guard
/// checks.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) host: Option<String>,
    pub(crate) origin: Option<String>,
    pub(crate) authorization: Option<String>,
}

impl Request {
    /// The path without its query.
    pub(crate) fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

impl std::fmt::Debug for Request {
    /// Leaves the credentials out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("host", &self.host)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Not HTTP/1.x, or a head larger than [`MAX_HEAD`]: answered with 400.
    Malformed,
    /// The client went away (or the socket failed) before a whole head arrived: nothing to
    /// answer.
    Gone,
}

/// Reads one request head from `stream`.
pub(crate) async fn read_request(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Request, ReadError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0; 1024];
    loop {
        let read = stream.read(&mut chunk).await.map_err(|_| ReadError::Gone)?;
        if read == 0 {
            return Err(ReadError::Gone);
        }
        head.extend_from_slice(&chunk[..read]);
        if let Some(request) = parse(&head)? {
            return Ok(request);
        }
        if head.len() > MAX_HEAD {
            return Err(ReadError::Malformed);
        }
    }
}

/// The request in `head`, `None` if it is not complete yet.
fn parse(head: &[u8]) -> Result<Option<Request>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        // Refused however the head arrived: in one read or in many, where the reader stops at
        // MAX_HEAD.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Err(ReadError::Malformed),
        Ok(httparse::Status::Complete(_)) => {
            let header = |name: &str| {
                let mut values = request
                    .headers
                    .iter()
                    .filter(|h| h.name.eq_ignore_ascii_case(name));
                let value = values
                    .next()
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                // Two of a header the guard checks is an attempt to confuse it.
                if values.next().is_some() {
                    return Err(ReadError::Malformed);
                }
                Ok(value)
            };
            Ok(Some(Request {
                host: header("Host")?,
                origin: header("Origin")?,
                authorization: header("Authorization")?,
                // A complete parse always has a method and a path.
                method: request.method.unwrap_or_default().to_owned(),
                path: request.path.unwrap_or_default().to_owned(),
            }))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(_) => Err(ReadError::Malformed),
    }
}

/// A response: status, content type and the whole body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A plain-text response.
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    /// The response as sent, head and body.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// The reason phrase of the statuses the admin port sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        421 => "Misdirected Request",
        _ => "Internal Server Error",
    }
}

/// An I/O error as a 500 response, naming what failed.
pub(crate) fn internal(what: &str, error: &impl std::fmt::Display) -> Response {
    Response::text(500, format!("{what}: {error}\n"))
}

impl From<ReadError> for Option<Response> {
    fn from(error: ReadError) -> Option<Response> {
        match error {
            ReadError::Malformed => Some(Response::text(400, "bad request\n")),
            ReadError::Gone => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Request, ReadError> {
        smol::block_on(read_request(&mut futures::io::Cursor::new(bytes.to_vec())))
    }

    #[test]
    fn a_request_head_gives_method_and_path() {
        let request = read(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(
            request,
            Request {
                method: "GET".into(),
                path: "/metrics".into(),
                host: Some("x".into()),
                origin: None,
                authorization: None,
            }
        );
        let doubled = read(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");
        assert!(matches!(doubled, Err(ReadError::Malformed)));
    }

    #[test]
    fn garbage_is_malformed_and_a_cut_head_is_gone() {
        assert!(matches!(
            read(b"\x00\x01 nonsense\r\n\r\n"),
            Err(ReadError::Malformed)
        ));
        assert!(matches!(
            read(b"GET /metrics HTTP/1.1\r\nHost"),
            Err(ReadError::Gone)
        ));
    }

    #[test]
    fn an_endless_head_is_refused() {
        let mut head = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert!(matches!(read(&head), Err(ReadError::Malformed)));
    }

    #[test]
    fn a_head_past_the_limit_is_refused_even_when_it_arrives_whole() {
        let mut head = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Long: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        head.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse(&head), Err(ReadError::Malformed)));
        assert!(matches!(read(&head), Err(ReadError::Malformed)));
    }

    #[test]
    fn a_response_closes_the_connection_and_counts_its_body() {
        let bytes = Response::text(404, "nope\n").to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 5\r\n"), "{text}");
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nnope\n"), "{text}");
    }
}
