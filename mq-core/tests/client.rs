//! The outbound SMTP client against the testkit's scripted sink, over real loopback sockets.

use std::time::Duration;

use mq_core::smtp::client::{ClientConfig, ClientError, Connection, Sent, Stage, TlsPolicy};
use mq_core::smtp::tls;
use mq_core::testkit::sink::{Script, Sink};
use mq_plugin_api::{Address, Reply};

type Params = Vec<(String, Option<String>)>;

fn address(text: &str) -> Address {
    text.parse().expect("a valid address")
}

fn recipients(texts: &[&str]) -> Vec<(Address, Params)> {
    texts.iter().map(|&t| (address(t), Vec::new())).collect()
}

async fn open(sink: &Sink, config: &ClientConfig) -> Result<Connection, ClientError> {
    Connection::open(sink.address(), "localhost", config, None).await
}

async fn connect(sink: &Sink) -> Connection {
    open(sink, &ClientConfig::default())
        .await
        .expect("session opened")
}

/// Sends `message` to `to` and reads the final reply.
async fn deliver(connection: &mut Connection, to: &[&str], message: &[u8]) -> (Sent, Reply) {
    let sender = address("a@example.org");
    let sent = connection
        .send(&sender, &[], &recipients(to), message)
        .await
        .expect("sent");
    assert!(matches!(sent, Sent::Pending { .. }), "{sent:?}");
    let reply = connection.finish().await.expect("final reply");
    (sent, reply)
}

/// Sends `message` of `shape` a piece at a time to `b@example.net`; the server takes it.
async fn deliver_pieces(
    connection: &mut Connection,
    message: &mq_core::queue::Body,
    shape: mq_core::smtp::client::Shape,
) {
    let sender = address("a@example.org");
    let to = recipients(&["b@example.net"]);
    let sent = connection
        .send_pieces(&sender, &[], &to, message, shape)
        .await
        .expect("sent");
    assert!(matches!(sent, Sent::Pending { .. }), "{sent:?}");
    assert_eq!(connection.finish().await.expect("final reply").code(), 250);
}

/// Asserts that a message `sent` on `connection` to a server that closed in the middle of it
/// ended in an I/O error, at DATA or at the dot, and left the connection unusable.
async fn assert_cut_off(connection: &mut Connection, sent: Result<Sent, ClientError>) {
    let error = match sent {
        Ok(_) => connection.finish().await.unwrap_err(),
        Err(error) => error,
    };
    assert!(
        matches!(error, ClientError::Io(Stage::Data | Stage::Dot, _)),
        "{error:?}"
    );
    assert!(!connection.is_ready());
}

fn run<T>(test: impl Future<Output = T>) -> T {
    smol::block_on(test)
}

#[test]
fn a_message_is_delivered_with_mail_rcpt_and_data() {
    let sink = Sink::start(Script::new());
    run(async {
        let mut connection = connect(&sink).await;
        let (_, reply) = deliver(
            &mut connection,
            &["b@example.net"],
            b"Subject: hi\r\n\r\nhello\r\n",
        )
        .await;
        assert_eq!(reply.code(), 250);
        assert!(connection.is_ready());
        connection.quit().await;
    });
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, "a@example.org");
    assert_eq!(messages[0].rcpt_to, ["b@example.net"]);
    assert_eq!(messages[0].data, b"Subject: hi\r\n\r\nhello\r\n");
    assert!(!messages[0].tls);
    assert_eq!(
        sink.commands().first().map(String::as_str),
        Some("EHLO localhost")
    );
    assert_eq!(sink.commands().last().map(String::as_str), Some("QUIT"));
}

/// A sink offering `extensions` after one message to two recipients was delivered to it.
fn deliver_to_two(extensions: &[&str]) -> Sink {
    let sink = Sink::start(Script::new().ehlo(extensions));
    run(async {
        let mut connection = connect(&sink).await;
        deliver(
            &mut connection,
            &["b@example.net", "c@example.net"],
            b"x\r\n",
        )
        .await;
    });
    sink
}

#[test]
fn pipelining_sends_mail_rcpts_and_data_in_one_write() {
    let sink = deliver_to_two(&["PIPELINING"]);
    let batch = [
        "MAIL FROM:<a@example.org>",
        "RCPT TO:<b@example.net>",
        "RCPT TO:<c@example.net>",
        "DATA",
    ];
    assert!(
        sink.reads().contains(&batch.map(String::from).to_vec()),
        "{:?}",
        sink.reads()
    );
}

#[test]
fn without_pipelining_each_command_waits_for_its_reply() {
    let sink = deliver_to_two(&["8BITMIME"]);
    assert!(
        sink.reads().iter().all(|read| read.len() == 1),
        "{:?}",
        sink.reads()
    );
    assert_eq!(sink.messages()[0].rcpt_to.len(), 2);
}

#[test]
fn size_and_8bitmime_are_declared_when_offered() {
    let sink = Sink::start(Script::new().ehlo(&["SIZE 1000000", "8BITMIME"]));
    run(async {
        let mut connection = connect(&sink).await;
        assert_eq!(connection.extensions().size, Some(1_000_000));
        deliver(
            &mut connection,
            &["b@example.net"],
            "caf\u{e9}\n".as_bytes(),
        )
        .await;
        deliver(&mut connection, &["b@example.net"], b"plain\n").await;
    });
    let mails: Vec<_> = sink
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("MAIL"))
        .collect();
    assert_eq!(
        mails,
        [
            "MAIL FROM:<a@example.org> SIZE=7 BODY=8BITMIME",
            "MAIL FROM:<a@example.org> SIZE=7"
        ]
    );

    let sink = Sink::start(Script::new().ehlo(&[]));
    run(async { deliver(&mut connect(&sink).await, &["b@example.net"], b"x").await });
    assert!(
        sink.commands()
            .contains(&"MAIL FROM:<a@example.org>".to_owned())
    );
}

/// A message sent a piece at a time arrives as one sent whole would: SIZE and BODY declared
/// from its shape, and dot-stuffed when it needs it (read whole then).
#[test]
fn a_message_sent_in_pieces_arrives_as_it_would_whole() {
    use std::sync::Arc;

    use mq_core::queue::{Body, PIECE};
    use mq_core::smtp::client::Shape;

    let sink = Sink::start(Script::new().ehlo(&["SIZE 1000000", "8BITMIME", "PIPELINING"]));
    let mut plain: Vec<u8> = Vec::new();
    while plain.len() < PIECE * 2 + 7 {
        plain.extend_from_slice(b"0123456789 abcdefghij\r\n");
    }
    let mut eight_bit = plain.clone();
    eight_bit.extend_from_slice("caf\u{e9}\r\n".as_bytes());
    let mut dotted = plain.clone();
    dotted.extend_from_slice(b".a line that starts with a dot\r\nno line ending at the end");
    let messages = [plain, eight_bit, dotted];
    run(async {
        let mut connection = connect(&sink).await;
        for message in &messages {
            let body = Body::from(Arc::<[u8]>::from(&message[..]));
            let shape = Shape::of(message);
            deliver_pieces(&mut connection, &body, shape).await;
        }
    });
    let received: Vec<Vec<u8>> = sink.messages().into_iter().map(|m| m.data).collect();
    let mut expected = messages.to_vec();
    expected[2].extend_from_slice(b"\r\n");
    assert_eq!(received, expected);
    let mails: Vec<_> = sink
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("MAIL"))
        .collect();
    let size = |m: &Vec<u8>| m.len();
    assert_eq!(
        mails,
        [
            format!("MAIL FROM:<a@example.org> SIZE={}", size(&messages[0])),
            format!(
                "MAIL FROM:<a@example.org> SIZE={} BODY=8BITMIME",
                size(&messages[1])
            ),
            // The dot doubled, and a line ending added.
            format!("MAIL FROM:<a@example.org> SIZE={}", size(&messages[2]) + 3),
        ]
    );
}

/// A message handed out a few bytes at a time, as a journal hands out its pieces.
struct Trickle<'a>(&'a [u8]);

impl mq_core::smtp::client::Pieces for Trickle<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn piece(
        &self,
        offset: u64,
        mut buffer: Vec<u8>,
    ) -> futures::future::BoxFuture<'_, std::io::Result<Vec<u8>>> {
        let start = offset as usize;
        buffer.clear();
        buffer.extend_from_slice(&self.0[start..(start + 5).min(self.0.len())]);
        Box::pin(async move { Ok(buffer) })
    }
}

/// Whatever its line endings and dots, a message sent five bytes at a time reaches the server
/// as the same message sent whole, with the same MAIL command.
#[test]
fn a_message_in_small_pieces_arrives_as_it_does_whole_whatever_its_line_endings() {
    use mq_core::smtp::client::Shape;

    let messages: [&[u8]; 6] = [
        b"Subject: plain\r\n\r\nbody\r\n",
        b"Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nend\r\n",
        b"Subject: bare lf\n\n.dot\nline\n",
        b"Subject: bare cr\r\rbody\r.x\rend",
        b"Subject: smuggle\r\n\r\na\n.\nMAIL FROM:<x>\r\n",
        "Subject: caf\u{e9}\r\n\r\n.\u{e9}t\u{e9}\r\n".as_bytes(),
    ];
    let whole = Sink::start(Script::new().ehlo(&["SIZE 1000000", "8BITMIME", "PIPELINING"]));
    let pieces = Sink::start(Script::new().ehlo(&["SIZE 1000000", "8BITMIME", "PIPELINING"]));
    run(async {
        let mut connection = connect(&whole).await;
        for message in messages {
            deliver(&mut connection, &["b@example.net"], message).await;
        }
        let mut connection = connect(&pieces).await;
        for message in messages {
            let sent = connection
                .send_pieces(
                    &address("a@example.org"),
                    &[],
                    &recipients(&["b@example.net"]),
                    &Trickle(message),
                    Shape::of(message),
                )
                .await
                .unwrap();
            assert!(matches!(sent, Sent::Pending { .. }), "{sent:?}");
            assert_eq!(connection.finish().await.unwrap().code(), 250);
        }
    });
    let data = |sink: &Sink| {
        sink.messages()
            .into_iter()
            .map(|m| m.data)
            .collect::<Vec<_>>()
    };
    assert_eq!(data(&pieces), data(&whole));
    assert_eq!(data(&pieces).len(), messages.len());
    let mails = |sink: &Sink| {
        let commands = sink.commands().into_iter();
        commands
            .filter(|c| c.starts_with("MAIL"))
            .collect::<Vec<_>>()
    };
    assert_eq!(mails(&pieces), mails(&whole));
}

#[test]
fn helo_is_used_when_ehlo_is_refused() {
    let sink = Sink::start(Script::new().no_ehlo());
    run(async {
        let mut connection = connect(&sink).await;
        assert!(!connection.extensions().pipelining);
        deliver(&mut connection, &["b@example.net"], b"x\r\n").await;
    });
    assert_eq!(sink.commands()[..2], ["EHLO localhost", "HELO localhost"]);
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn each_recipient_gets_its_own_reply() {
    let sink = Sink::start(Script::new().on_rcpt("bad@example.net", "550 5.1.1 no such user"));
    run(async {
        let mut connection = connect(&sink).await;
        let (sent, _) = deliver(
            &mut connection,
            &["bad@example.net", "b@example.net"],
            b"x\r\n",
        )
        .await;
        let Sent::Pending { recipients, .. } = sent else {
            unreachable!()
        };
        assert_eq!(recipients[0].to_string(), "550 5.1.1 no such user");
        assert_eq!(recipients[1].code(), 250);
    });
    assert_eq!(sink.messages()[0].rcpt_to, ["b@example.net"]);
}

#[test]
fn when_every_recipient_is_refused_nothing_is_sent_and_the_transaction_is_reset() {
    for pipelining in [true, false] {
        let script = Script::new()
            .ehlo(if pipelining { &["PIPELINING"] } else { &[] })
            .on_rcpt("bad@example.net", "550 5.1.1 no such user");
        let sink = Sink::start(script);
        run(async {
            let mut connection = connect(&sink).await;
            let to = recipients(&["bad@example.net"]);
            let sent = connection
                .send(&address("a@example.org"), &[], &to, b"x")
                .await
                .unwrap();
            let Sent::NotSent {
                mail,
                recipients,
                data,
            } = sent
            else {
                panic!("{sent:?}")
            };
            assert_eq!(mail.code(), 250);
            assert_eq!(recipients[0].code(), 550);
            assert_eq!(data.map(|d| d.code()), pipelining.then_some(554));
            assert!(connection.is_ready());
            assert!(matches!(
                connection.finish().await,
                Err(ClientError::NotReady(Stage::Dot))
            ));
        });
        assert_eq!(sink.commands().last().map(String::as_str), Some("RSET"));
        assert!(sink.messages().is_empty());
    }
}

#[test]
fn a_refused_mail_or_data_is_not_sent() {
    let sink = Sink::start(Script::new().on_mail("452 4.3.1 insufficient system storage"));
    run(async {
        let mut connection = connect(&sink).await;
        let to = recipients(&["b@example.net"]);
        let sent = connection
            .send(&Address::null(), &[], &to, b"x")
            .await
            .unwrap();
        let Sent::NotSent { mail, .. } = sent else {
            panic!("{sent:?}")
        };
        assert_eq!(mail.enhanced(), Some("4.3.1"));
    });
    let sink = Sink::start(Script::new().ehlo(&[]).on_data("451 4.3.0 not now"));
    run(async {
        let mut connection = connect(&sink).await;
        let to = recipients(&["b@example.net"]);
        let sent = connection
            .send(&Address::null(), &[], &to, b"x")
            .await
            .unwrap();
        let Sent::NotSent { data, .. } = sent else {
            panic!("{sent:?}")
        };
        assert_eq!(data.map(|d| d.code()), Some(451));
        assert!(connection.is_ready());
    });
    assert_eq!(sink.commands().iter().filter(|c| *c == "RSET").count(), 1);
}

#[test]
fn a_temporary_failure_at_end_of_data_is_reported_by_finish() {
    let sink = Sink::start(Script::new().tempfail_first(1, "451 4.3.0 try later"));
    run(async {
        let mut connection = connect(&sink).await;
        let (_, reply) = deliver(&mut connection, &["b@example.net"], b"x\r\n").await;
        assert_eq!(reply.to_string(), "451 4.3.0 try later");
        let (_, reply) = deliver(&mut connection, &["b@example.net"], b"x\r\n").await;
        assert_eq!(reply.code(), 250);
    });
    assert_eq!(sink.messages().len(), 1);
}

#[test]
fn two_messages_share_one_connection() {
    let sink = Sink::start(Script::new());
    run(async {
        let mut connection = connect(&sink).await;
        deliver(&mut connection, &["b@example.net"], b"one\r\n").await;
        deliver(&mut connection, &["c@example.net"], b"two\r\n").await;
        connection.quit().await;
    });
    assert_eq!(sink.connections(), 1);
    let data: Vec<_> = sink.messages().into_iter().map(|m| m.data).collect();
    assert_eq!(data, [b"one\r\n", b"two\r\n"]);
}

#[test]
fn a_disconnect_mid_data_is_an_io_error_at_data_or_dot() {
    let sink = Sink::start(Script::new().disconnect_mid_data());
    let message = "a line of message text that goes on\r\n".repeat(100_000);
    run(async {
        let mut connection = connect(&sink).await;
        let to = recipients(&["b@example.net"]);
        let sent = connection
            .send(&address("a@example.org"), &[], &to, message.as_bytes())
            .await;
        assert_cut_off(&mut connection, sent).await;
    });
    assert!(sink.messages().is_empty());
}

#[test]
fn a_silent_server_times_out_waiting_for_the_greeting() {
    let sink = Sink::start(Script::new().silent());
    let mut config = ClientConfig::default();
    config.timeouts.greeting = Duration::from_millis(200);
    let error = run(open(&sink, &config)).unwrap_err();
    assert!(
        matches!(error, ClientError::Timeout(Stage::Greeting)),
        "{error:?}"
    );
}

#[test]
fn a_refused_greeting_is_an_error_carrying_the_reply() {
    let sink = Sink::start(Script::new().greeting("554 5.7.1 go away"));
    let error = run(open(&sink, &ClientConfig::default())).unwrap_err();
    assert_eq!(error.reply().map(Reply::code), Some(554));
    assert!(error.is_permanent());
    assert_eq!(sink.commands(), ["QUIT"]);
}

#[test]
fn a_closed_port_is_a_connect_error() {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = ClientConfig::default();
    let error = run(Connection::open(address, "localhost", &config, None)).unwrap_err();
    assert!(matches!(error, ClientError::Connect(_)), "{error:?}");
}

#[test]
fn opportunistic_tls_encrypts_when_offered() {
    let (cert, key) = tls::self_signed("localhost");
    let sink = Sink::start(Script::new().starttls(&cert, &key));
    run(async {
        let mut connection = connect(&sink).await;
        assert!(connection.is_tls());
        assert!(!connection.extensions().starttls);
        deliver(&mut connection, &["b@example.net"], b"secret\r\n").await;
    });
    assert!(sink.messages()[0].tls);
    let ehlos = sink
        .commands()
        .iter()
        .filter(|c| c.starts_with("EHLO"))
        .count();
    assert_eq!(ehlos, 2);
}

#[test]
fn disabled_tls_stays_plaintext_even_when_offered() {
    let (cert, key) = tls::self_signed("localhost");
    let sink = Sink::start(Script::new().starttls(&cert, &key));
    let config = ClientConfig {
        tls: TlsPolicy::Disabled,
        ..ClientConfig::default()
    };
    run(async {
        deliver(
            &mut open(&sink, &config).await.unwrap(),
            &["b@example.net"],
            b"x",
        )
        .await
    });
    assert!(!sink.messages()[0].tls);
}

#[test]
fn required_tls_against_a_server_without_starttls_is_refused() {
    let sink = Sink::start(Script::new());
    let config = ClientConfig {
        tls: TlsPolicy::Required { verify: false },
        ..ClientConfig::default()
    };
    let error = run(open(&sink, &config)).unwrap_err();
    assert!(matches!(error, ClientError::TlsRequired), "{error:?}");
    assert!(!error.is_permanent());
    assert!(!sink.commands().iter().any(|c| c.starts_with("MAIL")));
}

#[test]
fn required_verified_tls_trusts_the_given_roots_and_refuses_others() {
    let (cert, key) = tls::self_signed("mx.example");
    let sink = Sink::start(Script::new().starttls(&cert, &key));
    let config = ClientConfig {
        tls: TlsPolicy::Required { verify: true },
        ..ClientConfig::default()
    };
    run(async {
        let trusting = Some(tls::client_config_trusting(&cert));
        let connection = Connection::open(sink.address(), "mx.example", &config, trusting).await;
        assert!(connection.expect("verified").is_tls());
        let webpki = Connection::open(sink.address(), "mx.example", &config, None).await;
        assert!(matches!(webpki, Err(ClientError::Tls(_))), "{webpki:?}");
    });
}

#[test]
fn auth_plain_is_sent_over_tls_only() {
    let (cert, key) = tls::self_signed("localhost");
    let script = Script::new().ehlo(&["AUTH PLAIN LOGIN"]);
    let config = ClientConfig {
        auth: Some(("user".into(), "secret".into())),
        ..ClientConfig::default()
    };
    let plain = Sink::start(script.clone());
    run(async { open(&plain, &config).await.unwrap().quit().await });
    assert!(!plain.commands().iter().any(|c| c.starts_with("AUTH")));

    let encrypted = Sink::start(script.starttls(&cert, &key));
    run(async { open(&encrypted, &config).await.unwrap().quit().await });
    assert!(
        encrypted
            .commands()
            .contains(&"AUTH PLAIN AHVzZXIAc2VjcmV0".to_owned())
    );
}

#[test]
fn lines_starting_with_a_dot_round_trip() {
    let sink = Sink::start(Script::new());
    let message = b".leading\n..two\n.\nlast line without newline";
    run(async { deliver(&mut connect(&sink).await, &["b@example.net"], message).await });
    // The sink reads the data with its own unstuffer, not mq's server-side reader.
    let expected = ".leading\r\n..two\r\n.\r\nlast line without newline\r\n";
    assert_eq!(String::from_utf8_lossy(&sink.messages()[0].data), expected);
}

/// An SMTP server in python3 that knows nothing of mq: it prints its port, takes one session,
/// and prints the bytes that came after `354` up to the final dot (in hex), then the message as
/// it reads them (one leading dot dropped per line, RFC 5321 §4.5.2), in hex too.
const PYTHON_SERVER: &str = r"
import socket, sys

server = socket.socket()
server.bind(('127.0.0.1', 0))
server.listen(1)
print(server.getsockname()[1], flush=True)
server.settimeout(30)
connection, _ = server.accept()
connection.settimeout(30)
lines = connection.makefile('rb')

def say(*replies):
    connection.sendall(b''.join(r.encode() + b'\r\n' for r in replies))

say('220 python.test ESMTP')
while True:
    line = lines.readline()
    verb = line[:4].upper()
    if not line or verb == b'QUIT':
        say('221 2.0.0 Bye')
        break
    if verb == b'EHLO':
        say('250-python.test', '250 8BITMIME')
    elif verb == b'DATA':
        say('354 End data with <CR><LF>.<CR><LF>')
        wire = b''
        while wire != b'.\r\n' and not wire.endswith(b'\r\n.\r\n'):
            wire += lines.readline()
        text = wire[:-3].split(b'\r\n')[:-1]
        message = b''.join((l[1:] if l.startswith(b'.') else l) + b'\r\n' for l in text)
        print(wire.hex(), flush=True)
        print(message.hex(), flush=True)
        say('250 2.0.0 Ok: queued')
    else:
        say('250 2.0.0 Ok')
";

#[test]
fn lines_starting_with_a_dot_are_stuffed_on_the_wire_as_python_reads_it() {
    let mut python = std::process::Command::new("python3")
        .arg("-c")
        .arg(PYTHON_SERVER)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is part of the test machine and must be on PATH");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(
        python.stdout.take().expect("a piped stdout"),
    ));
    let mut line = || lines.next().expect("a line from python").expect("text");
    let port: u16 = line().parse().expect("python prints its port");
    let server = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let message = b".leading\n..two\n.\nlast line without newline";
    run(async {
        let config = ClientConfig::default();
        let mut connection = Connection::open(server, "localhost", &config, None)
            .await
            .expect("python's greeting");
        deliver(&mut connection, &["b@example.net"], message).await;
        connection.quit().await;
    });
    let hex = |text: String| {
        let bytes = (0..text.len()).step_by(2).map(|i| &text[i..i + 2]);
        let bytes = bytes.map(|byte| u8::from_str_radix(byte, 16).expect("hex"));
        String::from_utf8(bytes.collect()).expect("ASCII")
    };
    let (wire, received) = (hex(line()), hex(line()));
    assert!(python.wait().expect("python ends").success());
    assert_eq!(
        wire,
        "..leading\r\n...two\r\n..\r\nlast line without newline\r\n.\r\n"
    );
    assert_eq!(
        received,
        ".leading\r\n..two\r\n.\r\nlast line without newline\r\n"
    );
}

#[test]
fn a_send_without_finish_is_refused_until_the_reply_is_read() {
    let sink = Sink::start(Script::new());
    run(async {
        let mut connection = connect(&sink).await;
        let to = recipients(&["b@example.net"]);
        let sender = address("a@example.org");
        connection.send(&sender, &[], &to, b"x").await.unwrap();
        let again = connection.send(&sender, &[], &to, b"x").await;
        assert!(
            matches!(again, Err(ClientError::NotReady(Stage::Mail))),
            "{again:?}"
        );
        assert_eq!(connection.finish().await.unwrap().code(), 250);
        connection.reset().await.unwrap();
        let params = vec![("BAD KEY".to_owned(), None)];
        let bad = connection.send(&sender, &params, &to, b"x").await;
        assert!(
            matches!(bad, Err(ClientError::InvalidParameter(Stage::Mail, _))),
            "{bad:?}"
        );
    });
}

/// A large body that just arrived in the queue goes out from the journal's file by the kernel
/// (`sendfile`): byte for byte, however often the socket is full on the way (a body of
/// megabytes, a sink that parses every line); a server that closes in the middle is an I/O
/// error; and after a restart the body goes as it is in pieces.
#[test]
fn a_queued_body_sent_from_its_file_arrives_byte_for_byte() {
    use mq_core::queue::{EmbeddedOptions, EmbeddedQueue, NewMessage, Queue};
    use mq_core::smtp::client::{Pieces, Shape};

    let mut body: Vec<u8> = b"Subject: large\r\n\r\n".to_vec();
    let mut line = 0u64;
    while body.len() < 4 << 20 {
        body.extend_from_slice(format!("line {line} of a message of megabytes\r\n").as_bytes());
        line += 1;
    }
    let dir = tempfile::TempDir::new().unwrap();
    let enqueue = |queue: &EmbeddedQueue| {
        run(queue.enqueue(NewMessage {
            sender: address("a@example.org"),
            recipients: vec![address("b@example.net")],
            body: body.clone(),
            client: "localhost[127.0.0.1]".into(),
            extensions: None,
        }))
        .unwrap()
    };
    let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let id = enqueue(&queue);
    let send = |queue: &EmbeddedQueue, from_file: bool| {
        let sink = Sink::start(Script::new());
        run(async {
            let opened = queue.open_body(&id).await.unwrap();
            assert_eq!(opened.in_file().is_some(), from_file, "{opened:?}");
            let mut connection = connect(&sink).await;
            let shape = opened.shape().await.unwrap();
            assert_eq!(shape, Shape::of(&body));
            deliver_pieces(&mut connection, &opened, shape).await;
            connection.quit().await;
        });
        let received: Vec<Vec<u8>> = sink.messages().into_iter().map(|m| m.data).collect();
        assert!(received == [body.clone()], "the sink got another message");
    };
    send(&queue, true);

    // A server that goes away in the middle is an I/O error, as with any write.
    let sink = Sink::start(Script::new().disconnect_mid_data());
    run(async {
        let opened = queue.open_body(&id).await.unwrap();
        assert!(opened.in_file().is_some(), "{opened:?}");
        let shape = opened.shape().await.unwrap();
        let mut connection = connect(&sink).await;
        let sender = address("a@example.org");
        let to = recipients(&["b@example.net"]);
        let sent = connection
            .send_pieces(&sender, &[], &to, &opened, shape)
            .await;
        assert_cut_off(&mut connection, sent).await;
    });
    assert!(sink.messages().is_empty());

    // Recovered from the journal, the body is read a piece at a time again.
    drop(queue);
    let queue = EmbeddedQueue::open(dir.path(), EmbeddedOptions::default()).unwrap();
    send(&queue, false);
}
