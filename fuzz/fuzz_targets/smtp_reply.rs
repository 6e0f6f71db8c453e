//! Server replies as the SMTP client reads them, on any bytes: a reply, a request for more, or
//! an error, never a panic. The result is the same however the bytes arrive (the connection's
//! resumable parser, fed in pieces), depends only on the bytes the reply took, and a reply
//! rendered on one line, as mq's server sends one, reads back with the same code, enhanced
//! code and words.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_core::fuzzing::parse_reply_in_pieces;
use mq_core::smtp::client::parse_reply;

fuzz_target!(|input: &[u8]| {
    let whole = parse_reply(input);
    let piece = input.len() % 13 + 1;
    assert_eq!(
        parse_reply_in_pieces(input, piece),
        whole,
        "in pieces of {piece}"
    );
    let Ok(Some(parsed)) = whole else {
        return;
    };
    assert!(parsed.consumed > 0 && parsed.consumed <= input.len());
    assert_eq!(input[parsed.consumed - 1], b'\n');
    assert!((200..600).contains(&parsed.reply.code()));
    assert!(!parsed.lines.is_empty());
    assert_eq!(
        parse_reply(&input[..parsed.consumed]),
        Ok(Some(parsed.clone()))
    );

    let rendered = parsed.reply.to_string();
    assert!(!rendered.contains(['\r', '\n']), "{rendered:?}");
    let line = format!("{rendered}\r\n");
    let again = parse_reply(line.as_bytes())
        .expect("a rendered reply parses")
        .expect("a rendered reply is whole");
    assert_eq!(again.consumed, line.len());
    assert_eq!(again.reply.code(), parsed.reply.code());
    if parsed.reply.enhanced().is_some() {
        assert_eq!(again.reply.enhanced(), parsed.reply.enhanced());
    }
    let words = |text: &str| {
        text.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(words(&again.reply.to_string()), words(&rendered));
});
