//! Message parsing on any bytes: it never panics, what it writes back parses to the same
//! message, and parsing in place (`from_vec`, `into_bytes`) gives the same message and bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_plugin_api::Message;

fuzz_target!(|bytes: &[u8]| {
    let message = Message::parse(bytes);
    let written = message.to_bytes();
    let again = Message::parse(&written);
    assert_eq!(again, message);
    let moved = Message::from_vec(bytes.to_vec());
    assert_eq!(moved, message);
    assert_eq!(moved.into_bytes(), written);
});
