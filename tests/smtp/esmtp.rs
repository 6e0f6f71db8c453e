//! SMTPUTF8 (RFC 6531) and DSN (RFC 3461) at the server: advertised, their parameters checked
//! on MAIL and RCPT, and kept with the queued message.

use mq_core::smtp::{Notify, Ret};

use crate::support::{Client, TestServer, python, queued_id};

/// python3's smtplib sends a UTF-8 address with and without SMTPUTF8, and the DSN parameters.
const UTF8_AND_DSN: &str = r"
import smtplib, sys

host, port = sys.argv[1], int(sys.argv[2])

def show(name, reply):
    code, text = reply
    print(name, code, text.decode().replace('\n', ' | '))

s = smtplib.SMTP(host, port, local_hostname='client.example', timeout=30)
s.ehlo()
print('features', s.has_extn('smtputf8'), s.has_extn('dsn'))
s.command_encoding = 'utf-8'
show('mail-utf8-undeclared', s.docmd('MAIL FROM:<j\u00f6s@example.org>'))
show('mail', s.mail('a@example.org'))
show('rcpt-utf8-undeclared', s.docmd('RCPT TO:<j\u00f6s@example.net>'))
show('rset', s.rset())
print('sendmail', s.sendmail('j\u00f6s@example.org', ['r\u00e9ka@example.net'],
    'Subject: utf-8\r\n\r\nhello\r\n'.encode(), mail_options=['SMTPUTF8']))
print('sendmail', s.sendmail('a@example.org', ['b@example.net', 'c@example.net'],
    b'Subject: dsn\r\n\r\nhello\r\n', mail_options=['RET=HDRS', 'ENVID=QQ+2B314159'],
    rcpt_options=['NOTIFY=SUCCESS,FAILURE', 'ORCPT=rfc822;b+2Bx@example.net']))
show('quit', s.quit())
";

#[test]
fn python_smtplib_sends_utf8_addresses_only_with_smtputf8_and_the_dsn_parameters_are_kept() {
    let server = TestServer::start(1, |_| {});
    let port = server.addr.port().to_string();
    let lines = python(UTF8_AND_DSN, &["127.0.0.1", &port]);
    let expected = [
        "features True True",
        "mail-utf8-undeclared 553 5.6.7 Must declare SMTPUTF8 to send unicode address",
        "mail 250 2.1.0 Ok",
        "rcpt-utf8-undeclared 553 5.6.7 Must declare SMTPUTF8 to send unicode address",
        "rset 250 2.0.0 Ok",
        "sendmail {}",
        "sendmail {}",
        "quit 221 2.0.0 Bye",
    ];
    assert_eq!(lines, expected);

    let entries = server.entries();
    let recipients: Vec<&str> = entries.iter().map(|e| e.recipient.as_str()).collect();
    assert_eq!(
        recipients,
        ["r\u{e9}ka@example.net", "b@example.net", "c@example.net"]
    );
    let utf8 = entries[0]
        .extensions
        .as_deref()
        .expect("the SMTPUTF8 flag is kept");
    assert!(utf8.smtputf8);
    assert_eq!(entries[0].sender.as_str(), "j\u{f6}s@example.org");

    let dsn = entries[1]
        .extensions
        .as_deref()
        .expect("the DSN parameters are kept");
    assert!(!dsn.smtputf8);
    assert_eq!(dsn.ret, Some(Ret::Hdrs));
    assert_eq!(dsn.envid.as_deref(), Some("QQ+314159"));
    let notify = Notify {
        success: true,
        failure: true,
        ..Notify::default()
    };
    for index in [0, 1] {
        let params = dsn.recipient(index);
        assert_eq!(params.notify, Some(notify));
        assert_eq!(params.orcpt.as_deref(), Some("rfc822;b+2Bx@example.net"));
    }
}

#[test]
fn a_message_without_parameters_is_queued_without_extensions() {
    let server = TestServer::start(1, |_| {});
    let mut client = Client::greeted(server.addr);
    client.ehlo();
    let reply = client.message("a@example.org", "b@example.net", "Subject: s\r\n\r\nx\r\n");
    let id = queued_id(&reply);
    let entries = server.entries();
    assert_eq!(entries[0].queue_id, id);
    assert_eq!(entries[0].extensions, None);
}

#[test]
fn ehlo_advertises_dsn_and_smtputf8() {
    let server = TestServer::start(1, |_| {});
    let mut client = Client::greeted(server.addr);
    let ehlo = client.ehlo();
    assert!(ehlo.contains("\n250-DSN\n"), "{ehlo}");
    assert!(ehlo.ends_with("\n250 SMTPUTF8"), "{ehlo}");
}

/// Each malformed or conflicting parameter gets 501 (Postfix's wording), and the transaction
/// goes on with the next command.
#[test]
fn bad_dsn_parameters_are_refused_with_501() {
    let server = TestServer::start(1, |_| {});
    let mut client = Client::greeted(server.addr);
    client.ehlo();
    for (mail, reply) in [
        ("RET=ALL", "501 5.5.4 Error: Bad RET parameter syntax"),
        (
            "RET=FULL RET=HDRS",
            "501 5.5.4 Error: duplicate RET parameter",
        ),
        ("ENVID=a=b", "501 5.5.4 Error: Bad ENVID parameter syntax"),
        ("ENVID=a+2g", "501 5.5.4 Error: Bad ENVID parameter syntax"),
        ("ENVID", "501 5.5.4 Error: Bad ENVID parameter syntax"),
        (
            "SMTPUTF8=yes",
            "501 5.5.4 Error: Bad SMTPUTF8 parameter syntax",
        ),
    ] {
        let line = format!("MAIL FROM:<a@example.org> {mail}");
        assert_eq!(client.send(&line), reply, "{mail}");
    }
    let mail = "MAIL FROM:<a@example.org> RET=FULL ENVID=x+2By SMTPUTF8";
    assert_eq!(client.send(mail), "250 2.1.0 Ok");
    for (rcpt, reply) in [
        (
            "NOTIFY=NEVER,SUCCESS",
            "501 5.5.4 Error: Bad NOTIFY parameter syntax",
        ),
        (
            "NOTIFY=FAILURE,DELAY,NEVER",
            "501 5.5.4 Error: Bad NOTIFY parameter syntax",
        ),
        (
            "NOTIFY=SOMETIMES",
            "501 5.5.4 Error: Bad NOTIFY parameter syntax",
        ),
        (
            "NOTIFY=NEVER NOTIFY=NEVER",
            "501 5.5.4 Error: duplicate NOTIFY parameter",
        ),
        (
            "ORCPT=b@example.net",
            "501 5.5.4 Error: Bad ORCPT parameter syntax",
        ),
        (
            "ORCPT=rfc822;b=c@example.net",
            "501 5.5.4 Error: Bad ORCPT parameter syntax",
        ),
        ("FROB=1", "555 5.5.4 Unsupported option: FROB"),
    ] {
        let line = format!("RCPT TO:<b@example.net> {rcpt}");
        assert_eq!(client.send(&line), reply, "{rcpt}");
    }
    let rcpt = "RCPT TO:<b@example.net> NOTIFY=NEVER ORCPT=rfc822;b@example.net";
    assert_eq!(client.send(rcpt), "250 2.1.5 Ok");
}

/// RFC 6531 §3.7.3: a transaction with SMTPUTF8 is received `with UTF8SMTP` (`UTF8SMTPS` over
/// TLS), one without it on the same connection still `with ESMTP`.
#[test]
fn the_received_field_says_utf8smtp_for_an_smtputf8_transaction() {
    let server = TestServer::with_tls(|_| {});
    let mut client = server.client();
    client.ehlo();
    let send = |client: &mut Client, mail: &str| {
        assert_eq!(client.send(mail), "250 2.1.0 Ok");
        assert_eq!(client.send("RCPT TO:<b@example.net>"), "250 2.1.5 Ok");
        let id = queued_id(&client.data("Subject: s\r\n\r\nx\r\n"));
        let body = server.body(id);
        let received = body.lines().next().expect("a first line").to_owned();
        let with = received.split(" with ").nth(1).expect("a with clause");
        with.split(' ').next().expect("a protocol").to_owned()
    };
    assert_eq!(
        send(&mut client, "MAIL FROM:<a@example.org> SMTPUTF8"),
        "UTF8SMTP"
    );
    assert_eq!(send(&mut client, "MAIL FROM:<a@example.org>"), "ESMTP");
    client.starttls(server.cert());
    client.ehlo();
    assert_eq!(
        send(&mut client, "MAIL FROM:<a@example.org> SMTPUTF8"),
        "UTF8SMTPS"
    );
}
