//! Canonicalization (RFC 6376 §3.4): the exact bytes that are hashed for a header field and for
//! the body. Bare LF line endings count as CRLF, so a message stored with either signs alike.

use ring::digest::{Context, Digest, SHA256};

use crate::config::Method;

/// Writes one header field canonicalized by `method`, ending in CRLF. `raw_value` is everything
/// after the colon, folding and line ending included.
pub(crate) fn header(method: Method, name: &str, raw_value: &[u8], out: &mut Vec<u8>) {
    match method {
        Method::Simple => {
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            push_crlf_normalized(raw_value, out);
            if !out.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
        Method::Relaxed => {
            out.extend(
                name.trim_end_matches([' ', '\t'])
                    .bytes()
                    .map(|b| b.to_ascii_lowercase()),
            );
            out.push(b':');
            let mut value = Vec::with_capacity(raw_value.len());
            let unfolded = raw_value
                .iter()
                .copied()
                .filter(|&b| b != b'\r' && b != b'\n');
            push_collapsed(unfolded, &mut value);
            let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
            let end = value
                .iter()
                .rposition(|&b| b != b' ')
                .map_or(start, |i| i + 1);
            out.extend_from_slice(&value[start..end]);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The SHA-256 hash of the body canonicalized by `method`, computed line by line without a copy
/// of the body.
pub(crate) fn body_hash(method: Method, body: &[u8]) -> Digest {
    let mut hash = Context::new(&SHA256);
    let mut line = Vec::new();
    // Empty lines seen but not yet hashed: trailing ones are dropped (RFC 6376 §3.4.3, §3.4.4).
    let mut pending_empty = 0usize;
    let mut hashed_any = false;
    for raw in lines(body) {
        line.clear();
        match method {
            Method::Simple => line.extend_from_slice(raw),
            Method::Relaxed => {
                push_collapsed(raw.iter().copied(), &mut line);
                if line.last() == Some(&b' ') {
                    line.pop();
                }
            }
        }
        if line.is_empty() {
            pending_empty += 1;
            continue;
        }
        for _ in 0..pending_empty {
            hash.update(b"\r\n");
        }
        pending_empty = 0;
        hash.update(&line);
        hash.update(b"\r\n");
        hashed_any = true;
    }
    // An empty body is one CRLF under simple and nothing under relaxed (RFC 6376 errata 1384).
    if !hashed_any && method == Method::Simple {
        hash.update(b"\r\n");
    }
    hash.finish()
}

/// The body's lines without their endings (LF, or CRLF); a last line without one counts too.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    body.split(|&b| b == b'\n')
        .filter(move |_| !body.is_empty())
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

/// Copies `bytes` with each run of spaces and tabs as one space (relaxed canonicalization).
fn push_collapsed(bytes: impl Iterator<Item = u8>, out: &mut Vec<u8>) {
    let mut in_space = false;
    for b in bytes {
        if b == b' ' || b == b'\t' {
            if !in_space {
                out.push(b' ');
            }
            in_space = true;
        } else {
            out.push(b);
            in_space = false;
        }
    }
}

/// Copies `bytes` with each bare LF written as CRLF.
fn push_crlf_normalized(bytes: &[u8], out: &mut Vec<u8>) {
    let mut previous = 0u8;
    for &b in bytes {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        previous = b;
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::*;

    fn canonical_headers(method: Method, fields: &[(&str, &[u8])]) -> String {
        let mut out = Vec::new();
        for (name, value) in fields {
            header(method, name, value, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn body_hash_b64(method: Method, body: &[u8]) -> String {
        BASE64.encode(body_hash(method, body).as_ref())
    }

    fn sha256_b64(bytes: &[u8]) -> String {
        BASE64.encode(ring::digest::digest(&SHA256, bytes).as_ref())
    }

    /// RFC 6376 §3.4.6's example: `A: X`, `B : Y<TAB>` folded into `<TAB>Z  `. (This parser
    /// never takes `B ` as a name; the trailing space of a name is trimmed all the same.)
    const FIELDS: &[(&str, &[u8])] = &[("A", b" X\r\n"), ("B ", b" Y\t\r\n\tZ  \r\n")];
    const BODY: &[u8] = b" C \r\nD \t E\r\n\r\n\r\n";

    #[test]
    fn rfc_6376_example_relaxed() {
        assert_eq!(
            canonical_headers(Method::Relaxed, FIELDS),
            "a:X\r\nb:Y Z\r\n"
        );
        assert_eq!(
            body_hash_b64(Method::Relaxed, BODY),
            sha256_b64(b" C\r\nD E\r\n")
        );
    }

    #[test]
    fn rfc_6376_example_simple() {
        assert_eq!(
            canonical_headers(Method::Simple, FIELDS),
            "A: X\r\nB : Y\t\r\n\tZ  \r\n"
        );
        assert_eq!(
            body_hash_b64(Method::Simple, BODY),
            sha256_b64(b" C \r\nD \t E\r\n")
        );
    }

    #[test]
    fn empty_bodies_hash_as_rfc_6376_says() {
        // The well-known hashes of "\r\n" (simple) and "" (relaxed).
        let simple = "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=";
        let relaxed = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        for body in [&b""[..], b"\r\n", b"\r\n\r\n", b"\n"] {
            assert_eq!(body_hash_b64(Method::Simple, body), simple);
            assert_eq!(body_hash_b64(Method::Relaxed, body), relaxed);
        }
        assert_eq!(body_hash_b64(Method::Relaxed, b" \t\r\n"), relaxed);
        assert_ne!(body_hash_b64(Method::Simple, b" \r\n"), simple);
    }

    #[test]
    fn rfc_8463_example_body_hash() {
        // RFC 8463 appendix A.3: both signatures carry this bh= for the relaxed body.
        let body = b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";
        assert_eq!(
            body_hash_b64(Method::Relaxed, body),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
        );
    }

    #[test]
    fn bare_lf_and_a_missing_last_line_end_count_as_crlf() {
        for method in [Method::Simple, Method::Relaxed] {
            let crlf = body_hash_b64(method, b"a\r\nb\r\n");
            assert_eq!(body_hash_b64(method, b"a\nb\n"), crlf);
            assert_eq!(body_hash_b64(method, b"a\r\nb"), crlf);
        }
        assert_eq!(
            canonical_headers(Method::Simple, &[("Subject", b" a\n b\n")]),
            "Subject: a\r\n b\r\n"
        );
    }
}
