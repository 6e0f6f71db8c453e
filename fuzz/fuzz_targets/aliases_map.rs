//! Alias map files as the aliases plugin reads them, on any bytes: a map or an error naming a
//! line of the file, never a panic. Bytes and text parse alike, and case only merges
//! patterns: a map valid with local parts compared without regard to case is valid compared
//! with it, with as many patterns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_plugin_aliases::AliasMap;

fuzz_target!(|bytes: &[u8]| {
    let lines = bytes.split(|&b| b == b'\n').count();
    let folded = AliasMap::from_bytes(bytes, false);
    let exact = AliasMap::from_bytes(bytes, true);
    for result in [&folded, &exact] {
        match result {
            Ok(map) => assert!(map.len() <= lines),
            Err(error) => assert!((1..=lines).contains(&error.line()), "{error}"),
        }
    }
    if let Ok(map) = &folded {
        assert_eq!(exact.as_ref().map(AliasMap::len), Ok(map.len()));
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        assert_eq!(AliasMap::parse(text, false), folded);
        assert_eq!(AliasMap::parse(text, true), exact);
    }
});
