//! AUTH answers as the SMTP server decodes them (PLAIN, LOGIN), on any text: a user and
//! password or an error, never a panic. What PLAIN accepts is the base64 of `[user] NUL user
//! NUL password`; and a user and password encoded by another base64 encoder decode back, as
//! does any LOGIN answer.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use libfuzzer_sys::fuzz_target;
use mq_core::smtp::auth::{AuthError, decode_base64_text, decode_plain};

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let login = decode_base64_text(&text);
    if let Ok((user, password)) = decode_plain(&text) {
        assert!(!user.is_empty() && !password.is_empty());
        assert!(!user.contains('\0') && !password.contains('\0'));
        let decoded = login.expect("PLAIN's answer is base64 text");
        assert!(
            decoded == format!("\0{user}\0{password}")
                || decoded == format!("{user}\0{user}\0{password}"),
            "{decoded:?}"
        );
    }

    // The input as a user and password, each encoded the way clients do.
    let (user, password) = text.split_once('\0').unwrap_or((&text, "secret"));
    for authzid in ["", user] {
        let answer = format!("{authzid}\0{user}\0{password}");
        for encoded in [STANDARD.encode(&answer), STANDARD_NO_PAD.encode(&answer)] {
            let expected = if user.is_empty() || password.is_empty() || password.contains('\0') {
                Err(AuthError::MalformedPlain)
            } else {
                Ok((user.to_owned(), password.to_owned()))
            };
            assert_eq!(decode_plain(&encoded), expected, "{answer:?}");
        }
    }
    assert_eq!(
        decode_base64_text(&STANDARD.encode(&*text)).as_deref(),
        Ok(&*text)
    );
});
