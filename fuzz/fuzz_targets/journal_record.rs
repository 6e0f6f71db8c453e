//! The journal record decoder on any payload (what recovery decodes from a frame whose
//! checksum held): it returns a record or an error, never panics; a record it returns encodes
//! to a payload that decodes to the same record, ends with the same body, and framed is read
//! back whole by the segment reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mq_core::fuzzing::{JournalRecord, frame_record, is_record_kind, read_segment};

fuzz_target!(|payload: &[u8]| {
    let Ok(record) = JournalRecord::decode(payload) else {
        return;
    };
    assert!(is_record_kind(payload[0]));
    let body_len = usize::try_from(record.body_len()).unwrap();
    assert!(body_len < payload.len(), "the body is inside the payload");
    let body = &payload[payload.len() - body_len..];

    // Addresses are kept in their one spelling, so the bytes may differ from the input's; the
    // record may not.
    let encoded = record.encode(body);
    assert!(encoded.ends_with(body));
    assert_eq!(JournalRecord::decode(&encoded).as_ref(), Ok(&record));
    assert_eq!(record.encode(body), encoded, "encoding is deterministic");

    let frame = frame_record(&record, body);
    let (frames, broken) = read_segment(&frame);
    assert_eq!(broken, None);
    assert_eq!(frames, [(0, encoded)]);
});
