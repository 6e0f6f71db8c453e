//! One exchange with one nameserver: the query over UDP, and over TCP when the UDP answer was
//! truncated (RFC 1035 §4.2, RFC 7766).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Timer};

use super::DnsError;
use super::wire::{self, UDP_PAYLOAD};

/// Room for any UDP response: more than we advertise, so a server that ignores EDNS and sends
/// a larger datagram is seen as such rather than cut short by the kernel.
const UDP_BUFFER: usize = 4096;

/// One question to one nameserver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Exchange<'a> {
    /// The nameserver.
    pub(crate) server: SocketAddr,
    /// The query id, which the response must repeat.
    pub(crate) id: u16,
    /// The name asked about.
    pub(crate) name: &'a Name,
    /// The type asked for.
    pub(crate) rtype: RecordType,
    /// How long to wait for each of the UDP and the TCP answer.
    pub(crate) timeout: Duration,
}

impl Exchange<'_> {
    /// Asks over UDP, then over TCP if the answer came back truncated.
    pub(crate) async fn run(&self) -> Result<Message, DnsError> {
        let query = wire::encode_query(self.id, self.name, self.rtype)?;
        let response = self.within_timeout(self.udp(&query)).await?;
        if !response.metadata.truncation {
            return Ok(response);
        }
        tracing::debug!(name = %self.name, server = %self.server, "dns answer truncated: tcp");
        self.within_timeout(self.tcp(&query)).await
    }

    async fn within_timeout(
        &self,
        attempt: impl Future<Output = Result<Message, DnsError>>,
    ) -> Result<Message, DnsError> {
        smol::future::or(attempt, async {
            Timer::after(self.timeout).await;
            Err(DnsError::Timeout)
        })
        .await
    }

    /// Sends `query` from a fresh socket connected to the server, so the kernel drops datagrams
    /// from anyone else, and reads until a datagram answers the question. Datagrams that do not
    /// (an old answer, garbage) are skipped: if nothing better comes before the timeout, the
    /// timeout is the result.
    async fn udp(&self, query: &[u8]) -> Result<Message, DnsError> {
        let local = match self.server {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let socket = Async::<UdpSocket>::bind(local)?;
        socket.get_ref().connect(self.server)?;
        socket.send(query).await?;
        let mut buffer = vec![0; UDP_BUFFER];
        loop {
            let len = socket.recv(&mut buffer).await?;
            match wire::decode_response(&buffer[..len], self.id, self.name, self.rtype) {
                Ok(response) => return Ok(response),
                Err(error) => {
                    tracing::debug!(server = %self.server, %error, "dns datagram skipped");
                }
            }
        }
    }

    /// Sends `query` over a new TCP connection with its two-byte length, reads one response.
    async fn tcp(&self, query: &[u8]) -> Result<Message, DnsError> {
        let mut stream = Async::<TcpStream>::connect(self.server).await?;
        let len = u16::try_from(query.len())
            .map_err(|_| DnsError::InvalidName(format!("{}: query too long", self.name)))?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(query);
        stream.write_all(&framed).await?;
        let mut prefix = [0; 2];
        stream.read_exact(&mut prefix).await?;
        let mut response = vec![0; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut response).await?;
        wire::decode_response(&response, self.id, self.name, self.rtype)
    }
}

// The payload we advertise must fit the buffer we read it into.
const _: () = assert!(UDP_PAYLOAD as usize <= UDP_BUFFER);
