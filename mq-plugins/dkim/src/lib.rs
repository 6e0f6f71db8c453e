//! mq's `dkim` plugin: DKIM-signs mail from trusted clients whose `From` domain has a key.
//!
//! At `smtp_in_data`, after the whole message arrived and before it is queued, the plugin signs
//! a message when the client is trusted (authenticated, or in the relay networks) and the one
//! address in the message's one `From` field is in a domain with a configured key. Each key of
//! that domain adds a `DKIM-Signature` field on top (RSA-SHA256 and Ed25519-SHA256 keys side by
//! side give the dual signature RFC 8463 suggests). The signature is made once, at acceptance,
//! so it is stored and delivered with the message. The plugin never rejects mail: a message it
//! cannot sign goes on unsigned, with a warning in the log.
//!
//! Its registration places it last in its chain (`order = "last"`), so that a plugin that
//! changes the message at `smtp_in_data` runs before the signature whatever its name, and makes
//! a call that fails or times out skip the plugin (`on_error = "skip"`): the message goes on
//! unsigned. `[engine.plugins.dkim]` overrides either.
//!
//! # Layout
//!
//! - `lib.rs`: [`Dkim`], the plugin, its hook and its registration under the name `dkim`.
//! - `config`: [`DkimConfig`] and its keys ([`KeyConfig`], [`Algorithm`], [`Canonicalization`]),
//!   and the checks that refuse a bad section ([`ConfigError`]).
//! - `key`: private keys read from PEM once, when the plugin is built ([`KeyError`]).
//! - `from`: the author's domain, from the `From` field.
//! - `canonical`: RFC 6376's simple and relaxed canonicalization, and the body hash.
//! - `signature`: the `DKIM-Signature` field: the fields it covers, its tags, its folding.
//!
//! # Why signing is written here and not taken from mail-auth
//!
//! - Every mail-auth release builds its DNS resolver in (hickory on Tokio, or reqwest), and mq
//!   keeps Tokio out of its tree; signing needs no DNS at all.
//! - What signing needs is small: two canonicalizations, SHA-256 and a signature. The crypto is
//!   ring's, already in mq through rustls: constant-time, and RSA-2048 in about a millisecond.
//! - The tests check every signature with mail-auth's verifier, an independent implementation.
//!
//! # Why the work runs off the worker
//!
//! An RSA signature and the hash of a large body take milliseconds of CPU: the hook hands them
//! to the blocking thread pool of `Context::unblock` and awaits, so the worker serves other
//! sessions meanwhile.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//!
//! use base64::Engine as _;
//! use mq_plugin_api::{Data, Envelope, Host, Message, Plugin};
//! use mq_plugin_dkim::{Dkim, DkimConfig};
//!
//! // An Ed25519 key in a PEM file, as `openssl genpkey -algorithm ed25519` writes it.
//! let rng = ring::rand::SystemRandom::new();
//! let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
//! let pem = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
//! let pem = format!("-----BEGIN PRIVATE KEY-----\n{pem}\n-----END PRIVATE KEY-----\n");
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("example.org.pem");
//! std::fs::write(&path, pem).unwrap();
//! // Only its owner may read it: the plugin refuses a key its group or others can read.
//! use std::os::unix::fs::PermissionsExt as _;
//! std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
//!
//! let config: DkimConfig = toml::from_str(&format!(r#"
//!     [[key]]
//!     domain = "example.org"
//!     selector = "mq2026"
//!     algorithm = "ed25519-sha256"
//!     private_key = "{}"
//! "#, path.display())).unwrap();
//! let plugin = Dkim::new(&config).unwrap();
//!
//! let message = Message::parse(b"From: Jane <jane@example.org>\r\nSubject: hi\r\n\r\nbody\r\n");
//! let mut data = Data::new(Envelope::default(), message);
//! let mut host = Host::new(0, Rc::new(smol::LocalExecutor::new()));
//! host.session_mut().relay_network = true; // a trusted client, as the server would mark it
//! let _ = smol::block_on(plugin.smtp_in_data(host.context(), &mut data));
//!
//! let signature = data.message.headers().iter().next().unwrap();
//! assert_eq!(signature.name(), "DKIM-Signature");
//! let value = signature.unfolded();
//! assert!(value.starts_with("v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.org;"));
//! // The TXT record to publish for it:
//! assert_eq!(plugin.dns_records()[0].0, "mq2026._domainkey.example.org");
//! ```

mod canonical;
mod config;
mod from;
mod key;
mod signature;

use std::sync::Arc;
use std::time::Duration;

use mq_plugin_api::{
    Context, Control, Data, FoldError, Message, Plugin, Session, TimeoutExt, hooks, plugin,
};

pub use config::{
    Algorithm, Canonicalization, ConfigError, DEFAULT_HEADERS, DkimConfig, KeyConfig, Method,
};
pub use key::KeyError;

use key::SigningKey;
use signature::Signing;

/// How long before the engine's deadline the hook gives up waiting for a signature, so that a
/// slow signature leaves the message unsigned instead of failing it.
const DEADLINE_MARGIN: Duration = Duration::from_millis(100);

/// The `dkim` plugin: signs accepted mail from trusted clients with its `From` domain's keys.
///
/// One instance runs per worker core; the keys are parsed by each core's factory and shared
/// with the signing thread pool through an `Arc`.
#[derive(Debug, Clone)]
pub struct Dkim {
    signer: Arc<Signer>,
}

/// What signing needs, shared with the thread pool.
#[derive(Debug)]
struct Signer {
    keys: Vec<SigningKey>,
    /// The names to sign, each once (compared without regard to case), in `h=` order.
    names: Vec<String>,
    canonicalization: Canonicalization,
    sign_all_trusted: bool,
}

/// A message with its new signatures on top, and why any key failed to sign it.
struct Signed {
    message: Message,
    failures: Vec<String>,
}

// Last in every chain, so that no plugin changes a message after it is signed (a plugin named
// after `dkim` that rewrote the Subject would break every signature); a call that fails or times
// out lets the message go on unsigned, as any other signing failure does.
#[plugin(name = "dkim", on_error = "skip", order = "last")]
impl Dkim {
    /// The plugin for `config`, with every key file read and parsed.
    ///
    /// # Errors
    ///
    /// The section is invalid (see [`DkimConfig::validate`]), or a key file cannot be read or
    /// holds no usable key for its algorithm; the engine then refuses to start and names the
    /// plugin.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_plugin_dkim::{Dkim, DkimConfig};
    ///
    /// assert!(Dkim::new(&DkimConfig::default()).is_ok()); // no keys: signs nothing
    /// let config: DkimConfig = toml::from_str(r#"
    ///     [[key]]
    ///     domain = "example.org"
    ///     selector = "mq2026"
    ///     private_key = "/nonexistent/key.pem"
    /// "#).unwrap();
    /// let error = Dkim::new(&config).unwrap_err().to_string();
    /// assert!(error.starts_with("key \"mq2026\" of domain \"example.org\": cannot read"));
    /// ```
    pub fn new(config: &DkimConfig) -> Result<Dkim, ConfigError> {
        config.validate()?;
        let keys = config
            .keys
            .iter()
            .map(|key| {
                SigningKey::load(key).map_err(|error| ConfigError::Key {
                    domain: key.domain.clone(),
                    selector: key.selector.clone(),
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut names: Vec<String> = Vec::new();
        for name in &config.headers {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                names.push(name.clone());
            }
        }
        let signer = Signer {
            keys,
            names,
            canonicalization: config.canonicalization,
            sign_all_trusted: config.sign_all_trusted,
        };
        Ok(Dkim {
            signer: Arc::new(signer),
        })
    }

    /// The DNS TXT records that publish the public keys, as `(name, value)` pairs such as
    /// `("mq2026._domainkey.example.org", "v=DKIM1; k=rsa; p=MIIB…")`, one per key.
    ///
    /// # Examples
    ///
    /// ```
    /// let plugin = mq_plugin_dkim::Dkim::new(&Default::default()).unwrap();
    /// assert!(plugin.dns_records().is_empty());
    /// ```
    pub fn dns_records(&self) -> Vec<(String, String)> {
        let keys = &self.signer.keys;
        keys.iter().map(|k| (k.record_name(), k.record())).collect()
    }
}

impl Signer {
    /// Whether mail from this session is ours to sign.
    fn signs_for(&self, session: &Session) -> bool {
        if self.sign_all_trusted {
            session.is_trusted()
        } else {
            session.user.is_some()
        }
    }

    /// Signs `message` with every key of `domain` and puts the signatures on top, the first
    /// key's topmost. Runs on the thread pool.
    fn sign(&self, message: Message, domain: &str, time: u64) -> Signed {
        let signing = Signing::new(&message, &self.names, self.canonicalization, time);
        let mut values = Vec::new();
        let mut failures = Vec::new();
        for key in self.keys.iter().filter(|k| k.domain == domain) {
            match signing.sign(key) {
                Ok(value) => values.push(value),
                Err(error) => failures.push(format!(
                    "not signed with key {:?} of domain {domain:?}: {error}",
                    key.selector
                )),
            }
        }
        let mut message = message;
        if let Err(error) = add_fields_on_top(&mut message, &values) {
            failures.push(format!("signature not added: {error}"));
        }
        Signed { message, failures }
    }
}

/// Puts a `DKIM-Signature` field of each folded value on top of `message`, the first value
/// topmost, keeping the folds the signature was computed over (written with the message's own
/// line ending).
fn add_fields_on_top(message: &mut Message, values: &[String]) -> Result<(), FoldError> {
    for value in values.iter().rev() {
        // The signer writes the value with the space after the colon; the field adds its own.
        let value = value.strip_prefix(' ').unwrap_or(value);
        message
            .headers_mut()
            .prepend_folded(signature::FIELD, value)?;
    }
    Ok(())
}

#[hooks]
impl Plugin for Dkim {
    async fn smtp_in_data(&self, ctx: &mut Context, data: &mut Data) -> Control {
        // Without keys (compiled in, not configured) there is nothing to look for.
        if self.signer.keys.is_empty() || !self.signer.signs_for(ctx.session()) {
            return Control::Continue;
        }
        let domain = match from::author_domain(data.message.headers()) {
            Ok(domain) => domain,
            Err(reason) => {
                ctx.debug(format_args!("not signed: {reason}"));
                return Control::Continue;
            }
        };
        if !self.signer.keys.iter().any(|k| k.domain == domain) {
            ctx.debug(format_args!("not signed: no key for {domain}"));
            return Control::Continue;
        }
        let signer = Arc::clone(&self.signer);
        let message = data.message.clone();
        let time = signature::now();
        let work = ctx.unblock(move || signer.sign(message, &domain, time));
        let budget = ctx.remaining().saturating_sub(DEADLINE_MARGIN);
        match work.timeout(budget).await {
            Ok(signed) => {
                for failure in &signed.failures {
                    ctx.warn(failure);
                }
                data.message = signed.message;
            }
            Err(elapsed) => ctx.warn(format_args!("not signed: {elapsed}")),
        }
        Control::Continue
    }
}

#[cfg(test)]
mod tests {
    use mq_plugin_api::{HookId, Named, PluginConfig, PluginHooks, Registration};

    use super::*;

    fn registration() -> &'static Registration {
        Registration::all()
            .find(|r| r.name() == "dkim")
            .expect("the plugin registers itself")
    }

    #[test]
    fn registers_as_dkim_at_smtp_in_data_only() {
        assert_eq!(Dkim::NAME, "dkim");
        let hooks: Vec<_> = Dkim::HOOKS.iter().map(HookId::name).collect();
        assert_eq!(hooks, ["smtp_in_data"]);
        assert_eq!(registration().hooks(), Dkim::HOOKS);
    }

    #[test]
    fn the_factory_accepts_an_absent_section_and_refuses_unknown_keys() {
        let empty = PluginConfig::new("dkim", 0, toml::Table::new());
        assert!(registration().build(&empty).is_ok());
        let table = toml::from_str("canonicalisation = \"simple\"").unwrap();
        let result = registration().build(&PluginConfig::new("dkim", 0, table));
        assert!(result.is_err());
    }

    #[test]
    fn the_factory_names_the_plugin_when_a_key_is_missing() {
        let table = toml::from_str(
            "[[key]]\ndomain = \"example.org\"\nselector = \"s\"\nprivate_key = \"/nonexistent\"",
        )
        .unwrap();
        let error = registration()
            .build(&PluginConfig::new("dkim", 0, table))
            .err()
            .expect("a missing key file is refused");
        assert_eq!(error.plugin(), "dkim");
        assert!(error.to_string().contains("cannot read"), "{error}");
    }

    #[test]
    fn sign_all_trusted_false_signs_for_authenticated_clients_only() {
        let signer = Dkim::new(&DkimConfig {
            sign_all_trusted: false,
            ..DkimConfig::default()
        })
        .unwrap()
        .signer;
        let mut session = Session::default();
        session.relay_network = true;
        assert!(!signer.signs_for(&session));
        session.user = Some("jane".into());
        assert!(signer.signs_for(&session));
    }

    #[test]
    fn header_names_are_signed_once_each() {
        let config = DkimConfig {
            headers: vec!["From".into(), "to".into(), "FROM".into(), "To".into()],
            ..DkimConfig::default()
        };
        assert_eq!(Dkim::new(&config).unwrap().signer.names, ["From", "to"]);
    }

    #[test]
    fn new_fields_follow_the_message_line_endings() {
        let mut lf = Message::parse(b"From: a@example.org\n\nbody\n");
        add_fields_on_top(&mut lf, &[" v=1;\r\n\tb=AAAA".into()]).unwrap();
        let bytes = lf.to_bytes();
        assert_eq!(
            bytes,
            b"DKIM-Signature: v=1;\n\tb=AAAA\nFrom: a@example.org\n\nbody\n"
        );
        let mut crlf = Message::parse(b"From: a@example.org\r\n\r\nbody\r\n");
        add_fields_on_top(&mut crlf, &[" v=1;\r\n\tb=AAAA".into()]).unwrap();
        let bytes = crlf.to_bytes();
        assert!(bytes.starts_with(b"DKIM-Signature: v=1;\r\n\tb=AAAA\r\nFrom:"));
    }
}
