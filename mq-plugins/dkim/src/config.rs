//! `[plugins.dkim]`: the signing keys, the header fields to sign, the canonicalization, and the
//! checks that refuse a section which would sign badly or not at all.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use crate::key::KeyError;

/// The header fields signed when `headers` is not given: RFC 6376 §5.4.1's list (which OpenDKIM
/// signs by default) plus the identity and MIME fields that mailbox providers expect signed, and
/// `List-Unsubscribe-Post`, which RFC 8058 requires to be signed.
pub const DEFAULT_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// The plugin's own keys in `[plugins.dkim]`. Every key is optional; a section without
/// `[[plugins.dkim.key]]` entries signs nothing.
///
/// # Examples
///
/// ```
/// use mq_plugin_dkim::{Algorithm, Canonicalization, DkimConfig};
///
/// let config: DkimConfig = toml::from_str(r#"
///     headers = ["From", "To", "Subject"]
///     canonicalization = "relaxed/simple"
///
///     [[key]]
///     domain = "example.org"
///     selector = "mq2026"
///     algorithm = "ed25519-sha256"
///     private_key = "/etc/mq/dkim/example.org.ed25519.pem"
/// "#).unwrap();
/// assert_eq!(config.keys[0].algorithm, Algorithm::Ed25519Sha256);
/// assert_eq!(config.canonicalization.to_string(), "relaxed/simple");
/// assert!(config.sign_all_trusted);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct DkimConfig {
    /// The signing keys, `[[plugins.dkim.key]]`: mail whose `From` domain has one or more is
    /// signed with each.
    #[serde(rename = "key")]
    pub keys: Vec<KeyConfig>,
    /// The header fields to sign, in `h=` order; each is signed as often as the message has it,
    /// and one the message lacks is left out. Must include `From`.
    pub headers: Vec<String>,
    /// Header and body canonicalization, as in `c=` (`"relaxed/relaxed"` by default).
    pub canonicalization: Canonicalization,
    /// Sign for every trusted client, relay networks included (the default); `false` signs for
    /// authenticated clients only.
    pub sign_all_trusted: bool,
}

impl Default for DkimConfig {
    fn default() -> DkimConfig {
        DkimConfig {
            keys: Vec::new(),
            headers: DEFAULT_HEADERS
                .iter()
                .map(|&name| name.to_owned())
                .collect(),
            canonicalization: Canonicalization::default(),
            sign_all_trusted: true,
        }
    }
}

/// One signing key, `[[plugins.dkim.key]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct KeyConfig {
    /// The signing domain (`d=`): mail whose `From` address is in exactly this domain (without
    /// regard to case) is signed with this key.
    pub domain: String,
    /// The selector (`s=`): the public key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The signature algorithm (`a=`), `"rsa-sha256"` by default.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// The PEM file of the private key: PKCS#8 (`BEGIN PRIVATE KEY`) for either algorithm, or
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`) for RSA.
    pub private_key: PathBuf,
}

/// A DKIM signature algorithm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    /// RSA PKCS#1 v1.5 over SHA-256 (RFC 6376), with a 2048- to 4096-bit key.
    #[default]
    RsaSha256,
    /// Ed25519 over SHA-256 (RFC 8463).
    Ed25519Sha256,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        })
    }
}

/// How header fields and body are canonicalized before hashing, as in `c=`.
///
/// # Examples
///
/// ```
/// use mq_plugin_dkim::{Canonicalization, Method};
///
/// let c: Canonicalization = "simple/relaxed".parse().unwrap();
/// assert_eq!((c.header, c.body), (Method::Simple, Method::Relaxed));
/// // A single method is the header's; the body's is then `simple` (RFC 6376 §3.5).
/// let c: Canonicalization = "relaxed".parse().unwrap();
/// assert_eq!(c.to_string(), "relaxed/simple");
/// assert!("loose/simple".parse::<Canonicalization>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Canonicalization {
    /// How header fields are canonicalized.
    pub header: Method,
    /// How the body is canonicalized.
    pub body: Method,
}

impl Default for Canonicalization {
    fn default() -> Canonicalization {
        Canonicalization {
            header: Method::Relaxed,
            body: Method::Relaxed,
        }
    }
}

/// One canonicalization method (RFC 6376 §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Byte for byte: breaks if any relay re-folds a field or touches whitespace.
    Simple,
    /// Tolerates re-folding, whitespace changes and the case of field names.
    Relaxed,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Simple => "simple",
            Method::Relaxed => "relaxed",
        }
    }

    fn parse(name: &str) -> Option<Method> {
        match name {
            "simple" => Some(Method::Simple),
            "relaxed" => Some(Method::Relaxed),
            _ => None,
        }
    }
}

impl fmt::Display for Canonicalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.header.name(), self.body.name())
    }
}

impl FromStr for Canonicalization {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Canonicalization, ConfigError> {
        let (header, body) = text.split_once('/').unwrap_or((text, "simple"));
        match (Method::parse(header), Method::parse(body)) {
            (Some(header), Some(body)) => Ok(Canonicalization { header, body }),
            _ => Err(ConfigError::Canonicalization(text.to_owned())),
        }
    }
}

impl TryFrom<String> for Canonicalization {
    type Error = ConfigError;

    fn try_from(text: String) -> Result<Canonicalization, ConfigError> {
        text.parse()
    }
}

/// Why `[plugins.dkim]` was refused; mq then refuses to start and names the plugin.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// `canonicalization` is not `simple` or `relaxed`, or a pair of them.
    Canonicalization(String),
    /// `headers` does not include `From`, which RFC 6376 requires to be signed.
    FromNotSigned,
    /// A name in `headers` is not a header field name.
    HeaderName(String),
    /// A key's `domain` is not a domain name.
    Domain(String),
    /// A key's `selector` is not a selector (letters, digits, `-`, `_` and dots).
    Selector(String),
    /// Two keys have the same domain and selector.
    DuplicateKey {
        /// The domain.
        domain: String,
        /// The selector.
        selector: String,
    },
    /// A key's file could not be read or holds no usable key for its algorithm.
    Key {
        /// The key's domain.
        domain: String,
        /// The key's selector.
        selector: String,
        /// What is wrong with it.
        error: KeyError,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Canonicalization(text) => write!(
                f,
                "canonicalization {text:?} is not \"simple\" or \"relaxed\", or a pair of them \
                 such as \"relaxed/relaxed\""
            ),
            ConfigError::FromNotSigned => f.write_str("headers must include \"From\""),
            ConfigError::HeaderName(name) => {
                write!(f, "headers: {name:?} is not a header field name")
            }
            ConfigError::Domain(domain) => write!(f, "key domain {domain:?} is not a domain name"),
            ConfigError::Selector(selector) => {
                write!(f, "key selector {selector:?} is not a DKIM selector")
            }
            ConfigError::DuplicateKey { domain, selector } => {
                write!(f, "two keys for selector {selector:?} of domain {domain:?}")
            }
            ConfigError::Key {
                domain,
                selector,
                error,
            } => write!(f, "key {selector:?} of domain {domain:?}: {error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl DkimConfig {
    /// Checks everything but the key files: `headers` names `From` and holds only field names,
    /// each key's domain and selector are well formed, and no two keys share both.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_dkim::DkimConfig;
    ///
    /// assert!(DkimConfig::default().validate().is_ok());
    /// let config: DkimConfig = toml::from_str(r#"headers = ["To", "Subject"]"#).unwrap();
    /// assert_eq!(config.validate().unwrap_err().to_string(), "headers must include \"From\"");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(bad) = self.headers.iter().find(|name| !is_field_name(name)) {
            return Err(ConfigError::HeaderName(bad.clone()));
        }
        if !self
            .headers
            .iter()
            .any(|name| name.eq_ignore_ascii_case("from"))
        {
            return Err(ConfigError::FromNotSigned);
        }
        for (index, key) in self.keys.iter().enumerate() {
            key.validate()?;
            let same = |other: &KeyConfig| {
                other.domain.eq_ignore_ascii_case(&key.domain)
                    && other.selector.eq_ignore_ascii_case(&key.selector)
            };
            if self.keys[..index].iter().any(same) {
                return Err(ConfigError::DuplicateKey {
                    domain: key.domain.clone(),
                    selector: key.selector.clone(),
                });
            }
        }
        Ok(())
    }
}

impl KeyConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !is_dotted(&self.domain, |c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ConfigError::Domain(self.domain.clone()));
        }
        if !is_dotted(&self.selector, |c| {
            c.is_ascii_alphanumeric() || c == '-' || c == '_'
        }) {
            return Err(ConfigError::Selector(self.selector.clone()));
        }
        Ok(())
    }
}

/// Printable ASCII but colon, at least one: what a field name may hold (RFC 5322 §3.6.8).
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// Dot-separated non-empty labels of characters that `allowed` accepts. This also keeps out
/// `;`, `=` and whitespace, which would corrupt the signature's tag list.
fn is_dotted(text: &str, allowed: impl Fn(char) -> bool) -> bool {
    text.split('.')
        .all(|label| !label.is_empty() && label.chars().all(&allowed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(domain: &str, selector: &str) -> KeyConfig {
        KeyConfig {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            algorithm: Algorithm::RsaSha256,
            private_key: PathBuf::from("/dev/null"),
        }
    }

    #[test]
    fn an_empty_section_is_the_default() {
        let config: DkimConfig = toml::from_str("").unwrap();
        assert_eq!(config, DkimConfig::default());
        assert_eq!(config.canonicalization.to_string(), "relaxed/relaxed");
        assert!(config.headers.iter().any(|h| h == "From"));
    }

    #[test]
    fn algorithms_parse_by_their_dkim_names() {
        let config: DkimConfig = toml::from_str(
            "[[key]]\ndomain = \"a.example\"\nselector = \"s\"\nprivate_key = \"k\"\n\
             [[key]]\ndomain = \"a.example\"\nselector = \"t\"\nprivate_key = \"k\"\n\
             algorithm = \"ed25519-sha256\"",
        )
        .unwrap();
        assert_eq!(config.keys[0].algorithm, Algorithm::RsaSha256);
        assert_eq!(config.keys[1].algorithm.to_string(), "ed25519-sha256");
        assert!(toml::from_str::<DkimConfig>("[[key]]\nalgorithm = \"rsa-sha1\"").is_err());
    }

    #[test]
    fn a_bad_canonicalization_is_refused_when_parsed() {
        let error = toml::from_str::<DkimConfig>("canonicalization = \"relaxed/none\"");
        assert!(error.unwrap_err().to_string().contains("relaxed/none"));
    }

    #[test]
    fn validate_refuses_bad_names_domains_selectors_and_duplicates() {
        let mut config = DkimConfig {
            headers: vec!["From".into(), "X Bad".into()],
            ..DkimConfig::default()
        };
        assert!(matches!(config.validate(), Err(ConfigError::HeaderName(_))));
        config.headers = vec!["from".into()];
        config.keys = vec![key("example.org", "s1"), key("EXAMPLE.org", "S1")];
        assert!(matches!(
            config.validate(),
            Err(ConfigError::DuplicateKey { .. })
        ));
        config.keys = vec![key("example.org;", "s1")];
        assert!(matches!(config.validate(), Err(ConfigError::Domain(_))));
        config.keys = vec![key("example.org", "s 1")];
        assert!(matches!(config.validate(), Err(ConfigError::Selector(_))));
        config.keys = vec![key("mail.example.org", "mq2026._a")];
        assert!(config.validate().is_ok());
    }
}
