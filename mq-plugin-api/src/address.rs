//! Envelope addresses.

use std::fmt;

use crate::domain::normalize_domain;

/// An envelope address as given in `MAIL FROM` or `RCPT TO`, without the angle brackets.
///
/// The null reverse path `<>` (bounces) is an address whose [`is_null`](Address::is_null) is
/// true. The local part is kept as given; the domain is brought to its one spelling when the
/// address is parsed ([`normalize_domain`](crate::normalize_domain): lower case, no trailing
/// dot, IDNA ASCII form), so two addresses are the same recipient exactly when they are equal.
/// A domain without an ASCII form (one IDNA refuses) is kept as written, in lower case; the
/// SMTP server refuses it, but a stored address always parses back.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::Address;
///
/// let address: Address = "Jane.Doe@Example.ORG.".parse().unwrap();
/// assert_eq!(address.local_part(), "Jane.Doe");
/// assert_eq!(address.domain(), "example.org");
/// assert_eq!(address, "Jane.Doe@example.org".parse().unwrap());
/// assert_ne!(address, "jane.doe@example.org".parse().unwrap());
/// assert!(Address::null().is_null());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Address {
    text: String,
    /// Byte index of the `@` that separates local part and domain, if there is a domain.
    at: Option<usize>,
}

/// Why a string is not an envelope address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// The address holds a control character, a space or angle brackets.
    InvalidCharacter,
    /// The part after the last `@` is empty, or the part before it is.
    EmptyPart,
    /// The address is longer than RFC 5321 allows (254 octets).
    TooLong,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::InvalidCharacter => "address holds an invalid character",
            AddressError::EmptyPart => "address has an empty local part or domain",
            AddressError::TooLong => "address is longer than 254 octets",
        })
    }
}

impl std::error::Error for AddressError {}

impl Address {
    /// The null reverse path, `<>`.
    pub fn null() -> Address {
        Address::default()
    }

    /// An address from a local part and a domain.
    ///
    /// # Errors
    ///
    /// As [`str::parse`] on `local@domain`.
    ///
    /// # Examples
    ///
    /// ```
    /// let address = mq_plugin_api::Address::new("postmaster", "example.net").unwrap();
    /// assert_eq!(address.to_string(), "postmaster@example.net");
    /// ```
    pub fn new(local_part: &str, domain: &str) -> Result<Address, AddressError> {
        format!("{local_part}@{domain}").parse()
    }

    /// Whether this is the null reverse path `<>`.
    pub fn is_null(&self) -> bool {
        self.text.is_empty()
    }

    /// The part before the last `@`, or the whole address when it has no domain.
    pub fn local_part(&self) -> &str {
        match self.at {
            Some(at) => &self.text[..at],
            None => &self.text,
        }
    }

    /// The part after the last `@` in its one spelling (see
    /// [`normalize_domain`](crate::normalize_domain)), or `""` when there is none
    /// (`<postmaster>`, `<>`).
    pub fn domain(&self) -> &str {
        match self.at {
            Some(at) => &self.text[at + 1..],
            None => "",
        }
    }

    /// Whether the domain is `domain`, compared without regard to ASCII case (the address's
    /// own domain is lower case already; `domain` may not be).
    pub fn domain_is(&self, domain: &str) -> bool {
        self.domain().eq_ignore_ascii_case(domain)
    }

    /// The address as text, `""` for the null reverse path.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        if text.len() > 254 {
            return Err(AddressError::TooLong);
        }
        if text
            .chars()
            .any(|c| c.is_control() || c == ' ' || c == '<' || c == '>')
        {
            return Err(AddressError::InvalidCharacter);
        }
        let Some(at) = text.rfind('@') else {
            return Ok(Address {
                text: text.to_owned(),
                at: None,
            });
        };
        let (local, domain) = (&text[..at], &text[at + 1..]);
        if local.is_empty() || domain.is_empty() {
            return Err(AddressError::EmptyPart);
        }
        let domain = match normalize_domain(domain) {
            // The ASCII form of a Unicode domain can be the longer one.
            Ok(ascii) if at + 1 + ascii.len() <= 254 => ascii,
            // No ASCII form (or a lone dot): kept as written, in lower case, so that an address
            // stored before domains were normalized still reads back. The SMTP server refuses
            // a domain that is not ASCII; the resolver finds nothing for either.
            _ => domain.to_lowercase(),
        };
        Ok(Address {
            text: format!("{local}@{domain}"),
            at: Some(at),
        })
    }
}

impl fmt::Display for Address {
    /// The address without brackets; the null path prints as `<>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            f.write_str("<>")
        } else {
            f.write_str(&self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_last_at_sign() {
        let address: Address = "\"a@b\"@example.org".parse().unwrap();
        assert_eq!(address.local_part(), "\"a@b\"");
        assert_eq!(address.domain(), "example.org");
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        assert_eq!(
            "a b@c".parse::<Address>(),
            Err(AddressError::InvalidCharacter)
        );
        assert_eq!("@c".parse::<Address>(), Err(AddressError::EmptyPart));
        assert_eq!("a@".parse::<Address>(), Err(AddressError::EmptyPart));
        assert_eq!(
            "a\0@c".parse::<Address>(),
            Err(AddressError::InvalidCharacter)
        );
        assert_eq!(
            "x".repeat(255).parse::<Address>(),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn the_domain_is_parsed_into_its_one_spelling() {
        let address: Address = "y@LOOP.TEST.".parse().unwrap();
        assert_eq!(address.as_str(), "y@loop.test");
        let address: Address = "Jos\u{e9}@B\u{fc}cher.example".parse().unwrap();
        assert_eq!(address.as_str(), "Jos\u{e9}@xn--bcher-kva.example");
        let unconvertible: Address = "y@A\u{200d}\u{c9}.example.".parse().unwrap();
        assert_eq!(unconvertible.domain(), "a\u{200d}\u{e9}.example.");
        assert_eq!("y@.".parse::<Address>().unwrap().domain(), ".");
    }

    #[test]
    fn postmaster_without_domain_is_an_address() {
        let address: Address = "Postmaster".parse().unwrap();
        assert_eq!(address.domain(), "");
        assert!(!address.is_null());
    }
}
