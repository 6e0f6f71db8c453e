//! Message parsing on any bytes: it never panics, and what it writes back parses to the same
//! message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_plugin_api::Message;

fuzz_target!(|bytes: &[u8]| {
    let message = Message::parse(bytes);
    let again = Message::parse(&message.to_bytes());
    assert_eq!(again, message);
});
