//! `[plugins.headers]`: which header fields to remove, replace and add, and the checks that keep
//! those edits from breaking a message.

use std::fmt;

use serde::Deserialize;

/// The plugin's own keys in `[plugins.headers]`. Every key is optional; an empty section makes
/// the plugin do nothing.
///
/// # Examples
///
/// ```
/// use mq_plugin_headers::{HeadersConfig, Position};
///
/// let config: HeadersConfig = toml::from_str(r#"
///     remove = ["X-Originating-IP"]
///
///     [[replace]]
///     name = "X-Mailer"
///     value = "mq"
///
///     [[add]]
///     name = "X-Relayed-By"
///     value = "mq"
///     position = "top"
/// "#).unwrap();
/// assert_eq!(config.add[0].position, Position::Top);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct HeadersConfig {
    /// Field names to remove, every field of each name (compared without regard to case).
    pub remove: Vec<String>,
    /// Fields whose first occurrence gets a new value; the other occurrences are dropped, and a
    /// message without the field is left alone.
    pub replace: Vec<Field>,
    /// Fields to add to every message.
    pub add: Vec<Addition>,
}

/// A field name and the value to give it, as in `[[plugins.headers.replace]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The field name, e.g. `X-Mailer`.
    pub name: String,
    /// The new value, one line.
    pub value: String,
}

/// A field to add and where, as in `[[plugins.headers.add]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addition {
    /// The field name.
    pub name: String,
    /// The value, one line.
    pub value: String,
    /// Above or below the existing fields (default: below).
    #[serde(default)]
    pub position: Position,
}

/// Where an added field goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// Above every existing field, where trace fields such as `Received` go.
    Top,
    /// Below every existing field.
    #[default]
    Bottom,
}

/// A configured name or value that would corrupt the header block if written.
///
/// # Examples
///
/// ```
/// use mq_plugin_headers::HeadersConfig;
///
/// let config: HeadersConfig = toml::from_str(r#"remove = ["X Bad"]"#).unwrap();
/// assert_eq!(
///     config.validate().unwrap_err().to_string(),
///     r#"remove: "X Bad" is not a header field name (printable ASCII, no space or colon)"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidField {
    /// A name is empty or holds a byte outside printable ASCII, a space or a colon.
    Name {
        /// The key it was under: `remove`, `replace` or `add`.
        key: &'static str,
        /// The name as configured.
        name: String,
    },
    /// A value holds CR or LF, which would end the field early and start another one.
    Value {
        /// The key it was under: `replace` or `add`.
        key: &'static str,
        /// The field the value is for.
        name: String,
    },
}

impl fmt::Display for InvalidField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidField::Name { key, name } => write!(
                f,
                "{key}: {name:?} is not a header field name (printable ASCII, no space or colon)"
            ),
            InvalidField::Value { key, name } => {
                write!(f, "{key}: the value for {name:?} contains a line break")
            }
        }
    }
}

impl std::error::Error for InvalidField {}

impl HeadersConfig {
    /// Checks every name and value before the plugin runs, so that a bad one stops start-up
    /// instead of corrupting mail.
    ///
    /// # Errors
    ///
    /// The first name or value that is not allowed, in the order remove, replace, add.
    pub fn validate(&self) -> Result<(), InvalidField> {
        for name in &self.remove {
            check_name("remove", name)?;
        }
        for field in &self.replace {
            check_field("replace", &field.name, &field.value)?;
        }
        for addition in &self.add {
            check_field("add", &addition.name, &addition.value)?;
        }
        Ok(())
    }
}

fn check_field(key: &'static str, name: &str, value: &str) -> Result<(), InvalidField> {
    check_name(key, name)?;
    if value.contains(['\r', '\n']) {
        return Err(InvalidField::Value {
            key,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// RFC 5322 §2.2: a field name is printable US-ASCII (33..=126) except the colon.
fn check_name(key: &'static str, name: &str) -> Result<(), InvalidField> {
    let allowed = |b: u8| (33..=126).contains(&b) && b != b':';
    if name.is_empty() || !name.bytes().all(allowed) {
        return Err(InvalidField::Name {
            key,
            name: name.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> HeadersConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_empty_section_is_an_empty_config() {
        assert_eq!(parse(""), HeadersConfig::default());
        assert!(parse("").validate().is_ok());
    }

    #[test]
    fn additions_go_to_the_bottom_unless_told() {
        let config = parse("[[add]]\nname = \"X-A\"\nvalue = \"1\"");
        assert_eq!(config.add[0].position, Position::Bottom);
    }

    #[test]
    fn unknown_keys_and_positions_are_refused() {
        assert!(toml::from_str::<HeadersConfig>("remvoe = [\"X-A\"]").is_err());
        let middle = "[[add]]\nname = \"X-A\"\nvalue = \"1\"\nposition = \"middle\"";
        assert!(toml::from_str::<HeadersConfig>(middle).is_err());
        let extra = "[[replace]]\nname = \"X-A\"\nvalue = \"1\"\nposition = \"top\"";
        assert!(toml::from_str::<HeadersConfig>(extra).is_err());
    }

    #[test]
    fn names_with_space_colon_or_non_ascii_are_refused() {
        for name in ["", "X A", "X:A", "X-Ä", "X\tA", "X\u{7f}"] {
            let config = HeadersConfig {
                remove: vec![name.to_owned()],
                ..HeadersConfig::default()
            };
            let error = config.validate().unwrap_err();
            assert!(
                matches!(error, InvalidField::Name { key: "remove", .. }),
                "{name:?}"
            );
        }
    }

    #[test]
    fn values_with_line_breaks_are_refused() {
        for value in ["a\r\nBcc: x@example.org", "a\nb", "a\rb"] {
            let config = HeadersConfig {
                add: vec![Addition {
                    name: "X-A".into(),
                    value: value.into(),
                    position: Position::Top,
                }],
                ..HeadersConfig::default()
            };
            let error = config.validate().unwrap_err();
            assert_eq!(
                error.to_string(),
                "add: the value for \"X-A\" contains a line break"
            );
        }
    }

    #[test]
    fn a_bad_replace_name_is_named_in_the_error() {
        let config = parse("[[replace]]\nname = \"X-A:\"\nvalue = \"1\"");
        let error = config.validate().unwrap_err().to_string();
        assert!(error.starts_with("replace: \"X-A:\""), "{error}");
    }

    #[test]
    fn ordinary_names_and_values_pass() {
        let config = parse(
            "remove = [\"X-Originating-IP\", \"received\"]\n\
             [[replace]]\nname = \"Subject\"\nvalue = \"[ext] hi: there\"\n\
             [[add]]\nname = \"X-Tag\"\nvalue = \"\"",
        );
        assert_eq!(config.validate(), Ok(()));
    }
}
