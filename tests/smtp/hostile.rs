//! Hostile input: every malformed line gets exactly one reply, nothing panics, and the server
//! goes on serving.

use crate::support::{TestServer, queued_id};

/// A small deterministic generator (xorshift64), so that a failure can be replayed.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A line of random bytes, none of them LF, between 0 and 700 bytes long.
    fn line(&mut self) -> Vec<u8> {
        let len = (self.next() % 700) as usize;
        (0..len)
            .map(|_| self.next().to_le_bytes()[0])
            .map(|b| if b == b'\n' { b'?' } else { b })
            .collect()
    }
}

#[test]
fn hostile_input_always_gets_a_reply_and_never_breaks_the_server() {
    let server = TestServer::start(1, |config| config.max_errors = 10_000);
    let mut client = server.client();
    let answers: [(&[u8], &str); 6] = [
        (b"\xff\xfe\xfd\r\n", "500 5.5.2 Error: bad UTF-8 syntax"),
        (b"NO\0OP\r\n", "500 5.5.2 Error: bad syntax"),
        (b"\r\n", "502 5.5.2 Error: command not recognized"),
        (b"NOOP\n", "250 2.0.0 Ok"),
        (b"STARTTLS\r\n", "502 5.5.1 Error: command not implemented"),
        (b"DATA\r\n", "503 5.5.1 Error: need MAIL command"),
    ];
    for (line, expected) in answers {
        client.write(line);
        assert_eq!(
            client.reply(),
            expected,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    let mut garbage: Vec<u8> = (0..10_240u32)
        .map(|i| b"!#%&()*+,-./:;=?"[i as usize % 16])
        .collect();
    garbage.extend_from_slice(b"\r\n");
    client.write(&garbage);
    assert_eq!(client.reply(), "500 5.5.0 Error: line too long");

    client.ehlo();
    assert_eq!(
        client.send("AUTH PLAIN AGFsaWNlAHB3"),
        "503 5.5.1 Error: authentication not enabled"
    );
    assert_eq!(client.send("MAIL FROM:<>"), "250 2.1.0 Ok");
    assert_eq!(
        client.send("RCPT TO:<>"),
        "501 5.1.3 Bad recipient address syntax"
    );
    assert_eq!(client.send("RSET"), "250 2.0.0 Ok");

    // Random lines, pipelined in one write: each gets one refusal, in order.
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    let lines: Vec<Vec<u8>> = (0..300).map(|_| random.line()).collect();
    let mut pipelined = Vec::new();
    for line in &lines {
        pipelined.extend_from_slice(line);
        pipelined.extend_from_slice(b"\r\n");
    }
    pipelined.extend_from_slice(b"NOOP\r\n");
    client.write(&pipelined);
    for line in &lines {
        let reply = client.reply();
        assert!(
            ["500 ", "501 ", "502 "]
                .iter()
                .any(|c| reply.starts_with(c)),
            "{reply:?} for {:?}",
            String::from_utf8_lossy(line)
        );
    }
    assert_eq!(
        client.reply(),
        "250 2.0.0 Ok",
        "one reply per line, no more"
    );
    assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
    assert!(client.is_closed());

    let mut fresh = server.client();
    fresh.ehlo();
    let reply = fresh.message(
        "a@example.org",
        "b@localhost",
        "Subject: after\r\n\r\nstill here\r\n",
    );
    let id = queued_id(&reply);
    assert_eq!(fresh.send("QUIT"), "221 2.0.0 Bye");
    let entries = server.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].queue_id, id);
}

/// Names that would put a false hop into the Received field, or are not names at all.
const HOSTILE_HELO_NAMES: [&str; 7] = [
    "mail.bank.example (mail.bank.example [10.0.0.5])",
    "a b",
    "a\tb",
    "x(y)",
    "[10.0.0.5];",
    "by.example;",
    "[not-an-address]",
];

#[test]
fn helo_names_that_are_not_host_names_or_addresses_are_refused() {
    let server = TestServer::start(1, |_| {});
    let mut client = server.client();
    for name in HOSTILE_HELO_NAMES {
        assert_eq!(
            client.send(&format!("EHLO {name}")),
            "501 5.5.2 Syntax: EHLO hostname",
            "{name:?}"
        );
        assert_eq!(
            client.send(&format!("HELO {name}")),
            "501 5.5.2 Syntax: HELO hostname",
            "{name:?}"
        );
    }
    assert_eq!(
        client.send("MAIL FROM:<a@example.org>"),
        "503 5.5.1 Error: send HELO/EHLO first",
        "no name was taken"
    );
}

#[test]
fn the_received_field_has_one_structure_whatever_name_a_client_gives() {
    let server = TestServer::start(1, |config| config.max_errors = 100);
    let mut client = server.client();
    for name in HOSTILE_HELO_NAMES {
        // Refused: the name taken before stays, and it is the one recorded.
        assert!(client.send(&format!("EHLO {name}")).starts_with("501 "));
    }
    for name in [
        "localhost",
        "[127.0.0.1]",
        "[IPv6:::1]",
        "my_host-2.example",
    ] {
        let reply = client.send(&format!("EHLO {name}"));
        assert!(reply.starts_with("250-localhost\n"), "{name}: {reply}");
        let id =
            queued_id(&client.message("a@example.org", "b@localhost", "Subject: x\r\n\r\nhi\r\n"));
        let body = server.body(id);
        let received = body.lines().next().expect("a first line");
        let expected = format!(
            "Received: from {name} (unknown [127.0.0.1]) by localhost (mq) with ESMTP for <b@localhost>; "
        );
        let date = received
            .strip_prefix(&expected)
            .unwrap_or_else(|| panic!("{received}"));
        assert!(!date.contains(['(', ')', '[', ']', ';']), "{received}");
    }
}
