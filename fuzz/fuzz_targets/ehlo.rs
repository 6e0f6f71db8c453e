//! EHLO replies as the SMTP client reads them, on any bytes: the extensions never panic to
//! read; the first line (the server's name) and unknown keywords change nothing; AUTH
//! mechanisms are upper case, single words, each once; and the extensions written back as an
//! EHLO reply read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_core::fuzzing::ehlo_extensions;
use mq_core::smtp::client::{Extensions, parse_reply};

fuzz_target!(|input: &[u8]| {
    let Ok(Some(parsed)) = parse_reply(input) else {
        return;
    };
    let extensions = ehlo_extensions(&parsed.lines);

    for (i, mechanism) in extensions.auth.iter().enumerate() {
        assert!(!mechanism.is_empty());
        assert_eq!(*mechanism, mechanism.to_ascii_uppercase());
        assert!(!mechanism.contains([' ', '=']), "{mechanism:?}");
        assert!(
            !extensions.auth[..i].contains(mechanism),
            "{mechanism} twice"
        );
    }

    let mut renamed = parsed.lines.clone();
    "PIPELINING SIZE 1 AUTH X".clone_into(&mut renamed[0]);
    renamed.push("X-UNKNOWN-KEYWORD 1".to_owned());
    assert_eq!(ehlo_extensions(&renamed), extensions);

    assert_eq!(ehlo_extensions(&written(&extensions)), extensions);
});

/// The lines of an EHLO reply offering `extensions`.
fn written(extensions: &Extensions) -> Vec<String> {
    let mut lines = vec!["mx.example".to_owned()];
    let flags = [
        (extensions.pipelining, "PIPELINING"),
        (extensions.starttls, "STARTTLS"),
        (extensions.eight_bit_mime, "8BITMIME"),
        (extensions.enhanced_status_codes, "ENHANCEDSTATUSCODES"),
        (extensions.smtputf8, "SMTPUTF8"),
        (extensions.dsn, "DSN"),
    ];
    lines.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_owned()));
    if let Some(size) = extensions.size {
        lines.push(format!("SIZE {size}"));
    }
    if !extensions.auth.is_empty() {
        lines.push(format!("AUTH {}", extensions.auth.join(" ")));
    }
    lines
}
