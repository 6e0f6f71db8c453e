//! Envelope addresses.

use std::fmt;

/// An envelope address as given in `MAIL FROM` or `RCPT TO`, without the angle brackets.
///
/// The null reverse path `<>` (bounces) is an address whose [`is_null`](Address::is_null) is
/// true. The local part is kept as given; the domain is compared without regard to case.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::Address;
///
/// let address: Address = "Jane.Doe@Example.ORG".parse().unwrap();
/// assert_eq!(address.local_part(), "Jane.Doe");
/// assert_eq!(address.domain(), "Example.ORG");
/// assert!(address.domain_is("example.org"));
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

    /// The part after the last `@`, or `""` when there is none (`<postmaster>`, `<>`).
    pub fn domain(&self) -> &str {
        match self.at {
            Some(at) => &self.text[at + 1..],
            None => "",
        }
    }

    /// Whether the domain is `domain`, compared without regard to ASCII case.
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
        let at = text.rfind('@');
        if at.is_some_and(|at| at == 0 || at + 1 == text.len()) {
            return Err(AddressError::EmptyPart);
        }
        Ok(Address {
            text: text.to_owned(),
            at,
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
    fn postmaster_without_domain_is_an_address() {
        let address: Address = "Postmaster".parse().unwrap();
        assert_eq!(address.domain(), "");
        assert!(!address.is_null());
    }
}
