//! An independent client: python3's smtplib drives the server, and prints each reply as a line
//! (`name code text`, a multi-line reply's lines joined by ` | `) for the test to check.

use crate::support::{PASSWORD, TestServer, USER, python, queued_id};

/// The whole plain dialogue: EHLO, MAIL, RCPT, DATA (by `sendmail` and by hand), RSET, NOOP,
/// HELP, VRFY, QUIT, then HELO on a second connection.
const DIALOGUE: &str = r"
import smtplib, sys

host, port = sys.argv[1], int(sys.argv[2])

def show(name, reply):
    code, text = reply
    print(name, code, text.decode().replace('\n', ' | '))

s = smtplib.SMTP(host, port, local_hostname='client.example', timeout=30)
show('ehlo', s.ehlo())
print('features', ' '.join(sorted(s.esmtp_features)))
print('sendmail', s.sendmail('a@example.org', ['b@localhost'], 'Subject: by sendmail\r\n\r\nhello\r\n'))
show('mail', s.mail('a@example.org'))
show('rcpt', s.rcpt('c@localhost'))
show('data', s.data(b'Subject: by hand\r\n\r\n.leading dot\r\n'))
show('mail', s.mail('a@example.org'))
show('rset', s.rset())
show('rcpt', s.rcpt('e@localhost'))
show('noop', s.noop())
show('help', s.docmd('HELP'))
show('vrfy', s.verify('b@localhost'))
show('quit', s.quit())

s = smtplib.SMTP(host, port, local_hostname='client.example', timeout=30)
show('helo', s.helo())
print('sendmail', s.sendmail('a@example.org', ['d@localhost'], 'Subject: after HELO\r\n\r\nplain SMTP\r\n'))
show('quit', s.quit())
";

/// STARTTLS and AUTH: refused before TLS, PLAIN and LOGIN after it, with a wrong password first.
const AUTHENTICATED: &str = r"
import base64, smtplib, ssl, sys

host, port, cafile, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]

def show(name, reply):
    code, text = reply
    print(name, code, text.decode().replace('\n', ' | '))

def attempt(name, s, mechanism, secret, initial):
    s.user, s.password = user, secret
    answer = {'PLAIN': s.auth_plain, 'LOGIN': s.auth_login}[mechanism]
    try:
        show(name, s.auth(mechanism, answer, initial_response_ok=initial))
    except smtplib.SMTPAuthenticationError as error:
        show(name, (error.smtp_code, error.smtp_error))

# Trust exactly the server's certificate; it names localhost, smtplib connects to 127.0.0.1.
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False

s = smtplib.SMTP(host, port, local_hostname='client.example', timeout=30)
s.ehlo()
print('before-tls auth', s.has_extn('auth'), 'starttls', s.has_extn('starttls'))
response = base64.b64encode(('\0%s\0%s' % (user, password)).encode()).decode()
show('auth-before-tls', s.docmd('AUTH', 'PLAIN ' + response))
show('starttls', s.starttls(context=context))
s.ehlo()
print('after-tls auth', s.esmtp_features.get('auth').strip(), 'starttls', s.has_extn('starttls'))
print('verified', context.verify_mode == ssl.CERT_REQUIRED, s.sock.version().startswith('TLSv1.'))
attempt('plain-wrong', s, 'PLAIN', 'wrong password', True)
attempt('plain', s, 'PLAIN', password, True)
print('sendmail', s.sendmail('alice@example.org', ['x@example.net'], 'Subject: submitted\r\n\r\nno Date, no Message-ID\r\n'))
show('quit', s.quit())

s = smtplib.SMTP(host, port, local_hostname='client.example', timeout=30)
show('starttls', s.starttls(context=context))
s.ehlo()
attempt('login-wrong', s, 'LOGIN', 'wrong password', True)
attempt('login', s, 'LOGIN', password, False)
show('quit', s.quit())
";

#[test]
fn python_smtplib_walks_through_the_whole_plain_dialogue() {
    let server = TestServer::start(1, |_| {});
    let port = server.addr.port().to_string();
    let lines = python(DIALOGUE, &["127.0.0.1", &port]);
    let data = lines
        .iter()
        .find_map(|line| line.strip_prefix("data "))
        .expect("a data line");
    let id = queued_id(data);
    let expected = [
        "ehlo 250 localhost | PIPELINING | SIZE 10240000 | VRFY | ENHANCEDSTATUSCODES | 8BITMIME | DSN | SMTPUTF8",
        "features 8bitmime dsn enhancedstatuscodes pipelining size smtputf8 vrfy",
        "sendmail {}",
        "mail 250 2.1.0 Ok",
        "rcpt 250 2.1.5 Ok",
        &format!("data 250 2.0.0 Ok: queued as {id}"),
        "mail 250 2.1.0 Ok",
        "rset 250 2.0.0 Ok",
        "rcpt 503 5.5.1 Error: need MAIL command",
        "noop 250 2.0.0 Ok",
        "help 214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH",
        "vrfy 252 2.0.0 Cannot VRFY user; send mail and delivery will be attempted",
        "quit 221 2.0.0 Bye",
        "helo 250 localhost",
        "sendmail {}",
        "quit 221 2.0.0 Bye",
    ];
    assert_eq!(lines, expected);

    let entries = server.entries();
    let recipients: Vec<String> = entries.iter().map(|e| e.recipient.to_string()).collect();
    assert_eq!(recipients, ["b@localhost", "c@localhost", "d@localhost"]);
    assert_eq!(entries[1].queue_id, id);
    assert_eq!(entries[1].sender.as_str(), "a@example.org");
    let by_hand = server.body(id);
    assert!(by_hand.ends_with("\r\n\r\n.leading dot\r\n"), "{by_hand:?}");
    let after_helo = server.body(entries[2].queue_id);
    let received = "Received: from client.example (unknown [127.0.0.1]) by localhost (mq) with SMTP for <d@localhost>; ";
    assert!(after_helo.starts_with(received), "{after_helo:?}");
}

#[test]
fn python_smtplib_authenticates_with_plain_and_login_only_after_starttls() {
    let server = TestServer::with_tls(|_| {});
    let cafile = server.dir().join("ca.pem");
    std::fs::write(&cafile, server.cert()).expect("write the certificate for python");
    let port = server.addr.port().to_string();
    let cafile = cafile.to_str().expect("a UTF-8 path");
    let lines = python(AUTHENTICATED, &["127.0.0.1", &port, cafile, USER, PASSWORD]);
    let expected = [
        "before-tls auth False starttls True",
        "auth-before-tls 530 5.7.0 Must issue a STARTTLS command first",
        "starttls 220 2.0.0 Ready to start TLS",
        "after-tls auth PLAIN LOGIN starttls False",
        "verified True True",
        "plain-wrong 535 5.7.8 Error: authentication failed",
        "plain 235 2.7.0 Authentication successful",
        "sendmail {}",
        "quit 221 2.0.0 Bye",
        "starttls 220 2.0.0 Ready to start TLS",
        "login-wrong 535 5.7.8 Error: authentication failed",
        "login 235 2.7.0 Authentication successful",
        "quit 221 2.0.0 Bye",
    ];
    assert_eq!(lines, expected);

    let entries = server.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].recipient.as_str(), "x@example.net");
    let body = server.body(entries[0].queue_id);
    let received = "Received: from client.example (unknown [127.0.0.1]) by localhost (mq) with ESMTPSA for <x@example.net>; ";
    assert!(body.starts_with(received), "{body:?}");
    assert!(body.contains("\r\nDate: "), "Date was added: {body:?}");
    assert!(
        body.contains("\r\nMessage-ID: <"),
        "Message-ID was added: {body:?}"
    );
}
