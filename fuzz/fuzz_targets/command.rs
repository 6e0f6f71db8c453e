//! The command parser on any line: it returns a command or a reply, never panics, and a reply
//! it gives is a 5xx refusal on one line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Err(reply) = mq_core::smtp::parse_command(line) {
        assert!((500..600).contains(&reply.code()), "{reply}");
        assert!(!reply.to_string().contains(['\r', '\n']));
    }
});
