//! The pieces of mq's log lines that must read the same everywhere, so that one grep finds a
//! message's whole life: the client as `name[ip]:port`, the `Message-ID` of a message, and
//! durations as Postfix writes them in `delay=` and `delays=`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// An SMTP client as every log line names it: `unknown[192.0.2.1]:33444`.
///
/// The name is `unknown` as in Postfix without reverse lookups: mq does not look the
/// address up, and the HELO name is the client's own claim (logged apart, as `helo=`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client(pub(crate) SocketAddr);

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown")?;
        write_address(f, self.0)
    }
}

/// A server mq connects to, as `relay=` names it: `mx.example.net[192.0.2.1]:25`.
pub(crate) fn relay(host: &str, address: SocketAddr) -> String {
    let mut relay = String::with_capacity(host.len() + 24);
    relay.push_str(host);
    let _ = write_address(&mut relay, address);
    relay
}

/// `[ip]:port`, written as `Display` writes the two, an IPv4 address digit by digit: the
/// formatting machinery takes some thousand instructions an address, and a relayed message
/// has half a dozen in its log lines.
fn write_address(out: &mut impl fmt::Write, address: SocketAddr) -> fmt::Result {
    out.write_char('[')?;
    match address.ip() {
        IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.write_char('.')?;
                }
                write_decimal(out, octet.into())?;
            }
        }
        ip @ IpAddr::V6(_) => write!(out, "{ip}")?,
    }
    out.write_str("]:")?;
    write_decimal(out, address.port().into())
}

/// `n` in decimal.
fn write_decimal(out: &mut impl fmt::Write, n: u32) -> fmt::Result {
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    digits[start..]
        .iter()
        .try_for_each(|&digit| out.write_char(char::from(digit)))
}

/// An envelope address as `from=` and `to=` write it: `<a@example.org>`, `<>` for the null
/// sender.
pub(crate) fn bracketed(address: &mq_plugin_api::Address) -> String {
    if address.is_null() {
        "<>".into()
    } else {
        format!("<{address}>")
    }
}

/// The `Message-ID` header of `message`, if its header section has one (the first, unfolded,
/// at most 998 bytes), as written.
pub(crate) fn message_id(message: &[u8]) -> Option<String> {
    let mut lines = message
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    while let Some(line) = lines.next() {
        if line.is_empty() {
            return None;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"message-id")
        {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        // Folded onto the next lines: continuation lines begin with white space.
        for next in lines.by_ref() {
            if !next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                break;
            }
            value.extend_from_slice(next);
        }
        let value = String::from_utf8_lossy(value.trim_ascii()).into_owned();
        return (!value.is_empty() && value.len() <= 998).then_some(value);
    }
    None
}

/// A duration in seconds as Postfix writes it in `delay=` and `delays=`: two decimals at
/// most, without trailing zeros (`0`, `0.05`, `1.2`, `38`).
pub(crate) fn seconds(duration: Duration) -> String {
    let text = format!("{:.2}", duration.as_secs_f64());
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() {
        "0".into()
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_and_relays_are_written_as_display_writes_their_addresses() {
        for address in [
            "127.0.0.1:25",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.100.9:587",
            "192.0.2.10:1000",
            "[2001:db8::1]:25",
            "[::ffff:192.0.2.1]:465",
        ] {
            let address: SocketAddr = address.parse().unwrap();
            let expected = format!("[{}]:{}", address.ip(), address.port());
            assert_eq!(Client(address).to_string(), format!("unknown{expected}"));
            assert_eq!(relay("mx.test", address), format!("mx.test{expected}"));
        }
    }

    #[test]
    fn clients_read_as_postfix_writes_them() {
        let v4 = Client("127.0.0.1:33444".parse().unwrap());
        assert_eq!(v4.to_string(), "unknown[127.0.0.1]:33444");
        let v6 = Client("[2001:db8::1]:25".parse().unwrap());
        assert_eq!(v6.to_string(), "unknown[2001:db8::1]:25");
        let to = relay("mx.example", "192.0.2.1:25".parse().unwrap());
        assert_eq!(to, "mx.example[192.0.2.1]:25");
    }

    #[test]
    fn the_message_id_is_found_in_the_header_only() {
        let message =
            b"From: a@example.org\r\nmessage-ID:\r\n  <x@example.org>\r\nSubject: s\r\n\r\nbody";
        assert_eq!(message_id(message).as_deref(), Some("<x@example.org>"));
        assert_eq!(
            message_id(b"Subject: s\r\n\r\nMessage-ID: <no@x>\r\n"),
            None
        );
        assert_eq!(message_id(b"Message-Id: <a@b>\n\n"), Some("<a@b>".into()));
    }

    #[test]
    fn seconds_have_two_decimals_at_most() {
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds(Duration::from_millis(50)), "0.05");
        assert_eq!(seconds(Duration::from_millis(1200)), "1.2");
        assert_eq!(seconds(Duration::from_secs(38)), "38");
        assert_eq!(seconds(Duration::from_micros(1)), "0");
    }
}
