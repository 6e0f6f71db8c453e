//! The command lines of a transaction: MAIL FROM with SIZE and BODY as offered, RCPT TO, and
//! the caller's ESMTP parameters, checked so that none can end a line early.

use std::fmt::Write as _;

use mq_plugin_api::Address;

use super::error::{ClientError, Stage};
use super::extensions::Extensions;

/// `MAIL FROM:<sender>` with CRLF: `SIZE=` when the server offers SIZE, `BODY=8BITMIME` when it
/// offers 8BITMIME and the message has 8-bit bytes (`eight_bit`; each unless `params` has it),
/// then `params`. `wire_size` is the length of the message's wire form, final dot line
/// included.
pub(super) fn mail_from(
    extensions: &Extensions,
    sender: &Address,
    params: &[(String, Option<String>)],
    eight_bit: bool,
    wire_size: u64,
) -> Result<String, ClientError> {
    let given = |keyword: &str| params.iter().any(|(k, _)| k.eq_ignore_ascii_case(keyword));
    let mut line = format!("MAIL FROM:<{}>", sender.as_str());
    if extensions.size.is_some() && !given("SIZE") {
        // The message as sent, less the final dot line (RFC 1870 §3).
        let _ = write!(line, " SIZE={}", wire_size.saturating_sub(3));
    }
    if extensions.eight_bit_mime && !given("BODY") && eight_bit {
        line.push_str(" BODY=8BITMIME");
    }
    push_parameters(&mut line, Stage::Mail, params)?;
    Ok(line + "\r\n")
}

/// `RCPT TO:<recipient>` with its parameters and CRLF.
pub(super) fn rcpt_to(
    recipient: &Address,
    params: &[(String, Option<String>)],
) -> Result<String, ClientError> {
    let mut line = format!("RCPT TO:<{}>", recipient.as_str());
    push_parameters(&mut line, Stage::Rcpt, params)?;
    Ok(line + "\r\n")
}

/// An ESMTP parameter as the client may send it: a keyword of letters, digits and hyphens, and a
/// value without spaces, control characters or `=` (RFC 5321 §4.1.2).
fn valid_parameter(keyword: &str, value: Option<&str>) -> bool {
    let keyword_ok = !keyword.is_empty()
        && keyword
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let value_ok = value.is_none_or(|value| {
        !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_control() || c == ' ' || c == '=')
    });
    keyword_ok && value_ok
}

/// Appends ` KEY[=VALUE]` for each parameter.
fn push_parameters(
    line: &mut String,
    stage: Stage,
    params: &[(String, Option<String>)],
) -> Result<(), ClientError> {
    for (keyword, value) in params {
        if !valid_parameter(keyword, value.as_deref()) {
            return Err(ClientError::InvalidParameter(stage, keyword.clone()));
        }
        let _ = write!(line, " {keyword}");
        if let Some(value) = value {
            let _ = write!(line, "={value}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        let owned = |&(k, v): &(&str, Option<&str>)| (k.to_owned(), v.map(str::to_owned));
        list.iter().map(owned).collect()
    }

    #[test]
    fn mail_from_declares_size_and_body_unless_given() {
        let offered = Extensions::from_ehlo(&["mx".into(), "SIZE".into(), "8BITMIME".into()]);
        let sender = "a@example.org".parse().unwrap();
        let line = mail_from(&offered, &sender, &[], true, b"\xe9\r\n.\r\n".len() as u64).unwrap();
        assert_eq!(line, "MAIL FROM:<a@example.org> SIZE=3 BODY=8BITMIME\r\n");
        let given = params(&[("SIZE", Some("9")), ("body", Some("7BIT"))]);
        let line = mail_from(&offered, &Address::null(), &given, true, 0).unwrap();
        assert_eq!(line, "MAIL FROM:<> SIZE=9 body=7BIT\r\n");
        let line = mail_from(&Extensions::default(), &sender, &[], true, 0).unwrap();
        assert_eq!(line, "MAIL FROM:<a@example.org>\r\n");
    }

    #[test]
    fn parameters_that_could_break_the_line_are_refused() {
        assert!(valid_parameter("SIZE", Some("100")));
        assert!(valid_parameter("X-FLAG", None));
        assert!(valid_parameter("ENVID", Some("Q.1+2B")));
        for (keyword, value) in [
            ("", None),
            ("SIZE\r\nRSET", None),
            ("A B", None),
            ("NOTIFY", Some("")),
            ("NOTIFY", Some("a b")),
            ("NOTIFY", Some("a\r\nRSET")),
            ("NOTIFY", Some("a=b")),
        ] {
            assert!(!valid_parameter(keyword, value), "{keyword:?} {value:?}");
        }
    }

    #[test]
    fn parameters_are_written_as_keyword_and_value() {
        let mut line = String::from("MAIL FROM:<>");
        let given = params(&[("RET", Some("HDRS")), ("X", None)]);
        push_parameters(&mut line, Stage::Mail, &given).unwrap();
        assert_eq!(line, "MAIL FROM:<> RET=HDRS X");
        let bad = [("A B".to_owned(), None)];
        let error = push_parameters(&mut line, Stage::Rcpt, &bad).unwrap_err();
        assert!(matches!(
            error,
            ClientError::InvalidParameter(Stage::Rcpt, _)
        ));
    }
}
