//! Redis replies as the ratelimit plugin parses them, on any bytes: a reply, a request for
//! more, or an error, never a panic. A reply depends only on the bytes it took, and every
//! shorter cut of them asks for more (so a reply split across reads is never an error); a
//! command the plugin encodes parses back as the array of its arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_plugin_ratelimit::fuzzing::{Reply, encode, parse};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(Some((reply, used))) = parse(bytes) {
        assert!(used > 0 && used <= bytes.len());
        assert_eq!(parse(&bytes[..used]), Ok(Some((reply, used))));
        for cut in [0, used / 2, used - 1] {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut} of {used}");
        }
    }

    let args: Vec<&[u8]> = bytes.split(|&b| b == b' ').collect();
    let command = encode(&args);
    assert_eq!(
        parse(&command),
        Ok(Some((Reply::bulk_array(&args), command.len())))
    );
});
