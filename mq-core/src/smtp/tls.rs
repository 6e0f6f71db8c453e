//! STARTTLS: the server's certificate and key, and the acceptor that turns a plaintext
//! connection into a TLS one.
//!
//! rustls with the ring provider (no aws-lc), TLS 1.2 and 1.3, no client certificates. The
//! server answers `220 2.0.0 Ready to start TLS`, then hands the same stream to
//! [`TlsAcceptor::accept`]; anything the client pipelined after `STARTTLS` must be discarded
//! first, or a man in the middle can inject commands into the TLS session (CVE-2011-0411).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use futures_rustls::TlsAcceptor;
use rustls::{ProtocolVersion, ServerConfig, ServerConnection};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or the key could not be loaded.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// The file is not well-formed PEM.
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: pem::Error,
    },
    /// The file holds no `CERTIFICATE` section.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key (PKCS#8, RSA or SEC1).
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate and key, for example because they do not match.
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            TlsError::Pem { path, error } => {
                write!(f, "malformed PEM in {}: {error}", path.display())
            }
            TlsError::NoCertificate { path } => write!(f, "no certificate in {}", path.display()),
            TlsError::NoKey { path } => write!(f, "no private key in {}", path.display()),
            TlsError::Rustls(error) => write!(f, "tls configuration rejected: {error}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { error, .. } => Some(error),
            TlsError::Pem { error, .. } => Some(error),
            TlsError::Rustls(error) => Some(error),
            TlsError::NoCertificate { .. } | TlsError::NoKey { .. } => None,
        }
    }
}

/// Maps a PEM error to the `TlsError` that names `path`; `missing` is for a file without the
/// wanted section.
fn pem_error(path: &Path, error: pem::Error, missing: fn(PathBuf) -> TlsError) -> TlsError {
    let path = path.to_owned();
    match error {
        pem::Error::Io(error) => TlsError::Read { path, error },
        pem::Error::NoItemsFound => missing(path),
        error => TlsError::Pem { path, error },
    }
}

/// The server side of STARTTLS: the certificate chain in `cert_pem` (leaf first) and the
/// private key in `key_pem` (PKCS#8, RSA or SEC1), no client authentication.
///
/// Both may be the same file. Sections of other kinds are skipped.
///
/// # Examples
///
/// ```no_run
/// use std::path::Path;
///
/// let config = mq_core::smtp::tls::server_config(
///     Path::new("/etc/mq/cert.pem"),
///     Path::new("/etc/mq/key.pem"),
/// )?;
/// let acceptor = mq_core::smtp::tls::acceptor(config);
/// # Ok::<(), mq_core::smtp::tls::TlsError>(())
/// ```
pub fn server_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let no_cert = |path| TlsError::NoCertificate { path };
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| pem_error(cert_pem, e, no_cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert_pem, e, no_cert))?;
    if certs.is_empty() {
        return Err(no_cert(cert_pem.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|e| pem_error(key_pem, e, |path| TlsError::NoKey { path }))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Rustls)?;
    Ok(Arc::new(config))
}

/// The client side towards a relay whose certificate must verify against the certificates in
/// `ca_file` alone (PEM; other sections are skipped), not the Mozilla roots.
///
/// # Errors
///
/// The file cannot be read, is not PEM, holds no certificate, or rustls refuses one of them.
///
/// # Examples
///
/// ```no_run
/// let config = mq_core::smtp::tls::client_config_from_ca_file("/etc/mq/relay-ca.pem".as_ref())?;
/// # Ok::<(), mq_core::smtp::tls::TlsError>(())
/// ```
pub fn client_config_from_ca_file(ca_file: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let no_cert = |path| TlsError::NoCertificate { path };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| pem_error(ca_file, e, no_cert))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(ca_file, e, no_cert))?;
    if certs.is_empty() {
        return Err(no_cert(ca_file.to_owned()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(TlsError::Rustls)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client configuration that trusts no certificate: every handshake fails verification.
pub(crate) fn client_config_trusting_nothing() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Arc::new(config)
}

/// The acceptor that runs the server's TLS handshake on a connection after `STARTTLS`.
///
/// # Examples
///
/// ```no_run
/// # async fn run(config: std::sync::Arc<rustls::ServerConfig>, tcp: smol::net::TcpStream)
/// # -> std::io::Result<()> {
/// let tls = mq_core::smtp::tls::acceptor(config).accept(tcp).await?;
/// let (protocol, cipher) = mq_core::smtp::tls::describe(tls.get_ref().1);
/// # Ok(()) }
/// ```
pub fn acceptor(config: Arc<ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}

/// The negotiated protocol (`TLSv1.3`, `TLSv1.2`) and cipher suite
/// (`TLS13_AES_256_GCM_SHA384`), for the `smtp_in_secure` hook and the Received header.
///
/// Before the handshake has finished both are `unknown`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
/// # let pem = mq_core::smtp::tls::self_signed("mx.example");
/// # std::fs::write(&cert, pem.0)?;
/// # std::fs::write(&key, pem.1)?;
/// let config = mq_core::smtp::tls::server_config(&cert, &key)?;
/// let conn = rustls::ServerConnection::new(config)?;
/// assert_eq!(mq_core::smtp::tls::describe(&conn), ("unknown".into(), "unknown".into()));
/// # Ok(()) }
/// ```
pub fn describe(conn: &ServerConnection) -> (String, String) {
    let protocol = match conn.protocol_version() {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_owned(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map_or_else(|| "unknown".to_owned(), |s| format!("{:?}", s.suite()));
    (protocol, cipher)
}

/// A self-signed certificate for `hostname` and its private key, both PEM (tests only).
///
/// # Panics
///
/// If rcgen cannot generate a key or sign with it, or `hostname` is not a valid DNS name.
///
/// # Examples
///
/// ```
/// let (cert, key) = mq_core::smtp::tls::self_signed("mx.example");
/// assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(key.contains("PRIVATE KEY"));
/// ```
#[cfg(feature = "testkit")]
pub fn self_signed(hostname: &str) -> (String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed([hostname.to_owned()]).expect("self-signed certificate");
    (cert.pem(), signing_key.serialize_pem())
}

/// A client configuration that trusts exactly the certificates in `cert_pem` (tests only).
///
/// # Panics
///
/// If `cert_pem` holds no valid certificate.
///
/// # Examples
///
/// ```
/// let (cert, _key) = mq_core::smtp::tls::self_signed("mx.example");
/// let client = mq_core::smtp::tls::client_config_trusting(&cert);
/// let connector = futures_rustls::TlsConnector::from(client);
/// ```
#[cfg(feature = "testkit")]
pub fn client_config_trusting(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem.as_bytes()) {
        roots
            .add(cert.expect("PEM certificate"))
            .expect("trusted certificate");
    }
    assert!(!roots.is_empty(), "no certificate to trust");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncBufReadExt, AsyncWriteExt, io::BufReader};
    use rustls_pki_types::ServerName;
    use smol::{Async, net::TcpStream};
    use std::net::TcpListener;

    /// Writes `files` into a fresh temporary directory.
    fn write_files(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn a_handshake_over_loopback_negotiates_tls() {
        let (cert, key) = self_signed("mx.example");
        let dir = write_files(&[("cert.pem", &cert), ("key.pem", &key)]);
        let config = server_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
        let acceptor = acceptor(config.unwrap());
        let connector = futures_rustls::TlsConnector::from(client_config_trusting(&cert));
        smol::block_on(async {
            let listener = Async::<TcpListener>::bind(([127, 0, 0, 1], 0)).unwrap();
            let addr = listener.get_ref().local_addr().unwrap();
            let server = smol::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut tls = acceptor.accept(tcp).await.unwrap();
                tls.write_all(b"220 hello over tls\r\n").await.unwrap();
                tls.flush().await.unwrap();
                describe(tls.get_ref().1)
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("mx.example").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            let mut line = String::new();
            BufReader::new(tls).read_line(&mut line).await.unwrap();
            assert_eq!(line, "220 hello over tls\r\n");
            let (protocol, cipher) = server.await;
            assert!(protocol.starts_with("TLSv1."), "{protocol}");
            assert!(cipher.starts_with("TLS"), "{cipher}");
        });
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let dir = write_files(&[]);
        let missing = dir.path().join("absent.pem");
        let error = server_config(&missing, &missing).unwrap_err();
        assert!(matches!(&error, TlsError::Read { path, .. } if *path == missing));
        assert!(error.to_string().starts_with("cannot read "), "{error}");
    }

    #[test]
    fn a_file_without_certificate_or_key_is_named() {
        let (cert, key) = self_signed("mx.example");
        let dir = write_files(&[("cert.pem", &cert), ("key.pem", &key), ("empty.pem", "")]);
        let [cert, key, empty] = ["cert.pem", "key.pem", "empty.pem"].map(|n| dir.path().join(n));
        let error = server_config(&key, &key).unwrap_err();
        assert!(matches!(&error, TlsError::NoCertificate { path } if *path == key));
        let error = server_config(&cert, &cert).unwrap_err();
        assert!(matches!(&error, TlsError::NoKey { path } if *path == cert));
        assert_eq!(
            error.to_string(),
            format!("no private key in {}", cert.display())
        );
        let error = server_config(&cert, &empty).unwrap_err();
        assert!(matches!(error, TlsError::NoKey { .. }));
    }

    #[test]
    fn a_key_that_does_not_match_is_refused_by_rustls() {
        let (cert, _) = self_signed("mx.example");
        let (_, other_key) = self_signed("mx.example");
        let dir = write_files(&[("cert.pem", &cert), ("key.pem", &other_key)]);
        let config = server_config(&dir.path().join("cert.pem"), &dir.path().join("key.pem"));
        assert!(matches!(config.unwrap_err(), TlsError::Rustls(_)));
    }
}
