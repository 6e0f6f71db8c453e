//! The one spelling of a domain that mq compares, routes and logs.

use std::fmt;

/// A domain in the one form mq uses everywhere: lower case, without a trailing dot, Unicode
/// labels as their IDNA ASCII form (`xn--…`).
///
/// Every [`Address`](crate::Address) is parsed into this form, and mq brings configured
/// domains (local domains, routes, throttles) to it when it loads its configuration, so
/// `y@LOOP.TEST.`, `y@loop.test` and a route for `Loop.Test` all name one destination; the
/// resolver would look up the same name for each. A domain of ASCII characters only is just
/// lowercased (an address literal such as `[192.0.2.1]` included); one with other characters
/// goes through UTS #46 processing to its ASCII form.
///
/// # Errors
///
/// The domain is empty (or only a dot), ends in more than one dot, or holds characters that
/// IDNA refuses.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::normalize_domain;
///
/// assert_eq!(normalize_domain("LOOP.Test.").unwrap(), "loop.test");
/// assert_eq!(normalize_domain("Bücher.Example").unwrap(), "xn--bcher-kva.example");
/// assert_eq!(normalize_domain("[192.0.2.1]").unwrap(), "[192.0.2.1]");
/// assert!(normalize_domain(".").is_err());
/// assert!(normalize_domain("a\u{200d}b.example").is_err());
/// ```
pub fn normalize_domain(domain: &str) -> Result<String, InvalidDomain> {
    let invalid = || InvalidDomain {
        domain: domain.to_owned(),
    };
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    // A second trailing dot is an empty label: kept, it would make the form depend on how
    // often the domain was brought to it (`a..` → `a.` → `a`).
    if trimmed.is_empty() || trimmed.ends_with('.') {
        return Err(invalid());
    }
    if trimmed.is_ascii() {
        return Ok(trimmed.to_ascii_lowercase());
    }
    // The URL deny list refuses what UTS #46 can map to but no address may hold: spaces,
    // controls, `<`, `>`, `@` (U+02DC maps to a space and a combining tilde).
    match idna::domain_to_ascii_cow(trimmed.as_bytes(), idna::AsciiDenyList::URL) {
        Ok(ascii) if !ascii.is_empty() => Ok(ascii.into_owned()),
        _ => Err(invalid()),
    }
}

/// A domain that [`normalize_domain`] cannot bring to its ASCII form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidDomain {
    /// The domain as given.
    pub domain: String,
}

impl fmt::Display for InvalidDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a valid domain", self.domain)
    }
}

impl std::error::Error for InvalidDomain {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_trailing_dot_goes_and_case_folds() {
        assert_eq!(normalize_domain("LOCALHOST.").unwrap(), "localhost");
        assert_eq!(normalize_domain("Example.ORG").unwrap(), "example.org");
    }

    #[test]
    fn the_form_is_reached_in_one_step_and_two_trailing_dots_are_refused() {
        for domain in [
            "Example.ORG.",
            "Bücher.Example.",
            "[192.0.2.1]",
            "a..b.example",
        ] {
            let once = normalize_domain(domain).unwrap();
            assert_eq!(normalize_domain(&once).unwrap(), once, "{domain}");
        }
        assert!(normalize_domain("example.net..").is_err());
        assert!(normalize_domain("Bücher.example..").is_err());
        assert!(normalize_domain("..").is_err());
    }

    /// Found by the `journal_record` fuzz target: `a@B\u{2dc}CHER.example` was kept as
    /// `a@xn--b cher-xxd.example`, which is no address, so the journal could not read it back.
    #[test]
    fn no_form_holds_what_an_address_may_not() {
        for domain in [
            "B\u{2dc}CHER.example",
            "a\u{fe64}b.example",
            "x\u{ff20}y.example",
        ] {
            if let Ok(ascii) = normalize_domain(domain) {
                let refused = |c: char| c.is_control() || " <>@".contains(c);
                assert!(!ascii.contains(refused), "{domain} → {ascii:?}");
            }
        }
        assert!(normalize_domain("B\u{2dc}CHER.example").is_err());
    }

    #[test]
    fn unicode_labels_become_their_punycode_form() {
        assert_eq!(
            normalize_domain("ÉCOLE.example.").unwrap(),
            "xn--cole-9oa.example"
        );
        assert_eq!(
            normalize_domain("xn--cole-9oa.example").unwrap(),
            "xn--cole-9oa.example"
        );
    }

    #[test]
    fn what_idna_refuses_is_an_error_naming_the_domain() {
        let error = normalize_domain("a\u{200d}b.example").unwrap_err();
        assert_eq!(error.domain, "a\u{200d}b.example");
        assert!(normalize_domain("").is_err());
    }
}
