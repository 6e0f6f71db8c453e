//! The SMTP server over real loopback sockets: a smoke test of the whole inbound path.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;

use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, Queue};
use mq_core::smtp::{Server, SmtpConfig};
use mq_core::{Config, Registry, Runtime};

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(address: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        Client {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    /// Reads one reply, multi-line or not; returns its last line.
    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read");
            assert!(
                line.ends_with("\r\n"),
                "a reply line ends with CRLF: {line:?}"
            );
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }

    fn send(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
        self.reply()
    }
}

#[test]
fn a_message_goes_from_a_socket_into_the_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let queue: Arc<dyn Queue> =
        Arc::new(EmbeddedQueue::open(dir.path(), EmbeddedOptions::default()).expect("queue"));
    let plan = Registry::linked()
        .expect("registry")
        .plan(&Config::default())
        .expect("plan");
    let runtime = Runtime::start(&plan, 2).expect("runtime");
    let mut config = SmtpConfig::default();
    config.listen = "127.0.0.1:0".parse().expect("address");
    let server = Server::start(&runtime, config, Arc::clone(&queue)).expect("server");
    let mut client = Client::connect(server.local_addr());
    assert!(client.reply().starts_with("220 localhost ESMTP"));
    assert_eq!(client.send("EHLO client.example"), "250 SMTPUTF8");
    assert_eq!(
        client.send("MAIL FROM:<a@example.org> SIZE=20"),
        "250 2.1.0 Ok"
    );
    assert_eq!(client.send("RCPT TO:<b@localhost>"), "250 2.1.5 Ok");
    assert_eq!(
        client.send("RCPT TO:<c@example.net>"),
        "250 2.1.5 Ok",
        "loopback may relay"
    );
    assert_eq!(client.send("DATA"), "354 End data with <CR><LF>.<CR><LF>");
    let queued = client.send("Subject: hi\r\n\r\nbody\r\n.");
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
    let entries = queue.list();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0].queue_id.to_string(),
        queued.rsplit(' ').next().expect("id")
    );
    runtime.shutdown();
}
