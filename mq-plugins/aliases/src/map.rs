//! The alias map: Postfix `virtual(5)` text parsed into a table of patterns and their results.

use std::collections::HashMap;
use std::fmt;

use mq_plugin_api::{Address, normalize_domain};

/// A parsed alias map: each pattern (`user@domain`, or `@domain` for the rest of a domain) with
/// the addresses it expands to.
///
/// The text is Postfix's `virtual(5)` form, one entry a line: a pattern, whitespace, then
/// results separated by commas or whitespace. Lines that are blank or whose first non-blank
/// character is `#` are ignored; a line that starts with whitespace continues the entry above.
/// A result `@domain` keeps the recipient's local part and replaces its domain.
///
/// # Examples
///
/// ```
/// use mq_plugin_aliases::AliasMap;
///
/// let text = "\
/// ## staff
/// sales@example.org  jane@example.org,
///                    bob@example.net
/// @old.example       @example.org
/// ";
/// let map = AliasMap::parse(text, false).unwrap();
/// assert_eq!(map.len(), 2);
///
/// let error = AliasMap::parse("jane@example.org\n", false).unwrap_err();
/// assert_eq!(error.to_string(), "line 1: pattern jane@example.org has no result");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AliasMap {
    /// Normalized pattern (`user@domain` or `@domain`) → results, in the order written.
    entries: HashMap<String, Vec<Target>>,
    case_sensitive: bool,
}

/// One result of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address, as written.
    Address(Address),
    /// `@domain`: the recipient's own local part at this domain.
    Domain(String),
}

/// A line of a map file that is not an entry, and why.
///
/// # Examples
///
/// ```
/// use mq_plugin_aliases::{AliasMap, MapErrorKind};
///
/// let error = AliasMap::parse("a@x b@x\na@X c@x\n", false).unwrap_err();
/// assert_eq!(error.line(), 2);
/// assert_eq!(*error.kind(), MapErrorKind::Duplicate { pattern: "a@X".into(), first: 1 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    line: usize,
    kind: MapErrorKind,
}

/// What is wrong with a line of a map file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapErrorKind {
    /// The line is not UTF-8.
    NotUtf8,
    /// A line starts with whitespace but no entry precedes it.
    Continuation,
    /// The pattern is neither `user@domain` nor `@domain`.
    Pattern(String),
    /// A result is neither `user@domain` nor `@domain`.
    Result(String),
    /// The pattern has no result.
    NoResult(String),
    /// The pattern was already given, on line `first`.
    Duplicate {
        /// The pattern as written the second time.
        pattern: String,
        /// The line of its first entry.
        first: usize,
    },
}

impl MapError {
    /// The line (from 1) the problem is on; for an entry spread over several lines, its first.
    pub fn line(&self) -> usize {
        self.line
    }

    /// What is wrong.
    pub fn kind(&self) -> &MapErrorKind {
        &self.kind
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.kind {
            MapErrorKind::NotUtf8 => f.write_str("not UTF-8"),
            MapErrorKind::Continuation => {
                f.write_str("starts with whitespace, but there is no entry to continue")
            }
            MapErrorKind::Pattern(p) => {
                write!(f, "{p:?} is not a pattern (user@domain or @domain)")
            }
            MapErrorKind::Result(r) => write!(f, "{r:?} is not a result (user@domain or @domain)"),
            MapErrorKind::NoResult(p) => write!(f, "pattern {p} has no result"),
            MapErrorKind::Duplicate { pattern, first } => {
                write!(f, "pattern {pattern} was already given on line {first}")
            }
        }
    }
}

impl std::error::Error for MapError {}

impl AliasMap {
    /// Parses a map file's text. Local parts are compared without regard to ASCII case unless
    /// `case_sensitive`; domains always are.
    ///
    /// # Errors
    ///
    /// The first line that is not an entry, a comment, a blank line or a continuation.
    pub fn parse(text: &str, case_sensitive: bool) -> Result<AliasMap, MapError> {
        let mut map = AliasMap {
            entries: HashMap::new(),
            case_sensitive,
        };
        let mut first_lines = HashMap::new();
        for (line, entry) in logical_lines(text)? {
            let (pattern, targets) = parse_entry(&entry).map_err(|kind| MapError { line, kind })?;
            let key = map.normalize(pattern);
            if let Some(&first) = first_lines.get(&key) {
                let pattern = pattern.to_owned();
                let kind = MapErrorKind::Duplicate { pattern, first };
                return Err(MapError { line, kind });
            }
            first_lines.insert(key.clone(), line);
            map.entries.insert(key, targets);
        }
        Ok(map)
    }

    /// Parses a map file's bytes, which must be UTF-8; see [`parse`](AliasMap::parse).
    ///
    /// # Errors
    ///
    /// The first line that is not UTF-8, or as `parse`.
    ///
    /// # Examples
    ///
    /// ```
    /// let error = mq_plugin_aliases::AliasMap::from_bytes(b"a@x b@x\nc@x \xff@x\n", false);
    /// assert_eq!(error.unwrap_err().to_string(), "line 2: not UTF-8");
    /// ```
    pub fn from_bytes(bytes: &[u8], case_sensitive: bool) -> Result<AliasMap, MapError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => AliasMap::parse(text, case_sensitive),
            Err(error) => {
                let valid = &bytes[..error.valid_up_to()];
                let line = valid.split(|&b| b == b'\n').count();
                let kind = MapErrorKind::NotUtf8;
                Err(MapError { line, kind })
            }
        }
    }

    /// How many patterns the map has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no pattern.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The results for `address`: its `user@domain` entry, else its domain's `@domain` entry.
    pub(crate) fn lookup(&self, address: &Address) -> Option<&[Target]> {
        // No map (the plugin compiled in but not configured): no key to build.
        if self.entries.is_empty() {
            return None;
        }
        let exact = self.entries.get(&self.key(address));
        let domain = || (!address.domain().is_empty()).then(|| domain_key(address.domain()));
        exact
            .or_else(|| self.entries.get(&domain()?))
            .map(Vec::as_slice)
    }

    /// The address as a lookup key: the domain in its one spelling (as a parsed address has
    /// it), the local part in lower case unless the map is case-sensitive. Two addresses with
    /// one key are one recipient.
    pub(crate) fn key(&self, address: &Address) -> String {
        self.normalize(address.as_str())
    }

    /// A pattern or an address as a key; a pattern's domain is written by hand (`Example.ORG.`,
    /// `bücher.example`) and takes the one spelling here.
    fn normalize(&self, address: &str) -> String {
        let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let local = if self.case_sensitive {
            local.to_owned()
        } else {
            local.to_ascii_lowercase()
        };
        if address.contains('@') {
            format!("{local}{}", domain_key(domain))
        } else {
            local
        }
    }
}

fn domain_key(domain: &str) -> String {
    // Patterns were checked to be domains, and an address's domain is in this form already.
    let domain = normalize_domain(domain).unwrap_or_else(|_| domain.to_ascii_lowercase());
    format!("@{domain}")
}

/// The entries of `text`, continuations joined, each with the line it starts on.
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, MapError> {
    let mut entries: Vec<(usize, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let Some((_, entry)) = entries.last_mut() else {
                let kind = MapErrorKind::Continuation;
                return Err(MapError {
                    line: index + 1,
                    kind,
                });
            };
            entry.push(' ');
            entry.push_str(trimmed);
        } else {
            entries.push((index + 1, trimmed.to_owned()));
        }
    }
    Ok(entries)
}

/// One entry's pattern (as written) and its results.
fn parse_entry(entry: &str) -> Result<(&str, Vec<Target>), MapErrorKind> {
    let (pattern, rest) = entry.split_once(char::is_whitespace).unwrap_or((entry, ""));
    check_pattern(pattern)?;
    let mut targets = Vec::new();
    for result in rest.split(|c: char| c == ',' || c.is_whitespace()) {
        if !result.is_empty() {
            targets.push(parse_target(result)?);
        }
    }
    if targets.is_empty() {
        return Err(MapErrorKind::NoResult(pattern.to_owned()));
    }
    Ok((pattern, targets))
}

fn check_pattern(pattern: &str) -> Result<(), MapErrorKind> {
    let valid = match pattern.strip_prefix('@') {
        Some(domain) => is_domain(domain),
        None => full_address(pattern).is_some(),
    };
    valid
        .then_some(())
        .ok_or_else(|| MapErrorKind::Pattern(pattern.to_owned()))
}

fn parse_target(result: &str) -> Result<Target, MapErrorKind> {
    let target = match result.strip_prefix('@') {
        Some(domain) => is_domain(domain).then(|| Target::Domain(domain.to_owned())),
        None => full_address(result).map(Target::Address),
    };
    target.ok_or_else(|| MapErrorKind::Result(result.to_owned()))
}

/// `text` as an address with both a local part and a domain.
fn full_address(text: &str) -> Option<Address> {
    let address: Address = text.parse().ok()?;
    is_domain(address.domain()).then_some(address)
}

fn is_domain(domain: &str) -> bool {
    !domain.is_empty() && !domain.contains('@') && Address::new("x", domain).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> (usize, MapErrorKind) {
        let error = AliasMap::parse(text, false).unwrap_err();
        (error.line(), error.kind)
    }

    fn results(map: &AliasMap, address: &str) -> Option<Vec<String>> {
        let targets = map.lookup(&address.parse().unwrap())?;
        let text = |t: &Target| match t {
            Target::Address(a) => a.to_string(),
            Target::Domain(d) => format!("@{d}"),
        };
        Some(targets.iter().map(text).collect())
    }

    #[test]
    fn results_split_on_commas_and_whitespace() {
        let map = AliasMap::parse("a@x b@x,c@x ,  d@x\te@x,,\n", false).unwrap();
        assert_eq!(results(&map, "a@x").unwrap(), ["b@x", "c@x", "d@x", "e@x"]);
    }

    #[test]
    fn continuation_lines_join_the_entry_above_across_comments_and_blanks() {
        let text = "a@x b@x,\n  c@x\n# note\n\n\td@x\nz@x y@x\r\n   w@x\r\n";
        let map = AliasMap::parse(text, false).unwrap();
        assert_eq!(results(&map, "a@x").unwrap(), ["b@x", "c@x", "d@x"]);
        assert_eq!(results(&map, "z@x").unwrap(), ["y@x", "w@x"]);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn comments_blank_lines_and_an_empty_file_are_no_entries() {
        let map = AliasMap::parse("# a@x b@x\n\n   \n    # indented comment\n", false).unwrap();
        assert!(map.is_empty());
        assert!(AliasMap::parse("", false).unwrap().is_empty());
    }

    #[test]
    fn a_continuation_without_an_entry_is_refused_with_its_line() {
        assert_eq!(kind("# head\n  b@x\n"), (2, MapErrorKind::Continuation));
    }

    #[test]
    fn bad_patterns_are_refused_with_their_line() {
        for pattern in ["jane", "jane@", "@", "a@b@", "@x@y", "<a@x>"] {
            let text = format!("ok@x y@x\n\n{pattern} b@x\n");
            assert_eq!(
                kind(&text),
                (3, MapErrorKind::Pattern(pattern.to_owned())),
                "{pattern}"
            );
        }
    }

    #[test]
    fn bad_results_are_refused_with_the_entry_line() {
        let (line, kind) = kind("a@x b@x\nc@x d@x,\n   bob\n");
        assert_eq!((line, kind), (2, MapErrorKind::Result("bob".to_owned())));
        let error = AliasMap::parse("a@x @\n", false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: \"@\" is not a result (user@domain or @domain)"
        );
    }

    #[test]
    fn an_entry_without_results_is_refused() {
        assert_eq!(kind("a@x ,\n"), (1, MapErrorKind::NoResult("a@x".into())));
    }

    #[test]
    fn a_duplicate_pattern_names_both_lines() {
        let error = AliasMap::parse("@X a@x\n# c\n@x b@x\n", false).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3: pattern @x was already given on line 1"
        );
    }

    #[test]
    fn exact_entries_come_before_the_catch_all() {
        let map = AliasMap::parse("@x all@y\njane@x jane@y\n", false).unwrap();
        assert_eq!(results(&map, "jane@x").unwrap(), ["jane@y"]);
        assert_eq!(results(&map, "bob@x").unwrap(), ["all@y"]);
        assert_eq!(results(&map, "bob@y"), None);
        assert_eq!(results(&map, "postmaster"), None);
    }

    #[test]
    fn domains_ignore_case_and_local_parts_do_unless_told() {
        let text = "Jane@Example.ORG j@y\n";
        let insensitive = AliasMap::parse(text, false).unwrap();
        assert!(results(&insensitive, "JANE@example.org").is_some());
        let sensitive = AliasMap::parse(text, true).unwrap();
        assert!(results(&sensitive, "Jane@EXAMPLE.org").is_some());
        assert!(results(&sensitive, "jane@example.org").is_none());
    }

    #[test]
    fn a_pattern_matches_every_spelling_of_its_domain() {
        let map =
            AliasMap::parse("Jane@Example.ORG. j@y\n@B\u{fc}cher.example b@y\n", false).unwrap();
        assert!(results(&map, "jane@example.org").is_some());
        assert!(results(&map, "jane@EXAMPLE.org.").is_some());
        assert!(results(&map, "anyone@xn--bcher-kva.example").is_some());
    }

    #[test]
    fn a_domain_result_keeps_its_spelling() {
        let map = AliasMap::parse("@old.example @New.Example\n", false).unwrap();
        assert_eq!(results(&map, "a@OLD.example").unwrap(), ["@New.Example"]);
    }
}
