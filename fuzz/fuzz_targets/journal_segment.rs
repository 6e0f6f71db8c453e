//! The segment reader and the salvage scan on any segment file: recovery reads whole frames
//! from the start until one is broken; from there the scan splits the rest into valid frames
//! and damage that tile it exactly, damage first. Every valid frame it finds reads back alone
//! and decodes. Nothing panics.
#![no_main]

use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use mq_core::fuzzing::{JournalRecord, read_segment, scan_damage};

/// Length and checksum before each payload.
const HEADER: usize = 8;

fuzz_target!(|bytes: &[u8]| {
    let (frames, broken) = read_segment(bytes);
    let mut at = 0;
    // Where recovery stops: the first frame that is broken or does not decode.
    let mut stop = None;
    for (offset, payload) in &frames {
        assert_eq!(*offset, at as u64, "frames follow each other");
        assert!(!payload.is_empty());
        if stop.is_none() && JournalRecord::decode(payload).is_err() {
            stop = Some(at);
        }
        at += HEADER + payload.len();
    }
    match broken {
        None => assert_eq!(at, bytes.len()),
        Some((offset, _)) => {
            assert_eq!(offset, at as u64);
            assert!(at < bytes.len());
            stop.get_or_insert(at);
        }
    }
    let Some(stop) = stop else {
        return;
    };

    let rest = &bytes[stop..];
    let (valid, damage) = scan_damage(rest);
    assert_eq!(
        damage.first().map(|d| d.start),
        Some(0),
        "it starts at damage"
    );
    let mut pieces: Vec<(Range<usize>, bool)> = valid
        .iter()
        .map(|r| (r.clone(), true))
        .chain(damage.iter().map(|r| (r.clone(), false)))
        .collect();
    pieces.sort_by_key(|(range, _)| range.start);
    let mut end = 0;
    let mut last_valid = true;
    for (range, is_valid) in &pieces {
        assert_eq!(range.start, end, "no gap or overlap: {pieces:?}");
        assert!(range.end > range.start);
        assert!(*is_valid || last_valid, "two damaged ranges in a row");
        (end, last_valid) = (range.end, *is_valid);
    }
    assert_eq!(end, rest.len());
    for range in valid {
        let (frames, broken) = read_segment(&rest[range]);
        assert_eq!(broken, None);
        assert_eq!(frames.len(), 1);
        assert!(JournalRecord::decode(&frames[0].1).is_ok());
    }
});
