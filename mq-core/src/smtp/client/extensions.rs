//! The service extensions a server lists in its EHLO reply.

/// What the server offered in its last EHLO reply; all off after HELO.
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # smol::block_on(async {
/// # let sink = mq_core::testkit::sink::Sink::start(mq_core::testkit::sink::Script::new());
/// use mq_core::smtp::client::{ClientConfig, Connection};
///
/// let connection = Connection::open(sink.address(), "localhost", &ClientConfig::default(), None).await?;
/// let extensions = connection.extensions();
/// assert!(extensions.pipelining);
/// assert_eq!(extensions.size, Some(10_240_000));
/// connection.quit().await;
/// # Ok(()) })
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[allow(
    clippy::struct_excessive_bools,
    reason = "one flag per EHLO keyword, independent"
)]
pub struct Extensions {
    /// `PIPELINING` (RFC 2920): MAIL, RCPT and DATA go out in one write.
    pub pipelining: bool,
    /// `SIZE` (RFC 1870) and its limit; `Some(0)` when offered without a fixed limit.
    pub size: Option<u64>,
    /// `STARTTLS` (RFC 3207).
    pub starttls: bool,
    /// `8BITMIME` (RFC 6152): a message with 8-bit bytes is declared `BODY=8BITMIME`.
    pub eight_bit_mime: bool,
    /// The SASL mechanisms of `AUTH` (RFC 4954), upper-cased.
    pub auth: Vec<String>,
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    pub enhanced_status_codes: bool,
    /// `SMTPUTF8` (RFC 6531): a message whose sender declared SMTPUTF8 may go to it.
    pub smtputf8: bool,
    /// `DSN` (RFC 3461): NOTIFY, ORCPT, RET and ENVID go on to it.
    pub dsn: bool,
}

impl Extensions {
    /// The extensions in the lines of an EHLO reply; the first line is the server's name.
    /// Unknown keywords are skipped, and so is a malformed `SIZE` limit (taken as none).
    pub(crate) fn from_ehlo(lines: &[String]) -> Extensions {
        let mut extensions = Extensions::default();
        for line in lines.iter().skip(1) {
            // `AUTH=PLAIN LOGIN` is the form of drafts some servers still send.
            let mut words = line.split([' ', '=']).filter(|word| !word.is_empty());
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => extensions.pipelining = true,
                "SIZE" => {
                    let limit = words.next().and_then(|limit| limit.parse().ok());
                    extensions.size = Some(limit.unwrap_or(0));
                }
                "STARTTLS" => extensions.starttls = true,
                "8BITMIME" => extensions.eight_bit_mime = true,
                "ENHANCEDSTATUSCODES" => extensions.enhanced_status_codes = true,
                "SMTPUTF8" => extensions.smtputf8 = true,
                "DSN" => extensions.dsn = true,
                "AUTH" => {
                    for mechanism in words.map(str::to_ascii_uppercase) {
                        if !extensions.auth.contains(&mechanism) {
                            extensions.auth.push(mechanism);
                        }
                    }
                }
                _ => {}
            }
        }
        extensions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Extensions {
        Extensions::from_ehlo(&lines.iter().map(|&l| l.to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn reads_the_keywords_after_the_first_line() {
        let extensions = parse(&[
            "mx.example greets you",
            "pipelining",
            "SIZE 1000000",
            "STARTTLS",
            "8BITMIME",
            "SMTPUTF8",
            "DSN",
            "AUTH PLAIN login",
            "AUTH=PLAIN",
            "ENHANCEDSTATUSCODES",
            "X-UNKNOWN yes",
            "",
        ]);
        assert!(extensions.pipelining && extensions.starttls && extensions.eight_bit_mime);
        assert!(extensions.enhanced_status_codes && extensions.smtputf8 && extensions.dsn);
        assert_eq!(extensions.size, Some(1_000_000));
        assert_eq!(extensions.auth, ["PLAIN", "LOGIN"]);
    }

    #[test]
    fn the_server_name_is_no_keyword_and_a_bad_size_has_no_limit() {
        let extensions = parse(&["PIPELINING", "SIZE lots"]);
        assert!(!extensions.pipelining);
        assert_eq!(extensions.size, Some(0));
        assert_eq!(parse(&["mx", "SIZE"]).size, Some(0));
    }
}
