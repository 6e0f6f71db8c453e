//! The author's domain: which key signs is decided by the one address in the one `From` field.

use std::fmt;

use mq_plugin_api::Headers;

/// Why a message is left unsigned before any key is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoAuthor {
    /// The message has no `From` field.
    Missing,
    /// The message has more than one `From` field: which one a receiver shows is anyone's guess.
    Several,
    /// `From` names more than one mailbox, or a group.
    SeveralMailboxes,
    /// `From` holds no address with a domain.
    NoDomain,
}

impl fmt::Display for NoAuthor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoAuthor::Missing => "no From field",
            NoAuthor::Several => "more than one From field",
            NoAuthor::SeveralMailboxes => "From names more than one mailbox",
            NoAuthor::NoDomain => "From holds no address with a domain",
        })
    }
}

/// The domain of the single mailbox in the single `From` field, lowercase.
///
/// Accepts `Name <local@domain>`, `local@domain`, quoted display names and local parts, and
/// comments, which may hold any of `@`, `,`, `<` without confusing it.
pub(crate) fn author_domain(headers: &Headers) -> Result<String, NoAuthor> {
    let mut fields = headers.iter().filter(|h| h.is("From"));
    let field = fields.next().ok_or(NoAuthor::Missing)?;
    if fields.next().is_some() {
        return Err(NoAuthor::Several);
    }
    mailbox_domain(&field.unfolded())
}

/// The domain of the one mailbox in a `From` value.
fn mailbox_domain(value: &str) -> Result<String, NoAuthor> {
    let bare = strip_quotes_and_comments(value);
    if bare.contains([',', ':', ';']) {
        return Err(NoAuthor::SeveralMailboxes);
    }
    let address = match bare.rfind('<') {
        Some(open) => bare[open + 1..].split('>').next().unwrap_or_default(),
        None => bare.as_str(),
    };
    let (_, domain) = address.rsplit_once('@').ok_or(NoAuthor::NoDomain)?;
    let domain = domain.trim();
    if domain.is_empty() || domain.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
        return Err(NoAuthor::NoDomain);
    }
    Ok(domain.to_ascii_lowercase())
}

/// The value with each quoted string reduced to `""` and each comment to a space, so that
/// what a display name or comment holds cannot pass for an address or a separator.
fn strip_quotes_and_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    let mut depth = 0usize; // comment nesting
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || depth > 0 => {
                chars.next();
            }
            '"' if depth == 0 => {
                if quoted {
                    out.push_str("\"\"");
                }
                quoted = !quoted;
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if quoted || depth > 0 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::Message;

    use super::*;

    fn domain_of(from: &str) -> Result<String, NoAuthor> {
        mailbox_domain(from)
    }

    #[test]
    fn takes_the_domain_of_angle_and_bare_forms() {
        for from in [
            "jane@Example.ORG",
            " Jane Doe <jane@example.org>",
            "\"Doe, Jane\" <jane@example.org>",
            "\"jane@evil.example\" <jane@example.org>",
            "jane@example.org (Jane, at <home@evil.example>)",
            "=?utf-8?q?J=C3=A4ne?= <jane@example.org>",
            "\"jane doe\"@example.org",
            "Jane <jane@example.org> (a \\) nested (comment))",
        ] {
            assert_eq!(domain_of(from).as_deref(), Ok("example.org"), "{from}");
        }
    }

    #[test]
    fn refuses_lists_groups_and_addresses_without_domain() {
        assert_eq!(
            domain_of("a@example.org, b@example.org"),
            Err(NoAuthor::SeveralMailboxes)
        );
        assert_eq!(
            domain_of("Friends: a@example.org;"),
            Err(NoAuthor::SeveralMailboxes)
        );
        for from in ["Jane", "<jane>", "jane@", "<jane@ >", ""] {
            assert_eq!(domain_of(from), Err(NoAuthor::NoDomain), "{from}");
        }
    }

    #[test]
    fn one_from_field_exactly() {
        let none = Message::parse(b"Subject: x\r\n\r\n");
        assert_eq!(author_domain(none.headers()), Err(NoAuthor::Missing));
        let two = Message::parse(b"From: a@example.org\r\nfrom: b@example.org\r\n\r\n");
        assert_eq!(author_domain(two.headers()), Err(NoAuthor::Several));
        let folded = Message::parse(b"From: Jane\r\n <jane@Example.org>\r\n\r\n");
        assert_eq!(
            author_domain(folded.headers()).as_deref(),
            Ok("example.org")
        );
    }
}
