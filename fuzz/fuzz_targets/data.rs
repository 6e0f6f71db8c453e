//! The DATA reader on any bytes, fed in chunks the input chooses: it never panics, never uses
//! more bytes than given, ends the message only at `CRLF . CRLF`, and gives the same result
//! however the input is split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_core::smtp::DataReader;

fuzz_target!(|input: (u8, &[u8])| {
    let (split, bytes) = input;
    let whole = run(bytes, bytes.len().max(1));
    let chunked = run(bytes, usize::from(split).max(1));
    assert_eq!(whole, chunked);
});

/// Feeds `bytes` in chunks of `chunk`; returns how many bytes the message took and its result.
fn run(bytes: &[u8], chunk: usize) -> Option<(usize, Result<Vec<u8>, String>)> {
    let mut reader = DataReader::new(1 << 16);
    let mut used = 0;
    for piece in bytes.chunks(chunk) {
        let (taken, ended) = reader.feed(piece);
        assert!(taken <= piece.len());
        used += taken;
        if ended {
            // Only CRLF . CRLF ends a message (the start of the data counts as after a CRLF).
            let before = &bytes[..used];
            assert!(
                before == b".\r\n" || before.ends_with(b"\r\n.\r\n"),
                "{before:?}"
            );
            return Some((used, reader.finish().map_err(|e| e.to_string())));
        }
        assert_eq!(taken, piece.len());
    }
    None
}
