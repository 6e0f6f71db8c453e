//! SMTP commands as the server reads them: one line in, a command or the reply that refuses it.
//!
//! Parsing never panics and never allocates more than the line: every malformed input maps to
//! the reply Postfix gives for it.

use mq_plugin_api::{Address, Params, Reply};

/// A command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO name` (`extended`) or `HELO name`.
    Hello {
        /// The name the client gave.
        name: String,
        /// EHLO rather than HELO.
        extended: bool,
    },
    /// `MAIL FROM:<sender> params`.
    MailFrom {
        /// The reverse path.
        sender: Address,
        /// ESMTP parameters.
        params: Params,
    },
    /// `RCPT TO:<recipient> params`.
    RcptTo {
        /// The forward path.
        recipient: Address,
        /// ESMTP parameters.
        params: Params,
    },
    /// `DATA`.
    Data,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `HELP`.
    Help,
    /// `VRFY`.
    Vrfy,
    /// `EXPN`.
    Expn,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]`.
    Auth {
        /// The SASL mechanism, upper-cased.
        mechanism: String,
        /// The initial response, if given on the command line.
        initial: Option<String>,
    },
}

fn syntax(usage: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Syntax: {usage}"))
}

/// Parses one command line, without its CRLF.
///
/// # Errors
///
/// The reply for a line that is not a command mq knows, or not well formed.
///
/// # Examples
///
/// ```
/// use mq_core::smtp::{Command, parse_command};
///
/// let command = parse_command(b"MAIL FROM:<a@example.org> SIZE=100").unwrap();
/// assert!(matches!(command, Command::MailFrom { .. }));
/// assert_eq!(parse_command(b"FROB").unwrap_err().code(), 502);
/// ```
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(Reply::new(500, "5.5.2", "Error: bad UTF-8 syntax"));
    };
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Reply::new(500, "5.5.2", "Error: bad syntax"));
    }
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim_start_matches([' ', '\t']);
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => hello(rest, true),
        "HELO" => hello(rest, false),
        "MAIL" => mail_from(rest),
        "RCPT" => rcpt_to(rest),
        "DATA" => bare(rest, Command::Data, "DATA"),
        "RSET" => bare(rest, Command::Rset, "RSET"),
        "QUIT" => bare(rest, Command::Quit, "QUIT"),
        "STARTTLS" => bare(rest, Command::StartTls, "STARTTLS"),
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy),
        "EXPN" => Ok(Command::Expn),
        "AUTH" => auth(rest),
        _ => Err(Reply::new(502, "5.5.2", "Error: command not recognized")),
    }
}

fn bare(rest: &str, command: Command, usage: &str) -> Result<Command, Reply> {
    if rest.is_empty() {
        Ok(command)
    } else {
        Err(syntax(usage))
    }
}

fn hello(rest: &str, extended: bool) -> Result<Command, Reply> {
    let usage = if extended {
        "EHLO hostname"
    } else {
        "HELO hostname"
    };
    if rest.is_empty() {
        return Err(syntax(usage));
    }
    if !super::helo::is_valid(rest) {
        return Err(Reply::new(501, "5.5.2", format!("Syntax: {usage}")));
    }
    Ok(Command::Hello {
        name: rest.to_owned(),
        extended,
    })
}

fn mail_from(rest: &str) -> Result<Command, Reply> {
    let usage = || syntax("MAIL FROM:<address>");
    let path = strip_keyword(rest, "FROM:").ok_or_else(usage)?;
    let (address, params) = path_and_params(path).ok_or_else(usage)?;
    let sender =
        parse_path(address).ok_or_else(|| Reply::new(501, "5.1.7", "Bad sender address syntax"))?;
    Ok(Command::MailFrom {
        sender,
        params: parse_params(params)?,
    })
}

fn rcpt_to(rest: &str) -> Result<Command, Reply> {
    let usage = || syntax("RCPT TO:<address>");
    let path = strip_keyword(rest, "TO:").ok_or_else(usage)?;
    let (address, params) = path_and_params(path).ok_or_else(usage)?;
    let bad = || Reply::new(501, "5.1.3", "Bad recipient address syntax");
    let recipient = parse_path(address)
        .filter(|a| !a.is_null())
        .ok_or_else(bad)?;
    Ok(Command::RcptTo {
        recipient,
        params: parse_params(params)?,
    })
}

fn auth(rest: &str) -> Result<Command, Reply> {
    let mut words = rest.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(mechanism) = words.next() else {
        return Err(syntax("AUTH mechanism"));
    };
    let initial = words.next().map(str::to_owned);
    if words.next().is_some() {
        return Err(syntax("AUTH mechanism"));
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial,
    })
}

/// `rest` after a case-insensitive `keyword` (such as `FROM:`), spaces after the colon allowed.
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Option<&'a str> {
    let head = rest.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| rest[keyword.len()..].trim_start_matches([' ', '\t']))
}

/// Splits `<path> params` (or a bare `path params`) into the path's inside and the rest.
fn path_and_params(text: &str) -> Option<(&str, &str)> {
    if let Some(inside) = text.strip_prefix('<') {
        let end = inside.find('>')?;
        let rest = &inside[end + 1..];
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            return None;
        }
        return Some((&inside[..end], rest.trim_start_matches([' ', '\t'])));
    }
    let (path, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    (!path.is_empty()).then_some((path, rest.trim_start_matches([' ', '\t'])))
}

/// The address in a path, without an RFC 5321 source route (`@a,@b:user@d`). A domain that
/// has no ASCII form (IDNA refuses it) is refused: no route, no resolver could use it.
fn parse_path(path: &str) -> Option<Address> {
    let path = match path.strip_prefix('@') {
        Some(routed) => &routed[routed.find(':')? + 1..],
        None => path,
    };
    path.parse()
        .ok()
        .filter(|a: &Address| a.domain().is_ascii())
}

/// ESMTP parameters: `KEY[=VALUE]` separated by spaces; keywords upper-cased.
fn parse_params(text: &str) -> Result<Params, Reply> {
    let mut params = Params::new();
    for word in text.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => (key, Some(value.to_owned())),
            None => (word, None),
        };
        let valid = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(Reply::new(
                501,
                "5.5.4",
                format!("Bad parameter syntax: {word}"),
            ));
        }
        params.push((key.to_ascii_uppercase(), value));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &[u8]) -> u16 {
        parse_command(line).map_or_else(|reply| reply.code(), |_| 0)
    }

    /// Such an address was taken, stored as `a@xn--b cher-xxd.example` (UTS #46 maps U+02DC to
    /// a space), and could not be read back from the journal after a restart.
    #[test]
    fn a_domain_whose_ascii_form_holds_a_space_is_refused() {
        assert_eq!(code("MAIL FROM:<a@B\u{2dc}CHER.example>".as_bytes()), 501);
        assert_eq!(code("RCPT TO:<a@B\u{2dc}CHER.example>".as_bytes()), 501);
        assert_eq!(code("RCPT TO:<a@b\u{fc}cher.example>".as_bytes()), 0);
    }

    #[test]
    fn parses_the_commands() {
        let hello = parse_command(b"ehlo client.example").unwrap();
        assert_eq!(
            hello,
            Command::Hello {
                name: "client.example".into(),
                extended: true
            }
        );
        let Command::MailFrom { sender, params } =
            parse_command(b"MAIL FROM: <a@example.org> size=10 BODY=8BITMIME").unwrap()
        else {
            panic!("MAIL")
        };
        assert_eq!(sender.as_str(), "a@example.org");
        assert_eq!(
            params,
            [
                ("SIZE".into(), Some("10".into())),
                ("BODY".into(), Some("8BITMIME".into()))
            ]
        );
        let Command::MailFrom { sender, .. } = parse_command(b"MAIL FROM:<>").unwrap() else {
            panic!("null")
        };
        assert!(sender.is_null());
        let Command::RcptTo { recipient, .. } =
            parse_command(b"RCPT TO:<@relay.example:b@example.net>").unwrap()
        else {
            panic!("RCPT")
        };
        assert_eq!(recipient.as_str(), "b@example.net");
        assert_eq!(
            parse_command(b"AUTH plain dGVzdA==").unwrap(),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("dGVzdA==".into())
            }
        );
        for (line, command) in [
            (&b"DATA"[..], Command::Data),
            (b"rset", Command::Rset),
            (b"NOOP x", Command::Noop),
        ] {
            assert_eq!(parse_command(line).unwrap(), command);
        }
    }

    /// A corpus of malformed commands and the reply each gets.
    #[test]
    fn malformed_commands_get_postfix_replies() {
        let corpus: &[(&[u8], u16)] = &[
            (b"", 502),
            (b"   ", 502),
            (b"FROB", 502),
            (b"EHLO", 501),
            (b"HELO ", 501),
            (b"EHLO a b", 501),
            (b"HELO a\tb", 501),
            (b"EHLO x (y [10.0.0.5])", 501),
            (b"MAIL", 501),
            (b"MAIL TO:<a@b>", 501),
            (b"MAIL FROM:", 501),
            (b"MAIL FROM:<a@b", 501),
            (b"MAIL FROM:<a@b>x", 501),
            (b"MAIL FROM:<a b@c>", 501),
            (b"MAIL FROM:<@>", 501),
            (b"MAIL FROM:<a@b> =x", 501),
            (b"RCPT TO:<>", 501),
            (b"RCPT TO:", 501),
            (b"RCPT FROM:<a@b>", 501),
            (b"RCPT TO:<@route>", 501),
            // IDNA refuses a joiner here: the domain has no ASCII form.
            ("RCPT TO:<a@b\u{200d}\u{e9}.example>".as_bytes(), 501),
            ("MAIL FROM:<a@b\u{200d}\u{e9}.example>".as_bytes(), 501),
            (b"DATA now", 501),
            (b"QUIT please", 501),
            (b"STARTTLS x", 501),
            (b"AUTH", 501),
            (b"AUTH PLAIN a b", 501),
            (b"MAIL FROM:<a\0@b>", 500),
            (b"\xff\xfe", 500),
            (b"EHLO \x1b[31m", 500),
            (b"\0", 500),
        ];
        for (line, expected) in corpus {
            assert_eq!(code(line), *expected, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
