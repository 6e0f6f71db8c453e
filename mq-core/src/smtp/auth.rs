//! SMTP AUTH (RFC 4954), server side: the PLAIN and LOGIN exchanges and the password table.
//!
//! Decoding never panics on client input: each malformed answer is an [`AuthError`] with the
//! reply Postfix gives for it. Checking a password is CPU-bound (SHA-512-crypt runs 5000 rounds
//! or more, Argon2 fills megabytes), so the server calls [`Credentials::verify`] off the
//! executor, on a few threads of its own, a bounded number at once (`smtp::auth_guard`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT as BASE64;
use mq_plugin_api::Reply;
use sha_crypt::ShaCrypt;

/// LOGIN's first prompt, `Username:` in base64.
pub const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";

/// LOGIN's second prompt, `Password:` in base64.
pub const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// Why an AUTH exchange or the password table was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// The client's answer is not base64, or not UTF-8 text once decoded.
    MalformedBase64,
    /// A PLAIN answer that is not `authzid NUL authcid NUL passwd` with a user and a password.
    MalformedPlain,
    /// A PLAIN answer asking to act as another user (authzid ≠ authcid), which mq does not allow.
    AuthzidMismatch,
    /// The client answered `*`.
    Cancelled,
    /// A configured hash is neither SHA-512-crypt (`$6$`) nor an Argon2 PHC string.
    BadHash {
        /// The user whose hash it is.
        user: String,
    },
}

impl AuthError {
    /// The reply the server sends for this error, as Postfix words it.
    ///
    /// # Examples
    ///
    /// ```
    /// use mq_core::smtp::auth::AuthError;
    ///
    /// assert_eq!(AuthError::Cancelled.reply().to_string(), "501 5.7.0 Authentication aborted");
    /// assert_eq!(AuthError::MalformedBase64.reply().code(), 501);
    /// ```
    pub fn reply(&self) -> Reply {
        match self {
            AuthError::MalformedBase64 | AuthError::MalformedPlain => {
                Reply::new(501, "5.5.2", "Cannot decode response")
            }
            AuthError::AuthzidMismatch => failed_reply(),
            AuthError::Cancelled => Reply::new(501, "5.7.0", "Authentication aborted"),
            AuthError::BadHash { .. } => {
                Reply::new(454, "4.7.0", "Temporary authentication failure")
            }
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MalformedBase64 => f.write_str("response is not base64-encoded text"),
            AuthError::MalformedPlain => f.write_str("malformed PLAIN response"),
            AuthError::AuthzidMismatch => {
                f.write_str("authorization identity differs from authentication identity")
            }
            AuthError::Cancelled => f.write_str("authentication cancelled by the client"),
            AuthError::BadHash { user } => write!(f, "unsupported password hash for user {user}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// The reply to credentials that do not match: `535 5.7.8 Error: authentication failed`.
///
/// # Examples
///
/// ```
/// assert_eq!(mq_core::smtp::auth::failed_reply().code(), 535);
/// ```
pub fn failed_reply() -> Reply {
    Reply::new(535, "5.7.8", "Error: authentication failed")
}

/// A stored password hash, parsed once when the table is loaded.
#[derive(Clone)]
enum Hash {
    /// `$6$[rounds=N$]salt$hash`, kept as text: sha-crypt verifies from the string.
    Sha512Crypt(String),
    Argon2(Box<PasswordHash>),
}

impl Hash {
    fn parse(text: &str) -> Option<Hash> {
        if text.starts_with("$6$") {
            return is_sha512_crypt(text).then(|| Hash::Sha512Crypt(text.to_owned()));
        }
        let hash = PasswordHash::new(text).ok()?;
        argon2::Algorithm::try_from(hash.algorithm.as_str()).ok()?;
        argon2::Params::try_from(&hash).ok()?;
        (hash.salt.is_some() && hash.hash.is_some()).then(|| Hash::Argon2(Box::new(hash)))
    }

    /// What one check costs, roughly, in units comparable across schemes: SHA-512-crypt's
    /// rounds, Argon2's memory blocks (KiB) times passes. One unit of either takes about the
    /// same time (a SHA-512 round of crypt, an Argon2 block compression: under a microsecond).
    fn cost(&self) -> u64 {
        match self {
            Hash::Sha512Crypt(text) => text
                .split('$')
                .nth(2)
                .and_then(|field| field.strip_prefix("rounds="))
                .and_then(|rounds| rounds.parse().ok())
                .unwrap_or(5000),
            Hash::Argon2(hash) => argon2::Params::try_from(&**hash)
                .map_or(0, |p| u64::from(p.m_cost()) * u64::from(p.t_cost())),
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Sha512Crypt(text) => ShaCrypt::SHA512
                .verify_password(password, text.as_str())
                .is_ok(),
            Hash::Argon2(hash) => verify_argon2(password, hash),
        }
    }
}

std::thread_local! {
    /// The Argon2 memory of this thread's checks, kept from one check to the next.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `password` hashes to `hash`, computed in this thread's [`ARGON2_MEMORY`].
///
/// # Why not `verify_password`
///
/// It allocates the memory cost (19 MiB with the default parameters) afresh for every check.
/// glibc's malloc then raises its mmap threshold past that size after the first free, so the
/// next blocks come from the heap and stay there, fragmented: 64 failing logins at once left
/// the server at about 400 MB even with two checks running at a time. Reusing one block per
/// checking thread holds memory at `max_verifications` × the largest cost configured.
fn verify_argon2(password: &[u8], hash: &PasswordHash) -> bool {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = argon2::Params::try_from(hash) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut computed = vec![0; expected.len()];
    let hashed = ARGON2_MEMORY.with_borrow_mut(|memory| {
        memory.resize(blocks, argon2::Block::default());
        argon2
            .hash_password_into_with_memory(password, salt.as_ref(), &mut computed, &mut **memory)
            .is_ok()
    });
    // `Output`'s equality is constant-time.
    hashed && argon2::password_hash::phc::Output::new(&computed).is_ok_and(|c| &c == expected)
}

/// `$6$[rounds=N$]salt$hash` with rounds in sha-crypt's range, a salt (of which crypt uses the
/// first 16 characters) and 86 characters of crypt-base64 (64 bytes).
fn is_sha512_crypt(text: &str) -> bool {
    let mut fields: Vec<&str> = text.split('$').skip(2).collect();
    if fields.first().is_some_and(|f| f.starts_with("rounds="))
        && sha_crypt::Params::from_str(fields.remove(0)).is_err()
    {
        return false;
    }
    let crypt64 = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
    matches!(fields.as_slice(), [salt, hash]
        if !salt.is_empty()
            && !salt.contains([':', '\n', '\r'])
            && hash.len() == 86
            && hash.bytes().all(crypt64))
}

/// The users who may authenticate and their password hashes (`[smtp.auth.users]`).
///
/// Hashes are SHA-512-crypt (`$6$…`, as `openssl passwd -6` or `mkpasswd -m sha-512` print
/// them) or Argon2 PHC strings (`$argon2id$…`, see [`hash_argon2`]).
///
/// # Examples
///
/// ```
/// use mq_core::smtp::auth::{Credentials, hash_argon2};
///
/// let credentials = Credentials::new([("alice", hash_argon2("secret"))])?;
/// assert!(credentials.verify("alice", "secret"));
/// assert!(!credentials.verify("alice", "guess"));
/// assert!(!credentials.verify("mallory", "secret"));
/// # Ok::<(), mq_core::smtp::auth::AuthError>(())
/// ```
#[derive(Clone)]
pub struct Credentials {
    users: HashMap<String, Hash>,
    /// What an unknown user is checked against: the costliest configured hash, so that an
    /// unknown user costs at least what any known one does, whichever schemes and parameters
    /// the users have (a fixed hash with other parameters would not).
    dummy: Option<Hash>,
}

impl Credentials {
    /// The table from (user, hash) pairs, such as the `[smtp.auth.users]` map.
    ///
    /// # Errors
    ///
    /// [`AuthError::BadHash`] naming the first user whose hash is not one mq can check.
    pub fn new<U, H>(users: impl IntoIterator<Item = (U, H)>) -> Result<Credentials, AuthError>
    where
        U: Into<String>,
        H: AsRef<str>,
    {
        let mut table = HashMap::new();
        for (user, hash) in users {
            let user = user.into();
            let Some(parsed) = Hash::parse(hash.as_ref()) else {
                return Err(AuthError::BadHash { user });
            };
            table.insert(user, parsed);
        }
        // Ties go to the alphabetically first user: the choice does not depend on hashing order.
        let dummy = table
            .iter()
            .max_by_key(|(user, hash)| (hash.cost(), std::cmp::Reverse(*user)))
            .map(|(_, h)| h.clone());
        Ok(Credentials {
            users: table,
            dummy,
        })
    }

    /// Whether `password` is `user`'s password. An unknown user is false, after the time a
    /// known one takes, so that timing does not tell which users exist.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        if let Some(hash) = self.users.get(user) {
            return hash.verify(password.as_bytes());
        }
        if let Some(dummy) = &self.dummy {
            std::hint::black_box(dummy.verify(password.as_bytes()));
        }
        false
    }
}

impl fmt::Debug for Credentials {
    /// Names the users, never their hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(String::as_str).collect();
        users.sort_unstable();
        f.debug_struct("Credentials")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

/// An Argon2id PHC string for `password` with a random salt and the default parameters.
///
/// # Panics
///
/// If the operating system's random number generator fails.
///
/// # Examples
///
/// ```
/// assert!(mq_core::smtp::auth::hash_argon2("secret").starts_with("$argon2id$"));
/// ```
pub fn hash_argon2(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("OS random number generator for the salt")
        .to_string()
}

/// Decodes one base64 answer; `*` cancels and `=` is the empty answer (RFC 4954 §4).
fn decode_base64(b64: &str) -> Result<Vec<u8>, AuthError> {
    match b64.trim() {
        "*" => Err(AuthError::Cancelled),
        "=" => Ok(Vec::new()),
        text => BASE64.decode(text).map_err(|_| AuthError::MalformedBase64),
    }
}

/// Decodes a LOGIN answer (the user name or the password) to text.
///
/// # Errors
///
/// [`AuthError::Cancelled`] for `*`, [`AuthError::MalformedBase64`] for anything that is not
/// base64 of UTF-8 text.
///
/// # Examples
///
/// ```
/// use mq_core::smtp::auth::{AuthError, decode_base64_text};
///
/// assert_eq!(decode_base64_text("YWxpY2U=").unwrap(), "alice");
/// assert_eq!(decode_base64_text("*"), Err(AuthError::Cancelled));
/// ```
pub fn decode_base64_text(b64: &str) -> Result<String, AuthError> {
    String::from_utf8(decode_base64(b64)?).map_err(|_| AuthError::MalformedBase64)
}

/// Decodes a PLAIN answer (RFC 4616: `authzid NUL authcid NUL passwd`) to the user and the
/// password. The authzid must be empty or the user itself.
///
/// # Errors
///
/// [`AuthError::Cancelled`] for `*`, [`AuthError::MalformedBase64`] for bad base64,
/// [`AuthError::MalformedPlain`] without two NULs, a user and a password,
/// [`AuthError::AuthzidMismatch`] for an authzid that is another user.
///
/// # Examples
///
/// ```
/// use mq_core::smtp::auth::decode_plain;
///
/// // base64 of "\0alice\0secret"
/// let (user, password) = decode_plain("AGFsaWNlAHNlY3JldA==").unwrap();
/// assert_eq!((user.as_str(), password.as_str()), ("alice", "secret"));
/// ```
pub fn decode_plain(response_b64: &str) -> Result<(String, String), AuthError> {
    let text =
        String::from_utf8(decode_base64(response_b64)?).map_err(|_| AuthError::MalformedBase64)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::MalformedPlain);
    };
    if user.is_empty() || password.is_empty() {
        return Err(AuthError::MalformedPlain);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::AuthzidMismatch);
    }
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthError::{AuthzidMismatch, Cancelled, MalformedBase64, MalformedPlain};

    /// `openssl passwd -6 -salt saltsalt secret`.
    const OPENSSL_SECRET: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

    fn plain(bytes: &[u8]) -> Result<(String, String), AuthError> {
        decode_plain(&BASE64.encode(bytes))
    }

    fn text(bytes: &[u8]) -> Result<String, AuthError> {
        decode_base64_text(&BASE64.encode(bytes))
    }

    #[test]
    fn sha512_crypt_hashes_verify() {
        let generated = ShaCrypt::SHA512.hash_password(b"hunter2").unwrap();
        let rounds = sha_crypt::Params::new(1000).unwrap();
        let with_rounds = ShaCrypt::new(sha_crypt::Algorithm::Sha512Crypt, rounds);
        let with_rounds = with_rounds.hash_password(b"pw").unwrap().to_string();
        assert!(with_rounds.starts_with("$6$rounds=1000$"), "{with_rounds}");
        let users = [
            ("alice", OPENSSL_SECRET),
            ("bob", generated.as_str()),
            ("carol", &with_rounds),
        ];
        let credentials = Credentials::new(users).unwrap();
        assert!(credentials.verify("alice", "secret"));
        assert!(credentials.verify("bob", "hunter2"));
        assert!(credentials.verify("carol", "pw"));
        assert!(!credentials.verify("alice", "hunter2"));
        assert!(!credentials.verify("bob", "secret"));
    }

    #[test]
    fn argon2_round_trips() {
        let hash = hash_argon2("correct horse");
        let credentials = Credentials::new(HashMap::from([("dave".to_owned(), hash)])).unwrap();
        assert!(credentials.verify("dave", "correct horse"));
        assert!(!credentials.verify("dave", "battery staple"));
    }

    #[test]
    fn unknown_users_and_empty_tables_are_refused() {
        let credentials = Credentials::new([("alice", OPENSSL_SECRET)]).unwrap();
        assert!(!credentials.verify("mallory", "secret"));
        assert!(!credentials.verify("", ""));
        let empty = Credentials::new(Vec::<(String, String)>::new()).unwrap();
        assert!(!empty.verify("alice", "secret"));
        let debug = format!("{credentials:?}");
        assert_eq!(debug, r#"Credentials { users: ["alice"], .. }"#);
    }

    /// The scheme and cost of the hash an unknown user is checked against.
    fn stand_in(users: &[(&str, &str)]) -> (&'static str, u64) {
        let credentials = Credentials::new(users.iter().copied()).unwrap();
        let dummy = credentials.dummy.expect("a stand-in for a non-empty table");
        let scheme = match dummy {
            Hash::Sha512Crypt(_) => "sha512-crypt",
            Hash::Argon2(_) => "argon2",
        };
        (scheme, dummy.cost())
    }

    #[test]
    fn the_unknown_user_stand_in_is_the_costliest_configured_hash_whoever_sorts_first() {
        let argon2 = hash_argon2("pw");
        let small = argon2::Params::new(8, 1, 1, None).unwrap();
        let small = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, small);
        let small = small.hash_password(b"pw").unwrap().to_string();
        let many_rounds = ShaCrypt::new(
            sha_crypt::Algorithm::Sha512Crypt,
            sha_crypt::Params::new(50_000).unwrap(),
        );
        let many_rounds = many_rounds.hash_password(b"pw").unwrap().to_string();
        // The default Argon2 (19 MiB, 2 passes) outweighs 5000 rounds of SHA-512-crypt.
        let default_pair = [("alice", OPENSSL_SECRET), ("bob", argon2.as_str())];
        assert_eq!(stand_in(&default_pair), ("argon2", 19_456 * 2));
        // 50,000 rounds outweigh an Argon2 hash of 8 KiB and one pass.
        let rounds_first = [("alice", small.as_str()), ("bob", many_rounds.as_str())];
        assert_eq!(stand_in(&rounds_first), ("sha512-crypt", 50_000));
        assert_eq!(stand_in(&[("zed", OPENSSL_SECRET)]), ("sha512-crypt", 5000));
    }

    #[test]
    fn unparsable_hashes_name_the_user() {
        let truncated = &OPENSSL_SECRET[..OPENSSL_SECRET.len() - 1];
        for hash in [
            "md5",
            "",
            "$1$abc$def",
            truncated,
            "$6$rounds=10$s$x",
            "$argon2id$",
        ] {
            let error = Credentials::new([("erin", hash)]).unwrap_err();
            assert_eq!(
                error.to_string(),
                "unsupported password hash for user erin",
                "{hash}"
            );
            assert_eq!(error.reply().code(), 454);
        }
    }

    #[test]
    fn plain_decodes_with_and_without_authzid() {
        let expected = Ok(("alice".to_owned(), "s3cr3t".to_owned()));
        assert_eq!(plain(b"\0alice\0s3cr3t"), expected);
        assert_eq!(plain(b"alice\0alice\0s3cr3t"), expected);
        assert_eq!(
            decode_plain("AGFsaWNlAHMzY3IzdA"),
            expected,
            "without padding"
        );
    }

    #[test]
    fn malformed_plain_answers_are_refused() {
        assert_eq!(plain(b"bob\0alice\0pw"), Err(AuthzidMismatch));
        assert_eq!(plain(b"alice\0pw"), Err(MalformedPlain));
        assert_eq!(plain(b"alicepw"), Err(MalformedPlain));
        assert_eq!(plain(b"\0alice\0pw\0extra"), Err(MalformedPlain));
        assert_eq!(plain(b"\0\0pw"), Err(MalformedPlain));
        assert_eq!(plain(b"\0alice\0"), Err(MalformedPlain));
        assert_eq!(plain(b"\0al\xffice\0pw"), Err(MalformedBase64));
        assert_eq!(decode_plain("="), Err(MalformedPlain));
        assert_eq!(decode_plain("not base64!"), Err(MalformedBase64));
        let reply = MalformedPlain.reply().to_string();
        assert_eq!(reply, "501 5.5.2 Cannot decode response");
        assert_eq!(AuthzidMismatch.reply(), failed_reply());
    }

    #[test]
    fn login_answers_decode() {
        assert_eq!(
            decode_base64_text(LOGIN_USERNAME_PROMPT),
            Ok("Username:".into())
        );
        assert_eq!(
            decode_base64_text(LOGIN_PASSWORD_PROMPT),
            Ok("Password:".into())
        );
        assert_eq!(decode_base64_text(" YWxpY2U= "), Ok("alice".into()));
        assert_eq!(decode_base64_text("="), Ok(String::new()));
        assert_eq!(decode_base64_text("YWxp%2U="), Err(MalformedBase64));
        assert_eq!(text(b"\xff\xfe"), Err(MalformedBase64));
    }

    #[test]
    fn a_star_cancels() {
        assert_eq!(decode_plain("*"), Err(Cancelled));
        assert_eq!(decode_base64_text("*"), Err(Cancelled));
        let reply = Cancelled.reply().to_string();
        assert_eq!(reply, "501 5.7.0 Authentication aborted");
        let failed = failed_reply().to_string();
        assert_eq!(failed, "535 5.7.8 Error: authentication failed");
    }
}
