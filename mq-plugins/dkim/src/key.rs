//! Private keys: loaded from PEM once, when the plugin is built, then shared by every signature.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;

use crate::config::{Algorithm, KeyConfig};

/// Refuses a key file its group or others may read or write, as OpenDKIM refuses an unsafe
/// key. The mode is the open file's, so the file checked is the file read.
#[cfg(unix)]
fn private(file: &File, path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = file
        .metadata()
        .map_err(KeyError::Read)?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o066 == 0 {
        Ok(())
    } else {
        Err(KeyError::Exposed {
            path: path.to_owned(),
            mode,
        })
    }
}

/// Other systems have no Unix modes to check.
#[cfg(not(unix))]
fn private(_file: &File, _path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// A key ready to sign for one domain and selector.
#[derive(Debug)]
pub(crate) struct SigningKey {
    /// The signing domain, lowercase.
    pub(crate) domain: String,
    pub(crate) selector: String,
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.write_str(match self {
            Pair::Rsa(_) => "Rsa(..)",
            Pair::Ed25519(_) => "Ed25519(..)",
        })
    }
}

/// Why a key file gave no signing key.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file holds no PEM private key (`BEGIN PRIVATE KEY` or `BEGIN RSA PRIVATE KEY`).
    NoPem,
    /// The file holds a key of a kind the algorithm cannot use (an EC key, or PKCS#1 for
    /// Ed25519).
    WrongKind(Algorithm),
    /// The key was refused, as ring names the reason: not a key of the algorithm, or an RSA
    /// modulus outside 2048 to 4096 bits.
    Rejected(Algorithm, String),
    /// The file may be read or written by its group or by others: the key is no longer
    /// secret, or can be swapped.
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Read(error) => write!(f, "cannot read the private key file: {error}"),
            KeyError::NoPem => f.write_str(
                "no PEM private key in the file (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)",
            ),
            KeyError::WrongKind(algorithm) => {
                write!(f, "the file holds no key of a kind {algorithm} can use")
            }
            KeyError::Rejected(Algorithm::RsaSha256, reason) => write!(
                f,
                "not a usable rsa-sha256 key ({reason}); RSA keys must be 2048 to 4096 bits"
            ),
            KeyError::Rejected(algorithm, reason) => {
                write!(f, "not a usable {algorithm} key ({reason})")
            }
            KeyError::Exposed { path, mode } => write!(
                f,
                "private key file {} is accessible to its group or others (mode {mode:04o}); \
                 make it readable by its owner only (chmod 600)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyError {}

impl SigningKey {
    /// Reads and parses the key file of `config`, which only its owner may read or write.
    /// Blocking file I/O: for the factory only.
    pub(crate) fn load(config: &KeyConfig) -> Result<SigningKey, KeyError> {
        let file = std::fs::File::open(&config.private_key).map_err(KeyError::Read)?;
        private(&file, &config.private_key)?;
        let mut pem = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut pem).map_err(KeyError::Read)?;
        SigningKey::from_pem(config, &pem)
    }

    /// Parses `pem` as the key of `config`.
    pub(crate) fn from_pem(config: &KeyConfig, pem: &[u8]) -> Result<SigningKey, KeyError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoPem)?;
        let algorithm = config.algorithm;
        let rejected = |e: ring::error::KeyRejected| KeyError::Rejected(algorithm, e.to_string());
        let pair = match (algorithm, &der) {
            (Algorithm::RsaSha256, PrivateKeyDer::Pkcs8(der)) => {
                Pair::Rsa(RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(rejected)?)
            }
            (Algorithm::RsaSha256, PrivateKeyDer::Pkcs1(der)) => {
                Pair::Rsa(RsaKeyPair::from_der(der.secret_pkcs1_der()).map_err(rejected)?)
            }
            // OpenSSL writes PKCS#8 v1 (no public key inside), which the checked parser refuses.
            (Algorithm::Ed25519Sha256, PrivateKeyDer::Pkcs8(der)) => Pair::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
                    .map_err(rejected)?,
            ),
            _ => return Err(KeyError::WrongKind(algorithm)),
        };
        Ok(SigningKey {
            domain: config.domain.to_ascii_lowercase(),
            selector: config.selector.clone(),
            pair,
        })
    }

    /// The algorithm, for `a=`.
    pub(crate) fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Rsa(_) => Algorithm::RsaSha256,
            Pair::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }

    /// Signs the canonicalized header data: RSA over the data itself (ring hashes it), Ed25519
    /// over its SHA-256 hash (RFC 8463 §3).
    pub(crate) fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    data,
                    &mut signature,
                )
                .map_err(|_| SignError)?;
                Ok(signature)
            }
            Pair::Ed25519(pair) => {
                let hash = ring::digest::digest(&ring::digest::SHA256, data);
                Ok(pair.sign(hash.as_ref()).as_ref().to_vec())
            }
        }
    }

    /// Where the public key goes in DNS: `SELECTOR._domainkey.DOMAIN`.
    pub(crate) fn record_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish there: `v=DKIM1; k=…; p=…`, with an RSA key as a
    /// SubjectPublicKeyInfo (what `openssl rsa -pubout` writes and verifiers expect) and an
    /// Ed25519 key as its 32 bytes (RFC 8463 §4).
    pub(crate) fn record(&self) -> String {
        let (kind, public) = match &self.pair {
            Pair::Rsa(pair) => ("rsa", subject_public_key_info(pair.public().as_ref())),
            Pair::Ed25519(pair) => ("ed25519", pair.public_key().as_ref().to_vec()),
        };
        format!("v=DKIM1; k={kind}; p={}", BASE64.encode(public))
    }
}

/// ring failed to sign; it does not say why, and with a key it accepted it should not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignError;

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the signature could not be computed")
    }
}

/// Wraps a PKCS#1 `RSAPublicKey` in a SubjectPublicKeyInfo: `SEQUENCE { SEQUENCE { rsaEncryption,
/// NULL }, BIT STRING { 0 unused bits, RSAPublicKey } }`.
fn subject_public_key_info(rsa_public_key: &[u8]) -> Vec<u8> {
    const RSA_ENCRYPTION: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x00];
    bits.extend_from_slice(rsa_public_key);
    let mut body = RSA_ENCRYPTION.to_vec();
    body.extend(der(0x03, &bits));
    der(0x30, &body)
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(algorithm: Algorithm) -> KeyConfig {
        KeyConfig {
            domain: "Example.ORG".into(),
            selector: "s1".into(),
            algorithm,
            private_key: "unused".into(),
        }
    }

    fn ed25519_pem() -> Vec<u8> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let body = BASE64.encode(pkcs8.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n").into_bytes()
    }

    #[test]
    fn der_lengths_use_the_long_form_from_128_bytes() {
        assert_eq!(der(0x04, &[1, 2]), [0x04, 2, 1, 2]);
        assert_eq!(&der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(&der(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn an_ed25519_key_signs_and_publishes_its_32_bytes() {
        let key = SigningKey::from_pem(&config(Algorithm::Ed25519Sha256), &ed25519_pem()).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519Sha256);
        assert_eq!(key.record_name(), "s1._domainkey.example.org");
        let record = key.record();
        let p = record.strip_prefix("v=DKIM1; k=ed25519; p=").unwrap();
        assert_eq!(BASE64.decode(p).unwrap().len(), 32);
        assert_eq!(key.sign(b"data").unwrap().len(), 64);
    }

    #[test]
    fn a_key_of_the_wrong_algorithm_or_no_pem_is_refused() {
        let error = SigningKey::from_pem(&config(Algorithm::RsaSha256), &ed25519_pem());
        assert!(matches!(error, Err(KeyError::Rejected(..))));
        let error = SigningKey::from_pem(&config(Algorithm::RsaSha256), b"not pem").unwrap_err();
        assert!(error.to_string().contains("no PEM private key"), "{error}");
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let key = SigningKey::from_pem(&config(Algorithm::Ed25519Sha256), &ed25519_pem()).unwrap();
        assert!(format!("{key:?}").contains("Ed25519(..)"));
    }
}
